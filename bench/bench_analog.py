"""Parasitic-aware crossbar reads: golden solver against VACASK, side by side in one run.

For each array size, one random binary state (10 / 100 uS, the ``rram``-like ideal device's
levels), 2-ohm wire segments, 10-ohm driver and sense resistance, one random read input:

* VACASK: wall time of one operating point on the netlist (process start, Verilog-A model
  load, netlist parse, solve, raw file written and read back);
* golden precompute: node numbering, nested-dissection LU and the effective conductance matrix;
* golden read: one matrix-vector product with the effective matrix (best of many);
* golden direct solve: node voltages from the factors (what an IR-drop map costs);
* agreement: max over columns of |I_vacask - I_golden| / |I_golden|;
* memory held by the precomputed state (LU factors + effective matrix).

    .venv/bin/python bench/bench_analog.py [--sizes 64,128,256,512] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from golden.analog.devices import device_preset
from golden.analog.parasitics import CrossbarNetwork, Parasitics
from sim.circuit import vacask
from sim.circuit.check import random_array

PARASITICS = Parasitics(r_wire_ohm=2.0, r_source_ohm=10.0, r_sense_ohm=10.0)


def best_of(fn, seconds: float = 0.5, at_least: int = 5) -> float:
    best, spent, n = float("inf"), 0.0, 0
    while n < at_least or spent < seconds:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, n = min(best, dt), spent + dt, n + 1
    return best


def measure(size: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    g_s, v_in_v = random_array(size, size, device_preset("ideal"), rng)
    t0 = time.perf_counter()
    net = CrossbarNetwork(g_s, PARASITICS)
    g_eff = net.effective_conductance()
    precompute_s = time.perf_counter() - t0
    read_s = best_of(lambda: v_in_v @ g_eff)
    t0 = time.perf_counter()
    net.solve(v_in_v)
    solve_s = time.perf_counter() - t0
    sim = vacask.simulate(g_s, v_in_v, PARASITICS, timeout_s=3600)
    golden = net.read(v_in_v)
    err = float(np.max(np.abs(sim.i_col_a - golden) / np.abs(golden)))
    return {"size": size, "vacask_s": sim.wall_time_s,
            "vacask_analysis_s": sim.analysis_time_s, "precompute_s": precompute_s,
            "read_s": read_s, "direct_solve_s": solve_s, "max_rel_err": err,
            "held_mib": net.precomputed_bytes() / 2**20,
            "read_speedup": sim.wall_time_s / read_s,
            "precompute_vs_vacask": precompute_s / sim.wall_time_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,128,256,512")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [measure(int(s), args.seed) for s in args.sizes.split(",")]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"parasitics: {PARASITICS.r_wire_ohm} ohm per segment, {PARASITICS.r_source_ohm} ohm "
          f"source, {PARASITICS.r_sense_ohm} ohm sense; seed {args.seed}")
    head = (f"{'array':>9} {'VACASK op':>10} {'precompute':>11} {'read':>10} "
            f"{'read speedup':>13} {'precomp/VACASK':>15} {'direct solve':>13} "
            f"{'held':>9} {'max rel err':>12}")
    print(head)
    for r in rows:
        print(f"{r['size']:>4}x{r['size']:<4} {r['vacask_s']:>9.3f}s {r['precompute_s']:>10.3f}s "
              f"{r['read_s'] * 1e6:>8.1f}us {r['read_speedup']:>12.0f}x "
              f"{r['precompute_vs_vacask']:>15.2f} {r['direct_solve_s']:>12.3f}s "
              f"{r['held_mib']:>6.1f}MiB {r['max_rel_err']:>12.2e}")


if __name__ == "__main__":
    main()
