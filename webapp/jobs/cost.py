"""What a job costs the GPU, estimated before it is accepted, and the budget one job may use.

The estimate counts pixel passes through VGG19, scale by scale (StyleConfig.scale_sizes()):

    cost = Σ_scales  side² × views × (iterations at that scale + styles × style_scale²)
    views = 1 + 1/4 + 1/16 …   (style_views terms: each smaller view has a quarter of the pixels)

One optimiser iteration is a forward and backward pass of the result at that scale's size (and
of each smaller view); each style image is one forward pass (its Gram targets) at style_scale²
times the result's pixels, once per scale and view. Pixels are counted on a square of the long
side, and every view is counted even where the engine skips one under MIN_VIEW_SIDE (512 px):
an upper bound. It is a proxy for time and memory, not a prediction of seconds.

The budget is JOB_COST_BUDGET (default 4) times the estimate of the `quality` preset with
one style, read from stylize.PRESETS when asked: the presets can be retuned without this
file or the setting changing. So the quality preset always fits, and nothing costing more
than four of it does. With the presets of this writing, the quality preset fits up to
2048 px (exactly 4×), five styles at style_scale 4 cost about 2.3 times it, and 5000
iterations at 1024 px (about 60×) or the largest settings the form allows (over 1000×)
are refused with a 400 that names the budget.
"""

from __future__ import annotations

from django.conf import settings

import stylize

REFERENCE_PRESET = "quality"


def estimate(config: stylize.StyleConfig, num_styles: int) -> float:
    """The job's cost in pixel passes (see the module docstring)."""
    sizes = config.scale_sizes()
    per_style = config.style_scale ** 2
    views = sum(0.25 ** k for k in range(config.style_views))
    return float(sum(side * side * views * (config.iterations_at(index, len(sizes)) + num_styles * per_style)
                     for index, side in enumerate(sizes)))


def reference_cost() -> float:
    """The estimate of the reference preset (quality) with one style image."""
    return estimate(stylize.StyleConfig.preset(REFERENCE_PRESET), 1)


def budget() -> float:
    """The most one job may cost, in pixel passes."""
    return settings.JOB_COST_BUDGET * reference_cost()


def check(config: stylize.StyleConfig, num_styles: int) -> None:
    """Raise stylize.ConfigError("params", ...) when the job costs more than the budget; the
    message says how much, relative to the quality preset, and what to lower."""
    cost, unit = estimate(config, num_styles), reference_cost()
    if cost <= settings.JOB_COST_BUDGET * unit:
        return
    raise stylize.ConfigError(
        "params", f"this job would cost about {cost / unit:.3g} times a '{REFERENCE_PRESET}' preset job; the budget "
                  f"of this server is {settings.JOB_COST_BUDGET:g} times (JOB_COST_BUDGET). Lower the size, the "
                  f"iterations, the number of scales or styles, or style_scale")
