"""Stored files, served to their owner only: inputs, results, previews, visualisations,
thumbnails, and the top patches of a unit (computed by a worker on request).

Nothing is a public /media/ URL: every file goes through a view that looks the job or
image up among the logged-in person's own, so another person's file is a 404. URLs of
files that change carry `?v=<tag of the storage name>`; with it a response may be
cached (privately), without it it must be revalidated.
"""

from __future__ import annotations

import io
import logging

from django.contrib.auth.decorators import login_required
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET
from PIL import Image

from ...jobs import patches
from ...jobs.present import version
from ...jobs.storage import CACHED, STORAGE_ERRORS, StorageUnavailable, open_for_view, serve
from ...models import StyleJob
from ..forms import PatchesForm
from .common import own_image, own_job, require

log = logging.getLogger(__name__)

Status = StyleJob.Status
IMAGE_THUMBNAIL_PX = 240  # the picker's tiles and the inputs on the job page
JOB_THUMBNAIL_PX = 480  # the gallery's cards, at twice their CSS size


def _extension(name: str) -> str:
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


@login_required
@require_GET
def image_file(request, image_id):
    image = own_image(request, image_id)
    stem = (image.original_name or "image").rsplit(".", 1)[0]
    return serve(request, image.file.name, filename=stem + _extension(image.file.name), cache=CACHED)


@login_required
@require_GET
def image_thumbnail(request, image_id):
    image = own_image(request, image_id)
    name = thumbnail(image.file.name, f"thumbnails/{image.pk}-{IMAGE_THUMBNAIL_PX}.jpg", IMAGE_THUMBNAIL_PX)
    return serve(request, name, filename="thumbnail.jpg", cache=CACHED)


@login_required
@require_GET
def job_result(request, job_id):
    job = own_job(request, job_id)
    require(job.status == Status.SUCCEEDED and bool(job.result.name))
    return serve(request, job.result.name, filename=f"stylized-{str(job.pk)[:8]}.png",
                 download=request.GET.get("download") == "1")


@login_required
@require_GET
def job_preview(request, job_id):
    job = own_job(request, job_id)
    return serve(request, job.preview.name, filename=f"preview-{str(job.pk)[:8]}.png")


@login_required
@require_GET
def job_thumbnail(request, job_id):
    job = own_job(request, job_id)
    require(job.status == Status.SUCCEEDED and bool(job.result.name))
    name = thumbnail(job.result.name, f"results/{job.pk}/thumbnail-{version(job.result.name)}.jpg",
                     JOB_THUMBNAIL_PX)
    return serve(request, name, filename="thumbnail.jpg", cache=CACHED)


@login_required
@require_GET
def job_artifact(request, job_id, name):
    job = own_job(request, job_id)
    require(job.status == Status.SUCCEEDED)
    artifact = job.artifacts.filter(name=name).first()
    require(artifact is not None)
    return serve(request, artifact.file.name, filename=f"{name}-{str(job.pk)[:8]}.png")


def thumbnail(source: str, name: str, long_side: int) -> str:
    """The stored JPEG thumbnail `name` of the stored image `source`, made on first use. Http404
    when the source is missing or not an image; StorageUnavailable (503) when the store cannot
    be reached."""
    try:
        if default_storage.exists(name):
            return name
        with open_for_view(source) as f:
            data = f.read()
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable(f"cannot make the thumbnail {name}: {exc}") from exc
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (long_side, long_side))  # JPEG: decode at a fraction of the size
            img.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
            picture = _flatten(img)
    except OSError:  # not a picture Pillow can read (it was one when it was stored)
        log.warning("cannot make a thumbnail of %s", source, exc_info=True)
        raise Http404
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85, optimize=True)
    try:
        stored = default_storage.save(name, ContentFile(buffer.getvalue()))
        if stored != name:  # another request made it at the same moment
            default_storage.delete(stored)
    except STORAGE_ERRORS as exc:
        raise StorageUnavailable(f"cannot store the thumbnail {name}: {exc}") from exc
    return name


def _flatten(img: Image.Image) -> Image.Image:
    """RGB, transparent parts on white (JPEG has no alpha)."""
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


# -- the nine patches that excite a unit ---------------------------------------------------

@login_required
@require_GET
def job_patches(request, job_id):
    """?layer=relu3_1&unit=12 -> a PNG of the top patches of that unit in content, style and
    result, computed by a worker (webapp/jobs/patches.py): 202 while it is being computed (the
    page asks again), 200 with the picture once it is there; 400 for a bad layer or unit, 409
    before the job has succeeded or when it could not be computed, 429 past the hourly limit,
    503 with no worker running."""
    job = own_job(request, job_id)
    form = PatchesForm(request.GET)
    if not form.is_valid():
        return _plain(form.first_error(), status=400)
    if job.status != Status.SUCCEEDED or not job.result.name:
        return _plain("The patches can be shown once the job has finished successfully.", status=409)
    layer, unit = form.cleaned_data["layer"], form.cleaned_data["unit"]
    try:
        row = patches.ask(job, layer, unit)
    except patches.PatchesRefused as refusal:
        return _plain(str(refusal), status=refusal.status)
    if row.file:
        return serve(request, row.file.name, filename=f"patches-{layer}-{unit}.png", cache=CACHED)
    if row.error:
        patches.forget_failure(row)
        return _plain(row.error, status=409)
    response = _plain("The patches are being computed.", status=202)
    response["Retry-After"] = "1"
    response["Cache-Control"] = "no-store"
    return response


def _plain(message: str, status: int) -> HttpResponse:
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"
    return response
