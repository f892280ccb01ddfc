"""/api/v1/… (router), /api/schema/ (OpenAPI 3), /api/docs/ (Swagger UI from local static files),
/api/token/ (the person's token page)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from . import live, views
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
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("token/", token_page, name="token"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
