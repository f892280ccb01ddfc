"""run_batch(): jobs optimised together end where each ends alone; a job that fails or is cancelled
stops alone; jobs that cannot share a pass are refused; each job's progress is its own.

Real VGG19 weights on the CPU, 64-px images (128 px in the two-scale test), a few iterations.
"""

from __future__ import annotations

import numpy as np
import pytest

import stylize
from stylize import (BatchJob, Cancelled, ConfigError, DeviceMemoryError, Result, StyleConfig, batch_key, compatible,
                     engine, run_batch)

# Why a tolerance and not equal bytes: stacked images go through other convolution kernels (the
# batch dimension changes how oneDNN blocks its sums), so float32 activations differ in their last
# bits (first costs ~3e-8 relative apart). L-BFGS without a line search amplifies such differences
# about tenfold every two iterations, as it does any rounding: the single path run on 1 thread
# instead of 2 drifts the same way (64 px, 20 iterations: losses 5e-3 apart, pixels up to 11
# levels, mean 0.9; a batch of 4 against single runs: 7e-3, 14 levels, mean 2.2). So the tests
# keep to a few iterations, where the drift is still small: measured at most 3 of 255 (the
# two-scale, luminance-preserving job), a mean under 0.1 level, losses within 2e-5; a batch of one
# is byte for byte the single run (test below). 6 levels, a mean of 0.25 and 1e-4 relative on the
# losses leave room for other CPUs without letting through a job that used another job's
# gradient, style or weights (those move the costs by whole percents; see the first test's end).
MAX_LEVELS, MEAN_LEVELS, LOSS_REL = 6, 0.25, 1e-4


def small(**options) -> StyleConfig:
    """A 64-px, single-scale config like test_engine.small(); options override."""
    return StyleConfig(**{"size": 64, "scales": 1, "iterations": 3, **options})


def assert_close(single: Result, batched: Result) -> None:
    a, b = (np.asarray(r.image).astype(np.int16) for r in (single, batched))
    assert a.shape == b.shape
    difference = np.abs(a - b)
    assert difference.max() <= MAX_LEVELS and difference.mean() <= MEAN_LEVELS
    assert batched.config == single.config and batched.sizes == single.sizes
    assert len(batched.history) == len(single.history)
    for mine, theirs in zip(batched.history, single.history):
        assert {k: mine[k] for k in ("step", "scale", "iteration")} == {
            k: theirs[k] for k in ("step", "scale", "iteration")}
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=LOSS_REL)
        # A term that starts at 0 (the content term from the content) may come out at 1e-12: terms are
        # compared to the total, their share of what the optimiser sees.
        assert mine["losses"] == pytest.approx(theirs["losses"], rel=LOSS_REL, abs=LOSS_REL * theirs["loss"])


def test_three_batched_jobs_over_two_scales_end_as_each_alone_with_their_own_progress(
        content_image, style_image, second_style_image):
    base = dict(size=128, scales=2, coarse_iterations=3, iterations=2)
    jobs = [
        (content_image, [style_image], StyleConfig(**base, seed=1, init="random")),
        (content_image.transpose(0), [second_style_image],  # another content, same size
         StyleConfig(**base, seed=2, style_weight=20.0, tv_weight=1.0, style_layers={
             "relu1_1": 0.5, "relu2_1": 0.05, "relu3_1": 0.2, "relu4_1": 0.2, "relu5_1": 0.05})),
        (content_image, [style_image, second_style_image],
         StyleConfig(**base, seed=3, content_weight=3.0, style_blend=(1, 2), preserve_colors="luminance")),
    ]
    assert len({batch_key(config, content.size) for content, _, config in jobs}) == 1
    singles = [stylize.run(content, styles, config) for content, styles, config in jobs]
    reports: list[list] = [[] for _ in jobs]
    batched = run_batch([BatchJob(content, styles, config, on_progress=reports[i].append)
                         for i, (content, styles, config) in enumerate(jobs)])

    for single, result in zip(singles, batched):
        assert isinstance(result, Result)
        assert_close(single, result)
    for result, own in zip(batched, reports):
        assert [p.step for p in own] == [1, 2, 3, 4, 5]
        assert [(p.scale, p.iteration, p.iterations) for p in own] == [
            (0, 1, 3), (0, 2, 3), (0, 3, 3), (1, 1, 2), (1, 2, 2)]
        assert all(p.total_steps == 5 and p.size == result.sizes[p.scale] for p in own)
        assert [p.loss for p in own] == [entry["loss"] for entry in result.history]  # its own costs
    # The jobs really differ: a mix-up between them would be far outside the tolerance.
    losses = [r.history[-1]["loss"] for r in batched]
    assert min(abs(x - y) / max(x, y) for i, x in enumerate(losses) for y in losses[i + 1:]) > 100 * LOSS_REL


def test_a_batch_of_one_is_the_single_run_byte_for_byte_and_equal_jobs_stay_equal(content_image, style_image):
    config = small(seed=7, tv_weight=1.0)
    single = stylize.run(content_image, [style_image], config)
    alone, = run_batch([BatchJob(content_image, [style_image], config)])
    assert alone.image.tobytes() == single.image.tobytes() and alone.history == single.history
    # The same job three times: each slice sees only its own image, so the three agree exactly.
    three = run_batch([BatchJob(content_image, [style_image], config)] * 3)
    assert all(r.image.tobytes() == three[0].image.tobytes() and r.history == three[0].history for r in three)
    assert_close(single, three[0])


def test_batched_adam_jobs_end_as_each_alone(content_image, style_image, second_style_image):
    configs = [small(optimizer="adam", learning_rate=0.05, seed=4, init="random"),
               small(optimizer="adam", learning_rate=0.02, seed=5, style_weight=2.0)]
    styles = [[style_image], [second_style_image]]
    singles = [stylize.run(content_image, s, c) for s, c in zip(styles, configs)]
    batched = run_batch([BatchJob(content_image, s, c) for s, c in zip(styles, configs)])
    for single, result in zip(singles, batched):
        assert_close(single, result)


def test_a_job_cancelled_from_its_callback_stops_alone(content_image, style_image, second_style_image):
    steps: list[list[int]] = [[], [], []]

    def counting(i, stop_at=None):
        def on_progress(p):
            steps[i].append(p.step)
            if p.step == stop_at:
                raise Cancelled("stop")
        return on_progress

    configs = [small(iterations=4, seed=i) for i in range(3)]
    outcomes = run_batch([BatchJob(content_image, [style_image], configs[0], counting(0)),
                          BatchJob(content_image, [second_style_image], configs[1], counting(1, stop_at=2)),
                          BatchJob(content_image, [style_image], configs[2], counting(2))])
    assert isinstance(outcomes[1], Cancelled) and steps[1] == [1, 2]
    for i in (0, 2):
        assert isinstance(outcomes[i], Result) and len(outcomes[i].history) == 4 and steps[i] == [1, 2, 3, 4]
    # The others went on as if alone.
    assert_close(stylize.run(content_image, [style_image], configs[2]), outcomes[2])


def test_a_job_with_bad_inputs_fails_alone(content_image, style_image):
    outcomes = run_batch([
        BatchJob(content_image, [], small(seed=1)),  # no style image
        BatchJob(content_image, [style_image], small(seed=2, iterations=2)),
        BatchJob(content_image, [style_image], small(style_blend=(1, 2))),  # two weights, one style
        BatchJob(content_image, [style_image], small(init="image")),  # no initial image
    ])
    assert [type(o) for o in outcomes] == [ConfigError, Result, ConfigError, ConfigError]
    assert [o.field for o in outcomes if isinstance(o, ConfigError)] == ["styles", "style_blend", "init"]
    assert len(outcomes[1].history) == 2


@pytest.mark.parametrize("other", [
    dict(size=96), dict(iterations=4), dict(scales=2, size=128), dict(style_layers={"relu1_1": 1.0}),
    dict(pooling="avg"), dict(precision="bf16"), dict(optimizer="adam"),
])
def test_jobs_that_cannot_share_a_pass_are_refused(content_image, style_image, other):
    config = small()
    assert not compatible(config, content_image.size, small(**other), content_image.size)
    called = []
    with pytest.raises(ConfigError) as refused:
        run_batch([BatchJob(content_image, [style_image], config, on_progress=called.append),
                   BatchJob(content_image, [style_image], small(**other), on_progress=called.append)])
    assert refused.value.field == "batch" and "cannot run in one batch" in str(refused.value)
    assert called == []  # refused before any iteration


def test_another_aspect_ratio_is_refused_and_the_per_job_options_are_not(content_image):
    config = small()
    assert not compatible(config, content_image.size, config, (content_image.height, content_image.width))
    for other in [dict(content_weight=3.0), dict(style_weight=1.0), dict(tv_weight=2.0), dict(seed=9),
                  dict(init="random"), dict(style_layers={n: 0.1 for n in config.style_layers}),
                  dict(style_scale=0.5), dict(preserve_colors="statistics"), dict(precision="fp32"),
                  dict(layer_normalisation="seed")]:
        assert compatible(config, content_image.size, small(**other), content_image.size), other


def test_an_empty_batch_returns_nothing():
    assert run_batch([]) == []


def test_a_checkpoint_taken_in_a_batch_resumes_alone(content_image, style_image, second_style_image):
    taken = {}

    def on_progress(p):
        if p.step == 2:
            taken["checkpoint"] = p.checkpoint()

    # Adam: its moments travel with a checkpoint (L-BFGS's memory does not), so the resumed run is
    # the batched one's continuation up to the batch's rounding.
    adam = {"optimizer": "adam", "learning_rate": 0.05}
    config = small(iterations=4, seed=11, **adam)
    batched = run_batch([BatchJob(content_image, [style_image], config, on_progress),
                         BatchJob(content_image, [second_style_image], small(iterations=4, seed=12, **adam))])
    checkpoint = taken["checkpoint"]
    assert (checkpoint.scale, checkpoint.iteration, checkpoint.seed) == (0, 2, 11)
    resumed = stylize.run(content_image, [style_image], config, resume=checkpoint)
    assert resumed.history[:2] == batched[0].history[:2]
    assert_close(resumed, batched[0])


def test_running_out_of_memory_stops_the_batch_with_a_size_that_fits(content_image, style_image, monkeypatch):
    # One 64x43 image fits under the simulated limit, two stacked do not.
    monkeypatch.setenv(engine.SIMULATE_OOM_ENV, str(64 * 43 + 1))
    outcomes = run_batch([BatchJob(content_image, [style_image], small(seed=s)) for s in (1, 2)])
    assert all(isinstance(o, DeviceMemoryError) and "64x43" in str(o) for o in outcomes)
