"""API v1 viewsets: GenericViewSet + mixins, every queryset limited to the requesting person
(another person's object is a 404). Jobs are made by webapp.jobs.lifecycle.create_job only."""

from __future__ import annotations


from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import Http404, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

import stylize
from webapp.jobs import images, lifecycle, storage
from webapp.jobs.storage import serve
from webapp.models import Batch, StyleImage, StyleJob

from . import serializers as s
from .errors import Conflict, JobCapReached, config_error, image_error, job_error
from .idempotency import HEADER, idempotent
from .models import IdempotencyKey
from .parsers import JobJSONParser
from .throttling import UploadRateThrottle
from .zipstream import zip_stream

Status = StyleJob.Status

IDEMPOTENCY = OpenApiParameter(HEADER, str, OpenApiParameter.HEADER, required=False,
                               description="Retrying with the same key returns the first response and creates "
                                           "nothing new (kept for successful responses only).")
ERRORS = {400: OpenApiResponse(description="Invalid input; the body names the field."),
          401: OpenApiResponse(description="No or bad token."),
          404: OpenApiResponse(description="Not found (or another person's).")}
UPLOAD_ERRORS = {413: OpenApiResponse(description="File or picture too large, or your storage quota full."),
                 415: OpenApiResponse(description="Not an image, or an unsupported format.")}
CAP = {429: OpenApiResponse(description="Too many jobs queued or running, or too many requests.")}
UNAVAILABLE = {503: OpenApiResponse(description="The job queue is unavailable; nothing was started. Try again "
                                                "in a minute.")}


class QueueDown(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The job queue is unavailable right now; nothing was started."
    default_code = "queue_unavailable"


def _submit(request, make, job_ids_of) -> Response:
    """idempotent(request, make) for a request that creates jobs, or 503 if the broker cannot take
    them: refused before anything was written, or, if it went down at that very moment, the jobs
    were failed as not sent at the commit; their Idempotency-Key answer is then dropped, so a
    retry with the same key submits them anew."""
    try:
        response = idempotent(request, make)
    except lifecycle.QueueUnavailable as exc:
        raise QueueDown(str(exc))
    try:
        lifecycle.check_sent(job_ids_of(response.data))
    except lifecycle.QueueUnavailable as exc:
        IdempotencyKey.objects.filter(owner=request.user, key=request.headers.get(HEADER, "").strip()).delete()
        raise QueueDown(str(exc))
    return response


def _made(data: dict, status_code: int, url: str) -> Response:
    """The answer to a POST that made (or found) something at `url`. str(url): DRF's hyperlinks
    are a str subclass, and a strict WSGI server (Django's runserver, wsgiref) refuses any
    header value whose type is not exactly str."""
    return Response(data, status=status_code, headers={"Location": str(url)})


def _store(request, uploaded) -> StyleImage:
    try:
        return storage.store_upload(request.user, uploaded)
    except stylize.ImageError as exc:
        raise image_error(exc)


@extend_schema_view(
    list=extend_schema(summary="Your images"),
    retrieve=extend_schema(summary="One of your images", responses={200: s.ImageSerializer, **ERRORS}),
    destroy=extend_schema(summary="Delete an image", description="Frees its room in your storage quota. The "
                          "finished jobs made from it (as content or style) are deleted with it; while a queued or "
                          "running job uses it, it is 409.",
                          responses={204: None, 409: OpenApiResponse(description="A queued or running job uses "
                                                                                 "it."), **ERRORS}),
)
class ImageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                   viewsets.GenericViewSet):
    serializer_class = s.ImageSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_throttles(self):
        return [*super().get_throttles(), UploadRateThrottle()]

    def perform_destroy(self, image: StyleImage) -> None:
        try:
            images.delete_image(image)
        except images.ImageInUse as exc:
            raise Conflict(str(exc))

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no person
            return StyleImage.objects.none()
        return StyleImage.objects.filter(owner=self.request.user).order_by("-created", "id")

    @extend_schema(summary="Upload an image", request=s.ImageUploadSerializer, parameters=[IDEMPOTENCY],
                   description="Multipart, field `file`. The same bytes uploaded again return the existing "
                               "image with 200 (201 when it is new).",
                   responses={201: s.ImageSerializer, 200: s.ImageSerializer, **ERRORS, **UPLOAD_ERRORS})
    def create(self, request, *args, **kwargs):
        def make() -> Response:
            upload = s.ImageUploadSerializer(data=request.data)
            upload.is_valid(raise_exception=True)
            before = StyleImage.objects.filter(owner=request.user).count()
            image = _store(request, upload.validated_data["file"])
            created = StyleImage.objects.filter(owner=request.user).count() > before
            data = s.ImageSerializer(image, context=self.get_serializer_context()).data
            return _made(data, status.HTTP_201_CREATED if created else status.HTTP_200_OK, data["url"])

        return idempotent(request, make)


@extend_schema_view(
    list=extend_schema(summary="Your jobs", parameters=[
        OpenApiParameter("status", str, enum=Status.values, description="Only jobs in this status."),
        OpenApiParameter("batch", OpenApiTypes.UUID, description="Only the jobs of this batch.")]),
    retrieve=extend_schema(summary="One job: status, progress, timings, result", responses={
        200: s.JobSerializer, **ERRORS}),
    destroy=extend_schema(summary="Delete a job and its files", description="A queued job is cancelled "
                          "first; a running one must be cancelled (and stop) before it can be deleted (409).",
                          responses={204: None, 409: OpenApiResponse(description="Still running."), **ERRORS}),
)
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                 viewsets.GenericViewSet):
    serializer_class = s.JobSerializer
    parser_classes = [JobJSONParser, MultiPartParser, FormParser]

    def get_throttles(self):
        return [*super().get_throttles(), UploadRateThrottle()]  # multipart jobs carry image files

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return StyleJob.objects.none()
        rows = StyleJob.objects.filter(owner=self.request.user).prefetch_related("style_links", "artifacts")
        if self.action == "list":
            wanted = self.request.query_params.get("status")
            if wanted:
                if wanted not in Status.values:
                    raise ValidationError({"status": [f"one of {', '.join(Status.values)}"]})
                rows = rows.filter(status=wanted)
            batch = self.request.query_params.get("batch")
            if batch:
                try:
                    rows = rows.filter(batch_id=batch)
                    rows.exists()
                except (DjangoValidationError, ValueError):
                    raise ValidationError({"batch": ["not a batch id"]})
        return rows.order_by("-created", "id")

    @extend_schema(summary="Start a job", request={"application/json": s.JobCreateSerializer,
                                                   "multipart/form-data": s.JobCreateSerializer},
                   parameters=[IDEMPOTENCY],
                   responses={202: s.JobAcceptedSerializer, **ERRORS, **UPLOAD_ERRORS, **CAP, **UNAVAILABLE})
    def create(self, request, *args, **kwargs):
        def make() -> Response:
            form = s.JobCreateSerializer(data=request.data, context=self.get_serializer_context())
            form.is_valid(raise_exception=True)
            data = form.validated_data
            # Uploaded files become images of their own first (deduplicated, reusable by id),
            # so they stay if the job is then refused.
            content = data.get("content") or _store(request, data["content_file"])
            styles = list(data["styles"]) + [_store(request, f) for f in data["style_files"]]
            try:
                job = lifecycle.create_job(request.user, content, styles, data["params"],
                                      priority=data["priority"], preset=data["preset"])
            except stylize.ConfigError as exc:
                raise config_error(exc)
            except lifecycle.JobError as exc:
                raise job_error(exc)
            url = request.build_absolute_uri(reverse("api:job-detail", args=[job.pk]))
            return _made({"id": str(job.pk), "url": url, "status": job.status}, status.HTTP_202_ACCEPTED, url)

        return _submit(request, make, lambda data: [data["id"]])

    @extend_schema(summary="Cancel a job", request=None, parameters=[IDEMPOTENCY],
                   description="A queued job is cancelled at once; a running one stops within about a second "
                               "(status stays running until then, cancel_requested true).",
                   responses={200: s.JobSerializer, 409: OpenApiResponse(description="Already finished."),
                              **ERRORS})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()

        def make() -> Response:
            try:
                lifecycle.cancel(job)
            except lifecycle.JobError as exc:
                raise job_error(exc)
            return Response(s.JobSerializer(self.get_queryset().get(pk=job.pk),
                                            context=self.get_serializer_context()).data)

        return idempotent(request, make)

    def perform_destroy(self, job: StyleJob) -> None:
        try:
            lifecycle.delete_job(job)
        except lifecycle.JobStateError as exc:
            raise Conflict(str(exc))

    @extend_schema(summary="The result PNG", responses={(200, "image/png"): OpenApiTypes.BINARY, **ERRORS})
    @action(detail=True, methods=["get"])
    def result(self, request, pk=None):
        job = self.get_object()
        if job.status != Status.SUCCEEDED:
            raise Http404
        return serve(request._request, job.result.name, filename=f"{job.pk}.png", download=True)

    @extend_schema(summary="One visualisation PNG", responses={(200, "image/png"): OpenApiTypes.BINARY, **ERRORS})
    @action(detail=True, methods=["get"], url_path=r"artifacts/(?P<name>[-a-zA-Z0-9_]+)")
    def artifact(self, request, pk=None, name=None):
        job = self.get_object()
        found = job.artifacts.filter(name=name).first() if job.status == Status.SUCCEEDED else None
        if found is None:
            raise Http404
        return serve(request._request, found.file.name, filename=f"{job.pk}-{name}.png")


@extend_schema_view(
    list=extend_schema(summary="Your batches"),
    retrieve=extend_schema(summary="A batch: counts per status, progress, ETA",
                           responses={200: s.BatchSerializer, **ERRORS}),
)
class BatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = s.BatchSerializer
    parser_classes = [JobJSONParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Batch.objects.none()
        return Batch.objects.filter(owner=self.request.user).order_by("-created", "id")

    @extend_schema(summary="Start a batch", request=s.BatchCreateSerializer, parameters=[IDEMPOTENCY],
                   description="Accepted whole or not at all: if its jobs would take you over the limit of "
                               "jobs queued or running, nothing is created (429).",
                   responses={202: s.BatchAcceptedSerializer, **ERRORS, **CAP, **UNAVAILABLE})
    def create(self, request, *args, **kwargs):
        def make() -> Response:
            form = s.BatchCreateSerializer(data=request.data, context=self.get_serializer_context())
            form.is_valid(raise_exception=True)
            data = form.validated_data
            plan = data["plan"]
            try:
                with transaction.atomic():
                    batch = Batch.objects.create(owner=request.user, name=data["name"],
                                                 params={"params": data["params"], "preset": data["preset"]})
                    created = [lifecycle.create_job(request.user, content, styles, params, priority=data["priority"],
                                               batch=batch, preset=data["preset"])
                               for content, styles, params in plan]
            except lifecycle.JobLimitReached:
                active = StyleJob.objects.filter(owner=request.user, status__in=StyleJob.ACTIVE).count()
                raise JobCapReached(
                    f"This batch has {len(plan)} jobs and you have {active} queued or running; at most "
                    f"{settings.JOBS_PER_USER} may be at once. Nothing was created.")
            except stylize.ConfigError as exc:
                raise config_error(exc)
            except lifecycle.JobError as exc:
                raise job_error(exc)
            url = request.build_absolute_uri(reverse("api:batch-detail", args=[batch.pk]))
            return _made({"id": str(batch.pk), "url": url, "jobs": [str(job.pk) for job in created]},
                         status.HTTP_202_ACCEPTED, url)

        return _submit(request, make, lambda data: data["jobs"])

    @extend_schema(summary="The finished results as a zip",
                   description="Streamed; entries named `<content>__<style>__<job>.png`. "
                               "Routed in urls.py (no trailing slash, unlike the router's URLs).",
                   responses={(200, "application/zip"): OpenApiTypes.BINARY, **ERRORS})
    def results(self, request, pk=None):
        batch = self.get_object()
        done = (batch.jobs.filter(status=Status.SUCCEEDED).exclude(result="").select_related("content")
                .prefetch_related("style_links__image").order_by("created", "id"))
        entries = [(f"{_stem(job.content)}__{_stem(job.style_links.all()[0].image)}__{job.pk}.png", job.result.name)
                   for job in done]
        if entries:
            storage.check_reachable()  # 503 now; once the zip has started its status cannot change
        response = StreamingHttpResponse(zip_stream(entries), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="batch-{batch.pk}.zip"'
        return response


def _stem(image: StyleImage) -> str:
    name = storage.sanitise_name(image.original_name or "") or "image"
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return stem.replace(" ", "_")[:60] or "image"
