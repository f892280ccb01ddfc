"""How long a job whose machine died waits before another machine resumes it, with the production
defaults (JOB_HEARTBEAT_SECONDS 10, STUCK_AFTER_SECONDS 60, the reconciler every 15 s; the 90 s
target of README, "Several machines").

    .venv/bin/python bench/takeover.py                  # 3 kills
    .venv/bin/python bench/takeover.py --runs 1 --database-url postgres://postgres@127.0.0.1:5432/takeoverbench

Set-up as bench/cluster.py makes it (files in an S3 bucket, each worker its own folders): worker A
runs a long tiny job; once it has stored a checkpoint, A's whole process group is SIGKILLed (a
machine lost: nothing acknowledged, nothing rejected), and the clock runs until worker B, idle on
another "machine", has claimed the job and resumed it from A's checkpoint. Checkpoints every 5 s
(not the default 60) so that there is one to resume from early; it changes nothing else.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import sys
import time

from cluster import Cluster

LONG_JOB = {"size": 32, "scales": 1, "iterations": 5000, "seed": 1}
ENV = {"CHECKPOINT_EVERY_SECONDS": "5"}
TIMEOUT_S = 600


def say(text: str) -> None:
    print(f"[takeover] {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", help="a PostgreSQL URL; a database of this name is made and dropped")
    args = parser.parse_args()
    cluster = Cluster(bucket=True, database_url=args.database_url)
    try:
        cluster.reconciler(every=15, **ENV)
        waits = [once(cluster, run) for run in range(args.runs)]
        say(f"claimed elsewhere after {', '.join(f'{w:.0f}' for w in waits)} s (median {statistics.median(waits):.0f} s)"
            f" from the kill; target 90 s")
        return 0 if max(waits) <= 90 else 1
    finally:
        cluster.close()


def once(cluster: Cluster, run: int) -> float:
    from webapp.jobs import lifecycle
    from webapp.models import StyleJob

    a = cluster.worker(f"a{run}", **ENV)
    person, content, style = cluster.person_and_images()
    job = lifecycle.create_job(person, content, [style], LONG_JOB)
    wait(lambda: StyleJob.objects.filter(pk=job.pk, worker_host__startswith=f"a{run}@").exclude(checkpoint="")
         .exists(), "A's first checkpoint")
    b = cluster.worker(f"b{run}", **ENV)
    os.killpg(a.process.pid, signal.SIGKILL)
    killed = time.monotonic()
    resumed = re.compile(rf"job {job.pk}: resuming from its checkpoint \(scale 0, iteration (\d+)\)")
    wait(lambda: resumed.search(b.log()), "B resuming the job")
    seconds = time.monotonic() - killed
    say(f"run {run + 1}: B resumed at iteration {resumed.search(b.log())[1]}, {seconds:.1f} s after A was killed")
    lifecycle.cancel(StyleJob.objects.get(pk=job.pk))
    cluster.stop([b])
    return seconds


def wait(condition, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"no {what} after {TIMEOUT_S} s")
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
