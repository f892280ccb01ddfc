"""The person's API token page (/api/token/): their tokens (when made, when they expire), a
new one (shown on this one answer only: only its hash is kept), revoke one."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from . import tokens

CHOICES = dict(tokens.EXPIRY_CHOICES)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def token_page(request):
    new_token, status = None, 200
    if request.method == "POST" and "revoke" in request.POST:
        if tokens.revoke(request.user, request.POST["revoke"]):
            messages.success(request, "Token revoked: it no longer works.")
        return redirect("api:token")
    if request.method == "POST":
        try:
            days = int(request.POST.get("expires_in_days", "0"))
        except ValueError:
            days = -1
        if days not in CHOICES:
            messages.error(request, "Choose when the token expires.")
            status = 400
        else:
            try:
                new_token = tokens.issue(request.user, days)
            except tokens.TooManyTokens as exc:
                messages.error(request, str(exc))
                status = 409
    return render(request, "api/token.html", {
        "new_token": new_token, "tokens": tokens.tokens_of(request.user), "choices": tokens.EXPIRY_CHOICES,
    }, status=status)
