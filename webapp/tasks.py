"""The Celery task: claim a job → stylize.run → store the result and visualisations.

Only `run_style_job` knows Celery; `execute` is a plain function (the tests call it
directly) that runs a claimed job to its end and records how it ended.
"""

from __future__ import annotations

import logging
import os
import traceback

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from django.conf import settings
from django.db import connections
from PIL import Image

import stylize
from stylize.visualize import all_visualizations

from . import jobs, progress, storage, worker_status
from .celery import app
from .models import StyleJob

log = logging.getLogger(__name__)

Status = StyleJob.Status


class StyleJobTask(Task):
    def apply_async(self, args=None, kwargs=None, **options):
        # The worker that runs a job enforces its own JOB_*_TIME_LIMIT: Celery would otherwise
        # write the sender's limits into every message, and a message's limits win.
        options.setdefault("time_limit", None)
        options.setdefault("soft_time_limit", None)
        return super().apply_async(args, kwargs, **options)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        # On a hard time limit Celery kills the child and calls this in the parent process:
        # the job would otherwise stay "running" with no message left to run it.
        if isinstance(exc, TimeLimitExceeded) and args:
            try:
                jobs.fail_lost_task(args[0], task_id, f"Took longer than the limit of "
                                                      f"{settings.JOB_HARD_TIME_LIMIT} s and was stopped.")
            except Exception:
                log.exception("job %s: could not record that it hit the hard time limit", args[0])
            finally:
                connections.close_all()  # the parent forks new children: they must not share it


@app.task(bind=True, base=StyleJobTask, name="webapp.run_style_job")
def run_style_job(self, job_id: str) -> str:
    """Run one job; returns how it ended (logged only: there is no result backend)."""
    worker = self.request.hostname or "worker"
    job = jobs.claim(job_id, worker, task_id=self.request.id)
    if job is None:
        return "not claimed"
    try:
        return execute(job)
    finally:
        _report_idle(worker)


def _report_idle(worker: str) -> None:
    try:
        worker_status.record(worker, pid=os.getppid(), job_id=None)  # this is a pool process
    except Exception:
        log.warning("could not record the worker's heartbeat", exc_info=True)


def execute(job: StyleJob) -> str:
    """Run a claimed job and record its outcome; returns the job's new status."""
    try:
        _run(job)
        return Status.SUCCEEDED
    except jobs.JobSuperseded as exc:
        log.warning("job %s: stopped, its claim was lost (%s)", job.pk, exc)
        return "superseded"
    except stylize.Cancelled:
        jobs.confirm_cancelled(job)
        return Status.CANCELLED
    except SoftTimeLimitExceeded:
        return _fail(job, f"Took longer than the limit of {settings.JOB_SOFT_TIME_LIMIT} s; try a smaller "
                          f"size or fewer iterations.")
    except stylize.DeviceMemoryError as exc:
        return _fail(job, str(exc))  # the message names a size that fits; retrying would not help
    except (stylize.ImageError, stylize.ConfigError, stylize.WeightsError) as exc:
        return _fail(job, str(exc), traceback.format_exc())
    except OSError as exc:  # storage or network: may pass, so the job is retried while it has attempts
        return _fail(job, f"Could not read or write a file: {exc}", traceback.format_exc(), retryable=True)
    except Exception as exc:
        log.exception("job %s crashed", job.pk)
        return _fail(job, f"Internal error: {type(exc).__name__}: {exc}", traceback.format_exc())


def _fail(job: StyleJob, error: str, tb: str = "", retryable: bool = False) -> str:
    try:
        return jobs.fail(job, error, tb, retryable=retryable)
    except jobs.JobSuperseded:
        return "superseded"


def _run(job: StyleJob) -> None:
    config = job.config()  # the stored params, validated again
    content = storage.open_image(job.content.file.name)
    styles = [storage.open_image(image.file.name) for image in job.ordered_styles()]
    resume = _checkpoint_to_resume(job, config)
    reporter = progress.JobProgress(job, history=resume.history if resume else ())
    log.info("job %s: attempt %d, %d style(s), size %d, %d scale(s)", job.pk, job.attempts, len(styles),
             config.size, config.scales)
    result = stylize.run(content, styles, config, on_progress=reporter, resume=resume)

    result_name = storage.save_result(job, result)
    artifact_names = storage.save_artifacts(job, _visualizations(job, config, content, styles, result))
    if not jobs.finish(job, result, result_name=result_name, artifacts=artifact_names,
                       loss_history=progress.thin_history(result.history)):
        storage.delete_files([result_name, *artifact_names.values()])
        raise jobs.JobSuperseded(f"job {job.pk}: claim lost before it could be finished")


def _checkpoint_to_resume(job: StyleJob, config: stylize.StyleConfig) -> stylize.Checkpoint | None:
    """The job's stored checkpoint if it can continue this run; else None (start over)."""
    if not job.checkpoint.name:
        return None
    try:
        checkpoint = storage.load_checkpoint(job.checkpoint.name)
        checkpoint.check_matches(config if config.seed is not None else config.replace(seed=checkpoint.seed))
    except (OSError, stylize.ConfigError) as exc:
        log.warning("job %s: not resuming from checkpoint %s: %s", job.pk, job.checkpoint.name, exc)
        return None
    log.info("job %s: resuming from its checkpoint (scale %d, iteration %d)", job.pk, checkpoint.scale,
             checkpoint.iteration)
    return checkpoint


def _visualizations(job: StyleJob, config: stylize.StyleConfig, content: Image.Image,
                    styles: list[Image.Image], result: stylize.Result) -> dict[str, Image.Image]:
    """Feature maps of every layer the run used, Grams, top patches, loss curves; {} if they fail
    (the result is still worth having; the error is logged for the admins)."""
    weights = config.blend_weights(len(styles))
    style = styles[weights.index(max(weights))]  # the style that weighs most
    layers = config.layers()
    try:
        return all_visualizations(content.convert("RGB"), style.convert("RGB"), result.image.convert("RGB"),
                                  result.history, layers=layers, pooling=config.pooling, weights=config.weights,
                                  device=result.device)
    except (SoftTimeLimitExceeded, stylize.Cancelled):
        raise
    except Exception:
        log.exception("job %s: visualisations failed; finishing without them", job.pk)
        return {}
