"""A real job through a real redis-server and a real celery worker, with the real engine on tiny images.
(What happens when something fails on the way, a killed worker, a cancel, Redis down, is in tests/faults.)"""

from __future__ import annotations

import io
import time

import pytest
from django.core.files.storage import default_storage
from PIL import Image

import stylize
from webapp.jobs import lifecycle
from webapp.models import StyleJob, WorkerHeartbeat

pytestmark = pytest.mark.django_db(transaction=True)  # the worker must see what this process commits

Status = StyleJob.Status


@pytest.fixture(autouse=True)
def live(shared_media, broker):
    """Every test here uses the session's worker: this process sends to its broker, and stores
    uploads (Grace's `images`) where it reads them. Autouse, so it comes before those."""


def submit(person, images, iterations: int, seed: int = 3) -> StyleJob:
    content, style = images
    return lifecycle.create_job(person, content, [style], {"size": 48, "scales": 1, "iterations": iterations,
                                                      "seed": seed})


def wait_for(job: StyleJob, worker, done, timeout: float = 120.0, every: float = 0.05) -> list[StyleJob]:
    """Poll the row until done(row); returns every distinct state seen on the way."""
    seen: list[StyleJob] = []
    deadline = time.monotonic() + timeout
    while True:
        row = StyleJob.objects.get(pk=job.pk)
        if not seen or (row.status, row.step) != (seen[-1].status, seen[-1].step):
            seen.append(row)
        if done(row):
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"job {job.pk} is {row.status} at step {row.step} after {timeout} s; worker log:\n"
                        f"{worker.tail()}")
        if worker.process.poll() is not None:
            pytest.fail(f"the worker exited:\n{worker.tail()}")
        time.sleep(every)


def finished(row: StyleJob) -> bool:
    return row.is_finished


def read(name: str) -> bytes:
    with default_storage.open(name, "rb") as f:
        return f.read()


def test_a_job_goes_through_redis_and_a_worker_to_a_stored_result(worker, person, images):
    job = submit(person, images, iterations=30)
    seen = wait_for(job, worker, finished)
    row = seen[-1]
    assert row.status == Status.SUCCEEDED, f"{row.error}\n{worker.tail()}"
    # Progress rows appeared while it ran.
    running = [s for s in seen if s.status == Status.RUNNING and 0 < s.step < 30]
    assert running, [(s.status, s.step) for s in seen]
    assert all(s.total_steps == 30 and s.loss_history and s.progress == s.step / 30 for s in running)
    # The result, with the metadata that reproduces it, and the visualisations.
    metadata = stylize.read_metadata(io.BytesIO(read(row.result.name)))
    assert metadata["seed"] == 3 and metadata["params"]["iterations"] == 30
    assert max(Image.open(io.BytesIO(read(row.result.name))).size) == 48
    names = {a.name: a.file.name for a in row.artifacts.all()}
    assert {"gram", "patches", "loss", "features_relu3_1"} <= set(names)
    assert all(default_storage.exists(name) for name in names.values())
    assert row.worker_host.startswith("integration@") and row.device.startswith("CPU")
    assert WorkerHeartbeat.objects.filter(name=row.worker_host).exists()
