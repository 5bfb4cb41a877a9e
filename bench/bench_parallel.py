"""Cycles per image against read parallelism (``[chip] parallel_reads = P``), measured on the
RTL beside the schedule's formula and the array-bound limit.

For each P the generated system (core + behavioural crossbar) runs images back to back on
Verilator, every image checked against the golden model (class, scores, every layer's bits),
and the interval between results is measured. Printed per P:

* ``reads``     array reads per image (independent of P);
* ``read cyc``  cycles in which the core reads: sum over layers of pixels x column tiles x
  ceil(row tiles / P) (``MappedModel.read_cycles_per_image``);
* ``formula``   steady-state cycles per image of this core: read cycles + a layer gap per
  layer boundary + the image turnaround (``CoreParams.compute_cycles_per_image``);
* ``measured``  the interval the RTL showed (equal to the formula while the next image's input
  words load behind layers >= 1, ``CoreParams.input_hidden``; otherwise -- marked ``input``
  -- the input stream, one word per cycle, sets the pace and the formula does not apply);
* ``limit``     the array-bound limit of a core whose layers work on different images at once:
  the slowest layer's read cycles (constant 0); ``measured / limit`` is how far the core is
  from it.

With ``--pipeline`` the core is the layer-pipelined one (``[chip] pipeline = true``, a stage
per layer, ``arrays`` raised to the stages' concurrent reads): ``formula`` is then
:attr:`golden.pipeline.PipelinePlan.interval`, the slowest stage's read cycles (or the input
beats), and every result's cycle is checked against :func:`golden.pipeline.timing`.

    .venv/bin/python bench/bench_parallel.py [--model models/mlp.npz] [--images 20]
        [--ports 1,2,4,8] [--input-words K] [--pipeline] [--simulator verilator]

``--input-words K`` sets ``[chip] input_words`` (first-buffer words per input beat) for every
P, so that loading an image does not pace the core.

P beyond ``--ports`` (up to the widest layer's row tiles) is printed from the formula only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from golden.chip import ChipConfig, load_chip_config          # noqa: E402
from golden.core import CoreParams                            # noqa: E402
from golden.mapping import compile_model                      # noqa: E402
from golden.model import load_model                           # noqa: E402
from periphery.generate_model import generate_model           # noqa: E402
from sim.regressions import run_core                          # noqa: E402


def _ports_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise SystemExit(f"--ports {text!r}: expected comma-separated integers") from None
    if not values or min(values) < 1:
        raise SystemExit(f"--ports {text!r}: every value must be >= 1")
    return values


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "models" / "mlp.npz"))
    ap.add_argument("--config", default=None)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--ports", default="1,2,4,8", type=_ports_list)
    ap.add_argument("--input-words", type=int, default=None)
    ap.add_argument("--pipeline", action="store_true",
                    help="the layer-pipelined core ([chip] pipeline = true)")
    ap.add_argument("--simulator", default="verilator", choices=["verilator", "icarus"])
    args = ap.parse_args()
    if args.images < 2:
        raise SystemExit(f"--images {args.images}: at least 2 (an interval needs two images)")
    model = load_model(args.model)
    base = load_chip_config(args.config) if args.config else ChipConfig()
    if args.input_words is not None:
        try:
            base = replace(base, input_words=args.input_words)
            CoreParams(compile_model(model, base))
        except ValueError as exc:
            raise SystemExit(f"--input-words {args.input_words}: {exc}") from None
    widest = max(layer.row_tiles for layer in compile_model(model, base).layers)
    sweep = sorted(set(args.ports) | {1 << k for k in range(widest.bit_length())} | {widest})
    sweep = [p for p in sweep if p <= widest]
    print(f"{Path(args.model).name} on {base.rows}x{base.columns}, widest layer {widest} row "
          f"tiles, {base.input_words} input word(s) per beat, "
          f"{'layers pipelined' if args.pipeline else 'one layer at a time'}; RTL on "
          f"{args.simulator}, {args.images} images back to back per P")
    print(f"{'P':>3} {'reads':>6} {'read cyc':>8} {'formula':>8} {'measured':>8} {'limit':>6} "
          f"{'meas/limit':>10} {'images/s sim':>12} {'build s':>7}")
    with tempfile.TemporaryDirectory(prefix="mbnn-bench-parallel-") as tmp:
        for p in sweep:
            chip = replace(base, parallel_reads=p, arrays=max(base.arrays, p))
            if args.pipeline:       # every stage reads its own arrays
                stages = sum(min(p, layer.row_tiles)
                             for layer in compile_model(model, chip).layers)
                chip = replace(chip, pipeline=True, arrays=max(chip.arrays, stages))
            params = CoreParams(compile_model(model, chip))
            mapped = params.mapped
            limit = max(layer.read_cycles(p) for layer in mapped.layers)
            measured, rate, build = "-", "-", "-"
            if p in args.ports:
                gen = Path(tmp) / f"p{p}"
                generate_model(Path(args.model), chip, gen)
                run = run_core(gen, args.simulator, Path(tmp) / "build", f"p{p}", args.images,
                               handshake="back_to_back")
                s = run.summary
                if not run.result.ok or s is None or s["mismatches"]:
                    print(f"P={p}: the RTL run failed: {run.result.summary()}")
                    return 1
                seen = s["cycles_per_image_seen"]
                if args.pipeline:   # the steady state follows the pipeline's filling
                    from golden.pipeline import timing
                    want = list(timing(params.pipeline, args.images).results)
                    if s["result_cycles"] != want:
                        print(f"P={p}: result cycles {s['result_cycles'][:6]}... differ from "
                              f"golden.pipeline's {want[:6]}...")
                        return 1
                    rc = s["result_cycles"]
                    seen = sorted(set(b - a for a, b in zip(rc[-4:], rc[-3:])))
                measured = str(seen[0]) if len(seen) == 1 else str(seen)
                rate = f"{s['images_per_s']:.0f}"
                build = f"{run.result.build_s:.1f}"
            ratio = (f"{int(measured) / limit:.2f}" if measured.isdigit()
                     else f"{params.compute_cycles_per_image / limit:.2f}*")
            formula = (str(params.compute_cycles_per_image) if params.input_hidden
                       else "input")
            if measured.isdigit() and params.input_hidden and \
                    int(measured) != params.compute_cycles_per_image:
                print(f"P={p}: measured {measured} cycles per image, the formula says "
                      f"{params.compute_cycles_per_image}")
                return 1
            print(f"{p:>3} {mapped.reads_per_image:>6} {mapped.read_cycles_per_image:>8} "
                  f"{formula:>8} {measured:>8} {limit:>6} {ratio:>10} {rate:>12} {build:>7}")
    print("(* formula only; limit = the slowest layer's read cycles; input = paced by the "
          "input stream, one word per cycle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
