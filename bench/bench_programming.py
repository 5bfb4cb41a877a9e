"""Golden write-verify programming of the shipped MLP's arrays (every physical cell of its
192 arrays of 128x128 differential pairs, a verify read after every pulse), vectorised over
cells: wall time, cells per second, pulses, skipped and failed cells, programming time and
energy, for several device presets in one run.

    .venv/bin/python bench/bench_programming.py [--devices rram,dw5] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

from golden.analog.devices import device_preset
from golden.chip import ChipConfig
from golden.mapping import compile_model
from golden.model import load_model
from golden.programming import WriteVerifyPolicy, initial_cells, model_targets, program_cells
from sim.runner import REPO_ROOT


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="rram,dw5")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    model = load_model(REPO_ROOT / "models" / "mlp.npz")
    policy = WriteVerifyPolicy()
    rows = []
    for name in args.devices.split(","):
        # the presets' stuck rates are 0: 1 % of cells stuck, half on, half off
        device = device_preset(name, stuck_on_rate=0.005, stuck_off_rate=0.005)
        mapped = compile_model(model, ChipConfig(device=device))
        t0 = time.perf_counter()
        targets = model_targets(mapped, policy.levels)
        g, stuck = initial_cells(device, len(targets), args.seed)
        t1 = time.perf_counter()
        r = program_cells(device, policy, targets, g, stuck, args.seed)
        t2 = time.perf_counter()
        rows.append({"device": name, "cells": len(targets), "pulses": r.pulses,
                     "skipped_cells": int(r.skipped.sum()), "failed_cells": int(r.failed.sum()),
                     "stuck_cells": int((stuck != 0).sum()), "setup_s": t1 - t0,
                     "program_s": t2 - t1, "cells_per_s": len(targets) / (t2 - t1),
                     "program_time_s": r.time_sec, "energy_j": r.energy_j})
    if args.json:
        print(json.dumps({"policy": policy.__dict__, "results": rows}))
        return
    print(f"shipped MLP, {rows[0]['cells']} cells, policy {policy}")
    print(f"{'device':<7} {'wall':>7} {'cells/s':>10} {'pulses':>10} {'skipped':>9} "
          f"{'failed':>7} {'stuck':>7} {'chip time':>10} {'energy':>9}")
    for row in rows:
        print(f"{row['device']:<7} {row['program_s']:>6.1f}s {row['cells_per_s']:>10.3g} "
              f"{row['pulses']:>10} {row['skipped_cells']:>9} {row['failed_cells']:>7} "
              f"{row['stuck_cells']:>7} {row['program_time_s'] * 1e3:>8.1f}ms "
              f"{row['energy_j'] * 1e6:>7.2f}uJ")


if __name__ == "__main__":
    main()
