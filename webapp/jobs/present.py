"""What every surface shows of a job (the pages, the API and the admin alike): its state as
JSON, the URLs of its files, its visualisations with their labels, the rows of its params with
the options' labels."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from django.urls import reverse

from stylize.config import StyleConfig, field_info
from stylize.vgg import LAYER_INDEX

from ..models import StyleImage, StyleJob

Status = StyleJob.Status

# What people are shown as each option's name (the help text comes from StyleConfig).
LABELS = {
    "size": "Output size (px)",
    "iterations": "Iterations",
    "coarse_iterations": "Coarse iterations",
    "scales": "Scales",
    "content_weight": "α · content weight",
    "style_weight": "β · style weight",
    "tv_weight": "Smoothness (TV weight)",
    "style_scale": "Style scale",
    "style_views": "Style views",
    "preserve_colors": "Preserve colours",
    "init": "Start from",
    "seed": "Seed",
    "optimizer": "Optimiser",
    "learning_rate": "Learning rate",
    "pooling": "Pooling",
    "normalize_content": "Normalise the content cost",
    "precision": "Precision",
    "content_layers": "Content layer",
    "style_layers": "Style layers λ",
    "layer_normalisation": "Layer weighting",
    "style_blend": "Style blend",
    "device": "Device",
    "weights": "Weights",
}
CHOICE_LABELS = {
    ("preserve_colors", "none"): "No",
    ("preserve_colors", "statistics"): "Recolour the style",
    ("preserve_colors", "luminance"): "Luminance only",
    ("layer_normalisation", "balanced"): "Balanced (λ = each layer's share)",
    ("layer_normalisation", "seed"): "Seed formula (deep layers dominate)",
    ("init", "palette"): "The content in the style's colours",
    ("init", "content"): "The content image",
    ("init", "random"): "Random noise",
    ("optimizer", "lbfgs"): "L-BFGS",
    ("optimizer", "adam"): "Adam",
    ("pooling", "max"): "Max",
    ("pooling", "avg"): "Average",
    ("precision", "auto"): "Automatic",
    ("precision", "fp32"): "fp32",
    ("precision", "bf16"): "bf16 (faster)",
}


def label(name: str) -> str:
    return LABELS.get(name, name)


def version(name: str) -> str:
    """A short tag of a storage name: new files get new names, so URLs with it can be cached."""
    return hashlib.sha256(name.encode()).hexdigest()[:12]


def versioned(url: str, name: str) -> str:
    return f"{url}?v={version(name)}"


# -- URLs of a job's files ----------------------------------------------------------------

def image_url(image: StyleImage) -> str:
    return reverse("pages:image_file", args=[image.pk])


def image_thumbnail_url(image: StyleImage) -> str:
    return reverse("pages:image_thumbnail", args=[image.pk])


def result_urls(job: StyleJob) -> dict | None:
    if job.status != Status.SUCCEEDED or not job.result.name:
        return None
    url = versioned(reverse("pages:job_result", args=[job.pk]), job.result.name)
    return {"url": url, "download_url": f"{url}&download=1",
            "thumbnail_url": versioned(reverse("pages:job_thumbnail", args=[job.pk]), job.result.name)}


def preview_url(job: StyleJob) -> dict | None:
    if not job.preview.name:
        return None
    return {"url": versioned(reverse("pages:job_preview", args=[job.pk]), job.preview.name),
            "version": version(job.preview.name)}


def thumbnail_url(job: StyleJob) -> str:
    """The gallery's picture of a job: its result once there is one, else its content image."""
    result = result_urls(job)
    return result["thumbnail_url"] if result else image_thumbnail_url(job.content)


# -- visualisations -----------------------------------------------------------------------

FEATURES_ABOUT = ("The 16 most active channels of each layer for the content, the style and the result; one "
                  "colour scale per channel, so equal brightness means equal activation.")


def artifact_label(name: str) -> tuple[str, str]:
    """(title, one-line explanation) of a stored visualisation."""
    if name.startswith("features_"):
        return f"Feature maps · {name.removeprefix('features_')}", FEATURES_ABOUT
    return {
        "gram": ("Gram matrices · style vs result",
                 "How strongly pairs of channels fire together, per style layer: the style's, the result's and "
                 "their difference. The style cost makes the two match."),
        "patches": ("Top patches",
                    "The nine places in each image that excite one unit most (the result's most active unit); "
                    "pick another layer and unit below."),
        "loss": ("Loss curves", "Total cost and each weighted term per step, on a log scale."),
    }.get(name, (name.replace("_", " ").capitalize(), ""))


def _layer_role(layer: str, params: dict) -> str:
    roles = []
    if (params.get("content_layers") or {}).get(layer):
        roles.append("content layer")
    weight = (params.get("style_layers") or {}).get(layer)
    if weight:
        roles.append(f"style layer, λ {weight:g}")
    return " · ".join(roles)


def visualizations(job: StyleJob) -> list[dict]:
    """The stored visualisations of a succeeded job: feature maps (shallow to deep), then the others in
    the worker's order. Feature maps carry their `layer` and its `role` in the run."""
    if job.status != Status.SUCCEEDED:
        return []
    out = []
    for artifact in job.artifacts.all():
        title, about = artifact_label(artifact.name)
        url = versioned(reverse("pages:job_artifact", args=[job.pk, artifact.name]), artifact.file.name)
        item = {"name": artifact.name, "title": title, "about": about, "url": url, "kind": artifact.name}
        if artifact.name.startswith("features_"):
            layer = artifact.name.removeprefix("features_")
            item.update(kind="features", layer=layer, role=_layer_role(layer, job.params))
        out.append(item)
    depth = lambda item: LAYER_INDEX.get(item.get("layer"), 0)  # noqa: E731
    features = sorted((v for v in out if v["kind"] == "features"), key=depth)
    return features + [v for v in out if v["kind"] != "features"]


# -- the state the job page polls (and the API's job detail mirrors) -----------------------

def job_state(job: StyleJob, *, history: bool = True) -> dict[str, Any]:
    """Everything the job page updates while it watches a job (status.json, and embedded at first)."""
    return {
        "id": str(job.pk),
        "status": job.status,
        "status_label": job.get_status_display(),
        "finished": job.is_finished,
        "cancel_requested": job.cancel_requested,
        "progress": job.progress,
        "step": job.step,
        "total_steps": job.total_steps,
        "scale": job.scale + 1 if job.num_scales else 0,  # 1-based for people
        "num_scales": job.num_scales,
        "iteration": job.iteration,
        "iterations": job.iterations,
        "loss": job.loss,
        "eta_seconds": job.eta_seconds,
        "elapsed_seconds": job.elapsed_seconds,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "device": job.device,
        "seed": job.seed,
        "error": job.error,
        "created": job.created.isoformat(),
        "started": job.started.isoformat() if job.started else None,
        "finished_at": job.finished.isoformat() if job.finished else None,
        "preview": preview_url(job),
        "result": result_urls(job),
        "visualizations": visualizations(job),
        "patches_url": reverse("pages:job_patches", args=[job.pk]) if job.status == Status.SUCCEEDED else None,
        # None means "unchanged since the step you have" (see pages/views/status.job_status).
        "loss_history": job.loss_history if history else None,
    }


# -- describing a job ----------------------------------------------------------------------

def job_title(job: StyleJob, styles: list[StyleImage] | None = None) -> str:
    styles = job.ordered_styles() if styles is None else styles
    first = _short(styles[0]) if styles else "?"
    more = f" +{len(styles) - 1}" if len(styles) > 1 else ""
    return f"{_short(job.content)} × {first}{more}"


def _short(image: StyleImage) -> str:
    name = image.original_name or "image"
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return stem[:40]


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def param_rows(job: StyleJob) -> list[dict]:
    """(label, value, help) of every option the job ran with, in StyleConfig's order."""
    params = job.params
    rows = []
    for f in dataclasses.fields(StyleConfig):
        if f.name in ("device",):
            continue  # "auto" says nothing; the page shows the device it ran on
        value = params.get(f.name, f.default if f.default is not dataclasses.MISSING else None)
        if f.name == "content_layers" and list((value or {}).values()) == [1.0]:
            text = next(iter(value))
        elif f.name in ("content_layers", "style_layers"):
            text = ", ".join(f"{layer} {_number(w)}" for layer, w in (value or {}).items()) or "none"
        elif f.name == "style_blend":
            text = " : ".join(_number(w) for w in value) if value else "equal"
        elif f.name == "seed":
            seed = job.seed if job.seed is not None else value
            text = str(seed) if seed is not None else "picked when it runs"
            if value is None and job.seed is not None:
                text += " (picked at random)"
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        else:
            text = CHOICE_LABELS.get((f.name, value), _number(value))
        rows.append({"name": f.name, "label": label(f.name), "value": text,
                     "help": field_info(f.name).metadata.get("help", "")})
    return rows
