"""A running job's heartbeat, written from a thread of its own every JOB_HEARTBEAT_SECONDS.

The progress writer stamps the heartbeat too, but only when the engine reports an iteration;
loading the network, one slow iteration at 1024 px, the visualisations and the final uploads
can each take longer than a minute. This thread beats through all of them, so a job whose
heartbeat stops for STUCK_AFTER_SECONDS (about a minute) really has lost its process or its
machine, and can be taken over elsewhere that soon (webapp/jobs/lifecycle.py).

The write is conditional on the attempt (lifecycle.beat), so once another worker has taken the
job over the thread stops by itself; the progress writer notices the lost claim on its own.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import connections

from ..jobs import lifecycle
from ..models import StyleJob

log = logging.getLogger(__name__)


class JobHeartbeat:
    """`with JobHeartbeat(job): ...` beats while the block runs."""

    def __init__(self, job: StyleJob, every: float | None = None):
        self.job = job
        self.every = settings.JOB_HEARTBEAT_SECONDS if every is None else every
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job.pk}", daemon=True)

    def __enter__(self) -> JobHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=30)  # one write at most is in flight

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    if not lifecycle.beat(self.job):
                        log.info("job %s: heartbeat stopped, attempt %d no longer holds it", self.job.pk,
                                 self.job.attempts)
                        return
                    self.beats += 1
                except Exception:  # the database away for a moment: the next beat tries again
                    log.warning("job %s: heartbeat not written", self.job.pk, exc_info=True)
        finally:
            connections.close_all()  # this thread's own connections
