"""`Idempotency-Key` on POSTs: the first successful response is stored (in the database, in the
same transaction as what it created) and a retry with the same key by the same person gets it
back, with `Idempotent-Replayed: true`, creating nothing. Errors are not stored: a retry after
a 4xx/5xx is a new attempt. A key reused for another URL is a 422. Answers are kept for
IDEMPOTENCY_KEY_TTL_SECONDS (a day): an older key counts as new, and prune() deletes them
(`manage.py prune_idempotency_keys`, run by the reconciler on every pass)."""

from __future__ import annotations

from datetime import timedelta
from typing import Callable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from .models import IdempotencyKey

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class KeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "This Idempotency-Key was used for another request."
    default_code = "idempotency_key_reused"


class _Replay(Exception):
    """Another request with the same key committed first: roll this one back, answer with that one."""


def _replay(request, record: IdempotencyKey) -> Response:
    if record.method != request.method or record.path != request.path:
        raise KeyReused(f"This Idempotency-Key was used for {record.method} {record.path}.")
    headers = {"Idempotent-Replayed": "true"}
    if record.location:
        headers["Location"] = record.location
    return Response(record.body, status=record.status_code, headers=headers)


def idempotent(request, create: Callable[[], Response]) -> Response:
    """create() once per (person, key); without the header, simply create()."""
    key = request.headers.get(HEADER)
    if key is None:
        return create()
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationError({HEADER: [f"must be 1 to {MAX_KEY_LENGTH} characters"]})
    _expired().filter(owner=request.user, key=key).delete()
    record = IdempotencyKey.objects.filter(owner=request.user, key=key).first()
    if record is not None:
        return _replay(request, record)
    try:
        with transaction.atomic():
            response = create()
            if 200 <= response.status_code < 300:
                try:
                    with transaction.atomic():
                        IdempotencyKey.objects.create(
                            owner=request.user, key=key, method=request.method, path=request.path,
                            status_code=response.status_code, body=response.data,
                            location=response.get("Location", ""))
                except IntegrityError:
                    raise _Replay
    except _Replay:
        return _replay(request, IdempotencyKey.objects.get(owner=request.user, key=key))
    return response


def _expired():
    return IdempotencyKey.objects.filter(
        created__lt=timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL_SECONDS))


def prune() -> int:
    """Delete the answers older than IDEMPOTENCY_KEY_TTL_SECONDS; returns how many."""
    return _expired().delete()[0]
