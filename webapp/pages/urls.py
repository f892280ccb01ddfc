"""URLs of the browser pages (included by webapp/urls.py at the root, namespace "pages").

    /                                         my jobs: a gallery, newest first (?page=N)
    /new/                                     a new stylization (?from=<job> fills it from that job)
    /jobs/<id>/                               a job: progress, result, inputs, params, visualisations
    /jobs/<id>/events                         its state as Server-Sent Events, pushed (the job page's feed)
    /jobs/<id>/status.json                    its state, polled (the page's fallback; ?step=N)
    /jobs/<id>/cancel/                        POST: cancel it
    /jobs/<id>/result.png                     the result (?download=1 to save it)
    /jobs/<id>/preview.png                    the latest intermediate image
    /jobs/<id>/thumbnail.jpg                  the result, small (the gallery)
    /jobs/<id>/visualizations/<name>.png      a stored visualisation (features_relu3_1, gram, ...)
    /jobs/<id>/patches.png?layer=&unit=       top patches of one unit, computed once, then stored
    /images/<id>/                             an uploaded image
    /images/<id>/thumbnail.jpg                the same, small
    /accounts/signup/  /accounts/login/  /accounts/logout/ (POST)

Every file URL checks the owner; `?v=` on a file URL only makes it cacheable.
"""

from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from .views import accounts, files, live, pages, status

app_name = "pages"

urlpatterns = [
    path("", pages.job_list, name="job_list"),
    path("jobs/", RedirectView.as_view(pattern_name="pages:job_list", permanent=False)),
    path("new/", pages.new_job, name="new_job"),
    path("jobs/<uuid:job_id>/", pages.job_detail, name="job_detail"),
    path("jobs/<uuid:job_id>/events", live.job_events, name="job_events"),
    path("jobs/<uuid:job_id>/status.json", status.job_status, name="job_status"),
    path("jobs/<uuid:job_id>/cancel/", status.job_cancel, name="job_cancel"),
    path("jobs/<uuid:job_id>/result.png", files.job_result, name="job_result"),
    path("jobs/<uuid:job_id>/preview.png", files.job_preview, name="job_preview"),
    path("jobs/<uuid:job_id>/thumbnail.jpg", files.job_thumbnail, name="job_thumbnail"),
    path("jobs/<uuid:job_id>/visualizations/<slug:name>.png", files.job_artifact, name="job_artifact"),
    path("jobs/<uuid:job_id>/patches.png", files.job_patches, name="job_patches"),
    path("images/<uuid:image_id>/", files.image_file, name="image_file"),
    path("images/<uuid:image_id>/thumbnail.jpg", files.image_thumbnail, name="image_thumbnail"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),  # failed attempts limited
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="pages:login"), name="logout"),
]
