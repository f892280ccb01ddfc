"""The pages themselves: my jobs (a gallery), a new stylization, a job."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

import stylize
from stylize.vgg import layer_channels

from ...jobs import lifecycle
from ..forms import NewJobForm, PatchesForm
from ..params import PRESET_FIELDS, RELU_LAYERS, page_layers, preset_params
from ...jobs.present import (image_thumbnail_url, image_url, job_state, job_title, param_rows, result_urls,
                              thumbnail_url, visualizations)
from ...models import StyleJob
from .common import own_job
from .live import events_url

JOBS_PER_PAGE = 12


@login_required
def job_list(request):
    """My jobs, newest first, a page at a time."""
    queryset = (StyleJob.objects.filter(owner=request.user).select_related("content")
                .prefetch_related("style_links__image").order_by("-created"))
    page = Paginator(queryset, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    cards = []
    for job in page:
        styles = [link.image for link in sorted(job.style_links.all(), key=lambda link: link.position)]
        cards.append({"job": job, "title": job_title(job, styles), "thumbnail": thumbnail_url(job),
                      "has_result": job.status == StyleJob.Status.SUCCEEDED and bool(job.result.name)})
    return render(request, "webapp/job_list.html", {"page": page, "cards": cards})


@login_required
def job_detail(request, job_id):
    job = own_job(request, job_id)
    styles = job.ordered_styles()
    try:
        weights = job.config().blend_weights(len(styles))
    except stylize.ConfigError:
        weights = [1 / len(styles)] * len(styles) if styles else []
    inputs = [{"role": "Content", "image": job.content, "url": image_url(job.content),
               "thumbnail": image_thumbnail_url(job.content), "weight": None}]
    inputs += [{"role": "Style", "image": image, "url": image_url(image), "thumbnail": image_thumbnail_url(image),
                "weight": weight if len(styles) > 1 else None} for image, weight in zip(styles, weights)]
    shown = visualizations(job)
    return render(request, "webapp/job_detail.html", {
        "job": job,
        "title": job_title(job, styles),
        "inputs": inputs,
        "state": job_state(job),
        "events_url": events_url(request.user, job),
        "result": result_urls(job),
        "visualizations": shown,
        "feature_maps": [v for v in shown if v["kind"] == "features"],
        "other_visualizations": [v for v in shown if v["kind"] != "features"],
        "params": param_rows(job),
        "patches_form": PatchesForm(),
        "patch_layers": {name: layer_channels(name) for name in RELU_LAYERS},
    })


@login_required
@require_http_methods(["GET", "POST"])
def new_job(request):
    """The form; ?from=<job id> fills it with that job's params and images ("run again with changes")."""
    limit_message = ""
    queue_down = False
    if request.method == "POST":
        form = NewJobForm(request.POST, request.FILES, owner=request.user)
        if form.is_valid():
            try:
                job = lifecycle.create_job(request.user, form.content, form.styles, form.params)
            except stylize.ConfigError as error:
                form.add_config_error(error)
            except lifecycle.JobLimitReached as error:
                limit_message = str(error)
            except lifecycle.QueueUnavailable as error:  # the form is shown again as it was filled in
                form.add_error(None, str(error))
                queue_down = True
            except lifecycle.JobError as error:
                form.add_job_error(error)
            else:
                return redirect("pages:job_detail", job.pk)
    else:
        form = _prefilled_form(request)
    active = StyleJob.objects.filter(owner=request.user, status__in=StyleJob.ACTIVE).count()
    if not limit_message and active >= settings.JOBS_PER_USER:
        limit_message = (f"You have {active} jobs queued or running, the most allowed at once. You can fill in "
                         f"this form now; it can be submitted when one of them finishes or is cancelled.")
    refused = form.is_bound and bool(form.errors)  # bad input: a 4xx, as the API answers it
    return render(request, "webapp/new_job.html", {
        "form": form,
        "limit_message": limit_message,
        "page_data": {
            "presets": preset_params(),
            "preset_fields": list(PRESET_FIELDS),
            "upload_max_bytes": settings.UPLOAD_MAX_BYTES,
            "max_styles": settings.JOB_MAX_STYLES,
            "layers": page_layers(),
        },
        "presets": [{"name": name, "label": name.title(), "summary": _preset_summary(full)}
                    for name, full in preset_params().items()],
        "max_styles": settings.JOB_MAX_STYLES,
        "upload_max_mb": f"{settings.UPLOAD_MAX_BYTES / 1e6:.3g}",
    }, status=503 if queue_down else form.error_status() if refused else 200)


def _preset_summary(params: dict) -> str:
    size, scales = params["size"], params["scales"]
    summary = f"{size} px · {scales} scale{'s' if scales > 1 else ''}"
    views = stylize.StyleConfig.from_dict(params).view_sizes(size, size)
    return summary + "".join(f" · style also seen at {side} px" for side, _ in views)


def _prefilled_form(request) -> NewJobForm:
    source_id = request.GET.get("from")
    if not source_id:
        return NewJobForm(owner=request.user)
    try:
        job = own_job(request, uuid.UUID(source_id))
    except ValueError:  # a malformed id is as unknown as another person's job
        raise Http404
    styles = job.ordered_styles()
    blend = job.params.get("style_blend") or []
    weights = {str(image.pk): w for image, w in zip(styles, blend)} if len(blend) == len(styles) else {}
    params = dict(job.params)
    if params.get("seed") is None and job.seed is not None:
        params["seed"] = job.seed  # the same start, so what changes is what the person changed
    return NewJobForm(owner=request.user, params=params, content=job.content, styles=styles, blend=weights)
