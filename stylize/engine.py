"""run(): optimise an image for J(G) = α·J_content + β·Σ_l λ^[l]·J_style^[l] (+ TV), coarse to fine.

Departures from the paper, each an option of StyleConfig:
* multi-scale: the image is optimised at 1/4, 1/2 and then full size, each
  scale starting from the last one upsampled, so large outputs need few
  (expensive) full-size iterations;
* the content image recoloured to the style's palette (RGB mean and covariance)
  as the starting point, and again at the start of each finer scale (the paper
  starts from noise): the colours are the part of a painting that deep layers
  cannot pull in and relu1_1 pulls in slowly, while the content term pulls the
  photo's colours back; starting each scale from the palette leaves the
  iterations to strokes and forms (on tubingen × starry_night: palette distance
  1.29 → 1.13 × the classic's, match(256) 1.13 → 1.03 ×, content lower too);
* "balanced" layer normalisation (the default; "seed" keeps the formula of
  DESIGN.md): each style term is divided by the same term for the content photo
  at that scale, J_style^[l](C) = ‖G^[l](C) − G^[l](S)‖² / (2 n_C)², so every
  layer starts at 1 from the content and λ^[l] is its share of the style's
  influence. Dividing by ‖G^[l](S)‖² instead would also remove the magnitude of
  the activations, but not how far the photo is from the painting at that
  layer: a layer the photo already matches would still get a full say. The
  ratio is what the look measure (quality.py) reports, so the weights and the
  measure speak of the same quantity. Content layers are divided by
  ½·mean(a^[l](C)²): a relative error, whatever the layer's magnitude;
* the content cost as a mean, and Grams normalised per pixel (see losses.py).
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from . import images
from .checkpoint import Checkpoint
from .config import StyleConfig
from .devices import out_of_memory, resolve_device, setup_device
from .errors import ConfigError
from .losses import content_cost, gram, style_cost, total_variation
from .result import Progress, Result
from .vgg import features_for, weights_sha256

log = logging.getLogger(__name__)

PALETTE_PIXELS = 256 * 256  # enough pixels for a 3x3 covariance; more only costs time
LBFGS_HISTORY = 50  # 100 (neural-style's) doubles memory and checkpoint size for no visible gain
SIMULATE_OOM_ENV = "STYLIZE_SIMULATE_OOM_PIXELS"  # test hook: scales above this many pixels "run out"


def run(content: Image.Image, styles: Sequence[Image.Image], config: StyleConfig | None = None,
        on_progress: Callable[[Progress], None] | None = None, resume: Checkpoint | None = None,
        init_image: Image.Image | None = None) -> Result:
    """Stylize `content` with `styles`; see the module docstring and StyleConfig for the options.

    `on_progress` is called after every iteration; it may raise stylize.Cancelled
    to stop, and may call progress.checkpoint() to get something `resume` accepts.
    """
    job, alpha = prepare(content, styles, config, on_progress, init_image, resume)
    return job.result(job.run(resume), alpha)


def prepare(content: Image.Image, styles: Sequence[Image.Image], config: StyleConfig | None,
            on_progress: Callable[[Progress], None] | None, init_image: Image.Image | None,
            resume: Checkpoint | None = None) -> tuple["_Optimisation", Image.Image | None]:
    """Check one job's inputs and build its optimisation (shared by run() and run_batch());
    returns it with the content's alpha channel, which the result gets back."""
    config = config or StyleConfig()
    if not styles:
        raise ConfigError("styles", "at least one style image is needed")
    blend = config.blend_weights(len(styles))
    if config.init == "image" and init_image is None:
        raise ConfigError("init", "'image' needs an initial image")
    if config.seed is None:
        config = config.replace(seed=resume.seed if resume else random.randrange(2**32))
    if resume:
        resume.check_matches(config)
    device = resolve_device(config.device)
    setup_device(device)
    content_rgb, alpha = images.split_alpha(content)
    job = _Optimisation(config, device, content_rgb, [images.split_alpha(s)[0] for s in styles], blend,
                        init_image, on_progress)
    return job, alpha


@dataclass
class _Optimisation:
    config: StyleConfig
    device: torch.device
    content: Image.Image
    styles: list[Image.Image]
    blend: list[float]
    init_image: Image.Image | None
    on_progress: Callable[[Progress], None] | None
    history: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    elapsed_before: float = 0.0
    scale_times: dict[int, float] = field(default_factory=dict)

    def __post_init__(self):
        c = self.config
        self.net = features_for(c.layers(), c.pooling, c.weights, self.device)
        self.sizes = [images.fit_long_side(*self.content.size, s) for s in c.scale_sizes()]
        self.plan = [c.iterations_at(i, len(self.sizes)) for i in range(len(self.sizes))]
        # precision "auto" is fp32 on every device (TF32 on CUDA: devices.setup_device) until a
        # measurement says otherwise. `bench/bench_cpu.py --precision-only` on this project's 2-core
        # dev CPU (AVX512-BF16, no AMX), torch 2.14.1, 256 px, 2026-12-03: fp32 0.53 s per
        # iteration, bf16 25.2 s (48x slower); a Xeon with AMX (2026-11-28): bf16 45 s against ~79 s.
        # GPUs: bench/gpu_check.py on an H200 (2026-12-04): bf16 changed the look by 1-3 % but ran
        # at 0.78x (512 px) and 0.98x (1024 px) the speed of TF32, so no GPU gets bf16 by default.
        self.autocast = c.precision == "bf16"

    def run(self, resume: Checkpoint | None) -> torch.Tensor:
        image, first_scale = None, 0
        if resume:
            self.history = list(resume.history)
            self.elapsed_before = resume.elapsed
            first_scale = resume.scale
        for index in range(first_scale, len(self.sizes)):
            width, height = self.sizes[index]
            try:
                _simulated_oom_check(width * height)
                image = self._run_scale(index, image, resume if resume and index == resume.scale else None)
            except Exception as exc:
                oom = out_of_memory(exc, self.device, self.sizes, index)
                if oom is None:
                    raise
                raise oom from exc
        return self._finish(image)

    def result(self, final: torch.Tensor, alpha: Image.Image | None) -> Result:
        image = images.merge_alpha(images.to_image(final), alpha)
        return Result(image=image, config=self.config, history=tuple(self.history), sizes=tuple(self.sizes),
                      elapsed=time.monotonic() - self.started + self.elapsed_before, device=str(self.device),
                      weights_sha256=weights_sha256(self.config.weights))

    # -- one scale -------------------------------------------------------------------
    # begin_scale, _Scale.scaled, after_step and end_scale are the steps of _run_scale, apart so
    # that batch.py drives several jobs' scales with one forward/backward pass and the same code.
    def _run_scale(self, index: int, previous: torch.Tensor | None, resume: Checkpoint | None) -> torch.Tensor:
        scale = self.begin_scale(index, previous, resume)
        for iteration in range(scale.done, self.plan[index]):
            terms = {}

            def closure():
                scale.optimizer.zero_grad(set_to_none=True)
                loss = self._loss(scale.image, scale.targets, terms)
                loss.backward()
                return scale.scaled(loss)

            scale.optimizer.step(closure)
            self.after_step(scale, iteration, terms)
        return self.end_scale(scale)

    def begin_scale(self, index: int, previous: torch.Tensor | None, resume: Checkpoint | None) -> "_Scale":
        """The targets, starting image, optimiser and guard of scale `index`."""
        width, height = self.sizes[index]
        targets = self._targets(width, height)
        if resume is not None:
            # Copies: the optimiser works in place, and a checkpoint may be resumed again.
            image, done = resume.image.to(self.device, copy=True), resume.iteration
        elif previous is not None:
            # Bicubic upsampling keeps the coarse scale's strokes sharp; clamping drops overshoot.
            image, done = F.interpolate(previous, size=(height, width), mode="bicubic",
                                        align_corners=False).clamp(0, 1), 0
            if self._keeps_palette():
                # The content term pulls the photo's colours back in at every scale (relu4_2 sees
                # colour); each finer scale starts from the style's palette again (README: the look).
                image = images.match_color_statistics(image, self._palette(width * height))
        else:
            image, done = self._initial(width, height), 0
        # The optimised tensor stays contiguous: L-BFGS flattens its gradient with view().
        image = image.detach().contiguous().requires_grad_(True)
        optimizer = self._optimizer(image)
        guard = _Guard.from_checkpoint(resume, self.device)
        if resume is not None and resume.optimizer_state:
            optimizer.load_state_dict(copy.deepcopy(resume.optimizer_state))
        return _Scale(index, targets, image, optimizer, guard, done, time.monotonic())

    def after_step(self, scale: "_Scale", iteration: int, terms: dict) -> None:
        """Divergence check, history and progress after the optimiser's step `iteration` (0-based)."""
        index, image, guard = scale.index, scale.image, scale.guard
        loss = sum(terms.values())
        if guard.diverged(loss):
            log.info("scale %d iteration %d: cost jumped to %.3g, restarting from the best image",
                     index, iteration + 1, loss)
            guard.restore(image, scale.optimizer)
        self.history.append({"step": len(self.history) + 1, "scale": index, "iteration": iteration + 1,
                             "loss": loss, "losses": terms})
        self.scale_times[index] = (time.monotonic() - scale.started) / (iteration + 1 - scale.done)
        if self.on_progress:
            self.on_progress(self._progress(index, iteration + 1, image, scale.optimizer, guard))

    def end_scale(self, scale: "_Scale") -> torch.Tensor:
        image = scale.image
        return scale.guard.better_of(image.detach(), lambda: self._loss(image, scale.targets, {}).item())

    def _targets(self, width: int, height: int) -> dict:
        """Content activations and blended style Grams at this scale (no gradient needed)."""
        c = self.config
        content = self._tensor(images.resize(self.content, (width, height)))
        style_pixels = c.style_scale ** 2 * width * height
        style_layers = [n for n, w in c.style_layers.items() if w]
        content_layers = [n for n, w in c.content_layers.items() if w]
        with torch.no_grad(), self._autocast():
            content_features = {k: v.float() for k, v in self.net(content, c.layers()).items()}
            grams = self._blended_grams(style_pixels, content, style_layers)
        norms = {name: 1.0 for name in c.layers()}
        if c.layer_normalisation == "balanced":
            for name in content_layers:
                # The same sum or mean as the term itself: a relative error either way.
                norms[name] = _floored(content_cost(torch.zeros_like(content_features[name]),
                                                    content_features[name], c.normalize_content))
            norms.update(_style_norms(content_features, grams))
        views = [self._view_targets(size, style_pixels / 4**k, content, style_layers)
                 for k, size in enumerate(c.view_sizes(width, height), start=1)]
        return {"content": {k: content_features[k] for k in content_layers}, "grams": grams, "norms": norms,
                "views": views}

    def _blended_grams(self, style_pixels: float, content: torch.Tensor, layers: list[str]) -> dict:
        """The style images' Grams at `style_pixels`, blended by their weights (call without grad)."""
        grams: dict[str, torch.Tensor] = {}
        for style, weight in zip(self.styles, self.blend):
            style_tensor = self._style_tensor(style, style_pixels, content)
            # Σ_i w_i‖G − G_i‖² has the gradient of ‖G − Σ_i w_i G_i‖² (Σ w_i = 1): blend the Grams.
            for name, features in self.net(style_tensor, layers).items():
                grams[name] = grams.get(name, 0) + weight * gram(features)
        return grams

    def _view_targets(self, size: tuple[int, int], style_pixels: float, content: torch.Tensor,
                      style_layers: list[str]) -> dict:
        """A smaller view's style Grams (the style at that view's pixels) and their norms (the
        content photo seen at that view), as a person looking at the smaller picture compares them."""
        with torch.no_grad(), self._autocast():
            grams = self._blended_grams(style_pixels, content, style_layers)
            seen = self.net(_view(content, size), style_layers)
        norms = ({name: 1.0 for name in style_layers} if self.config.layer_normalisation != "balanced"
                 else _style_norms({k: v.float() for k, v in seen.items()}, grams))
        return {"size": size, "grams": grams, "norms": norms}

    def _style_tensor(self, style: Image.Image, pixels: float, content: torch.Tensor) -> torch.Tensor:
        tensor = self._tensor(images.resize(style, images.fit_pixels(*style.size, pixels)))
        if self.config.preserve_colors == "statistics":
            tensor = images.match_color_statistics(tensor, content)
        return tensor

    def _loss(self, image: torch.Tensor, targets: dict, terms: dict) -> torch.Tensor:
        """Total cost; `terms` receives each weighted term (they add up to the total)."""
        return self.cost(self.features(image), image, targets, terms)

    def features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The activations the costs read, of a batch (N, 3, H, W) of images."""
        with self._autocast():
            return self.net(image.contiguous(memory_format=torch.channels_last), self.config.layers())

    def cost(self, features: dict[str, torch.Tensor], image: torch.Tensor, targets: dict,
             terms: dict) -> torch.Tensor:
        """The cost of `image` (1, 3, H, W) from its activations `features` (batch of one)."""
        c = self.config
        total = image.new_zeros(())
        for name, weight in c.content_layers.items():
            if weight:
                term = c.content_weight * weight * content_cost(
                    features[name], targets["content"][name], c.normalize_content) / targets["norms"][name]
                terms[f"content:{name}"] = term.item()
                total = total + term
        for name, weight in c.style_layers.items():
            if weight:
                term = (c.style_weight * weight * style_cost(gram(features[name]), targets["grams"][name])
                        / targets["norms"][name])
                terms[f"style:{name}"] = term.item()
                total = total + term
        for view in targets["views"]:
            with self._autocast():
                seen = self.net(_view(image, view["size"]), list(view["grams"]))
            for name, target in view["grams"].items():
                # Each view weighs as much as the result itself: β·λ^[l] per layer and view.
                term = (c.style_weight * c.style_layers[name] * style_cost(gram(seen[name].float()), target)
                        / view["norms"][name])
                terms[f"style:{name} at {view['size'][0]}x{view['size'][1]}"] = term.item()
                total = total + term
        if c.tv_weight:
            term = c.tv_weight * total_variation(image)
            terms["tv"] = term.item()
            total = total + term
        return total

    def _optimizer(self, image: torch.Tensor) -> torch.optim.Optimizer:
        if self.config.optimizer == "adam":
            return torch.optim.Adam([image], lr=self.config.learning_rate)
        # One function evaluation per iteration (no line search), like neural-style; the
        # tolerances are 0 so a run does the iterations it was asked for.
        return torch.optim.LBFGS([image], lr=1.0, max_iter=1, history_size=LBFGS_HISTORY,
                                 tolerance_grad=0.0, tolerance_change=0.0)

    def _initial(self, width: int, height: int) -> torch.Tensor:
        c = self.config
        if c.init == "image":
            return self._tensor(images.resize(images.split_alpha(self.init_image)[0], (width, height)))
        if c.init == "random":
            # Drawn on the CPU from the seed, so the same seed gives the same start on any device.
            generator = torch.Generator().manual_seed(c.seed)
            noise = 0.5 + 0.25 * torch.randn(1, 3, height, width, generator=generator)
            return noise.clamp(0, 1).to(self.device)
        content = self._tensor(images.resize(self.content, (width, height)))
        if self._keeps_palette():
            return images.match_color_statistics(content, self._palette(width * height))
        return content  # "content", or "palette" when the person asked to keep the photo's colours

    def _keeps_palette(self) -> bool:
        """The palette start, unless the person asked to keep the photo's colours (the opposite)."""
        return self.config.init == "palette" and self.config.preserve_colors == "none"

    def _palette(self, pixels: int) -> torch.Tensor:
        """The style images' pixels as one (1, 3, 1, P) row, each style's share of it its blend weight."""
        rows = []
        for style, weight in zip(self.styles, self.blend):
            if weight > 0:
                size = images.fit_pixels(*style.size, max(1.0, weight * min(pixels, PALETTE_PIXELS)))
                rows.append(images.to_tensor(images.resize(style, size)).flatten(2))
        return torch.cat(rows, dim=2).unsqueeze(2).to(self.device)

    def _finish(self, image: torch.Tensor) -> torch.Tensor:
        image = image.detach().float().clamp(0, 1)
        if self.config.preserve_colors == "luminance":
            height, width = image.shape[-2:]
            content = self._tensor(images.resize(self.content, (width, height)))
            image = images.transfer_luminance(content, image)
        return image

    def _tensor(self, img: Image.Image) -> torch.Tensor:
        return images.to_tensor(img).to(self.device).contiguous(memory_format=torch.channels_last)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    # -- reporting -------------------------------------------------------------------
    def _progress(self, index: int, iteration: int, image: torch.Tensor, optimizer, guard: "_Guard") -> Progress:
        snapshot = image.detach().clone()
        entry = self.history[-1]
        elapsed = time.monotonic() - self.started + self.elapsed_before
        return Progress(
            scale=index, num_scales=len(self.sizes), size=self.sizes[index], iteration=iteration,
            iterations=self.plan[index], step=sum(self.plan[:index]) + iteration, total_steps=sum(self.plan),
            loss=entry["loss"], losses=dict(entry["losses"]), elapsed=elapsed, eta=self._eta(index, iteration),
            preview_factory=lambda: images.to_image(self._finish(snapshot)),
            checkpoint_factory=lambda: Checkpoint(
                scale=index, iteration=iteration, image=snapshot.cpu(),
                optimizer_state=_resumable_state(optimizer), history=tuple(self.history),
                **guard.checkpoint_fields(),
                seed=self.config.seed, config=self.config.to_dict(), elapsed=elapsed),
        )

    def _eta(self, index: int, iteration: int) -> float:
        """Seconds left: this scale's pace, and later scales' scaled by their pixel counts."""
        per_iteration = self.scale_times[index]
        pixels = self.sizes[index][0] * self.sizes[index][1]
        left = (self.plan[index] - iteration) * per_iteration
        for later in range(index + 1, len(self.sizes)):
            ratio = self.sizes[later][0] * self.sizes[later][1] / pixels
            left += self.plan[later] * per_iteration * ratio
        return left


@dataclass
class _Scale:
    """One job's state while it optimises one scale."""

    index: int
    targets: dict
    image: torch.Tensor  # the leaf the optimiser moves
    optimizer: torch.optim.Optimizer
    guard: "_Guard"
    done: int  # iterations done before this run (a resume)
    started: float

    def scaled(self, loss: torch.Tensor) -> torch.Tensor:
        """What the optimiser's closure returns, once `loss` at `image` has put its gradient in image.grad:
        the guard sees both, and the optimiser the cost and gradient scaled (see _Guard)."""
        self.guard.saw(loss.item(), self.image)
        self.image.grad.mul_(self.guard.loss_scale)
        return loss * self.guard.loss_scale


class _Guard:
    """Gradient scaling and divergence recovery for one scale.

    * The optimiser sees the cost scaled so that the first gradient's largest
      component is FIRST_STEP. L-BFGS is not scale-free: its first step is
      1/‖g‖₁ and it drops curvature pairs with sᵀy < 1e-10, after which its next
      step is −g itself; with the raw cost (~1e6) that leap diverges, with this
      scale it moves a pixel by at most FIRST_STEP. Reported terms stay in the
      cost's own units.
    * Without a line search L-BFGS can still overshoot (seen with a single shallow
      style layer from noise): when the cost jumps past DIVERGED × the best seen,
      the best image comes back and the optimiser's memory is cleared.
    """

    DIVERGED = 10.0
    FIRST_STEP = 0.2  # the largest pixel change (0..1 units) of a plain gradient step

    def __init__(self, loss_scale: float | None = None, best_loss: float = math.inf,
                 best_image: torch.Tensor | None = None):
        self.loss_scale, self.best_loss, self.best_image = loss_scale, best_loss, best_image

    @classmethod
    def from_checkpoint(cls, resume: Checkpoint | None, device: torch.device) -> "_Guard":
        if resume is None:
            return cls()
        best = resume.best_image.to(device, copy=True) if resume.best_image is not None else None
        return cls(resume.loss_scale, resume.best_loss, best)

    def saw(self, loss: float, image: torch.Tensor) -> None:
        """Called with the cost at `image`, before the optimiser moves it."""
        if self.loss_scale is None:
            largest = image.grad.abs().max().item()
            self.loss_scale = self.FIRST_STEP / largest if largest > 0 else 1.0
        if loss < self.best_loss:
            self.best_loss, self.best_image = loss, image.detach().clone()

    def diverged(self, loss: float) -> bool:
        return not math.isfinite(loss) or loss > self.DIVERGED * self.best_loss

    def restore(self, image: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            image.copy_(self.best_image)
        optimizer.state.clear()  # a fresh L-BFGS memory (or Adam moments) from here

    def better_of(self, last: torch.Tensor, cost_of_last: Callable[[], float]) -> torch.Tensor:
        """The last image unless the last step made it worse than the best seen (one extra
        forward pass; the last step's outcome is otherwise never evaluated)."""
        if self.best_image is None:
            return last
        with torch.no_grad():
            cost = cost_of_last()
        return last if math.isfinite(cost) and cost <= self.best_loss else self.best_image

    def checkpoint_fields(self) -> dict:
        best = self.best_image.detach().cpu().clone() if self.best_image is not None else None
        return {"loss_scale": self.loss_scale, "best_loss": self.best_loss, "best_image": best}


def _resumable_state(optimizer: torch.optim.Optimizer) -> dict:
    """What a checkpoint keeps of the optimiser: Adam's two moments (2x the image), but not
    L-BFGS's curvature pairs (2 x LBFGS_HISTORY x the image: 60-80 MB at 512 px, gigabytes at
    2048, rewritten every minute). A resumed L-BFGS rebuilds its memory in a few iterations, as
    at the start of every scale; the run continues from the same image, not bit for bit."""
    if isinstance(optimizer, torch.optim.LBFGS):
        return {}
    return copy.deepcopy(optimizer.state_dict())


def _style_norms(content_features: dict[str, torch.Tensor], grams: dict[str, torch.Tensor]) -> dict:
    """Balanced normalisation of style terms: each layer's cost of the content photo itself."""
    return {name: _floored(style_cost(gram(content_features[name]), target),
                           style_cost(torch.zeros_like(target), target))
            for name, target in grams.items()}


def _view(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`image` (N, 3, H, W) seen at `size` (w, h) through the Lanczos filter the look measure and
    images.resize() use (PIL's). A softer filter (bilinear) lets the optimiser hide texture from a
    view that a person's (and the measure's) smaller picture shows: a 1024 px result with a bilinear
    view at 512 px was twice as far from the painting at 512 px through Lanczos as through bilinear."""
    width, height = size
    rows = _lanczos_weights(image.shape[-2], height, image.device, image.dtype)
    columns = _lanczos_weights(image.shape[-1], width, image.device, image.dtype)
    return (rows @ image @ columns.T).contiguous(memory_format=torch.channels_last)


@functools.lru_cache(maxsize=16)  # the same few per run, every iteration: built once, on the device
def _lanczos_weights(source: int, target: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(target, source) matrix of PIL's Lanczos-3 resampling along one axis (its support widened
    by the reduction factor, each row normalised to 1)."""
    scale = source / target
    stretch = max(scale, 1.0)
    centres = (torch.arange(target, dtype=torch.float64) + 0.5) * scale
    offsets = ((torch.arange(source, dtype=torch.float64) + 0.5)[None, :] - centres[:, None]) / stretch
    weights = torch.sinc(offsets) * torch.sinc(offsets / 3) * (offsets.abs() < 3)
    weights = weights / weights.sum(dim=1, keepdim=True)
    return weights.to(device=device, dtype=dtype)


def _floored(value: torch.Tensor, reference: torch.Tensor | float = 0.0) -> torch.Tensor:
    """A normaliser that cannot be 0: a content photo that already matches the style at a layer
    (or a black photo) would otherwise divide by zero. The floor is a millionth of `reference`
    (the style's own Gram energy for style layers)."""
    return value.clamp_min(1e-6 * float(reference) + 1e-12)


def _simulated_oom_check(pixels: int) -> None:
    limit = os.environ.get(SIMULATE_OOM_ENV)
    if limit and pixels > int(limit):
        raise torch.OutOfMemoryError(f"simulated: {pixels} pixels exceed {limit} ({SIMULATE_OOM_ENV})")

