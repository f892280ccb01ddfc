"""`manage.py reconcile_jobs [--every SECONDS] [--alive-file PATH]`: send again the queued jobs the
broker lost, requeue the running jobs whose worker went silent (webapp/jobs/reconcile.py); with
--every, each pass also prunes old Idempotency-Key answers (prune_idempotency_keys) and, with
RETENTION_DAYS set, deletes old files (webapp/jobs/retention.py)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from webapp.api.idempotency import prune as prune_idempotency_keys
from webapp.jobs import retention
from webapp.jobs.reconcile import reconcile
from webapp.queue.broker import BrokerUnavailable

log = logging.getLogger("webapp.jobs.reconcile")


class Command(BaseCommand):
    help = ("Send again every job queued in the database whose message the broker does not hold, and requeue "
            "running jobs whose worker has been silent for STUCK_AFTER_SECONDS. One pass (exit status 1 if "
            "the broker cannot be reached), or with --every, a pass every SECONDS until stopped; with "
            "RETENTION_DAYS set, the loop also deletes old files (webapp/jobs/retention.py).")

    def add_arguments(self, parser):
        parser.add_argument("--every", type=float, metavar="SECONDS",
                            help="Run until stopped (SIGTERM, Ctrl-C), a pass every SECONDS; a pass that cannot "
                                 "reach the broker is logged and the next one tries again.")
        parser.add_argument("--alive-file", type=Path, metavar="PATH",
                            help="Touch this file after every pass (a container health check reads its age).")

    def handle(self, every=None, alive_file=None, **options):
        if every is None:
            try:
                report = reconcile()
            except BrokerUnavailable as exc:
                raise CommandError(f"nothing reconciled: {exc}")
            self.stdout.write(str(report))
            return
        if every <= 0:
            raise CommandError("--every must be a positive number of seconds")
        stop = threading.Event()
        # SIGTERM (docker stop, make run's Ctrl-C) ends the loop between passes; a pass is a few
        # conditional UPDATEs, each complete or not done, so stopping mid-pass would be safe too.
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        log.info("reconciling jobs every %g s", every)
        while not stop.is_set():
            self.one_pass()
            if alive_file:
                alive_file.touch()
            stop.wait(every)

    def one_pass(self) -> None:
        close_old_connections()  # a long-running process: drop a connection the database closed
        self.prune()
        self.reconcile()
        self.retain()

    def reconcile(self) -> None:
        try:
            report = reconcile()
        except BrokerUnavailable as exc:
            log.warning("nothing reconciled: %s", exc)
            return
        except Exception:  # the database away for a moment: the next pass tries again
            log.exception("the reconciliation pass failed")
            return
        if report.resent or report.requeued:
            log.info("reconciled: %s", report)

    def prune(self) -> None:
        """The housekeeping of the loop: Idempotency-Key answers past their time (a DELETE that
        needs only the database, so it runs even while the broker is away)."""
        try:
            pruned = prune_idempotency_keys()
        except Exception:
            log.exception("pruning idempotency keys failed")
            return
        if pruned:
            log.info("pruned %d idempotency key(s)", pruned)

    def retain(self) -> None:
        """Retention (RETENTION_DAYS, off by default), at most every RETENTION_EVERY_SECONDS."""
        try:
            retention.maybe_sweep()
        except Exception:  # the store or the database away for a moment: a later pass tries again
            log.exception("the retention sweep failed")
