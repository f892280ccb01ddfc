"""Running a claimed job to its end: read its inputs through storage, stylize.run with the
progress writer, store the result and visualisations, and record how it ended.

A plain module (no Celery here but the soft time limit's exception): the task calls execute(),
and so do the tests.
"""

from __future__ import annotations

import logging
import traceback
from contextlib import ExitStack
from typing import Any, Callable, Sequence

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from PIL import Image

import stylize
from stylize.visualize import all_visualizations

from ..jobs import lifecycle, storage
from ..models import StyleJob
from . import progress
from .job_heartbeat import JobHeartbeat

log = logging.getLogger(__name__)

Status = StyleJob.Status
ADMINS_TOLD = "The details are kept for the administrators."


def execute(job: StyleJob) -> str:
    """Run a claimed job and record its outcome; returns the job's new status. The job's heartbeat
    beats from a thread of its own meanwhile (job_heartbeat.py)."""
    with JobHeartbeat(job):
        run = JobRun(job)
        return settle(job, lambda: run.load() and run.alone())


def execute_batch(jobs: Sequence[StyleJob]) -> dict[Any, str]:
    """Run claimed jobs, those stylize.batch_key() groups with the first in one stylize.run_batch,
    the others (a checkpoint to resume, a size that differs) one after another; record each one's
    outcome. Returns {job id: new status}. Each job ends as it would alone: a bad input, a cancel
    or a lost claim ends that job only. Out of memory in the shared pass runs its jobs again one by
    one (from their checkpoints): a job must not fail for having been batched."""
    with ExitStack() as beats:
        for job in jobs:
            beats.enter_context(JobHeartbeat(job))
        runs = [JobRun(job) for job in jobs]
        statuses = {run.job.pk: settle(run.job, run.load) for run in runs}
        loaded = [run for run in runs if statuses[run.job.pk] == LOADED]
        fresh = [run for run in loaded if run.resume is None]  # one that resumes runs alone
        key = fresh[0].key() if fresh else None
        together = [run for run in fresh if run.key() == key]
        if len(together) < 2:  # a batch of one is simply a run alone
            together = []
        if together:
            log.info("running %d jobs in one batch", len(together))
            outcomes = _run_together(together)
            for run, outcome in zip(together, outcomes):
                if isinstance(outcome, stylize.DeviceMemoryError):
                    log.warning("job %s: out of memory in a batch of %d; running it alone", run.job.pk, len(together))
                    statuses[run.job.pk] = settle(run.job, lambda run=run: run.reload() and run.alone())
                else:
                    statuses[run.job.pk] = settle(run.job, lambda run=run, outcome=outcome: run.store(outcome))
        for run in loaded:
            if run not in together:
                statuses[run.job.pk] = settle(run.job, run.alone)
        return statuses


def _run_together(runs: Sequence[JobRun]) -> list[stylize.Result | Exception]:
    try:
        return stylize.run_batch([run.batch_job() for run in runs])
    except Exception as exc:  # refused as a whole, or the time limit: the same for each job
        return [exc] * len(runs)
    finally:
        for run in runs:
            run.close()


LOADED = "loaded"  # settle()'s value for a JobRun.load() that went through


def settle(job: StyleJob, work: Callable[[], str]) -> str:
    """work()'s value, or the status the job ends with when it raises: every way a run can end,
    recorded as the job's outcome (the message each owner sees, the traceback the admins see)."""
    try:
        return work()
    except lifecycle.JobSuperseded as exc:
        log.warning("job %s: stopped, its claim was lost (%s)", job.pk, exc)
        return "superseded"
    except stylize.Cancelled:
        lifecycle.confirm_cancelled(job)
        return Status.CANCELLED
    except SoftTimeLimitExceeded:
        return _fail(job, f"Took longer than the limit of {settings.JOB_SOFT_TIME_LIMIT} s; try a smaller "
                          f"size or fewer iterations.")
    except stylize.DeviceMemoryError as exc:
        return _fail(job, str(exc))  # the message names a size that fits; retrying would not help
    except stylize.ConfigError as exc:  # the params no longer validate: the message names the option
        return _fail(job, str(exc), traceback.format_exc())
    # The owner sees a plain sentence; what went wrong (paths, the exception and its repr)
    # stays in error_traceback, which only the admin shows.
    except stylize.ImageError:
        return _fail(job, "One of the job's images could not be read when it ran.", traceback.format_exc())
    except stylize.WeightsError:
        return _fail(job, f"The worker could not load the neural network's weights. {ADMINS_TOLD}",
                     traceback.format_exc())
    except storage.STORAGE_ERRORS:  # the store or the network: may pass, so the job is retried while it
        # has attempts (from its checkpoint). botocore's errors are not OSErrors.
        return _fail(job, f"A stored file could not be read or written. {ADMINS_TOLD}", traceback.format_exc(),
                     retryable=True)
    except Exception:
        log.exception("job %s crashed", job.pk)
        return _fail(job, f"Internal error while running the job. {ADMINS_TOLD}", traceback.format_exc())


def _fail(job: StyleJob, error: str, tb: str = "", retryable: bool = False) -> str:
    try:
        return lifecycle.fail(job, error, tb, retryable=retryable)
    except lifecycle.JobSuperseded:
        return "superseded"


class JobRun:
    """One claimed job's run: its inputs, its progress writer, and storing what it made."""

    def __init__(self, job: StyleJob):
        self.job = job
        self.reporter: progress.JobProgress | None = None
        self.resume: stylize.Checkpoint | None = None

    def load(self) -> str:
        """Read the params, images and checkpoint (raises what settle() records)."""
        job = self.job
        self.config = job.config()  # the stored params, validated again
        self.content = storage.open_image(job.content.file.name)
        self.styles = [storage.open_image(image.file.name) for image in job.ordered_styles()]
        self.resume = _checkpoint_to_resume(job, self.config)
        self.reporter = progress.JobProgress(job, history=self.resume.history if self.resume else ())
        log.info("job %s: attempt %d, %d style(s), size %d, %d scale(s)", job.pk, job.attempts, len(self.styles),
                 self.config.size, self.config.scales)
        return LOADED

    def reload(self) -> str:
        """Start again from what is stored (its newest checkpoint, if any), with a new progress writer."""
        self.close()
        return self.load()

    def key(self) -> tuple:
        return stylize.batch_key(self.config, self.content.size)

    def batch_job(self) -> stylize.BatchJob:
        return stylize.BatchJob(self.content, self.styles, self.config, on_progress=self.reporter)

    def alone(self) -> str:
        try:
            result = stylize.run(self.content, self.styles, self.config, on_progress=self.reporter,
                                 resume=self.resume)
        finally:
            self.close()
        return self.store(result)

    def close(self) -> None:
        """The run is over: a checkpoint still uploading is not needed."""
        if self.reporter is not None:
            self.reporter.checkpoints.close()

    def store(self, outcome: stylize.Result | Exception) -> str:
        """Save the result and its visualisations and finish the job; an exception is raised for settle()."""
        if isinstance(outcome, Exception):
            raise outcome
        job, result = self.job, outcome
        result_name = storage.save_result(job, result)
        artifact_names = storage.save_artifacts(
            job, _visualizations(job, self.config, self.content, self.styles, result))
        if not lifecycle.finish(job, result, result_name=result_name, artifacts=artifact_names,
                                loss_history=progress.thin_history(result.history)):
            storage.delete_files([result_name, *artifact_names.values()])
            raise lifecycle.JobSuperseded(f"job {job.pk}: claim lost before it could be finished")
        return Status.SUCCEEDED


def _checkpoint_to_resume(job: StyleJob, config: stylize.StyleConfig) -> stylize.Checkpoint | None:
    """The job's stored checkpoint if it can continue this run; else None (start over). A store
    that cannot be reached raises (the job is retried later, from this checkpoint): starting over
    would throw away the work it holds."""
    if not job.checkpoint.name:
        return None
    try:
        checkpoint = storage.load_checkpoint(job.checkpoint.name)
        checkpoint.check_matches(config if config.seed is not None else config.replace(seed=checkpoint.seed))
    except (FileNotFoundError, stylize.ConfigError) as exc:
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
