"""run(): the costs fall, λ = 0 removes a layer, cancel, progress, colours, blends, alpha, seeds, memory.

Real VGG19 weights on the CPU; the content photo is 64x43 px and runs take a few
iterations, so each test costs well under a second.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import stylize
from stylize import Cancelled, ConfigError, DeviceMemoryError, StyleConfig, engine, images, vgg

STYLE_TERMS = ["style:relu1_1", "style:relu2_1", "style:relu3_1", "style:relu4_1", "style:relu5_1"]


def small(**options) -> StyleConfig:
    """A 64-px, single-scale config; options override."""
    return StyleConfig(**{"size": 64, "scales": 1, "iterations": 3, **options})


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(np.int16)


def job(config: StyleConfig, content: Image.Image, styles: list[Image.Image], blend=None) -> engine._Optimisation:
    blend = blend or [1.0 / len(styles)] * len(styles)
    return engine._Optimisation(config, torch.device("cpu"), content, styles, blend, None, None)


def noise(width: int, height: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))


def chroma(img: Image.Image) -> torch.Tensor:
    return images.rgb_to_yuv(images.to_tensor(img))[:, 1:]  # (1, 2, H, W): U, V


# ---------------------------------------------------------------- the optimisation works

def test_the_content_cost_falls_from_noise(content_image, style_image):
    result = stylize.run(content_image, [style_image], small(init="random", seed=1, iterations=8, style_layers={}))
    first, last = result.history[0]["losses"], result.history[-1]["losses"]
    assert set(first) == {"content:relu4_2"}
    assert last["content:relu4_2"] < 0.7 * first["content:relu4_2"]


def test_every_style_cost_falls_from_noise(content_image, style_image):
    result = stylize.run(content_image, [style_image], small(init="random", seed=1, iterations=8, content_layers={}))
    first, last = result.history[0]["losses"], result.history[-1]["losses"]
    assert sorted(first) == STYLE_TERMS
    for term in STYLE_TERMS:
        assert last[term] < 0.95 * first[term], term
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]


def test_the_papers_mix_lowers_the_total_cost_from_noise(content_image, style_image):
    result = stylize.run(content_image, [style_image], small(init="random", seed=2, iterations=6, tv_weight=1.0))
    assert sorted(result.history[0]["losses"]) == sorted(["content:relu4_2", "tv", *STYLE_TERMS])
    assert result.history[-1]["loss"] < 0.7 * result.history[0]["loss"]
    for entry in result.history:  # the reported terms add up to the reported loss
        assert sum(entry["losses"].values()) == pytest.approx(entry["loss"], rel=1e-9)


def test_adam_lowers_the_cost_too(content_image, style_image):
    result = stylize.run(content_image, [style_image],
                         small(init="random", seed=1, iterations=6, optimizer="adam", learning_rate=0.05))
    assert result.history[-1]["loss"] < 0.8 * result.history[0]["loss"]


def test_the_result_has_the_contents_aspect_at_the_asked_size(content_image, style_image):
    result = stylize.run(content_image, [style_image], small(iterations=1))
    assert result.image.size == (64, 43) and result.image.mode == "RGB"
    assert result.sizes == ((64, 43),) and len(result.history) == 1
    assert result.device == "cpu" and result.weights_sha256 == vgg.WEIGHTS_SHA256


def test_the_cost_is_alpha_content_plus_beta_weighted_style_plus_tv_by_hand(content_image, style_image):
    config = small(content_weight=2.0, style_weight=0.5, tv_weight=3.0, normalize_content=False,
                   style_layers={"relu1_1": 0.3, "relu3_1": 0.7}, layer_normalisation="seed")
    optimisation = job(config, content_image, [style_image])
    width, height = optimisation.sizes[0]
    image, terms = noise(width, height), {}
    total = optimisation._loss(image, optimisation._targets(width, height), terms)

    net = vgg.features_for(["relu4_2"])
    content = images.to_tensor(images.resize(content_image, (width, height)))
    style = images.to_tensor(images.resize(style_image, images.fit_pixels(*style_image.size, width * height)))
    mine = net(image, ["relu1_1", "relu3_1", "relu4_2"])
    expected = {"content:relu4_2": 2.0 * 0.5 * (mine["relu4_2"] - net(content, ["relu4_2"])["relu4_2"]).pow(2).sum()}
    theirs = net(style, ["relu1_1", "relu3_1"])
    for layer, weight in [("relu1_1", 0.3), ("relu3_1", 0.7)]:
        a, s = mine[layer][0], theirs[layer][0]  # (C, H, W)
        g_a = a.flatten(1) @ a.flatten(1).T / (a.shape[1] * a.shape[2])
        g_s = s.flatten(1) @ s.flatten(1).T / (s.shape[1] * s.shape[2])
        expected[f"style:{layer}"] = 0.5 * weight * (g_a - g_s).pow(2).sum() / (2 * a.shape[0]) ** 2
    dy, dx = image.diff(dim=2), image.diff(dim=3)
    expected["tv"] = 3.0 * (dy.pow(2).mean() + dx.pow(2).mean())

    assert sorted(terms) == sorted(expected)
    for key, value in expected.items():
        assert terms[key] == pytest.approx(value.item(), rel=1e-4), key
    assert total.item() == pytest.approx(sum(v.item() for v in expected.values()), rel=1e-4)


# ---------------------------------------------------------------- layer normalisation

def weighted_terms(content_image, style_image, image=None, **options) -> dict[str, float]:
    """Each weighted cost term of `small(**options)` at `image` (the content when None)."""
    optimisation = job(small(**options), content_image, [style_image])
    width, height = optimisation.sizes[0]
    if image is None:
        image = images.to_tensor(images.resize(content_image, (width, height)))
    terms = {}
    optimisation._loss(image, optimisation._targets(width, height), terms)
    return terms


def test_balanced_layers_start_equal_from_the_content_whatever_their_magnitude(content_image, style_image):
    terms = weighted_terms(content_image, style_image, style_weight=3.0)
    for term in STYLE_TERMS:
        assert terms[term] == pytest.approx(3.0 * 0.2, rel=1e-4), term
    assert terms["content:relu4_2"] == pytest.approx(0.0, abs=1e-9)
    seed = weighted_terms(content_image, style_image, style_weight=3.0, layer_normalisation="seed")
    assert max(seed[t] for t in STYLE_TERMS) > 100 * min(seed[t] for t in STYLE_TERMS)  # why it exists


def test_doubling_one_lambda_doubles_that_term_and_nothing_else(content_image, style_image):
    start = noise(64, 43, seed=5)
    base = weighted_terms(content_image, style_image, start, style_weight=2.0)
    doubled = weighted_terms(content_image, style_image, start, style_weight=2.0,
                             style_layers={**StyleConfig().style_layers, "relu2_1": 0.4})
    for term in base:
        factor = 2.0 if term == "style:relu2_1" else 1.0
        assert doubled[term] == pytest.approx(factor * base[term], rel=1e-5), term


@pytest.fixture
def views_from_64_px(monkeypatch):
    """The view mechanics on tiny images: views from 64 px instead of MIN_VIEW_SIDE (512)."""
    monkeypatch.setattr(stylize.config, "MIN_VIEW_SIDE", 64)


def test_each_smaller_view_of_the_result_starts_at_its_share_from_the_content(
        content_image, style_image, views_from_64_px):
    """style_views=3 at 256 px: the style cost also sees the result at 128 and 64 px, each view's
    layers normalised by the content photo seen at that view, so from the content every view's
    term starts at β·λ like the result's own."""
    terms = weighted_terms(content_image, style_image, size=256, style_views=3, style_weight=3.0)
    views = {name.split(" at ")[1] for name in terms if " at " in name}
    assert views == {"128x86", "64x43"}
    for name in terms:
        if name.startswith("style:"):
            assert terms[name] == pytest.approx(3.0 * 0.2, rel=1e-4), name


def test_views_smaller_than_the_least_side_are_not_looked_at_and_one_view_is_the_result_alone(
        content_image, style_image, views_from_64_px):
    assert not [name for name in weighted_terms(content_image, style_image, size=64, style_views=3) if " at " in name]
    one = weighted_terms(content_image, style_image, noise(128, 86, seed=2), size=128)
    two = weighted_terms(content_image, style_image, noise(128, 86, seed=2), size=128, style_views=2)
    assert sorted(one) == sorted(STYLE_TERMS + ["content:relu4_2"])
    assert {name: two[name] for name in one} == pytest.approx(one, rel=1e-6)
    assert sorted(set(two) - set(one)) == sorted(f"{name} at 64x43" for name in STYLE_TERMS)


def test_views_start_at_512_px_so_only_results_of_1024_px_and_more_have_them(content_image, style_image):
    """Smaller views let the deep layers copy the painting's objects whole (README: The look)."""
    three_views = small(style_views=3)
    assert three_views.view_sizes(1024, 683) == [(512, 342)]
    assert three_views.view_sizes(2048, 1366) == [(1024, 683), (512, 342)]
    assert three_views.view_sizes(1023, 682) == three_views.view_sizes(512, 342) == []


def test_a_view_is_the_result_shrunk_as_the_look_measure_shrinks_it(content_image):
    """PIL's Lanczos (the measure's and images.resize()'s filter), differentiable; a softer filter
    let the optimiser hide texture that the measure's smaller picture shows."""
    photo = content_image.resize((96, 64), Image.Resampling.BICUBIC)
    for size in ((48, 32), (37, 25)):
        seen = images.to_image(engine._view(images.to_tensor(photo), size).clamp(0, 1))
        expected = photo.resize(size, Image.Resampling.LANCZOS)
        difference = np.abs(pixels(seen) - pixels(expected))
        assert seen.size == size and difference.mean() < 0.5 and difference.max() <= 8, size


def test_a_balanced_content_term_is_the_relative_squared_error_of_its_layer(content_image, style_image):
    optimisation = job(small(content_weight=2.0), content_image, [style_image])
    width, height = optimisation.sizes[0]
    black = torch.zeros(1, 3, height, width)
    terms = {}
    optimisation._loss(black, optimisation._targets(width, height), terms)
    net = vgg.features_for(["relu4_2"])
    mine = net(black, ["relu4_2"])["relu4_2"]
    content = net(images.to_tensor(images.resize(content_image, (width, height))), ["relu4_2"])["relu4_2"]
    expected = 2.0 * (mine - content).pow(2).sum() / content.pow(2).sum()
    assert terms["content:relu4_2"] == pytest.approx(expected.item(), rel=1e-4)


def test_seed_normalisation_is_the_formula_of_the_design_document(content_image):
    """J = α·½‖a(C) − a(G)‖² + β·Σ λ/(2 n_H n_W n_C)²·‖G(S) − G(G)‖² with G = Σ_ij a a (sums, not means):
    a style of the content's own size, so no per-pixel rescaling can hide in it."""
    style_same_size = content_image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    layers = {"relu1_1": 5.0, "relu4_1": 0.02}
    config = small(content_weight=1.5, style_weight=2.0, normalize_content=False, style_layers=layers,
                   layer_normalisation="seed")
    optimisation = job(config, content_image, [style_same_size])
    width, height = optimisation.sizes[0]
    image, terms = noise(width, height, seed=7), {}
    optimisation._loss(image, optimisation._targets(width, height), terms)

    net = vgg.features_for(["relu1_1", "relu4_1", "relu4_2"])
    g, c, s = (net(x, ["relu1_1", "relu4_1", "relu4_2"]) for x in (
        image, images.to_tensor(content_image), images.to_tensor(style_same_size)))
    assert terms["content:relu4_2"] == pytest.approx(1.5 * 0.5 * (c["relu4_2"] - g["relu4_2"]).pow(2).sum().item(),
                                                      rel=1e-4)
    for layer, lam in layers.items():
        _, n_c, n_h, n_w = g[layer].shape
        gram_g, gram_s = (x[layer][0].flatten(1) @ x[layer][0].flatten(1).T for x in (g, s))
        expected = 2.0 * lam * (gram_s - gram_g).pow(2).sum() / (2 * n_h * n_w * n_c) ** 2
        assert terms[f"style:{layer}"] == pytest.approx(expected.item(), rel=1e-4), layer


def test_a_content_photo_that_is_the_style_does_not_divide_by_zero(content_image):
    terms = weighted_terms(content_image, content_image, noise(64, 43, seed=1))
    assert all(np.isfinite(v) for v in terms.values())


# ---------------------------------------------------------------- layer weights

def test_a_layer_weighted_zero_has_no_term_in_the_history(content_image, style_image):
    config = small(iterations=2, style_layers={"relu1_1": 0.0, "relu5_1": 1.0})
    result = stylize.run(content_image, [style_image], config)
    assert set(result.history[0]["losses"]) == {"content:relu4_2", "style:relu5_1"}


def test_a_layer_weighted_zero_adds_nothing_to_the_gradient(content_image, style_image):
    def gradient(style_layers):
        optimisation = job(small(style_layers=style_layers), content_image, [style_image])
        width, height = optimisation.sizes[0]
        image = noise(width, height, seed=3).requires_grad_(True)
        optimisation._loss(image, optimisation._targets(width, height), {}).backward()
        return image.grad

    zero, absent = gradient({"relu1_1": 0.0, "relu5_1": 1.0}), gradient({"relu5_1": 1.0})
    assert torch.equal(zero, absent)
    assert not torch.allclose(zero, gradient({"relu1_1": 1.0, "relu5_1": 1.0}))


def test_a_content_layer_weighted_zero_deeper_than_the_others_is_ignored(content_image, style_image):
    config = small(iterations=1, content_layers={"relu4_2": 1.0, "relu5_4": 0.0})
    result = stylize.run(content_image, [style_image], config)
    assert set(result.history[0]["losses"]) == {"content:relu4_2", *STYLE_TERMS}


# ---------------------------------------------------------------- cancel and progress

def test_a_callback_raising_cancelled_stops_the_run(content_image, style_image):
    steps = []

    def on_progress(progress):
        steps.append(progress.step)
        if progress.step == 2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        stylize.run(content_image, [style_image], small(iterations=6), on_progress=on_progress)
    assert steps == [1, 2]


def test_progress_counts_steps_over_scales_with_a_preview_of_each_scales_size(content_image, style_image):
    reports = []

    def on_progress(p):
        reports.append((p, p.preview()))

    config = StyleConfig(size=128, scales=2, coarse_iterations=2, iterations=3)
    result = stylize.run(content_image, [style_image], config, on_progress=on_progress)
    assert result.sizes == ((64, 43), (128, 86))
    assert [p.step for p, _ in reports] == [1, 2, 3, 4, 5]
    assert [(p.scale, p.iteration, p.iterations) for p, _ in reports] == [
        (0, 1, 2), (0, 2, 2), (1, 1, 3), (1, 2, 3), (1, 3, 3)]
    for p, preview in reports:
        assert p.total_steps == 5 and p.num_scales == 2 and p.fraction == p.step / 5
        assert p.size == result.sizes[p.scale]
        assert isinstance(preview, Image.Image) and preview.size == p.size and preview.mode == "RGB"
        assert p.eta >= 0 and p.elapsed > 0
        assert sum(p.losses.values()) == pytest.approx(p.loss, rel=1e-9)
    assert reports[-1][0].eta == 0
    elapsed = [p.elapsed for p, _ in reports]
    assert elapsed == sorted(elapsed) and result.elapsed >= elapsed[-1]
    assert [entry["step"] for entry in result.history] == [1, 2, 3, 4, 5]
    assert reports[-1][1].tobytes() == result.image.tobytes()  # the last preview is the result


# ---------------------------------------------------------------- colours

def test_luminance_preservation_keeps_the_contents_chroma(content_image, style_image):
    content_uv = chroma(images.resize(content_image, (64, 43)))
    kept = stylize.run(content_image, [style_image], small(init="random", seed=1, preserve_colors="luminance"))
    plain = stylize.run(content_image, [style_image], small(init="random", seed=1, preserve_colors="none"))
    assert (chroma(kept.image) - content_uv).abs().mean() < 0.005
    assert (chroma(plain.image) - content_uv).abs().mean() > 0.03
    # The light and dark still come from the optimisation, not from the content.
    luma = lambda img: images.rgb_to_yuv(images.to_tensor(img))[:, 0]  # noqa: E731
    assert (luma(kept.image) - luma(plain.image)).abs().mean() < 0.02


def test_colour_statistics_recolour_the_style_targets(content_image, style_image):
    def grams(mode):
        optimisation = job(small(preserve_colors=mode), content_image, [style_image])
        return optimisation._targets(*optimisation.sizes[0])["grams"]

    assert not torch.allclose(grams("statistics")["relu1_1"], grams("none")["relu1_1"])
    result = stylize.run(content_image, [style_image], small(iterations=2, preserve_colors="statistics"))
    assert result.image.size == (64, 43) and result.config.preserve_colors == "statistics"


# ---------------------------------------------------------------- several styles

def test_several_style_images_blend_their_grams_by_weight(content_image, style_image, second_style_image):
    blended = job(small(style_blend=(1, 3)), content_image, [style_image, second_style_image], [0.25, 0.75])
    first, second = job(small(), content_image, [style_image]), job(small(), content_image, [second_style_image])
    size = blended.sizes[0]
    g, g1, g2 = (j._targets(*size)["grams"] for j in (blended, first, second))
    for layer in g:
        assert torch.allclose(g[layer], 0.25 * g1[layer] + 0.75 * g2[layer], rtol=1e-5, atol=1e-6)


def test_a_run_with_two_weighted_style_images_works(content_image, style_image, second_style_image):
    result = stylize.run(content_image, [style_image, second_style_image], small(iterations=2, style_blend=(1, 3)))
    assert result.image.size == (64, 43) and result.config.style_blend == (1.0, 3.0)


def test_a_blend_count_unlike_the_style_images_is_a_config_error(content_image, style_image):
    with pytest.raises(ConfigError) as caught:
        stylize.run(content_image, [style_image], small(style_blend=(1, 2)))
    assert caught.value.field == "style_blend"


def test_no_style_image_is_a_config_error(content_image):
    with pytest.raises(ConfigError) as caught:
        stylize.run(content_image, [], small())
    assert caught.value.field == "styles"


# ---------------------------------------------------------------- starting image

def test_init_image_without_an_image_is_a_config_error(content_image, style_image):
    with pytest.raises(ConfigError) as caught:
        stylize.run(content_image, [style_image], small(init="image"))
    assert caught.value.field == "init"


def test_with_no_iterations_the_result_is_the_given_start_image(content_image, style_image):
    start = style_image.resize((32, 32))
    result = stylize.run(content_image, [style_image], small(init="image", iterations=0), init_image=start)
    assert result.image.tobytes() == images.resize(start, (64, 43)).tobytes()


def test_with_no_iterations_the_content_start_is_the_content(content_image, style_image):
    result = stylize.run(content_image, [style_image], small(iterations=0, init="content"))
    assert result.image.tobytes() == images.resize(content_image, (64, 43)).tobytes()


def test_the_palette_start_is_the_content_in_the_styles_mean_and_covariance(content_image, style_image):
    result = stylize.run(content_image, [style_image], small(iterations=0, init="palette"))
    start, style = images.to_tensor(result.image).flatten(2)[0], images.to_tensor(style_image).flatten(2)[0]
    content = images.to_tensor(images.resize(content_image, result.image.size)).flatten(2)[0]
    assert torch.allclose(start.mean(1), style.mean(1), atol=0.03)  # clamping and 8 bits move it a little
    # Clamping to 0..1 trims the stretched tails, so the covariance only comes close.
    assert (start.cov() - style.cov()).norm() < 0.5 * (content.cov() - style.cov()).norm()
    assert not torch.allclose(start.mean(1), content.mean(1), atol=0.03)
    # Still the photo: every pixel moved by the same affine map of its colour.
    assert np.corrcoef(start[0], content[0])[0, 1] > 0.8


def test_each_finer_scale_starts_from_the_styles_palette_again(content_image, style_image):
    def start_of_the_fine_scale(init):
        config = StyleConfig(size=128, scales=2, coarse_iterations=4, iterations=0, seed=1, init=init)
        return images.to_tensor(stylize.run(content_image, [style_image], config).image).flatten(2)[0]

    style = images.to_tensor(style_image).flatten(2)[0]
    gap = {init: (start_of_the_fine_scale(init).mean(1) - style.mean(1)).abs().max() for init in ("palette", "content")}
    assert gap["palette"] < 0.03 < gap["content"]


def test_the_palette_start_keeps_the_photos_colours_when_they_are_to_be_preserved(content_image, style_image):
    for preserve in ("statistics", "luminance"):
        palette = stylize.run(content_image, [style_image], small(iterations=0, preserve_colors=preserve))
        content = stylize.run(content_image, [style_image],
                              small(iterations=0, preserve_colors=preserve, init="content"))
        assert palette.image.tobytes() == content.image.tobytes(), preserve


def test_the_palette_of_two_styles_lies_between_theirs_by_blend_weight(content_image, style_image,
                                                                    second_style_image):
    def start_mean(blend):
        config = small(iterations=0, style_blend=blend)
        return images.to_tensor(stylize.run(content_image, [style_image, second_style_image], config).image).mean()

    dark, light = sorted([start_mean([1, 0]), start_mean([0, 1])])
    assert dark < start_mean([1, 1]) < light


# ---------------------------------------------------------------- alpha and seeds

def test_an_rgba_content_keeps_its_alpha_channel(content_image, style_image):
    alpha = Image.linear_gradient("L").resize(content_image.size)
    rgba = content_image.convert("RGBA")
    rgba.putalpha(alpha)
    result = stylize.run(rgba, [style_image], small(iterations=2))
    assert result.image.mode == "RGBA" and result.image.size == (64, 43)
    assert result.image.getchannel("A").tobytes() == alpha.tobytes()


def test_one_seed_gives_one_result(content_image, style_image):
    config = small(init="random", seed=7)
    a, b = (stylize.run(content_image, [style_image], config) for _ in range(2))
    assert a.image.tobytes() == b.image.tobytes()
    assert [e["loss"] for e in a.history] == [e["loss"] for e in b.history]
    other = stylize.run(content_image, [style_image], small(init="random", seed=8, iterations=0))
    assert other.image.tobytes() != a.image.tobytes()


def test_a_run_without_a_seed_reports_the_one_it_drew(content_image, style_image):
    drawn = stylize.run(content_image, [style_image], small(init="random", iterations=0))
    assert isinstance(drawn.config.seed, int) and 0 <= drawn.config.seed < 2**32
    again = stylize.run(content_image, [style_image], small(init="random", iterations=0, seed=drawn.config.seed))
    assert again.image.tobytes() == drawn.image.tobytes()


# ---------------------------------------------------------------- out of memory

def test_running_out_of_memory_names_the_size_and_one_that_fits(content_image, style_image, monkeypatch):
    monkeypatch.setenv(engine.SIMULATE_OOM_ENV, str(64 * 43 - 1))
    with pytest.raises(DeviceMemoryError) as caught:
        stylize.run(content_image, [style_image], small())
    assert isinstance(caught.value, MemoryError)
    assert isinstance(caught.value.fits, int) and 32 <= caught.value.fits < 64
    assert "64x43" in str(caught.value) and f"{caught.value.fits} px" in str(caught.value)


def test_running_out_of_memory_at_the_fine_scale_suggests_at_least_the_coarse_size(content_image, style_image,
                                                                                    monkeypatch):
    monkeypatch.setenv(engine.SIMULATE_OOM_ENV, str(64 * 43))  # the 64-px scale fits, the 128-px one does not
    steps = []
    with pytest.raises(DeviceMemoryError) as caught:
        stylize.run(content_image, [style_image], StyleConfig(size=128, scales=2, coarse_iterations=1, iterations=2),
                    on_progress=lambda p: steps.append(p.step))
    assert steps == [1]
    assert 64 <= caught.value.fits < 128 and "128x86" in str(caught.value)


# ---------------------------------------------------------------- saving

def test_a_saved_result_carries_what_it_takes_to_reproduce_it(content_image, style_image, tmp_path):
    result = stylize.run(content_image, [style_image], small(iterations=1, seed=11))
    path = tmp_path / "result.png"
    result.save(path)
    meta = stylize.read_metadata(path)
    assert meta["params"] == result.config.to_dict() and meta["params"]["size"] == 64
    assert meta["seed"] == 11 and meta["engine_version"] == stylize.__version__
    assert meta["weights_sha256"] == vgg.WEIGHTS_SHA256 and meta["device"] == "cpu"
    assert StyleConfig.from_dict(meta["params"]) == result.config
    with Image.open(path) as saved:
        assert saved.format == "PNG" and saved.convert("RGB").tobytes() == result.image.tobytes()


def test_a_png_without_metadata_reads_as_none(tmp_path, content_image):
    path = tmp_path / "plain.png"
    content_image.save(path)
    assert stylize.read_metadata(path) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_it_recovers_when_lbfgs_overshoots_on_a_single_shallow_layer(content_image, style_image, seed):
    # From noise with only relu1_1, L-BFGS without a line search overshoots by 1e3..1e7x;
    # the guard puts the best image back and clears the optimiser's memory.
    config = small(init="random", seed=seed, iterations=12, content_weight=0.0, style_layers={"relu1_1": 1.0})
    losses = [entry["loss"] for entry in stylize.run(content_image, [style_image], config).history]
    best_so_far = np.minimum.accumulate(losses)
    jumps = [i for i in range(1, len(losses)) if losses[i] > engine._Guard.DIVERGED * best_so_far[i - 1]]
    assert all(losses[i + 1] <= best_so_far[i] * 1.0001 for i in jumps if i + 1 < len(losses))
    assert losses[-1] < losses[0] / 2


def test_bf16_convolutions_still_lower_the_cost(content_image, style_image):
    config = small(precision="bf16", iterations=6, seed=3)
    history = stylize.run(content_image, [style_image], config).history
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(isinstance(entry["loss"], float) for entry in history)  # costs stay fp32 numbers


@pytest.mark.parametrize("last_cost, keeps_last", [(0.5, True), (1.0, True), (2.0, False), (float("nan"), False)])
def test_a_scale_ends_on_its_best_image_when_the_last_step_made_things_worse(last_cost, keeps_last):
    best, last = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    guard = engine._Guard(loss_scale=1.0, best_loss=1.0, best_image=best)
    chosen = guard.better_of(last, lambda: last_cost)
    assert chosen is (last if keeps_last else best)
