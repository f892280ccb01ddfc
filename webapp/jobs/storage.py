"""Files of the service, through Django's storage API only (file system or S3, same code).

Names are chosen here and are always UUIDs under a fixed prefix; a client's file
name never reaches the storage:

    uploads/<uuid>.png|.jpg             StyleImage files, re-encoded, no metadata
    results/<job>/result.png            the result, with its reproduction metadata
    results/<job>/<artifact>.png        visualisations
    results/<job>/preview-<uuid>.png    intermediate image (a new name each time: no stale caches)
    results/<job>/patches-<layer>-<unit>-<uuid>.png   the nine patches of a unit (UnitPatches)
    checkpoints/<job>/<uuid>.pt         latest checkpoint (new name, then the old one is deleted)

Files reach people only through serve(), called by views that have checked the owner (the
pages' and the API's): there is no public /media/ URL. With a bucket (S3_BUCKET) serve() streams
the object through the web process (webapp/jobs/bucket.py says why, not presigned redirects).

A store that cannot be reached (the bucket's server down, the network away, a full disk) raises
one of STORAGE_ERRORS: OSError, or botocore's errors, which are not OSErrors. The worker fails
the job retryably on them (it resumes later from its checkpoint); the views turn them into
StorageUnavailable, which answers 503 (webapp/pages/storage_down.py). A file that is not there
is FileNotFoundError (an OSError too), a 404 in the views.
"""

from __future__ import annotations

import hashlib
import io
import logging
import mimetypes
import os
import re
import unicodedata
import uuid
from datetime import datetime, timezone
from typing import IO, Iterable, Iterator, Mapping

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.http import FileResponse, Http404
from PIL import Image

import stylize

from ..models import StyleImage, StyleJob
from . import quota

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:  # boto3 is in requirements.txt; without it only local files can be used
    BotoCoreError = ClientError = OSError

log = logging.getLogger(__name__)

# What a storage call raises when the store cannot be reached or refuses (botocore's are not
# OSErrors: connection refused, timeouts, 5xx and 403 answers).
STORAGE_ERRORS = (OSError, BotoCoreError, ClientError)


class StorageUnavailable(Exception):
    """The file store cannot be reached now; a view answers 503 (not the person's fault, and it
    passes)."""

JPEG_QUALITY = 95
CACHED = "private, max-age=86400"  # a URL whose `?v=` names the stored file: its bytes never change
REVALIDATE = "private, no-cache"


class UploadTooLarge(stylize.ImageError):
    """The uploaded file has more bytes than UPLOAD_MAX_BYTES."""


# -- uploads -----------------------------------------------------------------------------

def store_upload(owner, uploaded: IO[bytes]) -> StyleImage:
    """Decode, check, re-encode and store an uploaded image; the owner's existing one if identical.

    `uploaded` is a Django UploadedFile or any binary file object (its `name`, if
    any, is kept for display only). Raises stylize.ImageError (UploadTooLarge,
    ImageTooLarge, ...) with a message meant for the person who uploaded it.
    """
    display_name = sanitise_name(getattr(uploaded, "name", "") or "")
    data = _read_limited(uploaded, settings.UPLOAD_MAX_BYTES, display_name)
    # The hash is of the bytes as uploaded, not of the re-encoded file: a repeat upload is
    # recognised before any decoding, and the match does not depend on the Pillow version
    # that re-encoded the first copy.
    sha256 = hashlib.sha256(data).hexdigest()
    existing = StyleImage.objects.filter(owner=owner, sha256=sha256).first()
    if existing:
        return existing
    quota.check(owner, len(data))  # before decoding: the bytes as uploaded, a first estimate

    source = io.BytesIO(data)
    source.name = display_name or "the image"  # names the file in load_image's error messages
    image = stylize.load_image(source, max_pixels=settings.UPLOAD_MAX_PIXELS)  # upright, metadata dropped
    encoded, extension = _reencode(image, _format_of(data))
    quota.check(owner, len(encoded))  # what will be stored
    name = default_storage.save(new_name("uploads/", extension), ContentFile(encoded))
    try:
        with transaction.atomic():
            return StyleImage.objects.create(owner=owner, file=name, sha256=sha256, width=image.width,
                                             height=image.height, original_name=display_name,
                                             stored_bytes=len(encoded))
    except IntegrityError:  # the same file, uploaded at the same moment by the same owner
        default_storage.delete(name)
        return StyleImage.objects.get(owner=owner, sha256=sha256)


def _read_limited(uploaded: IO[bytes], limit: int, display_name: str) -> bytes:
    size = getattr(uploaded, "size", None)
    too_large = UploadTooLarge(f"'{display_name or 'the image'}' is larger than the limit of "
                               f"{limit / 1e6:.3g} MB; scale it down and try again")
    if size is not None and size > limit:
        raise too_large
    if hasattr(uploaded, "seek"):
        uploaded.seek(0)
    data = uploaded.read(limit + 1)
    if len(data) > limit:
        raise too_large
    return data


def _format_of(data: bytes) -> str | None:
    try:
        with Image.open(io.BytesIO(data)) as im:  # header only
            return im.format
    except Exception:  # load_image has accepted the bytes; this only picks an encoding
        return None


def _reencode(image: Image.Image, source_format: str | None) -> tuple[bytes, str]:
    """PNG for lossless sources and anything with alpha; JPEG (quality 95, no chroma
    subsampling) for photos that arrived lossy, where a second pass at that quality is
    invisible and PNG would be three to five times bigger. Nothing else (EXIF, GPS,
    ICC, text chunks) is written."""
    out = io.BytesIO()
    if image.mode == "RGBA" or source_format == "PNG":
        image.save(out, format="PNG", optimize=False, compress_level=6)
        return out.getvalue(), ".png"
    image.convert("RGB").save(out, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
    return out.getvalue(), ".jpg"


_UNSAFE_NAME_CHARS = re.compile(r"[^\w.\- ()\[\]+,]", re.UNICODE)


def sanitise_name(name: str) -> str:
    """A client's file name made safe to show: its last path part, printable, at most 100 characters."""
    name = unicodedata.normalize("NFC", str(name)).replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")  # control, format, ...
    name = _UNSAFE_NAME_CHARS.sub("_", name).strip(" .")
    return name[:100]


def new_name(prefix: str, extension: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}{extension}"


# -- reading inputs -------------------------------------------------------------------------

def open_image(name: str) -> Image.Image:
    """A stored image, decoded through stylize.load_image (upright RGB/RGBA)."""
    with default_storage.open(name, "rb") as f:
        return stylize.load_image(io.BytesIO(f.read()), max_pixels=settings.UPLOAD_MAX_PIXELS)


def load_checkpoint(name: str) -> stylize.Checkpoint:
    with default_storage.open(name, "rb") as f:
        return stylize.Checkpoint.load(f.read())


def open_stream(name: str) -> IO[bytes]:
    """A stored file to read from start to end, a chunk at a time: from a bucket it streams (never
    the whole object in memory); locally it is the open file. FileNotFoundError if it is not
    there; one of STORAGE_ERRORS if the store cannot be reached."""
    opener = getattr(default_storage, "open_stream", None)
    return opener(name) if opener else default_storage.open(name, "rb")


def open_for_view(name: str) -> IO[bytes]:
    """open_stream() for a view: Http404 when the file is missing, StorageUnavailable (503) when
    the store cannot be reached."""
    if not name:
        raise Http404
    try:
        return open_stream(name)
    except FileNotFoundError:
        log.warning("stored file %s is missing", name)
        raise Http404
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable(f"cannot read {name}: {exc}") from exc


def check_reachable() -> None:
    """StorageUnavailable unless the store answers now (a request before a long streamed answer,
    whose status cannot change once it has started)."""
    try:
        default_storage.exists("uploads/")
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable(f"the file store cannot be reached: {exc}") from exc


def serve(request, name: str, *, filename: str, download: bool = False, cache: str | None = None) -> FileResponse:
    """A stored file with its type, nosniff, and a file name for saving it; 404 when it is gone,
    StorageUnavailable (503) when the store cannot be reached. Cached privately when the URL
    carries `?v=` (versioned names) or `cache` says so."""
    handle = open_for_view(name)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = FileResponse(handle, content_type=content_type, as_attachment=download, filename=filename)
    if getattr(handle, "size", None) is not None and not response.has_header("Content-Length"):
        response["Content-Length"] = str(handle.size)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = cache or (CACHED if "v" in request.GET else REVALIDATE)
    return response


# -- writing outputs ------------------------------------------------------------------------

def save_result(job: StyleJob, result: stylize.Result) -> str:
    buffer = io.BytesIO()
    result.save(buffer)  # a PNG whose text chunk holds params, seed, engine version, weights hash
    return default_storage.save(f"results/{job.id}/result.png", ContentFile(buffer.getvalue()))


def save_preview(job: StyleJob, image: Image.Image) -> str:
    return default_storage.save(new_name(f"results/{job.id}/preview-", ".png"), ContentFile(_png(image)))


def save_checkpoint(job: StyleJob, data: bytes) -> str:
    return default_storage.save(new_name(f"checkpoints/{job.id}/", ".pt"), ContentFile(data))


def save_artifacts(job: StyleJob, pictures: Mapping[str, Image.Image]) -> dict[str, str]:
    """{artifact name: storage name}, in the order given."""
    return {key: default_storage.save(f"results/{job.id}/{key}.png", ContentFile(_png(img)))
            for key, img in pictures.items()}


def save_patches(job: StyleJob, layer: str, unit: int, png: bytes) -> str:
    return default_storage.save(new_name(f"results/{job.id}/patches-{layer}-{unit}-", ".png"), ContentFile(png))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


# -- deleting -------------------------------------------------------------------------------

def delete_files(names: Iterable[str]) -> None:
    """Delete stored files, ignoring empty names; a failure is logged, never raised (it is cleanup)."""
    for name in names:
        if not name:
            continue
        try:
            default_storage.delete(name)
        except Exception:
            log.warning("could not delete stored file %s", name, exc_info=True)


def delete_job_files(job: StyleJob) -> None:
    """Every file a job produced (result, previews, checkpoints, visualisations, and what a
    crashed attempt left behind); the input images are shared with other jobs and stay."""
    names = {job.result.name, job.preview.name, job.checkpoint.name}
    names |= {a.file.name for a in job.artifacts.all()}
    folders = (f"results/{job.id}", f"checkpoints/{job.id}")
    for folder in folders:
        names |= set(_files_under(folder))
    delete_files(sorted(n for n in names if n))
    for folder in folders:  # a file system keeps empty folders; object stores have none
        try:
            path = default_storage.path(folder)
        except NotImplementedError:
            continue
        if os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)


def list_files(prefix: str) -> Iterator[tuple[str, datetime]]:
    """(storage name, last modified, aware) of every file under the folder `prefix`, at any depth."""
    lister = getattr(default_storage, "list_files", None)
    if lister:
        yield from lister(prefix)
        return
    try:
        root = default_storage.path(prefix)
    except NotImplementedError:
        return
    for folder, _dirs, files in os.walk(root):
        for file in files:
            path = os.path.join(folder, file)
            name = os.path.relpath(path, default_storage.path("")).replace(os.sep, "/")
            yield name, datetime.fromtimestamp(os.path.getmtime(path), tz=timezone.utc)


def _files_under(folder: str) -> list[str]:
    try:
        _dirs, files = default_storage.listdir(folder)
    except (FileNotFoundError, NotImplementedError):
        return []
    return [f"{folder}/{name}" for name in files]
