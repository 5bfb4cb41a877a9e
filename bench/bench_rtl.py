"""RTL inference speed on Verilator: cocotb-driven testbench against a plain C++ harness.

Both drive the same generated BnnSystem (core + behavioural crossbar) with the same images and
check every result against the golden model; both figures come from this one run, so their
ratio is the figure of merit on a shared, noisy machine.

    .venv/bin/python bench/bench_rtl.py [--model models/mlp.npz] [--images 10000]

The harness is built with the cocotb build's Verilator flags (``-Wall``, ``--public-flat-rw``),
so the ratio is the cost of driving the model from Python. Prints the simulation time of each (model load and build excluded, listed separately), the
images/s, cycles per image against the analytical minimum, and the cocotb/C++ time ratio.
The cocotb run checks classes and scores (like the harness); ``--layers`` adds a second cocotb
run that also reads back every layer's bits.

``--program`` (with a ``--device``, e.g. ``rram``): the system programs its own arrays first
through its write-verify controller (``mbnn infer --program``); both runs then also time the
programming phase and check it against golden write-verify (pulses, failed cells, the
crossbar's replay), and the ratio of their programming times is printed too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from golden.analog.chip_state import analog_infer            # noqa: E402
from golden.analog.devices import device_preset               # noqa: E402
from golden.chip import ChipConfig, load_chip_config          # noqa: E402
from golden.core import CoreParams                            # noqa: E402
from golden.mapping import compile_model                      # noqa: E402
from golden.mnist import binarize_pixels, load_mnist          # noqa: E402
from golden.model import infer, load_model                    # noqa: E402
from golden.schedule import input_beats                      # noqa: E402
from periphery.core import result_layout                      # noqa: E402
from periphery.generate_model import generate_model, load_programmed_chip  # noqa: E402
from sim import toolchain                                     # noqa: E402
from sim.payload import PayloadCodec                          # noqa: E402
from sim.regressions import run_core                          # noqa: E402
from sim.runner import LINT_WAIVERS                           # noqa: E402


def _words32(value: int, count: int) -> list[int]:
    return [(value >> (32 * k)) & 0xFFFFFFFF for k in range(count)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mlp.npz"))
    ap.add_argument("--config", default=None)
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--layers", action="store_true",
                    help="also time a cocotb run that checks every layer's bits")
    ap.add_argument("--device", default=None, help="device preset replacing the config's")
    ap.add_argument("--program", action="store_true",
                    help="program the arrays through the RTL's write-verify controller first")
    ap.add_argument("--seed", type=int, default=1, help="programming seed (with --device)")
    ap.add_argument("--build", default=str(REPO / "build" / "bench"))
    args = ap.parse_args()

    toolchain.require("verilator")
    toolchain.prepare_path()
    build = Path(args.build).resolve()
    chip = ChipConfig() if args.config is None else load_chip_config(args.config)
    if args.device is not None:
        chip = replace(chip, device=device_preset(args.device))
    model_path = Path(args.model)
    model = load_model(model_path)
    mapped = compile_model(model, chip)
    params = CoreParams(mapped)

    seed = args.seed if args.program or chip.non_ideal_settings() else None
    key = hashlib.sha256(model_path.read_bytes() + repr((chip, seed, args.program)).encode()
                         ).hexdigest()[:12]
    gen = build / f"gen-{model_path.stem}-{key}"
    t0 = time.perf_counter()
    # always: never time a stale directory
    manifest = generate_model(model_path, chip, gen, seed=seed, program=args.program)
    gen_s = time.perf_counter() - t0

    test = load_mnist("test")
    n = min(args.images, len(test.labels))
    pixels = binarize_pixels(test.images[:n])
    if chip.non_ideal_settings():       # the chip in the generated files (tested elsewhere)
        state = load_programmed_chip(gen, chip, mapped.tiles)
        golden = analog_infer(mapped, state, pixels)
    else:
        golden = infer(model, pixels)
    write_verify = manifest["programming"]["write_verify"]

    # --- C++ harness --------------------------------------------------------------------
    codec = PayloadCodec(result_layout(params))
    in_bits = params.input_beat_bits
    in_w, out_w = -(-in_bits // 32), -(-codec.width // 32)
    per_image = params.input_beats
    header = [n, per_image, in_w, out_w]
    if write_verify:
        header += [write_verify["pulses"], write_verify["failed_cells"]]
    stim = np.zeros(len(header) + n * per_image * in_w + n * out_w, np.uint32)
    stim[:len(header)] = header
    pos = len(header)
    for p in pixels:
        for w in input_beats(mapped, p):
            stim[pos:pos + in_w] = _words32(w, in_w)
            pos += in_w
    for k in range(n):
        beat = codec.pack(cls=int(golden.predictions[k]),
                          scores=[int(v) for v in golden.scores[k]])
        stim[pos:pos + out_w] = _words32(beat, out_w)
        pos += out_w
    hdir = build / f"harness-{key}"
    hdir.mkdir(parents=True, exist_ok=True)
    stim.tofile(hdir / "stimulus.bin")
    for old in hdir.glob("*.hex"):
        old.unlink()
    for f in gen.glob("*.hex"):
        (hdir / f.name).symlink_to(f)
    t0 = time.perf_counter()
    # The same Verilator flags as the cocotb build (sim.runner + cocotb's runner), so both
    # drive the same model: -Wall with the waivers, and --public-flat-rw (which cocotb needs
    # for signal access and which also limits Verilator's optimisation).
    cmd = [shutil.which("verilator"), "--cc", "--exe", "-Wall",
           "--public-flat-rw",
           "--top-module", "bnn_system", "-Mdir", str(hdir / "obj"), "-o", "harness",
           str(LINT_WAIVERS), str(gen / "mbnn_crossbar.v"), str(gen / "bnn_system.v"),
           str(REPO / "bench" / "rtl_harness.cpp")]
    if write_verify:
        cmd += ["-CFLAGS", "-DMBNN_PROGRAM"]
    # make run apart from Verilator (as cocotb's runner does), with the option GCC reads a
    # precompiled header by: the packaged Verilator's configuration leaves it empty, and its
    # split builds of a large system then fail on the header
    make = ["make", "-j", "2", "-C", str(hdir / "obj"), "-f", "Vbnn_system.mk",
            "CFG_CXXFLAGS_PCH_I=-include"]
    for step in (cmd, make):
        built = subprocess.run(step, capture_output=True, text=True)
        if built.returncode:
            print(built.stdout[-3000:], built.stderr[-3000:])
            return 1
    harness_build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = subprocess.run([str(hdir / "obj" / "harness"), "stimulus.bin"], cwd=hdir,
                         capture_output=True, text=True)
    harness_total_s = time.perf_counter() - t0
    if out.returncode not in (0, 1):
        print(out.stdout, out.stderr)
        return 1
    cpp = json.loads(out.stdout.strip().splitlines()[-1])

    # --- cocotb -------------------------------------------------------------------------
    run = run_core(gen, "verilator", build, "bench", n, check_layers=False)
    coco = run.summary
    runs = [("cocotb (class + scores)", coco)]
    if args.layers:
        layered = run_core(gen, "verilator", build, "bench-layers", n, check_layers=True)
        runs.append(("cocotb (+ every layer's bits)", layered.summary))

    print(f"model {model_path.name} on {chip.rows}x{chip.columns} arrays: {mapped.tiles} tiles, "
          f"{params.mapped.reads_per_image} array reads per image in "
          f"{params.analytical_cycles_per_image} cycles ({params.crossbar_ports} read port(s)"
          f"{', layers pipelined' if params.pipelined else ''}); "
          f"{n} MNIST test images")
    print(f"generate {gen_s:.1f} s, C++ harness build {harness_build_s:.1f} s, "
          f"cocotb build {run.result.build_s:.1f} s")
    print(f"C++ harness : {cpp['seconds']:8.2f} s simulation ({n / cpp['seconds']:8.1f} images/s), "
          f"{cpp['cycles'] / n:.1f} cycles/image, {cpp['mismatches']} mismatches "
          f"(process total {harness_total_s:.1f} s incl. loading conductances)")
    for label, s in runs:
        if s is None:
            print(f"{label}: no summary ({run.result.summary()})")
            return 1
        print(f"{label}: {s['sim_wall_s']:8.2f} s simulation ({s['images_per_s']:8.1f} images/s), "
              f"{s['cycles_per_image']:.0f} cycles/image (minimum {s['min_cycles_per_image']}), "
              f"{s['mismatches']} mismatches; ratio to C++ {s['sim_wall_s'] / cpp['seconds']:.2f}x")
    if write_verify:
        p = coco["programming"]
        print(f"programming {p['golden_cells']} cells ({p['pulses']} pulses, {p['failed_cells']} failed "
              f"cells; golden {write_verify['pulses']}, {write_verify['failed_cells']}):")
        print(f"  C++ harness : {cpp['program_seconds']:8.2f} s, {cpp['program_cycles']} cycles "
              f"({cpp['program_cycles'] / cpp['program_seconds']:,.0f} cycles/s), "
              f"{cpp['program_mismatches']} mismatches")
        print(f"  cocotb      : {p['sim_wall_s']:8.2f} s, {p['cycles']} cycles "
              f"({p['cycles_per_s']:,.0f} cycles/s); ratio to C++ "
              f"{p['sim_wall_s'] / cpp['program_seconds']:.2f}x")
    print(f"cocotb whole run (load + simulate, no build): {run.result.test_s:.1f} s")
    return 0 if cpp["mismatches"] == 0 and all(s["mismatches"] == 0 for _, s in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
