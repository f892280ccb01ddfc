"""The API's own error responses, and the translation of the back end's errors into them."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.exceptions import APIException

import stylize
from webapp.jobs.lifecycle import JobInputError, JobLimitReached, JobStateError
from webapp.jobs.quota import QuotaExceeded
from webapp.jobs.storage import UploadTooLarge


class TooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The upload is too large."
    default_code = "too_large"


class UnsupportedImage(APIException):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_detail = "The upload is not an image in a supported format."
    default_code = "unsupported_image"


class JobCapReached(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Too many jobs queued or running."
    default_code = "job_limit"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object is not in a state that allows this."
    default_code = "conflict"


def image_error(exc: stylize.ImageError) -> APIException:
    """413 for a file or picture over the limits, 415 for anything that is not a usable image."""
    if isinstance(exc, (UploadTooLarge, stylize.ImageTooLarge, QuotaExceeded)):
        return TooLarge(str(exc))
    return UnsupportedImage(str(exc))


def config_error(exc: stylize.ConfigError) -> serializers.ValidationError:
    """400 naming the option: {"params": {"size": ["must be at most …"]}} ("preset" stays top level)."""
    if exc.field in ("preset", "params"):
        return serializers.ValidationError({exc.field: [exc.reason]})
    return serializers.ValidationError({"params": {exc.field: [exc.reason]}})


def job_error(exc: Exception) -> APIException:
    if isinstance(exc, JobLimitReached):
        return JobCapReached(str(exc))
    if isinstance(exc, JobStateError):
        return Conflict(str(exc))
    if isinstance(exc, JobInputError):
        return serializers.ValidationError({exc.field or "non_field_errors": [str(exc)]})
    raise exc
