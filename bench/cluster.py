"""Several "machines" on this one for the benches (scale_workers.py, takeover.py): a private
redis-server, a database (a SQLite file, or a PostgreSQL database of its own), optionally an S3
bucket (moto's server), and Celery workers or a reconciler, each with a media and a var folder of
its own. Django runs in the bench's own process (it submits jobs and reads their rows).

    cluster = Cluster(bucket=True, database_url=None)   # started; cluster.env, cluster.folder
    cluster.worker("a", **env) -> Child                  # a `celery worker` on both queues, ready
    cluster.reconciler(every=15, **env) -> Child
    cluster.person_and_images() -> (person, content, style)
    cluster.close()                                      # stops everything, drops the database
"""

from __future__ import annotations

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

from scripts.processes import (free_port, redis_command, s3_server_command, stop_groups,  # noqa: E402
                               wait_for_redis, worker_command)

PYTHON = sys.executable
READY_TIMEOUT_S = 180


class Child:
    def __init__(self, name: str, command: list[str], env: dict[str, str], folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.name, self.log_path = name, folder / f"{name}.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{self.name} did not log {text!r}:\n{self.log()[-3000:]}")
            time.sleep(0.3)


class Cluster:
    def __init__(self, *, bucket: bool, database_url: str | None = None):
        self.folder = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
        self.children: list[Child] = []
        self.database_server = database_url
        try:
            self.env = self._start(bucket)
        except BaseException:
            self.close()
            raise

    def _start(self, bucket: bool) -> dict[str, str]:
        redis_port = free_port()
        (self.folder / "redis").mkdir()
        redis = Child("redis", redis_command(redis_port, self.folder / "redis"), dict(os.environ), self.folder)
        self.children.append(redis)
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        wait_for_redis(redis_url, lambda: redis.process.poll() is None)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "webapp.settings", "DEBUG": "1",
               "SECRET_KEY": secrets.token_urlsafe(50), "VAR_DIR": str(self.folder / "var"),
               "MEDIA_ROOT": str(self.folder / "media"), "REDIS_URL": redis_url, "CELERY_BROKER_URL": redis_url,
               "DATABASE_URL": self._database(), "JOBS_PER_USER": "100000", "LOG_LEVEL": "INFO",
               "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        env.update(self._bucket() if bucket else {"MEDIA_SHARED": "1"})
        self.shared_media = not bucket
        os.environ.update({k: v for k, v in env.items() if k != "PYTHONPATH"})
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
        logging.getLogger().setLevel(logging.WARNING)  # this process's; the children log to their files
        return env

    def _database(self) -> str:
        if not self.database_server:
            return f"sqlite:///{self.folder / 'db.sqlite3'}"
        admin, name = self.database_server.rsplit("/", 1)
        subprocess.run(["psql", f"{admin}/postgres", "-c", f'DROP DATABASE IF EXISTS "{name}"', "-c",
                        f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
        return self.database_server

    def _bucket(self) -> dict[str, str]:
        import boto3

        port = free_port()
        self.children.append(Child("s3", s3_server_command(port, PYTHON), dict(os.environ), self.folder))
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

    def _own_env(self, name: str, env: dict[str, str]) -> tuple[dict[str, str], Path]:
        own = self.folder / name
        media = self.env["MEDIA_ROOT"] if self.shared_media else str(own / "media")
        return {**self.env, "VAR_DIR": str(own / "var"), "MEDIA_ROOT": media, **env}, own

    def worker(self, name: str, ready: bool = True, **env: str) -> Child:
        environment, own = self._own_env(name, env)
        child = Child(name, worker_command(f"{name}@%h", PYTHON), environment, own)
        self.children.append(child)
        if ready:
            child.wait_for(" ready.")
        return child

    def reconciler(self, every: float = 15, **env: str) -> Child:
        environment, own = self._own_env("reconciler", env)
        child = Child("reconciler", [PYTHON, "manage.py", "reconcile_jobs", "--every", str(every)], environment, own)
        self.children.append(child)
        return child

    def person_and_images(self):
        from django.contrib.auth import get_user_model

        from webapp.jobs import storage

        person, _ = get_user_model().objects.get_or_create(username="bench")
        images = []
        for kind, name in (("content", "chelsea.png"), ("style", "starry_night.jpg")):
            with open(ROOT.parent / "shared" / "images" / kind / name, "rb") as f:
                images.append(storage.store_upload(person, f))
        return person, *images

    def stop(self, children: list[Child], grace: float = 10) -> None:
        stop_groups([[c.process for c in children]], grace)

    def close(self) -> None:
        stop_groups([[c.process for c in self.children]], 5)
        if self.database_server:
            admin, name = self.database_server.rsplit("/", 1)
            subprocess.run(["psql", f"{admin}/postgres", "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                           capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)
