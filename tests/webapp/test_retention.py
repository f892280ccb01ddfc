"""Retention: off by default; with RETENTION_DAYS set, the reconciler's loop deletes the files of jobs
finished longer ago (their rows stay) and files no row refers to once they are older than the grace."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from tests.webapp.test_pages_job import finish, png
from webapp.jobs import retention
from webapp.management.commands.reconcile_jobs import Command
from webapp.models import JobArtifact, StyleJob, UnitPatches

pytestmark = pytest.mark.django_db

Status = StyleJob.Status


def finished_days_ago(job: StyleJob, days: float) -> StyleJob:
    job = finish(job)
    UnitPatches.objects.create(job=job, layer="relu1_1", unit=0,
                               file=default_storage.save(f"results/{job.pk}/patches-relu1_1-0-a.png", ContentFile(png())))
    StyleJob.objects.filter(pk=job.pk).update(finished=timezone.now() - timedelta(days=days))
    return StyleJob.objects.get(pk=job.pk)


def job_files(job: StyleJob) -> list[str]:
    return [name for name, _ in default_storage_files(f"results/{job.pk}")]


def default_storage_files(prefix: str):
    from webapp.jobs import storage

    return list(storage.list_files(prefix))


def stored_long_ago(name: str, seconds: float = 10 * 86400) -> str:
    name = default_storage.save(name, ContentFile(b"left behind"))
    then = time.time() - seconds
    os.utime(default_storage.path(name), (then, then))
    return name


def test_retention_is_off_by_default_and_deletes_nothing(settings, queued_job):
    assert settings.RETENTION_DAYS == 0
    old = finished_days_ago(queued_job, 400)
    stored_long_ago("checkpoints/00000000-0000-0000-0000-000000000000/orphan.pt")
    assert retention.sweep().expired_jobs == [] and retention.maybe_sweep() is None
    assert default_storage.exists(old.result.name) and job_files(old)
    assert default_storage.exists("checkpoints/00000000-0000-0000-0000-000000000000/orphan.pt")


def test_files_of_jobs_finished_longer_ago_are_deleted_and_their_rows_kept(settings, make_job):
    settings.RETENTION_DAYS = 7
    old, recent, running = make_job(), make_job(), make_job()
    old = finished_days_ago(old, 8)
    recent = finished_days_ago(recent, 6)
    StyleJob.objects.filter(pk=running.pk).update(status=Status.RUNNING, checkpoint=stored_long_ago(
        f"checkpoints/{running.pk}/current.pt"), started=timezone.now() - timedelta(days=30))

    swept = retention.sweep()
    assert swept.expired_jobs == [str(old.pk)]
    kept = StyleJob.objects.get(pk=old.pk)
    assert (kept.status, kept.result.name, kept.preview.name, kept.checkpoint.name) == (Status.SUCCEEDED, "", "", "")
    assert job_files(old) == [] and not JobArtifact.objects.filter(job=old).exists()
    assert not UnitPatches.objects.filter(job=old).exists()
    assert default_storage.exists(recent.result.name) and len(job_files(recent)) == len(job_files(recent)) > 3
    assert default_storage.exists(f"checkpoints/{running.pk}/current.pt")  # a running job's is referenced
    assert retention.sweep().expired_jobs == []  # done once


def test_orphans_older_than_the_grace_go_and_referenced_files_stay(settings, queued_job, content):
    settings.RETENTION_DAYS = 30
    settings.RETENTION_ORPHAN_GRACE_SECONDS = 3600
    job = finish(queued_job)
    thumbnail = stored_long_ago(f"thumbnails/{content.pk}-240.jpg")
    lost_checkpoint = stored_long_ago(f"checkpoints/{job.pk}/killed-mid-upload.pt")
    stale_preview = stored_long_ago(f"results/{job.pk}/preview-superseded.png")
    deleted_job = stored_long_ago("results/11111111-1111-1111-1111-111111111111/result.png")
    unrecorded_upload = stored_long_ago("uploads/never-recorded.png")
    gone_image_thumbnail = stored_long_ago("thumbnails/22222222-2222-2222-2222-222222222222-240.jpg")
    fresh = default_storage.save(f"checkpoints/{job.pk}/just-stored.pt", ContentFile(b"about to be recorded"))
    for name in (job.result.name, job.preview.name, content.file.name):
        then = time.time() - 10 * 86400
        os.utime(default_storage.path(name), (then, then))

    swept = retention.sweep()
    assert sorted(swept.orphans) == sorted([lost_checkpoint, stale_preview, deleted_job, unrecorded_upload,
                                            gone_image_thumbnail])
    for name in swept.orphans:
        assert not default_storage.exists(name)
    for name in (job.result.name, job.preview.name, content.file.name, thumbnail, fresh,
                 *JobArtifact.objects.filter(job=job).values_list("file", flat=True)):
        assert default_storage.exists(name), name


def test_the_reconcilers_loop_sweeps_even_when_the_broker_cannot_be_read(settings, queued_job, monkeypatch):
    monkeypatch.setattr("webapp.management.commands.reconcile_jobs.close_old_connections", lambda: None)  # the test's
    settings.RETENTION_DAYS = 1
    old = finished_days_ago(queued_job, 2)
    retention._last_sweep = None
    Command().one_pass()  # the test broker (memory://) cannot be inspected: reconciling is skipped
    assert StyleJob.objects.get(pk=old.pk).result.name == "" and job_files(old) == []
    orphan = stored_long_ago("uploads/left.png", seconds=10 * 86400)
    Command().one_pass()  # within RETENTION_EVERY_SECONDS of the last sweep: nothing
    assert default_storage.exists(orphan)
