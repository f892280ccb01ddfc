"""run_batch(): several jobs optimised together, one VGG19 forward/backward pass per iteration.

Each job keeps everything of its own, as run() builds it: content, styles, blend,
weights, seed, start, its leaf image, its optimiser (L-BFGS memory or Adam
moments), its _Guard, its history and its progress callback. Only the network
pass is shared: per iteration the jobs' images are stacked, the trunk runs once,
each job's cost is computed from its slice of the activations by the same code
as run()'s (_Optimisation.cost), and one backward pass of the sum gives every
image the gradient of its own cost alone (the samples of a batch do not mix in
VGG19: convolutions, ReLU and pooling act per sample, and the trunk is frozen).
Each optimiser then steps with a closure that returns its job's cost, already
computed: with max_iter=1 and no line search torch's L-BFGS calls its closure
exactly once per step (Adam too), so a job sees the same sequence of costs and
gradients as alone, up to the last bits batched convolutions may round
differently.

The jobs must agree on what the shared pass computes and on when it runs:
batch_key() says which; callers group jobs by it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from PIL import Image

from . import images
from .config import StyleConfig
from .devices import out_of_memory
from .engine import _Optimisation, _Scale, _simulated_oom_check, prepare
from .errors import ConfigError
from .result import Progress, Result


@dataclass(frozen=True)
class BatchJob:
    """One job of a batch: the arguments of stylize.run() but `resume`. A job with a checkpoint
    to resume runs alone (stylize.run): its scale and iteration would be out of step with the others."""

    content: Image.Image
    styles: Sequence[Image.Image]
    config: StyleConfig | None = None
    on_progress: Callable[[Progress], None] | None = None
    init_image: Image.Image | None = None


def batch_key(config: StyleConfig, content_size: tuple[int, int]) -> tuple:
    """What jobs batched together must share (hashable, to group jobs by):

    * the size of every scale (the images are stacked) and the iterations of each (they step together);
    * the layers read, the pooling and the weights: one trunk computes every job's activations;
    * the device, bf16 or not (one autocast around the pass), and the optimiser kind.

    Everything else may differ: α, β, λ, TV, blend, style scale, colours, start, seed, Adam's step.
    """
    sizes = tuple(images.fit_long_side(*content_size, side) for side in config.scale_sizes())
    plan = tuple(config.iterations_at(i, len(sizes)) for i in range(len(sizes)))
    return (sizes, plan, tuple(sorted(config.layers())), config.pooling, config.weights, config.device,
            config.precision == "bf16", config.optimizer)


def compatible(a: StyleConfig, a_size: tuple[int, int], b: StyleConfig, b_size: tuple[int, int]) -> bool:
    """Whether a job (config, content size) and another may run in one batch; see batch_key()."""
    return batch_key(a, a_size) == batch_key(b, b_size)


def run_batch(jobs: Sequence[BatchJob]) -> list[Result | Exception]:
    """Run `jobs` together; one entry per job, in order: its Result, or the exception that stopped it.

    A job whose inputs are refused (ConfigError, ImageError, ...) fails alone, and so does a job
    whose callback raises stylize.Cancelled (its entry is that exception); the others go on.
    Jobs that batch_key() says may not run together are refused as a whole with a ConfigError,
    before any iteration. An out-of-memory error stops every job still running (they share the
    pass): its DeviceMemoryError names one job's sizes, so run fewer jobs per batch.
    KeyboardInterrupt and other BaseExceptions propagate.
    """
    outcomes: list[Result | Exception | None] = [None] * len(jobs)
    live: list[_Member] = []
    for position, job in enumerate(jobs):
        try:
            optimisation, alpha = prepare(job.content, job.styles, job.config, job.on_progress, job.init_image)
        except Exception as exc:
            outcomes[position] = exc
            continue
        live.append(_Member(position, optimisation, alpha, job.content.size))
    keys = {batch_key(m.job.config, m.content_size) for m in live}
    if len(keys) > 1:
        raise ConfigError("batch", "these jobs cannot run in one batch: they differ in output sizes, "
                                   "iterations, layers, pooling, weights, device, precision or optimiser "
                                   "(group them with stylize.batch.batch_key)")
    if live:
        _Batch(live).run()
    for member in live:
        outcomes[member.position] = member.outcome
    return outcomes  # type: ignore[return-value] (every entry is set by now)


@dataclass
class _Member:
    position: int  # in run_batch's list
    job: _Optimisation
    alpha: Image.Image | None
    content_size: tuple[int, int]
    image: torch.Tensor | None = None  # the last finished scale's image
    scale: _Scale | None = None
    outcome: Result | Exception | None = None

    def fail(self, exc: Exception) -> None:
        self.outcome, self.scale = exc, None


class _Batch:
    def __init__(self, members: list[_Member]):
        self.members = members
        first = members[0].job
        self.sizes, self.plan = first.sizes, first.plan
        self.features = first.features  # same trunk, layers and autocast for all (batch_key)

    def live(self) -> list[_Member]:
        return [m for m in self.members if m.outcome is None]

    def run(self) -> None:
        for index in range(len(self.sizes)):
            self._each(lambda m: setattr(m, "scale", m.job.begin_scale(index, m.image, None)))
            now = time.monotonic()
            for member in self.live():  # their pace (ETA) starts with the shared iterations
                member.scale.started = now
            try:
                _simulated_oom_check(self.sizes[index][0] * self.sizes[index][1] * len(self.live()))
                for iteration in range(self.plan[index]):
                    self._iterate(iteration)
            except Exception as exc:  # in the shared pass: no one job to blame
                oom = out_of_memory(exc, self.members[0].job.device, self.sizes, index)
                for member in self.live():
                    member.fail(oom or exc)
                return
            self._each(lambda m: setattr(m, "image", m.job.end_scale(m.scale)))
        self._each(lambda m: setattr(m, "outcome", m.job.result(m.job._finish(m.image), m.alpha)))

    def _iterate(self, iteration: int) -> None:
        members = self.live()
        if not members:
            return
        for member in members:
            member.scale.optimizer.zero_grad(set_to_none=True)
        # One pass over the stacked images; each job's slice feeds its own cost.
        features = self.features(torch.cat([m.scale.image for m in members]))
        # split(): its backward puts the slices' gradients together with one cat, where indexing
        # would give each slice a batch-sized gradient of zeros to add up.
        slices = {name: value.split(1) for name, value in features.items()}
        costs = []
        for i, member in enumerate(members):
            own, terms, scale = {name: parts[i] for name, parts in slices.items()}, {}, member.scale
            try:
                costs.append((member, member.job.cost(own, scale.image, scale.targets, terms), terms))
            except Exception as exc:
                member.fail(exc)
        if not costs:
            return
        # d(Σ costs)/d(image_i) = d(cost_i)/d(image_i): no job's cost depends on another's image.
        torch.stack([cost for _, cost, _ in costs]).sum().backward()
        for member, cost, own_terms in costs:
            try:
                scale = member.scale
                scale.optimizer.step(lambda: scale.scaled(cost))  # L-BFGS/Adam call it exactly once
                member.job.after_step(scale, iteration, own_terms)  # the callback may raise Cancelled
            except Exception as exc:
                member.fail(exc)

    def _each(self, action: Callable[[_Member], None]) -> None:
        """`action` on every live job; one that raises fails alone."""
        for member in self.live():
            try:
                action(member)
            except Exception as exc:
                member.fail(exc)

