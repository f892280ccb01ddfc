"""The engine's progress callback for one claimed job: throttled database writes,
previews, checkpoints, heartbeats and the cancel check.

The engine calls it after every iteration, which on a GPU can be hundreds of times
a second; the database sees at most one progress write per PROGRESS_EVERY_SECONDS,
storage one preview per PREVIEW_EVERY_SECONDS and one checkpoint per
CHECKPOINT_EVERY_SECONDS, uploaded by a thread of its own (checkpoints.py) and recorded
here with the next write once it is stored. The cancel flag is read after every iteration (one small
query by primary key; at most every CANCEL_CHECK_EVERY_SECONDS when that is set), so a
cancelled job stops within the iteration after the one it was in.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Iterable, Mapping

from django.conf import settings

import stylize

from ..jobs import lifecycle, live, storage
from ..models import StyleJob
from ..numbers import finite_float
from . import heartbeat
from .checkpoints import CheckpointUploader
from .heartbeat import DeviceReport, device_report

log = logging.getLogger(__name__)

HISTORY_POINTS = 256  # loss-curve points kept on the row (enough for a chart, small enough to rewrite each second)


class LossHistory:
    """Per-iteration costs, thinned: when there are too many points, every other one goes and
    only every 2nd (4th, …) step is recorded from then on, so the curve keeps its whole span."""

    def __init__(self, entries: Iterable[Mapping[str, Any]] = (), max_points: int = HISTORY_POINTS):
        self.max_points = max_points
        self.stride = 1
        self.points: list[dict] = []
        self.latest: dict | None = None
        for entry in entries:
            self.add(entry)

    def add(self, entry: Mapping[str, Any]) -> None:
        point = {"step": int(entry["step"]), "scale": int(entry["scale"]), "loss": _rounded(entry["loss"]),
                 "losses": {k: _rounded(v) for k, v in entry.get("losses", {}).items()}}
        self.latest = point
        if point["step"] % self.stride:
            return
        self.points.append(point)
        while len(self.points) > self.max_points:
            self.stride *= 2
            self.points = [p for p in self.points if p["step"] % self.stride == 0]

    def as_list(self) -> list[dict]:
        """The kept points, and the latest one even when its step is not kept."""
        if self.latest is not None and (not self.points or self.points[-1]["step"] != self.latest["step"]):
            return [*self.points, self.latest]
        return list(self.points)


def thin_history(entries: Iterable[Mapping[str, Any]]) -> list[dict]:
    return LossHistory(entries).as_list()


def _rounded(value) -> float | None:
    """5 significant digits (the chart needs no more), None for NaN/inf (not valid JSON)."""
    number = finite_float(value)
    return None if number is None else float(f"{number:.5g}")


class JobProgress:
    """on_progress for stylize.run: `JobProgress(job)(progress)` after each iteration.

    Raises stylize.Cancelled when the owner cancelled the job, and lifecycle.JobSuperseded
    when this worker's claim is no longer valid.
    """

    def __init__(self, job: StyleJob, *, history: Iterable[Mapping] = (), clock: Callable[[], float] = time.monotonic):
        self.job = job
        self.clock = clock
        self.history = LossHistory(history)
        self.progress_every = settings.PROGRESS_EVERY_SECONDS
        self.preview_every = settings.PREVIEW_EVERY_SECONDS
        self.checkpoint_every = settings.CHECKPOINT_EVERY_SECONDS
        now = clock()
        # The first report goes out at once (the page shows movement within a second);
        # the first checkpoint only after a full interval.
        self.next_progress = self.next_preview = now
        self.next_checkpoint = now + self.checkpoint_every
        self.preview_name = job.preview.name or ""
        self.checkpoint_name = job.checkpoint.name or ""
        self.checkpoints = CheckpointUploader(job)
        self.checkpoint_step = 0
        self.next_device = self.next_cancel_check = now
        self.device = DeviceReport("unknown")
        self.writes = 0
        # The last loss-curve step its watchers have (the rest go out with the next message).
        self.published_step = self.history.latest["step"] if self.history.latest else 0

    def __call__(self, progress: stylize.Progress) -> None:
        self.history.add({"step": progress.step, "scale": progress.scale, "loss": progress.loss,
                          "losses": progress.losses})
        now = self.clock()
        last = progress.step >= progress.total_steps
        files: dict[str, str] = {}
        stored = self.checkpoints.take_stored()
        if stored:
            files["checkpoint"], self.checkpoint_step = stored
        # After the last step the result is saved instead. While an upload is in flight no new
        # snapshot is taken: the next iteration tries again, so the newest state goes next.
        if now >= self.next_checkpoint and not last and self.checkpoints.idle():
            self.checkpoints.submit(progress.checkpoint(), progress.step)
            self.next_checkpoint = now + self.checkpoint_every
        if now >= self.next_preview:
            files["preview"] = storage.save_preview(self.job, progress.preview())
            self.next_preview = now + self.preview_every
        if files or last or now >= self.next_progress:
            self._write(progress, files)
            self.next_progress = now + self.progress_every
        if now >= self.next_cancel_check:
            self.next_cancel_check = now + settings.CANCEL_CHECK_EVERY_SECONDS
            if lifecycle.should_cancel(self.job.pk):
                raise stylize.Cancelled(f"job {self.job.pk} was cancelled by its owner")

    def _write(self, progress: stylize.Progress, files: Mapping[str, str]) -> None:
        device = self._device()
        fields = {
            "progress": progress.fraction, "scale": progress.scale, "num_scales": progress.num_scales,
            "iteration": progress.iteration, "iterations": progress.iterations, "step": progress.step,
            "total_steps": progress.total_steps, "loss": _rounded(progress.loss), "eta_seconds": progress.eta,
            "elapsed_seconds": progress.elapsed, "loss_history": self.history.as_list(), "device": device.name,
            **files,
        }
        if not lifecycle.report_progress(self.job, fields):
            storage.delete_files(files.values())
            raise lifecycle.JobSuperseded(f"job {self.job.pk}: claim lost (finished, cancelled or taken over)")
        self.writes += 1
        self._publish(fields)
        replaced = []
        if "preview" in files:
            replaced.append(self.preview_name)
            self.preview_name = files["preview"]
        if "checkpoint" in files:
            replaced.append(self.checkpoint_name)
            self.checkpoint_name = files["checkpoint"]
            log.info("job %s: checkpoint at step %d of %d recorded", self.job.pk, self.checkpoint_step,
                     progress.total_steps)
        storage.delete_files(replaced)
        heartbeat.record(self.job.worker_host, pid=os.getppid(), job_id=self.job.pk, report=device)

    def _publish(self, fields: Mapping[str, Any]) -> None:
        """The state just written, to the job's watchers, with the loss points they do not have."""
        for name, value in fields.items():
            setattr(self.job, name, value)
        points = fields["loss_history"]
        live.publish(self.job, [p for p in points if p["step"] > self.published_step], self.published_step)
        if points:
            self.published_step = points[-1]["step"]

    def _device(self) -> DeviceReport:
        """Asked again every WORKER_HEARTBEAT_SECONDS: memory use changes, the name does not."""
        now = self.clock()
        if now >= self.next_device:
            self.device = device_report()
            self.next_device = now + settings.WORKER_HEARTBEAT_SECONDS
        return self.device
