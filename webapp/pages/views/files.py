"""Stored files, served to their owner only: inputs, results, previews, visualisations,
thumbnails, and the top patches of a unit computed on demand.

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

import stylize
from stylize.visualize import top_patches
from stylize.vgg import features_for

from ...jobs import storage
from ...jobs.present import version
from ...jobs.storage import CACHED, serve
from ...models import StyleJob
from ..forms import PatchesForm
from .common import own_image, own_job, require

log = logging.getLogger(__name__)

Status = StyleJob.Status
IMAGE_THUMBNAIL_PX = 240  # the picker's tiles and the inputs on the job page
JOB_THUMBNAIL_PX = 480  # the gallery's cards, at twice their CSS size
PATCHES_IMAGE_PX = 192  # long side the images are analysed at: small, so a request takes a moment


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
    """The stored JPEG thumbnail `name` of the stored image `source`, made on first use."""
    if default_storage.exists(name):
        return name
    try:
        with default_storage.open(source, "rb") as f:
            with Image.open(f) as img:
                img.draft("RGB", (long_side, long_side))  # JPEG: decode at a fraction of the size
                img.thumbnail((long_side, long_side), Image.Resampling.LANCZOS)
                picture = _flatten(img)
    except (FileNotFoundError, OSError):
        log.warning("cannot make a thumbnail of %s", source, exc_info=True)
        raise Http404
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85, optimize=True)
    stored = default_storage.save(name, ContentFile(buffer.getvalue()))
    if stored != name:  # another request made it at the same moment
        default_storage.delete(stored)
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
    result; 400 with a message for a bad layer or unit. Computed once, then read from storage."""
    job = own_job(request, job_id)
    form = PatchesForm(request.GET)
    if not form.is_valid():
        return _plain(form.first_error(), status=400)
    if job.status != Status.SUCCEEDED or not job.result.name:
        return _plain("The patches can be shown once the job has finished successfully.", status=409)
    layer, unit = form.cleaned_data["layer"], form.cleaned_data["unit"]
    name = f"results/{job.pk}/patches-{layer}-{unit}-{version(job.result.name)}.png"
    if not default_storage.exists(name):
        try:
            picture = render_patches(job, layer, unit)
        except stylize.ConfigError as error:  # params stored long ago that no longer validate
            return _plain(f"This job's parameters can no longer be read: {error}", status=409)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        stored = default_storage.save(name, ContentFile(buffer.getvalue()))
        if stored != name:  # computed twice at the same moment: keep one
            default_storage.delete(stored)
        log.info("job %s: top patches of %s unit %d computed", job.pk, layer, unit)
    return serve(request, name, filename=f"patches-{layer}-{unit}.png", cache=CACHED)


def render_patches(job: StyleJob, layer: str, unit: int) -> Image.Image:
    """The engine's top_patches on the job's content, its weightiest style and its result, small and on the CPU."""
    config = job.config()
    styles = job.ordered_styles()
    weights = config.blend_weights(len(styles))
    style = styles[weights.index(max(weights))]
    images = {"content": storage.open_image(job.content.file.name), "style": storage.open_image(style.file.name),
              "result": storage.open_image(job.result.name)}
    net = features_for([layer], pooling=config.pooling, source=config.weights, device="cpu")
    return top_patches(net, {k: v.convert("RGB") for k, v in images.items()}, layer, unit, k=9,
                       size=PATCHES_IMAGE_PX)


def _plain(message: str, status: int) -> HttpResponse:
    response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"
    return response
