"""Sign up, and log in with a limit on failed attempts (log out is Django's own view, see page_urls)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.forms.forms import NON_FIELD_ERRORS
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters

from .. import login_limit
from ..forms import SignupForm


@sensitive_post_parameters("password1", "password2")
def signup(request):
    if request.user.is_authenticated:
        return redirect("pages:job_list")
    if request.method == "POST" and login_limit.signup_refused(request):
        return render(request, "registration/signup.html",
                      {"form": SignupForm(), "refused": login_limit.TOO_MANY_SIGNUPS}, status=429)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login_limit.record_signup(request)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.get_username()}! Start with a photo and a painting.")
        return redirect("pages:new_job")
    return render(request, "registration/signup.html", {"form": form})


class LoginForm(AuthenticationForm):
    """Django's login form, which says so when login_limit refuses the attempt (authenticate()
    would refuse it too, but with the message of a wrong password)."""

    def clean(self):
        username = self.cleaned_data.get("username")
        if username and login_limit.is_refused(self.request, username):
            raise ValidationError(login_limit.TOO_MANY, code="too_many_attempts")
        return super().clean()


class LoginView(auth_views.LoginView):
    """The login page: 429 with the reason once the attempts are used up."""

    authentication_form = LoginForm
    redirect_authenticated_user = True
    next_page = "pages:job_list"

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.has_error(NON_FIELD_ERRORS, "too_many_attempts"):
            response.status_code = 429
        return response
