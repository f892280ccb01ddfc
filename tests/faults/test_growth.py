"""What a person leaves behind is bounded: Idempotency-Key answers are pruned after their time
(a command, and every pass of the reconciler's loop), images can be deleted when no queued or
running job needs them, and the images a person keeps fit a storage quota (413 with the numbers)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tests import inputs
from tests.api.conftest import client_for, fresh_throttle  # noqa: F401 (fresh_throttle: an autouse fixture)
from webapp.api.models import IdempotencyKey
from webapp.jobs import lifecycle, quota
from webapp.management.commands.reconcile_jobs import Command as Reconciler
from webapp.models import StyleImage, StyleJob

pytestmark = pytest.mark.django_db

Status = StyleJob.Status
TINY = {"size": 32, "scales": 1, "iterations": 1}


def key(owner, name: str, age: timedelta) -> IdempotencyKey:
    return IdempotencyKey.objects.create(owner=owner, key=name, method="POST", path="/api/v1/jobs/",
                                         status_code=202, body={}, created=timezone.now() - age)


def test_the_command_prunes_idempotency_keys_past_their_time(user, capsys):
    key(user, "old", timedelta(days=2)), key(user, "new", timedelta(hours=1))
    call_command("prune_idempotency_keys")
    assert "1 idempotency key(s) pruned" in capsys.readouterr().out
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


def test_every_pass_of_the_reconcilers_loop_prunes_them(user, settings, monkeypatch):
    from webapp.management.commands import reconcile_jobs

    monkeypatch.setattr(reconcile_jobs, "close_old_connections", lambda: None)  # would close the test's transaction
    settings.IDEMPOTENCY_KEY_TTL_SECONDS = 60
    key(user, "old", timedelta(minutes=2)), key(user, "new", timedelta(seconds=1))
    Reconciler().one_pass()
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["new"]


def test_a_key_past_its_time_counts_as_new(user, upload, sent):
    content, style = upload(user, (1, 2, 3)), upload(user, (3, 2, 1))
    key(user, "retry", timedelta(days=2))
    response = client_for(user).post("/api/v1/jobs/", {"content": str(content.pk), "styles": [str(style.pk)],
                                                       "params": TINY}, format="json", HTTP_IDEMPOTENCY_KEY="retry")
    assert response.status_code == 202 and "Idempotent-Replayed" not in response


def test_an_unused_image_is_deleted_with_its_file(user, upload, django_capture_on_commit_callbacks):
    image = upload(user, (1, 2, 3))
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(user).delete(f"/api/v1/images/{image.pk}/").status_code == 204
    assert not StyleImage.objects.filter(pk=image.pk).exists()
    assert not default_storage.exists(image.file.name)


def test_an_image_a_queued_job_uses_is_409_and_kept(user, upload, sent):
    content, style = upload(user, (1, 2, 3)), upload(user, (3, 2, 1))
    lifecycle.create_job(user, content, [style], TINY)
    api = client_for(user)
    for image in (content, style):
        response = api.delete(f"/api/v1/images/{image.pk}/")
        assert response.status_code == 409 and "cancel" in response.json()["detail"]
        assert default_storage.exists(image.file.name)
    assert StyleImage.objects.count() == 2 and StyleJob.objects.count() == 1


def test_deleting_an_image_deletes_the_finished_jobs_made_from_it(user, upload, sent):
    content, style, other_style = upload(user, (1, 2, 3)), upload(user, (3, 2, 1)), upload(user, (9, 9, 9))
    made_from_it = lifecycle.create_job(user, content, [style], TINY)
    not_from_it = lifecycle.create_job(user, content, [other_style], TINY)
    StyleJob.objects.update(status=Status.SUCCEEDED)
    assert client_for(user).delete(f"/api/v1/images/{style.pk}/").status_code == 204
    assert list(StyleJob.objects.values_list("pk", flat=True)) == [not_from_it.pk]
    assert not StyleJob.objects.filter(pk=made_from_it.pk).exists()


def test_another_persons_image_cannot_be_deleted(user, other, upload):
    theirs = upload(other, (1, 2, 3))
    assert client_for(user).delete(f"/api/v1/images/{theirs.pk}/").status_code == 404
    assert StyleImage.objects.filter(pk=theirs.pk).exists()


def post_image(api, colour):
    return api.post("/api/v1/images/", {"file": SimpleUploadedFile("p.png", inputs.png(colour=colour))},
                    format="multipart")


def test_uploads_past_the_storage_quota_are_413_with_the_numbers_until_room_is_made(user, settings):
    api = client_for(user)
    first = post_image(api, (1, 2, 3))
    assert first.status_code == 201
    used = quota.usage(user)
    assert used == StyleImage.objects.get().stored_bytes > 0
    settings.STORAGE_QUOTA_BYTES = used + 10  # room for nothing more
    refused = post_image(api, (4, 5, 6))
    assert refused.status_code == 413
    detail = refused.json()["detail"]
    assert "your images already use" in detail and f"{used / 1e6:.3g} MB" in detail
    assert f"{settings.STORAGE_QUOTA_BYTES / 1e6:.3g} MB" in detail
    assert StyleImage.objects.count() == 1
    api.delete(first.json()["url"])
    assert post_image(api, (4, 5, 6)).status_code == 201


def test_the_new_job_page_answers_a_full_quota_with_413(user, settings):
    settings.STORAGE_QUOTA_BYTES = 10
    browser = Client()
    browser.force_login(user)
    response = browser.post("/new/", {"content_file": SimpleUploadedFile("c.png", inputs.png(colour=(1, 1, 1)))})
    assert response.status_code == 413 and "delete some of them" in response.content.decode()
    assert StyleImage.objects.count() == 0
