"""The person's API token page (/api/token/): see it, create it, rotate it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from rest_framework.authtoken.models import Token


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def token_page(request):
    if request.method == "POST":
        with transaction.atomic():
            replaced = Token.objects.filter(user=request.user).delete()[0] > 0
            Token.objects.create(user=request.user)
        messages.success(request, "New token created; the old one no longer works." if replaced
                         else "Token created.")
        return redirect("api:token")
    token = Token.objects.filter(user=request.user).first()
    return render(request, "api/token.html", {"token": token})
