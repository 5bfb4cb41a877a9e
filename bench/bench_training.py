"""Training speed: seconds per epoch for each architecture, and time to the accuracy target.

Seconds per epoch are measured here on a slice of the training set and scaled to 60 000
images. Time to target combines that with the epoch at which the shipped model's recorded
history first reached the target (the history is written by `mbnn train`).

    .venv/bin/python bench/bench_training.py [--images 6000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from golden.mnist import binarize_pixels, load_mnist
from golden.model import load_model
from golden.train import TrainConfig, Trainer

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"mlp": 0.983, "cnn": 0.992}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6000)
    args = parser.parse_args()
    train = load_mnist("train")
    x = binarize_pixels(train.images[: args.images])
    y = train.labels[: args.images].astype(np.int64)
    for arch in ("mlp", "cnn"):
        trainer = Trainer(TrainConfig(arch=arch, epochs=1, seed=1, recalibrate_bn=False))
        t0 = time.perf_counter()
        trainer.fit(x, y, log=lambda *a, **k: None)
        per_epoch = (time.perf_counter() - t0) * 60000 / len(y)
        row = {"arch": arch, "seconds_per_epoch_60k": round(per_epoch, 1)}
        shipped = REPO / "models" / f"{arch}.npz"
        if shipped.exists():
            meta = load_model(shipped).metadata
            reached = [e for e, _, acc in meta.get("history", []) if acc is not None and acc >= TARGETS[arch]]
            row.update(shipped_accuracy=meta.get("test_accuracy"), target=TARGETS[arch],
                       shipped_train_seconds=meta.get("train_seconds"),
                       epoch_reaching_target=reached[0] if reached else None,
                       estimated_seconds_to_target=round(reached[0] * per_epoch, 1) if reached else None)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
