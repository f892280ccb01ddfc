"""The service's data: uploaded images, style jobs (with their ordered styles and
visualisations), batches of jobs, and the workers' heartbeats.

Status changes happen in webapp/jobs/lifecycle.py only; nothing here moves a job from one
state to another.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

import stylize


class StyleImage(models.Model):
    """An uploaded picture, re-encoded without metadata; used as content or style by any number of jobs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="style_images")
    # Storage name `uploads/<uuid>.png|.jpg`: never the client's file name.
    file = models.FileField(max_length=255)
    # SHA-256 of the bytes as uploaded: the same file uploaded twice is stored once per owner.
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    original_name = models.CharField(max_length=255, blank=True, help_text="For display only (sanitised).")
    created = models.DateTimeField(default=timezone.now)
    # Size of the stored file: what counts against its owner's STORAGE_QUOTA_BYTES (jobs/quota.py).
    stored_bytes = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["owner", "sha256"], name="unique_image_per_owner")]
        indexes = [models.Index(fields=["owner", "-created"], name="image_owner_created")]

    def __str__(self) -> str:
        return self.original_name or self.file.name


class Batch(models.Model):
    """Jobs submitted together (for example one content with several styles or settings)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches")
    name = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    # What the jobs share, as submitted (informational: each job keeps its own full params).
    params = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["owner", "-created"], name="batch_owner_created")]

    def __str__(self) -> str:
        return self.name or f"batch {self.id}"


class StyleJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)
    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="style_jobs")
    batch = models.ForeignKey(Batch, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    priority = models.SmallIntegerField(default=0, help_text="Higher runs sooner (-9 … 9).")

    # The full StyleConfig.to_dict() the job was created with (seed None = pick one),
    # re-validated through StyleConfig whenever it is read back (config()).
    params = models.JSONField()
    # RESTRICT: an image a job used cannot be deleted on its own (the job could not be
    # reproduced), but deleting the owner deletes both.
    content = models.ForeignKey(StyleImage, on_delete=models.RESTRICT, related_name="content_jobs")
    # Order matters (it pairs with params["style_blend"]), hence the through table.
    styles = models.ManyToManyField(StyleImage, through="JobStyle", related_name="style_jobs")

    result = models.FileField(max_length=255, blank=True)  # PNG carrying the params, seed, versions
    preview = models.FileField(max_length=255, blank=True)  # latest intermediate image while running
    checkpoint = models.FileField(max_length=255, blank=True)  # latest stylize.Checkpoint, for resuming

    # Progress, written by the worker at most every PROGRESS_EVERY_SECONDS.
    progress = models.FloatField(default=0.0, help_text="Fraction of all iterations done, 0 … 1.")
    scale = models.PositiveSmallIntegerField(default=0)  # 0-based, coarse to fine
    num_scales = models.PositiveSmallIntegerField(default=0)
    iteration = models.PositiveIntegerField(default=0)  # at this scale
    iterations = models.PositiveIntegerField(default=0)  # planned at this scale
    step = models.PositiveIntegerField(default=0)  # over all scales
    total_steps = models.PositiveIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    elapsed_seconds = models.FloatField(null=True, blank=True)
    # [{"step", "scale", "loss", "losses": {term: value}}], thinned to a few hundred points.
    loss_history = models.JSONField(default=list, blank=True)
    last_heartbeat = models.DateTimeField(null=True, blank=True)

    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)  # of the latest attempt
    finished = models.DateTimeField(null=True, blank=True)

    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    # Id of the broker message allowed to run this job; a requeue issues a new one, so a
    # stale duplicate message cannot start a second run.
    task_id = models.CharField(max_length=64, blank=True)
    worker_host = models.CharField(max_length=255, blank=True)  # Celery node name of the latest attempt
    device = models.CharField(max_length=100, blank=True)  # "NVIDIA H200 (140 GB)" or "CPU"
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True)  # shown to the owner
    error_traceback = models.TextField(blank=True)  # for the admins

    # Filled in from the result, so that it can be reproduced.
    seed = models.BigIntegerField(null=True, blank=True)
    engine_version = models.CharField(max_length=32, blank=True)
    weights_sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["owner", "-created"], name="job_owner_created"),
            # Serves status filters too (its first column); the queue view orders by the rest.
            models.Index(fields=["status", "-priority", "created"], name="job_status_priority_created"),
        ]

    def __str__(self) -> str:
        return f"job {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    def config(self) -> stylize.StyleConfig:
        """The stored params, validated again (raises stylize.ConfigError if they no longer are)."""
        return stylize.StyleConfig.from_dict(self.params)

    def ordered_styles(self) -> list[StyleImage]:
        return [link.image for link in self.style_links.select_related("image").order_by("position")]


class JobStyle(models.Model):
    """One style image of a job, in order; its blend weight is params["style_blend"][position]."""

    job = models.ForeignKey(StyleJob, on_delete=models.CASCADE, related_name="style_links")
    image = models.ForeignKey(StyleImage, on_delete=models.RESTRICT, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="unique_style_position")]


class JobAttempt(models.Model):
    """One claim of a job by a worker and how it ended; the admin shows them as its history."""

    class Outcome(models.TextChoices):
        RUNNING = "", "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        RETRIED = "retried", "failed, queued again"
        CANCELLED = "cancelled"
        LOST = "lost", "worker lost"
        REQUEUED = "requeued", "requeued while stuck"

    job = models.ForeignKey(StyleJob, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()  # the job's `attempts` value this claim set
    worker_host = models.CharField(max_length=255, blank=True)
    started = models.DateTimeField(default=timezone.now)
    ended = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["started", "pk"]  # numbers restart at 1 when staff retry a job

    def __str__(self) -> str:
        return f"attempt {self.number} of job {self.job_id}"


class JobArtifact(models.Model):
    """A picture computed after the result: feature maps of one layer, Gram heatmaps, top patches, loss curves."""

    job = models.ForeignKey(StyleJob, on_delete=models.CASCADE, related_name="artifacts")
    name = models.SlugField(max_length=64)  # "features_relu3_1", "gram", "patches", "loss"
    file = models.FileField(max_length=255)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["job", "name"], name="unique_artifact_name")]

    def __str__(self) -> str:
        return f"{self.name} of job {self.job_id}"


class WorkerHeartbeat(models.Model):
    """What each worker last reported: the device it runs on and the job it works on."""

    name = models.CharField(max_length=255, unique=True)  # Celery node name, e.g. gpu0@host
    pid = models.PositiveIntegerField(null=True, blank=True)
    # The host name of the machine (or container) it runs on: two live workers of one name on two
    # machines would take each other's jobs for their own (webapp/worker/startup.py refuses that).
    machine = models.CharField(max_length=255, blank=True)
    device = models.CharField(max_length=100, blank=True)
    device_memory_bytes = models.BigIntegerField(null=True, blank=True)  # total
    device_memory_used_bytes = models.BigIntegerField(null=True, blank=True)
    current_job = models.ForeignKey(StyleJob, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    started = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class UnitPatches(models.Model):
    """The picture of the nine patches that excite one unit of one layer, for a finished job: asked
    for by its owner on the job page, computed by a worker (webapp/worker/patches.py), kept up to
    PATCHES_PER_JOB per job. `file` is empty while it waits for a worker."""

    job = models.ForeignKey(StyleJob, on_delete=models.CASCADE, related_name="unit_patches")
    layer = models.CharField(max_length=32)
    unit = models.PositiveIntegerField()
    file = models.FileField(max_length=255, blank=True)
    error = models.TextField(blank=True)  # why it could not be computed, shown to the owner
    task_id = models.CharField(max_length=64, blank=True)  # the message that may compute it
    requested = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["requested", "pk"]
        constraints = [models.UniqueConstraint(fields=["job", "layer", "unit"], name="unique_unit_patches")]

    def __str__(self) -> str:
        return f"patches of {self.layer} unit {self.unit} of job {self.job_id}"
