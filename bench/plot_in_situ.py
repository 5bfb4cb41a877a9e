"""Curves and table of the in-situ training runs of ``bench/in_situ_training.sh``: reads the
model files it wrote (their metadata hold each epoch's test accuracy and, for in-situ runs,
flips, pulses and energy) and writes ``docs/figures/in_situ_mlp250.png`` and
``docs/figures/in_situ_mlp.png``; prints one JSON line per run.

    .venv/bin/python bench/plot_in_situ.py [RUN_DIR]     (default build/in_situ)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from golden.model import load_model
from sim.plots import TrainingCurve, in_situ_figure, write_png

REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "docs" / "figures"
# (file, label) per figure
RUNS = {
    "mlp250": [("mlp250_software", "software"), ("mlp250_rram", "in situ, rram"),
               ("mlp250_pcm", "in situ, pcm"), ("mlp250_rram_naive", "naive, rram")],
    "mlp": [("mlp_software", "software"), ("mlp_rram", "in situ, rram"),
            ("mlp_pcm", "in situ, pcm")],
}
TITLES = {"mlp250": "784-250-10 binary MLP, 10 epochs, seed 1",
          "mlp": "784-1024-1024-1024-10 binary MLP, 10 epochs, seed 1"}


def main() -> None:
    runs = Path(sys.argv[1] if len(sys.argv) > 1 else "build/in_situ")
    for arch, entries in RUNS.items():
        curves = []
        for name, label in entries:
            path = runs / f"{name}.npz"
            if not path.exists():
                print(f"{path}: missing, left out of the {arch} figure", file=sys.stderr)
                continue
            meta = load_model(path).metadata
            situ = meta.get("in_situ")
            accuracy = [100 * h[2] for h in meta["history"]]
            pulses = [h[4] for h in situ["history"]] if situ else None
            curves.append(TrainingCurve(label, accuracy, pulses))
            row = {"run": path.stem, "label": label, "test_accuracy": meta["test_accuracy"],
                   "epochs": len(accuracy)}
            if situ:
                epochs = len(situ["history"])
                row.update(twin_accuracy=situ["twin_accuracy"], flips=situ["flips"],
                           pulses=situ["pulses"], energy_uj=round(situ["energy_j"] * 1e6, 2),
                           pulses_per_epoch=round(situ["pulses"] / epochs),
                           energy_uj_per_epoch=round(situ["energy_j"] * 1e6 / epochs, 3),
                           failed_cells=situ["failed_cells"],
                           first_programming_pulses=situ["initial_programming"]["pulses"],
                           seconds_per_epoch=round(situ["seconds"]["train"] / epochs, 1),
                           flip_programming_seconds=situ["seconds"].get("flip_programming"))
            print(json.dumps(row))
        if curves:
            out = write_png(in_situ_figure(curves, TITLES[arch]), FIGURES / f"in_situ_{arch}.png")
            print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
