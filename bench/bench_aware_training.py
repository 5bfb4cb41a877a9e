"""Hardware-aware training: accuracy on non-ideal chips before and after, and what it costs.

Two experiments on the shipped model (``--arch``), on the chip of ``--config`` with its
device's stuck-cell rates replaced by ``--stuck-on`` / ``--stuck-off`` (the demo chip's 0.5 % /
2 % cost the shipped MLP little; 2 % / 5 % is where fault-awareness has something to recover):

* ``chip`` -- fault-aware, chip-in-the-loop fine-tuning on one chip (``--chip-seed``):
  accuracy as first programmed, then with the chip's reads (``--reads``) in the forward pass
  for ``--epochs`` epochs, reprogrammed onto the same chip (same stuck cells, programming
  error redrawn with ``--program-seed``). Baselines on that same reprogramming: the shipped
  model unchanged (control), with its thresholds calibrated on the chip from reference reads
  of 2000 training images (:mod:`golden.analog.calibration`), and with only its batch-norm
  recalibrated on the chip's reads.
* ``noise`` -- noise-injection fine-tuning for no chip in particular (``--noise-epochs``):
  multiplicative weight noise at the device's programming spread and stuck cells drawn at
  the device's rates for every batch; compared with the shipped model, and with the shipped
  weights whose batch-norm is only recalibrated for the expected faults, over ``--chips``
  chips (seeds ``--eval-seed``, +1, ...; read noise on), as ``mbnn evaluate`` does.

Accuracy is on the first ``--images`` MNIST test images (default all 10 000), through the
golden non-ideal read. Figures are printed as JSON lines, then a summary; nothing is asserted.
The parasitic networks (``--parasitics``) make every programming of the MLP cost minutes on
one core, so they are off by default; the chip is then the configuration's device, ADC and
arrays with ideal wiring.

    .venv/bin/python bench/bench_aware_training.py [--arch mlp] [--part both] [--chips 8]

The default run (MLP, both parts, 8 chips) took 14 min on the shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from golden.analog.aware_training import (RandomStuckCells, fine_tune_on_chip,
                                          programming_spread)
from golden.analog.devices import device_from_record
from golden.analog.evaluate import evaluate_chips
from golden.chip import load_chip_config
from golden.mnist import binarize_pixels, load_mnist
from golden.model import load_model
from golden.train import TrainConfig, Trainer

REPO = Path(__file__).resolve().parent.parent


def epoch_log(text: str, final: bool = False) -> None:
    if final:
        print(f"    {text}", file=sys.stderr, flush=True)


def emit(row: dict) -> None:
    print(json.dumps(row), flush=True)


def build_chip(args):
    chip = load_chip_config(args.config)
    record = {**chip.device.record(), "stuck_on_rate": args.stuck_on,
              "stuck_off_rate": args.stuck_off}
    chip = replace(chip, device=device_from_record(record))
    if not args.parasitics:
        chip = replace(chip, r_wire_ohm=0.0, r_source_ohm=0.0, r_sense_ohm=0.0)
    return chip


def chip_part(args, chip, model, data) -> dict:
    x, y, xt, yt = data
    cfg = TrainConfig.recipe(args.arch, epochs=args.epochs, lr_start=args.lr_start,
                             lr_end=args.lr_end, seed=args.train_seed)
    print(f"[chip] fine-tuning on chip seed {args.chip_seed} ({args.reads} reads, "
          f"{args.epochs} epoch(s))", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    r = fine_tune_on_chip(model, chip, x, y, xt, yt, chip_seed=args.chip_seed,
                          program_seed=args.program_seed, cfg=cfg, reads=args.reads,
                          workers=args.workers, log=epoch_log)
    row = {"part": "chip", "arch": args.arch, "chip_seed": args.chip_seed,
           "program_seed": args.program_seed, "reads": args.reads, "epochs": args.epochs,
           "lr": [args.lr_start, args.lr_end], "weight_noise_std":
           round(programming_spread(chip.device), 4), "images": len(yt),
           "before": r.before, "control": r.control, "recalibrated": r.recalibrated,
           "calibrated": r.calibrated,
           "after": r.after, "twin_before": r.twin_before, "twin_after": r.twin_after,
           **r.counts.as_dict(), "seconds": r.seconds,
           "wall_s": round(time.perf_counter() - t0, 1)}
    emit(row)
    return row


def noise_part(args, chip, model, data) -> list[dict]:
    x, y, xt, yt = data
    device = chip.device
    spread = programming_spread(device)
    inject = RandomStuckCells(model.arch, device.stuck_on_rate, device.stuck_off_rate)
    rows, models = [], {"shipped": (model, 0.0)}

    t0 = time.perf_counter()
    recal = Trainer(TrainConfig.recipe(args.arch, seed=args.train_seed), init=model,
                    reads=inject)
    recal.recalibrate(x)
    models["shipped, recalibrated for expected faults"] = (recal.export(),
                                                           time.perf_counter() - t0)

    cfg = TrainConfig.recipe(args.arch, epochs=args.noise_epochs, lr_start=args.lr_start,
                             lr_end=args.lr_end, seed=args.train_seed, weight_noise_std=spread)
    print(f"[noise] fine-tuning {args.noise_epochs} epoch(s) with weight noise {spread:.4f} "
          f"and stuck cells {device.stuck_on_rate} on / {device.stuck_off_rate} off per batch",
          file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    tuned = Trainer(cfg, init=model, reads=inject)
    tuned.fit(x, y, log=epoch_log)
    models["noise-injection fine-tuned"] = (tuned.export(), time.perf_counter() - t0)

    if args.plain_control:
        cfg_plain = replace(cfg, weight_noise_std=0.0)
        t0 = time.perf_counter()
        plain = Trainer(cfg_plain, init=model)
        plain.fit(x, y, log=epoch_log)
        models["plain fine-tuned (control)"] = (plain.export(), time.perf_counter() - t0)

    for name, (m, train_s) in models.items():
        t0 = time.perf_counter()
        acc = evaluate_chips(m, chip, xt, yt, args.chips, args.eval_seed, workers=args.workers)
        row = {"part": "noise", "arch": args.arch, "model": name,
               "epochs": 0 if name.startswith("shipped") else args.noise_epochs,
               "weight_noise_std": round(spread, 4) if "injection" in name else 0.0,
               "chips": args.chips, "eval_seed": args.eval_seed, "images": len(yt),
               "mean": acc.mean, "std": acc.std, "min": float(acc.accuracies.min()),
               "max": float(acc.accuracies.max()), "ideal_accuracy": acc.ideal_accuracy,
               "train_s": round(train_s, 1), "evaluate_s": round(time.perf_counter() - t0, 1)}
        emit(row)
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=("mlp", "cnn"), default="mlp")
    p.add_argument("--part", choices=("chip", "noise", "both"), default="both")
    p.add_argument("--config", default=str(REPO / "configs" / "demo_nonideal.toml"))
    p.add_argument("--stuck-on", type=float, default=0.02)
    p.add_argument("--stuck-off", type=float, default=0.05)
    p.add_argument("--parasitics", action="store_true",
                   help="keep the configuration's wire/source/sense resistance (slow)")
    p.add_argument("--reads", choices=("measured", "stuck"), default="measured")
    p.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs on the chip")
    p.add_argument("--noise-epochs", type=int, default=1)
    p.add_argument("--lr-start", type=float, default=1e-3)
    p.add_argument("--lr-end", type=float, default=1e-4)
    p.add_argument("--train-seed", type=int, default=7)
    p.add_argument("--chip-seed", type=int, default=0)
    p.add_argument("--program-seed", type=int, default=1000)
    p.add_argument("--chips", type=int, default=8)
    p.add_argument("--eval-seed", type=int, default=100)
    p.add_argument("--images", type=int, default=10000, help="MNIST test images")
    p.add_argument("--train-images", type=int, default=60000)
    p.add_argument("--plain-control", action="store_true",
                   help="also fine-tune without injection (separates extra training from it)")
    p.add_argument("--workers", type=int, default=1, help="processes for chips and solves")
    args = p.parse_args()

    t_start = time.perf_counter()
    chip = build_chip(args)
    model = load_model(REPO / "models" / f"{args.arch}.npz")
    train, test = load_mnist("train"), load_mnist("test")
    data = (binarize_pixels(train.images[:args.train_images]),
            train.labels[:args.train_images].astype(np.int64),
            binarize_pixels(test.images[:args.images]), test.labels[:args.images].astype(np.int64))
    emit({"part": "setup", "arch": args.arch, "config": str(args.config),
          "device": chip.device.preset, "stuck_on_rate": chip.device.stuck_on_rate,
          "stuck_off_rate": chip.device.stuck_off_rate,
          "g_dtod_sigma_ln": chip.device.g_dtod_sigma_ln,
          "read_noise_std": chip.device.read_noise_std, "parasitics": args.parasitics,
          "r_wire_ohm": chip.r_wire_ohm, "rows": chip.rows, "columns": chip.columns,
          "adc_bits": chip.adc_bits, "train_images": len(data[1]), "test_images": len(data[3])})
    chip_row, noise_rows = None, []
    if args.part in ("chip", "both"):
        chip_row = chip_part(args, chip, model, data)
    if args.part in ("noise", "both"):
        noise_rows = noise_part(args, chip, model, data)

    print(f"\n{args.arch} on {Path(args.config).name} with {100 * args.stuck_on:g} % / "
          f"{100 * args.stuck_off:g} % cells stuck on / off"
          f"{'' if args.parasitics else ', ideal wiring'}; {len(data[3])} test images")
    if chip_row:
        r = chip_row
        print(f"  chip {r['chip_seed']}: {r['misread_weights']} of {r['weights']} weights misread"
              f" ({r['stuck_cells']} stuck cells)")
        for label, key in (("as first programmed", "before"),
                           ("reprogrammed, unchanged", "control"),
                           ("reprogrammed, thresholds calibrated on chip", "calibrated"),
                           ("reprogrammed, BN recalibrated on its reads", "recalibrated")):
            print(f"    {label:<44} {100 * r[key]:6.2f} %")
        print(f"    {'reprogrammed, fine-tuned on its reads':<44} {100 * r['after']:6.2f} %   "
              f"({r['epochs']} epoch(s), {r['reads']} reads, "
              f"{r['seconds']['fine_tune']:.0f} s)")
    for r in noise_rows:
        print(f"  {r['model']:<44} {100 * r['mean']:6.2f} +- {100 * r['std']:.2f} % over "
              f"{r['chips']} chips (ideal {100 * r['ideal_accuracy']:.2f} %, trained "
              f"{r['train_s']:.0f} s)")
    print(f"  wall time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
