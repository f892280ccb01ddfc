"""The nine patches that excite a unit, computed by a worker for a picture its owner asked for
(webapp/jobs/patches.py records the request and serves the result).

Small and on the CPU: the three images at PATCHES_IMAGE_PX, one layer of the network. The task
is at most once (acks_late off): a lost message leaves the request waiting, and the page asks
again after PATCHES_WAIT_SECONDS; a picture that kills its worker is not delivered again and again.
"""

from __future__ import annotations

import io
import logging

from django.utils import timezone
from PIL import Image

import stylize

from ..celery import app
from ..jobs import storage
from ..models import StyleJob, UnitPatches
from ..queue.lanes import PATCHES_TASK_NAME

log = logging.getLogger(__name__)

PATCHES_IMAGE_PX = 192  # long side the images are analysed at: small, so a picture takes a moment
SOFT_TIME_LIMIT = 120  # s; a picture that takes longer is failed with a message


@app.task(bind=True, name=PATCHES_TASK_NAME, acks_late=False, soft_time_limit=SOFT_TIME_LIMIT,
          time_limit=SOFT_TIME_LIMIT + 30)
def render_unit_patches(self, row_id: int) -> str:
    row = (UnitPatches.objects.select_related("job", "job__content")
           .filter(pk=row_id, task_id=self.request.id, file="", error="").first())
    if row is None:
        return "not needed"  # done, deleted, or asked again under another message
    try:
        picture = render_patches(row.job, row.layer, row.unit)
        name = storage.save_patches(row.job, row.layer, row.unit, _png(picture))
    except stylize.ConfigError as exc:  # params stored long ago that no longer validate
        return _failed(row, f"This job's parameters can no longer be read: {exc}")
    except storage.STORAGE_ERRORS as exc:
        log.warning("patches %s: storage failed: %s", row_id, exc)
        return _failed(row, "The job's images could not be read or the picture stored; please try again.")
    except Exception as exc:
        log.exception("patches %s failed", row_id)
        return _failed(row, f"The patches could not be computed ({type(exc).__name__}).")
    if not UnitPatches.objects.filter(pk=row.pk, task_id=self.request.id, file="").update(
            file=name, finished=timezone.now()):
        storage.delete_files([name])  # the request went away meanwhile (deleted, or its job)
        return "not needed"
    log.info("job %s: top patches of %s unit %d computed", row.job_id, row.layer, row.unit)
    return "done"


def render_patches(job: StyleJob, layer: str, unit: int) -> Image.Image:
    """The engine's top_patches on the job's content, its weightiest style and its result, small and on the CPU."""
    from stylize.vgg import features_for
    from stylize.visualize import top_patches

    config = job.config()
    styles = job.ordered_styles()
    weights = config.blend_weights(len(styles))
    style = styles[weights.index(max(weights))]
    images = {"content": storage.open_image(job.content.file.name), "style": storage.open_image(style.file.name),
              "result": storage.open_image(job.result.name)}
    net = features_for([layer], pooling=config.pooling, source=config.weights, device="cpu")
    return top_patches(net, {k: v.convert("RGB") for k, v in images.items()}, layer, unit, k=9,
                       size=PATCHES_IMAGE_PX)


def _failed(row: UnitPatches, error: str) -> str:
    UnitPatches.objects.filter(pk=row.pk, file="").update(error=error, finished=timezone.now())
    return "failed"


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
