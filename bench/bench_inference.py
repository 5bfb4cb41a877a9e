"""Golden (integer) inference throughput against the single-core float32 GEMM roofline.

Both figures come from this one process with BLAS limited to one thread, so their ratio is
meaningful on a shared, noisy machine: the figure of merit is the fraction of the roofline that
bit-exact inference achieves, counting 2 FLOP per multiply-accumulate of the binary layers.

    .venv/bin/python bench/bench_inference.py [--model models/mlp.npz] [--images 10000]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy loads BLAS

import argparse
import json
import time
from pathlib import Path

from golden.mnist import binarize_pixels, load_mnist
from golden.model import infer, load_model
from roofline import gemm_roofline, model_macs

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "models" / "mlp.npz"))
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = load_model(args.model)
    test = load_mnist("test")
    pixels = binarize_pixels(test.images[: args.images])
    infer(model, pixels[:100])          # warm-up
    best = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        infer(model, pixels)
        best = min(best, time.perf_counter() - t0)
    images_per_s = len(pixels) / best
    roofline = gemm_roofline()
    achieved = images_per_s * 2 * model_macs(model)
    print(json.dumps({
        "model": model.arch.name, "images": len(pixels), "blas_threads": os.environ["OPENBLAS_NUM_THREADS"],
        "images_per_s": round(images_per_s, 1), "macs_per_image": model_macs(model),
        "achieved_gflops": round(achieved / 1e9, 2), "roofline_gflops": round(roofline / 1e9, 2),
        "fraction_of_roofline": round(achieved / roofline, 3)}))


if __name__ == "__main__":
    main()
