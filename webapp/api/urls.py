"""/api/v1/… (router), /api/schema/ (OpenAPI 3), /api/docs/ (Swagger UI from local static files),
/api/token/ (the person's token page). Schema and docs need a login unless API_DOCS_PUBLIC."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from . import live, views
from .docs_access import DocsReaders, login_unless_public
from .token_page import token_page

router = DefaultRouter()
router.register("images", views.ImageViewSet, basename="image")
router.register("jobs", views.JobViewSet, basename="job")
router.register("batches", views.BatchViewSet, basename="batch")

app_name = "api"
urlpatterns = [
    path("v1/jobs/<uuid:pk>/state", live.job_state, name="job-state"),
    path("v1/batches/<uuid:pk>/results.zip", views.BatchViewSet.as_view({"get": "results"}), name="batch-results"),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[DocsReaders]), name="schema"),
    path("token/", token_page, name="token"),
    # The split view serves Swagger UI's script as a file (?script), which the CSP allows.
    path("docs/", login_unless_public(SpectacularSwaggerSplitView.as_view(
        url_name="api:schema", permission_classes=[DocsReaders])), name="docs"),
]
