"""Jobs per minute with 1, 2 and 3 workers: does the queue scale out? (README, "Several machines")

    .venv/bin/python bench/scale_workers.py                         # 1, 2, 3 workers, 12 tiny jobs each
    .venv/bin/python bench/scale_workers.py --workers 1 2 --jobs 6 --bucket
    .venv/bin/python bench/scale_workers.py --database-url postgres://postgres@127.0.0.1:5432/scalebench

Sets everything up in a temporary folder and stops it at the end: a private redis-server, a
database (a SQLite file, or a PostgreSQL database of its own, dropped at the end), and for each
count N, N real `celery worker` processes (one process each, as one per GPU), each with a media
and var folder of its own: with --bucket their files go to an S3 bucket (moto's server, on
loopback) as on separate machines, else to one shared folder (MEDIA_SHARED=1). It submits --jobs
tiny jobs at once, and measures from the first submission to the last job finished.

The workers here are CPU processes on this machine's cores: once there are more workers than
cores, they share them and the rate stops growing. On GPU machines each worker has its own GPU.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.processes import free_port, redis_command, stop_groups, wait_for_redis, worker_command  # noqa: E402

PYTHON = sys.executable
READY_TIMEOUT_S = 180
JOB_TIMEOUT_S = 1800
JOB_PARAMS = {"size": 32, "scales": 1, "iterations": 10, "seed": 1}


def say(text: str) -> None:
    print(f"[scale] {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=12, help="jobs submitted at once for each worker count")
    parser.add_argument("--bucket", action="store_true", help="files in an S3 bucket (moto's server)")
    parser.add_argument("--database-url", help="a PostgreSQL server URL; a database of this name is made and dropped")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="scale-workers-"))
    children: list[subprocess.Popen] = []
    try:
        env = prepare(folder, args, children)
        rows = []
        for count in args.workers:
            rate, seconds = measure(folder, env, count, args.jobs, children)
            rows.append((count, rate, seconds))
            say(f"{count} worker(s): {args.jobs} jobs in {seconds:.1f} s = {rate:.1f} jobs/minute")
        base = rows[0][1]
        say(f"cores: {os.cpu_count()}; files: {'S3 bucket (moto)' if args.bucket else 'one shared folder'}; "
            f"jobs: {JOB_PARAMS}")
        print("| workers | jobs/minute | vs 1 worker |\n| ---: | ---: | ---: |")
        for count, rate, _ in rows:
            print(f"| {count} | {rate:.1f} | {rate / base:.2f}× |")
        return 0
    finally:
        stop_groups([children], 5)
        if args.database_url:
            drop_database(args.database_url)
        shutil.rmtree(folder, ignore_errors=True)


def prepare(folder: Path, args, children: list) -> dict[str, str]:
    redis_port = free_port()
    redis = subprocess.Popen(redis_command(redis_port, folder / "redis"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT, start_new_session=True)
    (folder / "redis").mkdir(exist_ok=True)
    children.append(redis)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    wait_for_redis(redis_url, lambda: redis.poll() is None)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "webapp.settings", "DEBUG": "1",
           "SECRET_KEY": secrets.token_urlsafe(50), "VAR_DIR": str(folder / "var"),
           "MEDIA_ROOT": str(folder / "media"), "REDIS_URL": redis_url, "CELERY_BROKER_URL": redis_url,
           "DATABASE_URL": database_url(folder, args.database_url), "JOBS_PER_USER": "100000",
           "LOG_LEVEL": "INFO", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if args.bucket:
        env.update(start_bucket(folder, children))
    else:
        env["MEDIA_SHARED"] = "1"
    os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    logging.getLogger().setLevel(logging.WARNING)  # this process's; the workers log to their files
    return env


def database_url(folder: Path, server: str | None) -> str:
    if not server:
        return f"sqlite:///{folder / 'db.sqlite3'}"
    admin, name = server.rsplit("/", 1)
    subprocess.run(["psql", f"{admin}/postgres", "-c", f'DROP DATABASE IF EXISTS "{name}"', "-c",
                    f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
    return server


def drop_database(server: str) -> None:
    admin, name = server.rsplit("/", 1)
    subprocess.run(["psql", f"{admin}/postgres", "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                   capture_output=True)


def start_bucket(folder: Path, children: list) -> dict[str, str]:
    import boto3

    port = free_port()
    children.append(subprocess.Popen([PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True))
    url, keys = f"http://127.0.0.1:{port}", {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            boto3.client("s3", endpoint_url=url, region_name="us-east-1", **keys).create_bucket(Bucket="bench")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    return {"S3_BUCKET": "bench", "S3_ENDPOINT_URL": url, "S3_REGION": "us-east-1", "S3_ACCESS_KEY_ID": "bench",
            "S3_SECRET_ACCESS_KEY": "bench"}


def measure(folder: Path, env: dict, count: int, jobs: int, children: list) -> tuple[float, float]:
    from django.contrib.auth import get_user_model

    from webapp.jobs import lifecycle, storage
    from webapp.models import StyleJob

    run = folder / f"workers-{count}"
    workers = []
    for i in range(count):
        own = run / f"w{i}"
        own.mkdir(parents=True)
        worker_env = {**env, "VAR_DIR": str(own / "var"),
                      "MEDIA_ROOT": env["MEDIA_ROOT"] if "MEDIA_SHARED" in env else str(own / "media")}
        with open(own / "worker.log", "w") as log:
            workers.append(subprocess.Popen(worker_command(f"bench{count}-{i}@%h", PYTHON), cwd=ROOT,
                                            env=worker_env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True))
    children.extend(workers)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not all(" ready." in (run / f"w{i}" / "worker.log").read_text() for i in range(count)):
        if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
            tails = "\n".join((run / f"w{i}" / "worker.log").read_text()[-2000:] for i in range(count))
            raise SystemExit(f"the workers did not start:\n{tails}")
        time.sleep(0.3)

    person, _ = get_user_model().objects.get_or_create(username="bench")
    images = [storage.store_upload(person, open(ROOT.parent / "shared" / "images" / kind / name, "rb"))
              for kind, name in (("content", "chelsea.png"), ("style", "starry_night.jpg"))]
    started = time.monotonic()
    submitted = [lifecycle.create_job(person, images[0], [images[1]], JOB_PARAMS).pk for _ in range(jobs)]
    deadline = started + JOB_TIMEOUT_S
    while StyleJob.objects.filter(pk__in=submitted, status__in=StyleJob.ACTIVE).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"jobs not finished after {JOB_TIMEOUT_S} s; logs in {run}")
        time.sleep(0.2)
    seconds = time.monotonic() - started
    failed = StyleJob.objects.filter(pk__in=submitted).exclude(status=StyleJob.Status.SUCCEEDED).count()
    if failed:
        raise SystemExit(f"{failed} of {jobs} jobs did not succeed; logs in {run}")
    stop_groups([workers], 10)
    return jobs / seconds * 60, seconds


if __name__ == "__main__":
    sys.exit(main())
