"""CPU benchmark: 4 jobs in one run_batch() against the same 4 jobs run one after another.

    .venv/bin/python bench/batch_cpu.py              # 128 px, 2 scales, 10 + 10 iterations
    .venv/bin/python bench/batch_cpu.py --size 256

tubingen.jpg with the four sample styles, four seeds. Untimed first: the weights are loaded
and each shape goes once through both paths (a warm worker). Prints the best wall time of
each way over --repeats, their ratio, and the largest pixel difference between a batched
result and the same job alone: over 20 L-BFGS iterations the last-bit differences of
batched convolutions grow to a few grey levels (a few tens at a pixel), as they do between
a single run on 1 and on 2 threads (tests/stylize/test_batch.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import stylize  # noqa: E402
from stylize import BatchJob, StyleConfig, images, run_batch  # noqa: E402

SHARED = ROOT.parent / "shared" / "images"
STYLES = ("starry_night.jpg", "the_scream.jpg", "shipwreck.jpg", "woman-with-hat-matisse.jpg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=10, help="at each of the 2 scales")
    parser.add_argument("--repeats", type=int, default=3, help="timings kept: the best of these")
    args = parser.parse_args()

    def small(path: Path):  # decoding and shrinking once keeps image handling out of the timing
        img = images.load_image(path)
        return images.resize(img, images.fit_long_side(*img.size, 2 * args.size))

    content = small(SHARED / "content" / "tubingen.jpg")
    jobs = [BatchJob(content, [small(SHARED / "style" / name)],
                     StyleConfig(size=args.size, scales=2, coarse_iterations=args.iterations,
                                 iterations=args.iterations, seed=seed))
            for seed, name in enumerate(STYLES)]
    # Warm-up, untimed: the weights, and oneDNN's kernels for every shape either way meets (their
    # first use costs seconds at 64..128 px, more than the iterations themselves).
    warm = [BatchJob(job.content, job.styles, job.config.replace(coarse_iterations=1, iterations=1))
            for job in jobs]
    for job in warm:
        stylize.run(job.content, job.styles, job.config)
    run_batch(warm)

    # Best of --repeats, the two ways taking turns: a shared 2-core machine's other load only adds.
    single_time = batch_time = float("inf")
    for _ in range(args.repeats):
        start = time.monotonic()
        singles = [stylize.run(job.content, job.styles, job.config) for job in jobs]
        single_time = min(single_time, time.monotonic() - start)
        start = time.monotonic()
        batched = run_batch(jobs)
        batch_time = min(batch_time, time.monotonic() - start)

    worst = max(int(np.abs(np.asarray(a.image).astype(int) - np.asarray(b.image).astype(int)).max())
                for a, b in zip(singles, batched))
    print(f"{len(jobs)} jobs at {args.size} px, 2 scales x {args.iterations} iterations, "
          f"best of {args.repeats}")
    print(f"one after another: {single_time:.2f} s")
    print(f"one batch:         {batch_time:.2f} s")
    print(f"ratio batch/singles: {batch_time / single_time:.2f}")
    print(f"largest pixel difference batch vs alone: {worst} / 255")


if __name__ == "__main__":
    main()
