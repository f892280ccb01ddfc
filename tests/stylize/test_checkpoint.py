"""Checkpoints: a resumed run ends where the uninterrupted one does; they stay small; files
round-trip; settings must match.

One two-scale Adam run (64 then 128 px, random start, fixed seed) takes checkpoints in the
first scale, at the scale change and in the middle of the second scale: Adam's moments travel
with a checkpoint, so resuming it is exact. L-BFGS's curvature pairs do not (they would make a
checkpoint 100x the image), so a resumed L-BFGS run continues from the same image and rebuilds
its memory: close to the uninterrupted run, not bit for bit.
"""

from __future__ import annotations

import io

import pytest
import torch

import stylize
from stylize import Checkpoint, ConfigError, StyleConfig

CONFIG = StyleConfig(size=128, scales=2, coarse_iterations=4, iterations=4, init="random", seed=3,
                     optimizer="adam", learning_rate=0.05)
LBFGS = CONFIG.replace(optimizer="lbfgs", coarse_iterations=6, iterations=6)
CHECKPOINT_STEPS = (2, 4, 6)  # inside scale 0, its last iteration, inside scale 1


@pytest.fixture(scope="module")
def uninterrupted(content_image, style_image):
    """(result, {step: checkpoint}) of the run nobody stopped."""
    checkpoints = {}

    def on_progress(p):
        if p.step in CHECKPOINT_STEPS:
            checkpoints[p.step] = p.checkpoint()

    return stylize.run(content_image, [style_image], CONFIG, on_progress=on_progress), checkpoints


def fresh(checkpoint: Checkpoint) -> Checkpoint:
    """A copy through bytes, as a worker would get it back from storage (resuming may not share state)."""
    return Checkpoint.load(checkpoint.to_bytes())


def assert_same(a, b, where="checkpoint"):
    """Equal structure and values, tensors compared exactly."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_a_checkpoint_records_where_the_run_stood(uninterrupted):
    result, checkpoints = uninterrupted
    assert [(checkpoints[s].scale, checkpoints[s].iteration) for s in CHECKPOINT_STEPS] == [(0, 2), (0, 4), (1, 2)]
    middle = checkpoints[6]
    assert middle.image.shape == (1, 3, 86, 128) and middle.image.device.type == "cpu"
    assert middle.seed == 3 and middle.config == CONFIG.to_dict()
    assert_same(tuple(middle.history), tuple(result.history[:6]))
    assert middle.loss_scale > 0 and middle.elapsed > 0
    assert middle.optimizer_state["state"]  # Adam's moments travel with it


@pytest.mark.parametrize("step", CHECKPOINT_STEPS)
def test_a_resumed_run_ends_exactly_like_the_uninterrupted_one(uninterrupted, content_image, style_image, step):
    result, checkpoints = uninterrupted
    stored = fresh(checkpoints[step])
    steps = []
    resumed = stylize.run(content_image, [style_image], CONFIG, resume=stored,
                          on_progress=lambda p: steps.append(p.step))
    assert steps == list(range(step + 1, 9))
    assert resumed.image.tobytes() == result.image.tobytes()
    assert [e["step"] for e in resumed.history] == list(range(1, 9))
    for mine, theirs in zip(resumed.history, result.history):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-6)
    assert resumed.elapsed >= checkpoints[step].elapsed


def test_a_resumed_run_takes_the_seed_from_the_checkpoint(uninterrupted, content_image, style_image):
    _, checkpoints = uninterrupted
    resumed = stylize.run(content_image, [style_image], CONFIG.replace(seed=None), resume=fresh(checkpoints[6]))
    assert resumed.config.seed == 3


def test_a_checkpoint_may_resume_under_another_device_setting(uninterrupted, content_image, style_image):
    result, checkpoints = uninterrupted
    resumed = stylize.run(content_image, [style_image], CONFIG.replace(device="cpu", precision="fp32"),
                          resume=fresh(checkpoints[6]))
    assert resumed.image.tobytes() == result.image.tobytes()


def test_resuming_leaves_the_checkpoint_as_it_was(uninterrupted, content_image, style_image):
    result, checkpoints = uninterrupted
    checkpoint = fresh(checkpoints[6])
    before = fresh(checkpoint)
    first = stylize.run(content_image, [style_image], CONFIG, resume=checkpoint)
    assert torch.equal(checkpoint.image, before.image)
    assert_same(dict(checkpoint.optimizer_state), dict(before.optimizer_state))
    second = stylize.run(content_image, [style_image], CONFIG, resume=checkpoint)  # a retry of the same job
    assert first.image.tobytes() == second.image.tobytes() == result.image.tobytes()


@pytest.mark.parametrize("change", [{"iterations": 5}, {"style_weight": 1.0}, {"style_layers": {"relu1_1": 1.0}},
                                    {"preserve_colors": "luminance"}, {"size": 96}])
def test_resuming_under_other_settings_is_a_config_error_naming_them(uninterrupted, content_image, style_image,
                                                                     change):
    _, checkpoints = uninterrupted
    with pytest.raises(ConfigError) as caught:
        stylize.run(content_image, [style_image], CONFIG.replace(**change), resume=checkpoints[6])
    assert caught.value.field == "resume"
    assert next(iter(change)) in str(caught.value)


def test_a_checkpoint_round_trips_through_bytes_a_file_and_a_stream(uninterrupted, tmp_path):
    original = uninterrupted[1][6]
    path = tmp_path / "job.ckpt"
    original.save(path)
    stream = io.BytesIO()
    original.save(stream)
    stream.seek(0)
    for copy in (Checkpoint.load(original.to_bytes()), Checkpoint.load(path), Checkpoint.load(str(path)),
                 Checkpoint.load(stream)):
        for name in ("scale", "iteration", "loss_scale", "seed", "config", "elapsed"):
            assert getattr(copy, name) == getattr(original, name), name
        assert torch.equal(copy.image, original.image)
        assert_same(dict(copy.optimizer_state), dict(original.optimizer_state))
        assert_same(copy.history, tuple(original.history))


def image_bytes(checkpoint: Checkpoint) -> int:
    return checkpoint.image.nelement() * checkpoint.image.element_size()


def test_a_checkpoint_is_at_most_four_times_its_image(uninterrupted, content_image, style_image):
    """The image, the scale's best image and Adam's two moments; the rest (loss history, config) is
    a few kB here and grows by ~200 bytes an iteration."""
    adam = uninterrupted[1][6]
    assert len(adam.to_bytes()) <= 4 * image_bytes(adam) + 64 * 1024
    taken = []
    stylize.run(content_image, [style_image], LBFGS,
                on_progress=lambda p: taken.append(p.checkpoint()) if p.step == 8 else None)
    lbfgs = taken[0]
    assert lbfgs.optimizer_state == {}  # no curvature pairs: 2 x 50 images at history 50
    assert len(lbfgs.to_bytes()) <= 2 * image_bytes(lbfgs) + 64 * 1024


def test_a_resumed_lbfgs_run_continues_from_its_image_and_ends_close_to_the_uninterrupted_one(
        content_image, style_image):
    taken = {}

    def on_progress(p):
        if p.step == 8:
            taken["checkpoint"] = p.checkpoint()

    whole = stylize.run(content_image, [style_image], LBFGS, on_progress=on_progress)
    steps = []
    resumed = stylize.run(content_image, [style_image], LBFGS, resume=fresh(taken["checkpoint"]),
                          on_progress=lambda p: steps.append(p.step))
    assert steps == list(range(9, 13))
    assert_same(tuple(resumed.history[:8]), tuple(whole.history[:8]))
    # From the same image, with a fresh memory: the cost still falls, to near where it fell without a stop.
    assert resumed.history[-1]["loss"] < resumed.history[8]["loss"]
    assert resumed.history[-1]["loss"] == pytest.approx(whole.history[-1]["loss"], rel=0.25)


@pytest.mark.parametrize("data", [b"", b"not a checkpoint", b"PK\x03\x04broken zip"])
def test_unreadable_bytes_are_a_config_error(data):
    with pytest.raises(ConfigError) as caught:
        Checkpoint.load(data)
    assert caught.value.field == "resume" and "not a readable checkpoint" in str(caught.value)


def test_a_torch_file_that_is_not_a_checkpoint_is_a_config_error(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(ConfigError) as caught:
        Checkpoint.load(path)
    assert caught.value.field == "resume"
