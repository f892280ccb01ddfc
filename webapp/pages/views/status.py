"""The job page's live side: the JSON status it polls, and Cancel."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from ...jobs import lifecycle
from ...jobs.present import job_state
from .common import own_job, wants_json
from .live import events_url


@never_cache
@login_required
@require_GET
def job_status(request, job_id):
    """The job's state (common.job_state). `?step=N`: the caller has the loss history up to
    step N, so only the points after N are sent (`loss_history_after`: N; the page appends
    them), or none (null) while the job is still at N. A running job's whole curve is tens of
    kilobytes, polled every second or two. The whole history goes out on the first poll, at
    the end, and when the run went back (an attempt that started over)."""
    job = own_job(request, job_id)
    state = job_state(job, history=False)
    state["events_url"] = events_url(request.user, job)  # the page's stream, should it want to follow again
    have = _step(request.GET.get("step"))
    if job.is_finished or have is None or have > job.step:
        state["loss_history"] = job.loss_history
    elif have < job.step:
        state["loss_history"] = [point for point in job.loss_history if point["step"] > have]
        state["loss_history_after"] = have
    return JsonResponse(state)


def _step(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@login_required
@require_POST
def job_cancel(request, job_id):
    """Cancel (CSRF-protected POST). A queued job is cancelled at once; a running one is asked
    to stop and does after its current iteration. JSON for the page's script, a redirect otherwise."""
    job = own_job(request, job_id)
    try:
        status = lifecycle.cancel(job)
    except lifecycle.JobStateError as error:
        if wants_json(request):
            return JsonResponse({**job_state(job, history=False), "message": str(error)}, status=409)
        messages.error(request, str(error))
        return redirect("pages:job_detail", job.pk)
    if wants_json(request):
        return JsonResponse(job_state(job, history=False))
    messages.success(request, "Cancelled." if status == job.Status.CANCELLED else "Stopping the job…")
    return redirect("pages:job_detail", job.pk)
