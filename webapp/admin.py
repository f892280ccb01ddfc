"""Django admin for staff: jobs (list, filters, actions, full detail), images, batches, workers.

Every action goes through webapp/jobs/lifecycle.py, the same lifecycle code the pages and the API use;
nothing here writes a job's status itself, and nothing stops a worker process (a running
job is asked to stop; it does after its current iteration).
"""

from __future__ import annotations

import json
import uuid

from django.contrib import admin, messages
from django.db.models import DurationField, ExpressionWrapper, F
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from .jobs import lifecycle
from .models import Batch, JobAttempt, StyleImage, StyleJob, WorkerHeartbeat
from .templatetags.pages import duration
from .jobs.present import image_thumbnail_url, result_urls, thumbnail_url, visualizations

admin.site.site_header = "Style transfer service"
admin.site.site_title = "Style transfer admin"
admin.site.index_title = "Jobs, images, workers"

Status = StyleJob.Status
STATUS_COLOURS = {Status.QUEUED: "#6c757d", Status.RUNNING: "#0b6bcb", Status.SUCCEEDED: "#1a7f37",
                  Status.FAILED: "#c62828", Status.CANCELLED: "#8a6d00"}


def _duration(span) -> str:
    return duration(span.total_seconds())


class WorkerFilter(admin.SimpleListFilter):
    title = "worker"
    parameter_name = "worker"

    def lookups(self, request, model_admin):
        hosts = StyleJob.objects.exclude(worker_host="").order_by("worker_host").values_list(
            "worker_host", flat=True).distinct()
        return [(host, host) for host in hosts]

    def queryset(self, request, queryset):
        return queryset.filter(worker_host=self.value()) if self.value() else queryset


class JobAttemptInline(admin.TabularInline):
    model = JobAttempt
    extra = 0
    can_delete = False
    fields = ("number", "worker_host", "started", "ended", "duration", "outcome", "error")
    readonly_fields = fields
    verbose_name = "attempt"
    verbose_name_plural = "attempt history"

    @admin.display(description="duration")
    def duration(self, attempt: JobAttempt) -> str:
        end = attempt.ended or timezone.now()
        return _duration(end - attempt.started)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StyleJob)
class StyleJobAdmin(admin.ModelAdmin):
    list_display = ("thumbnail", "short_id", "owner", "status_badge", "progress_bar", "priority", "queue_wait",
                    "run_time", "worker_host", "attempts", "batch_link", "created")
    list_display_links = ("thumbnail", "short_id")
    list_filter = ("status", ("owner", admin.RelatedOnlyFieldListFilter), WorkerFilter, "created",
                   ("batch", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("owner", "batch", "content")
    search_fields = ("owner__username", "owner__email", "error")
    search_help_text = "A job id, an owner's name or e-mail, or words of the error."
    date_hierarchy = "created"
    ordering = ("-created",)
    list_per_page = 50
    actions = ("cancel_jobs", "retry_jobs", "requeue_stuck_jobs", "raise_priority", "lower_priority",
               "delete_with_files")
    inlines = (JobAttemptInline,)
    fieldsets = (
        (None, {"fields": ("status_badge", "owner", "batch", "priority", "progress_bar", "cancel_requested")}),
        ("Inputs and result", {"fields": ("inputs", "result_picture", "visualisation_links")}),
        ("Parameters", {"fields": ("params_table", "seed", "engine_version", "weights_sha256")}),
        ("Timing", {"fields": ("created", "started", "finished", "queue_wait", "run_time", "eta_seconds")}),
        ("Worker", {"fields": ("worker_host", "device", "attempts", "max_attempts", "task_id", "last_heartbeat")}),
        ("Error", {"fields": ("error", "error_traceback_block")}),
    )

    def get_readonly_fields(self, request, obj=None):
        # The detail page is read-only: changes go through the actions (the lifecycle).
        return [name for _, section in self.fieldsets for name in section["fields"]]

    def has_add_permission(self, request) -> bool:
        return False  # jobs are created by people, through the pages or the API

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            queue_wait_value=ExpressionWrapper(F("started") - F("created"), output_field=DurationField()),
            run_time_value=ExpressionWrapper(F("finished") - F("started"), output_field=DurationField()))

    def get_search_results(self, request, queryset, search_term):
        try:  # a whole job id (with or without dashes) finds that job
            return queryset.filter(pk=uuid.UUID(search_term.strip())), False
        except ValueError:
            return super().get_search_results(request, queryset, search_term)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # replaced by delete_with_files
        return actions

    # -- columns --------------------------------------------------------------------------

    @admin.display(description="")
    def thumbnail(self, job: StyleJob) -> str:
        return format_html('<img src="{}" alt="" width="48" height="48" style="object-fit:cover;border-radius:3px">',
                           thumbnail_url(job))

    @admin.display(description="job", ordering="id")
    def short_id(self, job: StyleJob) -> str:
        return str(job.pk)[:8]

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: StyleJob) -> str:
        label = job.get_status_display()
        if job.status == Status.RUNNING and job.cancel_requested:
            label += " (stopping)"
        return format_html('<span class="job-status" style="background:{};color:#fff;padding:1px 7px;'
                           'border-radius:9px;white-space:nowrap">{}</span>', STATUS_COLOURS[job.status], label)

    @admin.display(description="progress", ordering="progress")
    def progress_bar(self, job: StyleJob) -> str:
        percent = round(100 * max(0.0, min(1.0, job.progress)))
        return format_html('<progress max="100" value="{}" title="{} %" style="width:80px"></progress> {} %',
                           percent, percent, percent)

    @admin.display(description="queue wait", ordering="queue_wait_value")
    def queue_wait(self, job: StyleJob) -> str:
        end = job.started or (timezone.now() if job.status == Status.QUEUED else None)
        return _duration(end - job.created) if end else "–"

    @admin.display(description="run time", ordering="run_time_value")
    def run_time(self, job: StyleJob) -> str:
        if not job.started:
            return "–"
        end = job.finished or (timezone.now() if job.status == Status.RUNNING else None)
        return _duration(end - job.started) if end else "–"

    @admin.display(description="batch", ordering="batch")
    def batch_link(self, job: StyleJob) -> str:
        if job.batch_id is None:
            return "–"
        return format_html('<a href="?batch__id__exact={}">{}</a>', job.batch_id, str(job.batch)[:24])

    # -- detail ---------------------------------------------------------------------------

    @admin.display(description="inputs")
    def inputs(self, job: StyleJob) -> str:
        tiles = [("content", job.content)] + [(f"style {i + 1}", image) for i, image in enumerate(job.ordered_styles())]
        return format_html_join(
            " ", '<figure style="display:inline-block;margin:0 8px 0 0"><a href="{}"><img src="{}" alt="" '
                 'height="120"></a><figcaption>{}</figcaption></figure>',
            ((reverse("admin:webapp_styleimage_change", args=[image.pk]), image_thumbnail_url(image), label)
             for label, image in tiles))

    @admin.display(description="result")
    def result_picture(self, job: StyleJob) -> str:
        urls = result_urls(job)
        if urls is None:
            return "–"
        return format_html('<a href="{}"><img src="{}" alt="result" height="240"></a>', urls["url"],
                           urls["thumbnail_url"])

    @admin.display(description="visualisations")
    def visualisation_links(self, job: StyleJob) -> str:
        items = visualizations(job)
        if not items:
            return "–"
        return format_html_join(" · ", '<a href="{}">{}</a>', ((v["url"], v["title"]) for v in items))

    @admin.display(description="parameters")
    def params_table(self, job: StyleJob) -> str:
        return format_html('<pre style="margin:0">{}</pre>', json.dumps(job.params, indent=2, sort_keys=True))

    @admin.display(description="traceback")
    def error_traceback_block(self, job: StyleJob) -> str:
        if not job.error_traceback:
            return "–"
        return format_html('<pre style="max-height:30em;overflow:auto;margin:0">{}</pre>', job.error_traceback)

    # -- actions --------------------------------------------------------------------------

    def _each(self, request, queryset, verb: str, change) -> None:
        """Apply `change(job)` to each selected job; say how many it worked for and why not for the rest."""
        done, refused = 0, []
        for job in queryset:
            try:
                change(job)
                done += 1
            except lifecycle.JobError as exc:
                refused.append(f"{str(job.pk)[:8]}: {exc}")
        if done:
            self.message_user(request, f"{verb}: {done} job(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, f"Not {verb.lower()}: " + "; ".join(refused[:10]), messages.WARNING)

    @admin.action(description="Cancel (a running job stops within an iteration)", permissions=["change"])
    def cancel_jobs(self, request, queryset):
        self._each(request, queryset, "Cancelled or asked to stop", lifecycle.cancel)

    @admin.action(description="Retry failed or cancelled jobs", permissions=["change"])
    def retry_jobs(self, request, queryset):
        self._each(request, queryset.filter(status__in=(Status.FAILED, Status.CANCELLED)), "Queued again",
                   lifecycle.requeue)

    @admin.action(description="Requeue stuck jobs (running, no heartbeat)", permissions=["change"])
    def requeue_stuck_jobs(self, request, queryset):
        stuck = queryset.filter(pk__in=lifecycle.stuck_jobs().values("pk"))
        if not stuck.exists():
            self.message_user(request, "None of the selected jobs is stuck.", messages.INFO)
            return
        self._each(request, stuck, "Requeued", lifecycle.requeue)

    @admin.action(description="Raise priority (+1, served sooner)", permissions=["change"])
    def raise_priority(self, request, queryset):
        self._each(request, queryset, "Priority raised", lambda job: lifecycle.set_priority(job, job.priority + 1))

    @admin.action(description="Lower priority (−1)", permissions=["change"])
    def lower_priority(self, request, queryset):
        self._each(request, queryset, "Priority lowered", lambda job: lifecycle.set_priority(job, job.priority - 1))

    @admin.action(description="Delete with their files", permissions=["delete"])
    def delete_with_files(self, request, queryset):
        self._each(request, queryset, "Deleted", lifecycle.delete_job)

    def delete_model(self, request, obj):  # the detail page's Delete button
        try:
            lifecycle.delete_job(obj)
        except lifecycle.JobError as exc:
            self.message_user(request, str(exc), messages.ERROR)


@admin.register(StyleImage)
class StyleImageAdmin(admin.ModelAdmin):
    list_display = ("picture", "original_name", "owner", "width", "height", "created")
    list_filter = (("owner", admin.RelatedOnlyFieldListFilter), "created")
    list_select_related = ("owner",)
    search_fields = ("original_name", "owner__username", "sha256")
    readonly_fields = ("picture_large", "owner", "file", "sha256", "width", "height", "original_name", "created")
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="")
    def picture(self, image: StyleImage) -> str:
        return format_html('<img src="{}" alt="" height="48">', image_thumbnail_url(image))

    @admin.display(description="picture")
    def picture_large(self, image: StyleImage) -> str:
        return format_html('<img src="{}" alt="" height="240">', image_thumbnail_url(image))


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "jobs_link", "created")
    list_select_related = ("owner",)
    search_fields = ("name", "owner__username")
    readonly_fields = ("owner", "name", "notes", "params", "created", "jobs_link")

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="jobs")
    def jobs_link(self, batch: Batch) -> str:
        url = reverse("admin:webapp_stylejob_changelist") + f"?batch__id__exact={batch.pk}"
        return format_html('<a href="{}">{} job(s)</a>', url, batch.jobs.count())


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    """Workers as they last reported (the queue dashboard says which answer now)."""

    list_display = ("name", "machine", "device", "memory", "current_job", "pid", "last_seen", "started")
    readonly_fields = ("name", "machine", "pid", "device", "device_memory_used_bytes", "device_memory_bytes",
                       "current_job", "started", "last_seen")

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="memory used / total")
    def memory(self, beat: WorkerHeartbeat) -> str:
        if not beat.device_memory_bytes:
            return "–"
        used = beat.device_memory_used_bytes or 0
        return f"{used / 2**30:.1f} / {beat.device_memory_bytes / 2**30:.1f} GiB"
