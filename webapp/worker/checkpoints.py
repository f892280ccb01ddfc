"""A running job's checkpoints, serialised and uploaded by a thread of their own, off the
optimisation's path.

A checkpoint carries the optimiser's state (with L-BFGS, its history: hundreds of MB at 1024 px),
and writing it to a bucket takes seconds to minutes; done inside the progress callback it would
stop the GPU for that long every CHECKPOINT_EVERY_SECONDS. Here the callback only takes the
snapshot (stylize copies the state, so the run goes on changing its own), and this thread
serialises and uploads it. At most one upload is in flight: while one is, the callback takes no
new snapshot and tries again at the next iteration, so the newest state wins and memory holds at
most one snapshot besides the run's own.

The thread only stores the file. Recording it on the job's row is the progress writer's, in the
run's own thread (its writes are conditional on the attempt, and stay in one place): it collects
a finished upload with take_stored(). An upload that fails is logged and raised from the next
submit(), so a store that has gone away fails the job retryably, as a preview would.
"""

from __future__ import annotations

import logging
import threading

from ..jobs import storage
from ..models import StyleJob

log = logging.getLogger(__name__)


class CheckpointUploader:
    def __init__(self, job: StyleJob):
        self.job = job
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stored: tuple[str, int] | None = None  # (storage name, step), not yet recorded
        self._error: BaseException | None = None
        self._closed = False

    def idle(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def submit(self, checkpoint, step: int) -> None:
        """Upload `checkpoint` (a stylize.Checkpoint taken at `step`) in the background. Only when
        idle(); raises the previous upload's error, if it failed."""
        if not self.idle():
            raise RuntimeError("a checkpoint upload is already in flight")
        self._raise_failure()
        self._thread = threading.Thread(target=self._upload, args=(checkpoint, step),
                                        name=f"checkpoint-{self.job.pk}", daemon=True)
        self._thread.start()

    def take_stored(self) -> tuple[str, int] | None:
        """The (storage name, step) of an upload that finished since the last call, to record."""
        with self._lock:
            stored, self._stored = self._stored, None
        return stored

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the upload in flight; False if it is still going after `timeout` seconds."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.idle()

    def close(self) -> None:
        """The run is over (a finished job is not resumed): a checkpoint stored but not recorded is
        deleted, and so is the one in flight once it is stored; the run does not wait for it."""
        with self._lock:
            self._closed = True
            stored, self._stored = self._stored, None
        if stored:
            storage.delete_files([stored[0]])

    def _upload(self, checkpoint, step: int) -> None:
        try:
            name = storage.save_checkpoint(self.job, checkpoint.to_bytes())
        except BaseException as exc:  # noqa: BLE001 (reported to the run's thread, which decides)
            log.warning("job %s: checkpoint at step %d not stored: %s", self.job.pk, step, exc)
            with self._lock:
                self._error = exc
            return
        with self._lock:
            if self._closed:
                replaced = (name, step)
            else:
                replaced, self._stored = self._stored, (name, step)
        if replaced:  # never to be recorded: the run is over, or a newer one won
            storage.delete_files([replaced[0]])

    def _raise_failure(self) -> None:
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            raise error
