"""GPU benchmark (one command, a few minutes on one GPU):

    .venv/bin/python bench/bench_gpu.py

For tubingen.jpg + starry_night.jpg with the default preset at 512 and 1024 px, in
fp32 (TF32) and with bf16 autocast: seconds per result (after one warm-up run),
peak GPU memory, and the look (DESIGN.md's quality measure, stylize/quality.py), so
the bf16 option is judged on quality as well as speed. Writes bench/out/gpu.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stylize  # noqa: E402
from stylize import quality  # noqa: E402

IMAGES = ROOT.parent / "shared" / "images"


def one(content, style, size: int, precision: str) -> dict:
    config = stylize.StyleConfig(size=size, seed=1, device="cuda", precision=precision)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = stylize.run(content, [style], config)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    look = quality.measure(result.image, content, style)
    result.image.save(ROOT / "bench" / "out" / f"gpu_{size}_{precision}.png")
    return {"size": size, "precision": precision, "seconds": round(seconds, 2),
            "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20),
            **look.as_dict()}


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here; use bench/bench_cpu.py")
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    content = stylize.load_image(IMAGES / "content" / "tubingen.jpg")
    style = stylize.load_image(IMAGES / "style" / "starry_night.jpg")
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    one(content, style, 256, "fp32")  # warm-up: CUDA context, cuDNN autotuning, weights
    rows = [one(content, style, size, precision) for size in (512, 1024) for precision in ("fp32", "bf16")]
    for row in rows:
        print(f"{row['size']:5d} px {row['precision']:5}  {row['seconds']:6.2f} s  peak {row['peak_gpu_mib']:6d} MiB"
              f"  content {row['content']:.4g}  match(512) {row['match_512']:.4f}  match(256) {row['match_256']:.4f}"
              f"  palette {row['palette']:.4f}")
    (ROOT / "bench" / "out" / "gpu.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
