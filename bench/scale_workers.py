"""Jobs per minute with 1, 2 and 3 workers: does the queue scale out? (README, "Several machines")
And with a worker batching queued jobs (WORKER_BATCH_SIZE, README "Batches and GPUs").

    .venv/bin/python bench/scale_workers.py --bucket                # 1, 2, 3 workers, 12 tiny jobs each
    .venv/bin/python bench/scale_workers.py --workers 1 2 --jobs 6
    .venv/bin/python bench/scale_workers.py --workers 1 --batch-sizes 1 4 --jobs 8 --size 128 --iterations 20
    .venv/bin/python bench/scale_workers.py --database-url postgres://postgres@127.0.0.1:5432/scalebench

Everything is set up in a temporary folder and stopped at the end (bench/cluster.py): a private
redis-server, a database, and for each count N, N real `celery worker` processes (one process
each, as one per GPU), each with its own media and var folders; with --bucket their files go to
an S3 bucket (moto's server on loopback), as on separate machines, else to one shared folder.
It submits --jobs tiny jobs at once and measures from the first submission to the last job done.

The workers here are CPU processes on this machine's cores: once there are more workers than
cores they share them, and the rate stops growing. On GPU machines each worker has its own GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from cluster import Cluster

JOB_TIMEOUT_S = 1800
JOB_PARAMS = {"size": 32, "scales": 1, "iterations": 10, "seed": 1}


def say(text: str) -> None:
    print(f"[scale] {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=12, help="jobs submitted at once for each worker count")
    parser.add_argument("--bucket", action="store_true", help="files in an S3 bucket (moto's server)")
    parser.add_argument("--database-url", help="a PostgreSQL URL; a database of this name is made and dropped")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1], help="WORKER_BATCH_SIZE values to run")
    parser.add_argument("--size", type=int, default=JOB_PARAMS["size"])
    parser.add_argument("--iterations", type=int, default=JOB_PARAMS["iterations"])
    args = parser.parse_args()
    params = {**JOB_PARAMS, "size": args.size, "iterations": args.iterations}

    cluster = Cluster(bucket=args.bucket, database_url=args.database_url)
    try:
        rows = []
        for batch in args.batch_sizes:
            for count in args.workers:
                seconds = measure(cluster, count, args.jobs, params, batch)
                rows.append((count, batch, args.jobs / seconds * 60))
                say(f"{count} worker(s), batches of up to {batch}: {args.jobs} jobs in {seconds:.1f} s = "
                    f"{rows[-1][2]:.1f} jobs/minute")
        say(f"cores: {os.cpu_count()}; files: {'S3 bucket (moto)' if args.bucket else 'one shared folder'}; "
            f"jobs: {params}")
        print("| workers | batch size | jobs/minute | vs the first row |\n| ---: | ---: | ---: | ---: |")
        for count, batch, rate in rows:
            print(f"| {count} | {batch} | {rate:.1f} | {rate / rows[0][2]:.2f}× |")
        return 0
    finally:
        cluster.close()


def measure(cluster: Cluster, count: int, jobs: int, params: dict, batch: int) -> float:
    from django.db import transaction

    from webapp.jobs import lifecycle
    from webapp.models import StyleJob

    workers = [cluster.worker(f"bench{count}-{i}-b{batch}", WORKER_BATCH_SIZE=str(batch)) for i in range(count)]
    person, content, style = cluster.person_and_images()
    started = time.monotonic()
    with transaction.atomic():  # all queued before a worker hears of the first (a batch can form)
        submitted = [lifecycle.create_job(person, content, [style], params).pk for _ in range(jobs)]
    while StyleJob.objects.filter(pk__in=submitted, status__in=StyleJob.ACTIVE).exists():
        if time.monotonic() > started + JOB_TIMEOUT_S:
            raise SystemExit(f"jobs not finished after {JOB_TIMEOUT_S} s")
        time.sleep(0.2)
    seconds = time.monotonic() - started
    failed = StyleJob.objects.filter(pk__in=submitted).exclude(status=StyleJob.Status.SUCCEEDED).count()
    if failed:
        raise SystemExit(f"{failed} of {jobs} jobs did not succeed:\n{workers[0].log()[-3000:]}")
    cluster.stop(workers)
    return seconds


if __name__ == "__main__":
    sys.exit(main())
