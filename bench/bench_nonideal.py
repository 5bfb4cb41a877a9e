"""Non-ideal chip figures, side by side in one run (shipped MLP, configs/demo_nonideal.toml).

* golden throughput on the MNIST test images, MLP and CNN: integer inference of the model
  (the ideal golden) against the evaluation read of the programmed non-ideal chip (exact
  codes, state precomputed; with numpy's rounding passes instead of the C kernel; and with
  read noise), alternated so all see the same machine
  load; and the exact read (the RTL's operation order);
* programming the chip: device draws plus every array's parasitic solve, on 1 and 2 processes;
* Monte Carlo: `evaluate`'s cost per chip (programming + 10 000 images with read noise);
* with ``--rtl``: the ideal and the non-ideal chip through the RTL on Verilator, one shared
  build, images/s of each.

    .venv/bin/python bench/bench_nonideal.py [--images 10000] [--chips 4] [--rtl]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from golden import native
from golden.analog.chip_state import analog_infer, program_chip
from golden.analog.evaluate import evaluate_chips, fast_analog_infer, prepare_read
from golden.chip import load_chip_config
from golden.mapping import compile_model
from golden.mnist import binarize_pixels, load_mnist
from golden.model import infer, load_model

REPO = Path(__file__).resolve().parent.parent


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def throughput(model, mapped, state, px, repeats: int):
    """Ideal golden inference against the evaluation read (without and with read noise; its
    per-chip matrices made once, :func:`prepare_read`, the precomputation the issue allows;
    and once more with them made in the call), alternated ``repeats`` times; per kind (last
    result, median seconds, median ratio of the ideal's time to its time over the rounds),
    and the preparation's seconds (median)."""
    noise = state.chip.device.read_noise_std or 0.01
    times = {"ideal": [], "fast": [], "numpy": [], "noisy": [], "unprepared": [],
             "prepare": []}
    out = {}
    for _ in range(repeats):
        prepared, t = timed(lambda: prepare_read(mapped, state))
        times["prepare"].append(t)
        noisy_prepared = prepare_read(mapped, state, noise)
        out["ideal"], t = timed(lambda: infer(model, px))
        times["ideal"].append(t)
        out["fast"], t = timed(lambda: fast_analog_infer(mapped, state, px, prepared=prepared))
        times["fast"].append(t)
        out["numpy"], t = timed(lambda: fast_analog_infer(mapped, state, px, prepared=prepared,
                                                          kernel=False))
        times["numpy"].append(t)
        out["unprepared"], t = timed(lambda: fast_analog_infer(mapped, state, px))
        times["unprepared"].append(t)
        out["noisy"], t = timed(lambda: fast_analog_infer(mapped, state, px, noise,
                                                          np.random.default_rng(1),
                                                          prepared=noisy_prepared))
        times["noisy"].append(t)
    ideal = np.array(times["ideal"])
    return tuple((out[k], float(np.median(times[k])),
                  float(np.median(ideal / np.array(times[k]))))
                 for k in ("ideal", "fast", "noisy", "unprepared", "numpy")) \
        + (float(np.median(times["prepare"])),)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--chips", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rtl", action="store_true")
    args = ap.parse_args()
    model = load_model(REPO / "models" / "mlp.npz")
    chip = load_chip_config(REPO / "configs" / "demo_nonideal.toml")
    mapped = compile_model(model, chip)
    test = load_mnist("test")
    px, y = binarize_pixels(test.images[:args.images]), test.labels[:args.images]

    state, t_prog2 = timed(lambda: program_chip(mapped, 7))
    _, t_prog1 = timed(lambda: program_chip(mapped, 7, workers=1))
    print(f"shipped MLP on {chip.rows}x{chip.columns} arrays ({mapped.tiles} arrays), "
          f"configs/demo_nonideal.toml, {args.images} images")
    print(f"  programming the chip: {t_prog1:.1f} s on 1 process, {t_prog2:.1f} s on 2")
    ideal, fast, noisy, unprepared, numpy_steps, t_prepare = throughput(model, mapped, state,
                                                                        px, args.repeats)
    n_exact = min(args.images, 1000)
    exact, t_exact = timed(lambda: analog_infer(mapped, state, px[:n_exact]))
    same = bool(np.array_equal(exact.scores, fast[0].scores[:n_exact]))
    print(f"  ideal golden (integer) inference: {args.images / ideal[1]:,.0f} images/s, "
          f"accuracy {100 * np.mean(ideal[0].predictions == y):.2f}%")
    print(f"  non-ideal evaluation read, exact: {args.images / fast[1]:,.0f} images/s "
          f"({100 * fast[2]:.0f} % of ideal, median of {args.repeats} alternated runs), "
          f"accuracy {100 * np.mean(fast[0].predictions == y):.2f}%")
    print(f"  ... its rounding in numpy's passes instead of the C kernel "
          f"({'loaded' if native.available() else 'NOT LOADED'}): "
          f"{args.images / numpy_steps[1]:,.0f} images/s ({100 * numpy_steps[2]:.0f} % of "
          f"ideal); equal scores: {np.array_equal(numpy_steps[0].scores, fast[0].scores)}")
    print(f"  ... with read noise:              {args.images / noisy[1]:,.0f} images/s "
          f"({100 * noisy[2]:.0f} % of ideal)")
    print(f"  ... without noise, the chip's matrices made in the call ({t_prepare:.2f} s): "
          f"{args.images / unprepared[1]:,.0f} images/s ({100 * unprepared[2]:.0f} % of ideal); "
          f"equal scores: {np.array_equal(unprepared[0].scores, fast[0].scores)}")
    print(f"  non-ideal exact read (RTL order):  {n_exact / t_exact:,.0f} images/s; equal codes "
          f"to the evaluation read on {n_exact} images: {same}")
    cnn = load_model(REPO / "models" / "cnn.npz")
    cnn_mapped = compile_model(cnn, chip)
    cnn_state = program_chip(cnn_mapped, 7)
    n_cnn = min(args.images, 2000)
    ideal, fast, noisy, unprepared, numpy_steps, t_prepare = throughput(
        cnn, cnn_mapped, cnn_state, px[:n_cnn], args.repeats)
    print(f"shipped CNN ({cnn_mapped.tiles} arrays, {cnn_mapped.reads_per_image} reads per "
          f"image), same chip, {n_cnn} images: ideal golden {n_cnn / ideal[1]:,.0f} images/s, "
          f"evaluation read {n_cnn / fast[1]:,.0f} images/s ({100 * fast[2]:.0f} % of ideal; "
          f"numpy's rounding passes {100 * numpy_steps[2]:.0f} %), "
          f"with read noise {n_cnn / noisy[1]:,.0f} ({100 * noisy[2]:.0f} %), matrices made "
          f"in the call ({t_prepare:.2f} s) {n_cnn / unprepared[1]:,.0f} "
          f"({100 * unprepared[2]:.0f} %)")
    rram = chip.ideal()
    from dataclasses import replace
    rram = replace(rram, device={"preset": "rram"})
    acc, t_mc = timed(lambda: evaluate_chips(model, rram, px, y, args.chips, 1))
    print(f"  evaluate, rram preset without parasitics: {args.chips} chips in {t_mc:.1f} s "
          f"({t_mc / args.chips:.1f} s per chip on 2 processes; 100 chips ~ "
          f"{100 * t_mc / args.chips / 60:.1f} min), mean {100 * acc.mean:.2f}%")
    acc, t_mc = timed(lambda: evaluate_chips(model, chip, px, y, 2, 1))
    print(f"  evaluate, demo chip with parasitics: 2 chips in {t_mc:.1f} s "
          f"({t_mc / 2:.1f} s per chip; 100 chips ~ {100 * t_mc / 2 / 60:.0f} min), "
          f"mean {100 * acc.mean:.2f}%")
    if args.rtl:
        from sim.cli import _run_inference
        build = REPO / "build" / "bench-nonideal"
        n = min(args.images, 2000)
        a = _run_inference(REPO / "models/mlp.npz", None, "verilator", n, 0, True, build, 7)
        b = _run_inference(REPO / "models/mlp.npz", str(REPO / "configs/demo_nonideal.toml"),
                           "verilator", n, 0, True, build, 7, share_build=Path(a["generated"]))
        print(f"  RTL on Verilator, {n} images, layer checks: ideal chip "
              f"{a['images_per_s']:.1f} images/s ({a['mismatches']} mismatches), non-ideal "
              f"{b['images_per_s']:.1f} images/s ({b['mismatches']} mismatches); ratio "
              f"{b['images_per_s'] / a['images_per_s']:.2f}")


if __name__ == "__main__":
    main()
