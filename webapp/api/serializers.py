"""Serializers of API v1: declarative fields, cross-field rules in validate(); params are
checked by the same lifecycle.validate_params as the pages (StyleConfig is the one home of
defaults and bounds)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from typing import Any, Callable

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

import stylize
from webapp.jobs import lifecycle, present
from webapp.models import Batch, StyleImage, StyleJob
from webapp.queue.lanes import MAX_PRIORITY, MIN_PRIORITY

from .errors import config_error, job_error
from .params_schema import params_schema

Status = StyleJob.Status


# -- fields ---------------------------------------------------------------------------------

@extend_schema_field(OpenApiTypes.UUID)
class OwnImageField(serializers.PrimaryKeyRelatedField):
    """The id of one of the requesting person's images (another person's is "does not exist")."""

    def get_queryset(self):
        return StyleImage.objects.filter(owner=self.context["request"].user)


@extend_schema_field(params_schema())
class ParamsField(serializers.JSONField):
    """A JSON object; a string holding one is accepted too (multipart forms carry text only)."""

    def to_internal_value(self, data):
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except (ValueError, RecursionError):  # RecursionError: nested past Python's limit
                raise serializers.ValidationError("must be a JSON object")
        if not isinstance(data, dict):
            raise serializers.ValidationError("must be a JSON object")
        return data


class CappedListField(serializers.ListField):
    """A list refused by its length before any item is validated: DRF's own max_length is a
    validator that runs after every item (an image id is a query each), so 10 000 ids would
    cost 10 000 queries before the 400. `cap` is read at each request (settings can change)."""

    def __init__(self, *, cap: Callable[[], int], **kwargs):
        self.cap = cap
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, list) and len(data) > self.cap():
            raise serializers.ValidationError(f"at most {self.cap()} items, not {len(data)}")
        return super().to_internal_value(data)


def _batch_cap() -> int:
    return settings.API_BATCH_MAX_JOBS


def _styles_cap() -> int:
    return settings.JOB_MAX_STYLES


def _check_style_count(count: int) -> None:
    """Before any uploaded file is stored (the view stores them after validation)."""
    try:
        lifecycle.check_style_count(count)
    except lifecycle.JobInputError as exc:
        raise job_error(exc)


def _check_params(params: dict, num_styles: int, preset: str | None) -> None:
    try:
        lifecycle.validate_params(params, num_styles, preset)
    except stylize.ConfigError as exc:
        raise config_error(exc)


PRESET_CHOICES = tuple(stylize.PRESETS)
PRIORITY = dict(min_value=MIN_PRIORITY, max_value=MAX_PRIORITY, default=0,
                help_text="Staff only (anyone else: leave it out or 0). Higher runs sooner.")


def _check_priority(serializer: serializers.Serializer, priority: int) -> None:
    """Only staff choose a priority: anyone else's would jump the queue (and the fair share)."""
    if priority and not serializer.context["request"].user.is_staff:
        raise serializers.ValidationError({"priority": ["only staff may set a priority; leave it out"]})


# -- images ---------------------------------------------------------------------------------

class ImageSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:image-detail")
    file_url = serializers.SerializerMethodField(help_text="The stored file (browser session).")

    class Meta:
        model = StyleImage
        fields = ["id", "url", "file_url", "original_name", "width", "height", "sha256", "created"]
        read_only_fields = fields

    def get_file_url(self, image: StyleImage) -> str:
        return present.image_url(image)


class ImageUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A PNG, JPEG or WebP picture (multipart).")


# -- jobs -----------------------------------------------------------------------------------

class JobCreateSerializer(serializers.Serializer):
    """One job. Content: `content` (an image id) or `content_file`; styles: `styles` (ids) and/or
    `style_files`, in that order. Params: StyleConfig options, on top of `preset` when given."""

    content = OwnImageField(required=False)
    content_file = serializers.FileField(required=False)
    styles = CappedListField(child=OwnImageField(), cap=_styles_cap, required=False, default=list)
    style_files = CappedListField(child=serializers.FileField(), cap=_styles_cap, required=False, default=list)
    params = ParamsField(required=False, default=dict)
    preset = serializers.ChoiceField(choices=PRESET_CHOICES, required=False, allow_null=True, default=None)
    priority = serializers.IntegerField(**PRIORITY)

    def validate(self, data):
        if ("content" in data) == ("content_file" in data):
            raise serializers.ValidationError({"content": ["give exactly one of content and content_file"]})
        _check_priority(self, data["priority"])
        num_styles = len(data["styles"]) + len(data["style_files"])
        _check_style_count(num_styles)
        _check_params(data["params"], num_styles, data["preset"])
        return data


class VisualizationSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField()
    about = serializers.CharField()
    kind = serializers.CharField()
    url = serializers.CharField(help_text="The picture (browser session).")
    download_url = serializers.CharField(help_text="The picture through the API (token).")


class JobSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:job-detail")
    styles = serializers.SerializerMethodField(help_text="Style image ids, in order.")
    result_url = serializers.SerializerMethodField(help_text="The result PNG through the API, once succeeded.")
    result_page_url = serializers.SerializerMethodField(help_text="The result PNG for a browser session.")
    visualizations = serializers.SerializerMethodField()

    class Meta:
        model = StyleJob
        fields = ["id", "url", "status", "batch", "priority", "content", "styles", "params", "progress",
                  "scale", "num_scales", "iteration", "iterations", "step", "total_steps", "loss",
                  "eta_seconds", "elapsed_seconds", "created", "started", "finished", "attempts",
                  "cancel_requested", "error", "seed", "device", "result_url", "result_page_url",
                  "visualizations"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_styles(self, job: StyleJob) -> list[str]:
        return [str(link.image_id) for link in job.style_links.all()]

    def _absolute(self, url: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_result_url(self, job: StyleJob) -> str | None:
        if job.status != Status.SUCCEEDED or not job.result.name:
            return None
        return self._absolute(reverse("api:job-result", args=[job.pk]))

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_result_page_url(self, job: StyleJob) -> str | None:
        urls = present.result_urls(job)
        return urls["url"] if urls else None

    @extend_schema_field(VisualizationSerializer(many=True))
    def get_visualizations(self, job: StyleJob) -> list[dict]:
        return [{"name": v["name"], "title": v["title"], "about": v["about"], "kind": v["kind"], "url": v["url"],
                 "download_url": self._absolute(reverse("api:job-artifact", args=[job.pk, v["name"]]))}
                for v in present.visualizations(job)]


class JobAcceptedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.URLField()
    status = serializers.CharField()


# -- batches --------------------------------------------------------------------------------

class PairSerializer(serializers.Serializer):
    content = OwnImageField()
    styles = CappedListField(child=OwnImageField(), cap=_styles_cap, min_length=1)
    params = ParamsField(required=False, default=dict, help_text="Overrides the batch's params for this item.")


class GridValuesField(serializers.DictField):
    """Option name → values; refused by its size before any value is looked at: no more names
    than StyleConfig has options, no more values per name than a batch may have jobs."""

    def to_internal_value(self, data):
        options = len(dataclasses.fields(stylize.StyleConfig))
        if isinstance(data, dict) and len(data) > options:
            raise serializers.ValidationError(f"at most {options} options, not {len(data)}")
        return super().to_internal_value(data)


class GridSerializer(serializers.Serializer):
    content = OwnImageField()
    styles = CappedListField(child=OwnImageField(), cap=_styles_cap, min_length=1)
    values = GridValuesField(
        child=CappedListField(child=serializers.JSONField(), cap=_batch_cap, min_length=1), allow_empty=False,
        help_text='Option name → the values to try; one job per combination, e.g. '
                  '{"style_weight": [1e4, 1e5], "tv_weight": [0, 1]}.')


class BatchCreateSerializer(serializers.Serializer):
    """Exactly one of: `contents` × `styles` (every pair, one style each), `pairs`, or `grid`."""

    name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    contents = CappedListField(child=OwnImageField(), cap=_batch_cap, required=False, min_length=1)
    styles = CappedListField(child=OwnImageField(), cap=_batch_cap, required=False, min_length=1)
    pairs = PairSerializer(many=True, required=False)  # its length is checked in to_internal_value
    grid = GridSerializer(required=False)
    params = ParamsField(required=False, default=dict, help_text="Shared by every job of the batch.")
    preset = serializers.ChoiceField(choices=PRESET_CHOICES, required=False, allow_null=True, default=None)
    priority = serializers.IntegerField(**PRIORITY)

    def to_internal_value(self, data):
        # Before any field: a list of pairs past the cap is refused without a query for each item.
        pairs = data.get("pairs") if isinstance(data, dict) else None
        if isinstance(pairs, list) and len(pairs) > settings.API_BATCH_MAX_JOBS:
            raise serializers.ValidationError(
                {"pairs": [f"at most {settings.API_BATCH_MAX_JOBS} items, not {len(pairs)}"]})
        return super().to_internal_value(data)

    def validate(self, data):
        modes = [m for m in ("contents", "pairs", "grid") if m in data]
        if len(modes) != 1:
            raise serializers.ValidationError(
                {"non_field_errors": ["give exactly one of contents (with styles), pairs or grid"]})
        if ("styles" in data) != ("contents" in data):
            raise serializers.ValidationError({"styles": ["contents and styles go together"]})
        _check_priority(self, data["priority"])
        # Counted with arithmetic before anything is built: a grid of 40 options × 2 values is
        # 2^40 jobs, refused here in microseconds instead of built entry by entry.
        count = _job_count(data)
        if count > settings.API_BATCH_MAX_JOBS:
            raise serializers.ValidationError(
                {"non_field_errors": [f"the batch has {count} jobs; at most {settings.API_BATCH_MAX_JOBS}"]})
        shared = data["params"]
        if "contents" in data:
            plan = [(c, [s], shared) for c, s in itertools.product(data["contents"], data["styles"])]
        elif "pairs" in data:
            plan = [(p["content"], p["styles"], {**shared, **p["params"]}) for p in data["pairs"]]
        else:
            grid = data["grid"]
            names = list(grid["values"])
            plan = [(grid["content"], grid["styles"], {**shared, **dict(zip(names, combo))})
                    for combo in itertools.product(*(grid["values"][n] for n in names))]
        if not plan:
            raise serializers.ValidationError({"non_field_errors": ["the batch has no jobs"]})
        for content, styles, params in plan:
            _check_style_count(len(styles))
            _check_params(params, len(styles), data["preset"])
        data["plan"] = plan
        return data


def _job_count(data: dict) -> int:
    if "contents" in data:
        return len(data["contents"]) * len(data["styles"])
    if "pairs" in data:
        return len(data["pairs"])
    return math.prod(len(values) for values in data["grid"]["values"].values())


class BatchAcceptedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    url = serializers.URLField()
    jobs = serializers.ListField(child=serializers.UUIDField())


class BatchSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:batch-detail")
    jobs = serializers.SerializerMethodField(help_text="Job ids, in the order submitted.")
    counts = serializers.SerializerMethodField(help_text="Jobs per status.")
    progress = serializers.SerializerMethodField(help_text="Mean progress of its jobs, 0 … 1.")
    eta_seconds = serializers.SerializerMethodField(
        help_text="Rough: the running jobs' ETAs plus the queued ones at the mean duration of the finished "
                  "ones (null when nothing has finished yet); one worker assumed.")
    results_url = serializers.HyperlinkedIdentityField(view_name="api:batch-results")

    class Meta:
        model = Batch
        fields = ["id", "url", "name", "params", "created", "jobs", "counts", "progress", "eta_seconds",
                  "results_url"]
        read_only_fields = fields

    def _jobs(self, batch: Batch) -> list[StyleJob]:
        cache = self.context.setdefault("_batch_jobs", {})
        if batch.pk not in cache:
            cache[batch.pk] = list(batch.jobs.order_by("created", "id").only(
                "id", "status", "progress", "eta_seconds", "elapsed_seconds", "created"))
        return cache[batch.pk]

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_jobs(self, batch: Batch) -> list[str]:
        return [str(job.pk) for job in self._jobs(batch)]

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_counts(self, batch: Batch) -> dict[str, int]:
        counts = {status: 0 for status in Status.values}
        for job in self._jobs(batch):
            counts[job.status] += 1
        return counts

    def get_progress(self, batch: Batch) -> float:
        rows = self._jobs(batch)
        if not rows:
            return 0.0
        return sum(1.0 if job.is_finished else job.progress for job in rows) / len(rows)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_eta_seconds(self, batch: Batch) -> Any:
        rows = self._jobs(batch)
        running = [job for job in rows if job.status == Status.RUNNING]
        queued = [job for job in rows if job.status == Status.QUEUED]
        if not running and not queued:
            return 0.0
        durations = [job.elapsed_seconds for job in rows if job.status == Status.SUCCEEDED and job.elapsed_seconds]
        if queued and not durations:
            return None
        mean = sum(durations) / len(durations) if durations else 0.0
        return sum(job.eta_seconds or 0.0 for job in running) + mean * len(queued)
