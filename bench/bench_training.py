"""Training speed: seconds per epoch for each architecture, and time to the accuracy target;
and the float inference of the training code (per-epoch test accuracy, batch-norm
recalibration, the export check) in images per second.

Seconds per epoch are measured here on a slice of the training set and scaled to 60 000
images, with the fraction of this machine's float32 GEMM rate (both cores) that the epoch's
products would need (``roofline.training_flops``: the rest of the time is everything else).
Time to target combines that with the epoch at which the shipped model's recorded history
first reached the target (the history is written by `mbnn train`).

With ``--against REV`` the same epoch is also timed on the code of git revision ``REV``
(checked out into a temporary worktree, removed afterwards), each in a fresh process,
alternated ``--rounds`` times: the speed-up is the ratio of the medians, on one machine load. Float inference
runs the shipped models on test images in passes of 500 and of 50 images, alternated in
the same process, and names the pass size the network uses (``golden.train.INFERENCE_BATCH``).

With ``--in-situ DEVICE,...`` the MLP's first epoch is also trained with a chip of each
device in the loop (:mod:`golden.analog.in_situ`) on the same slice, beside the software
epoch just measured: the extra seconds split into the update unit (chi, flips, the reads'
refresh) and, within it, the write-verify programming of the flips. The first epoch is the
dearest: its learning rate flips the most weights.

    .venv/bin/python bench/bench_training.py [--images 6000] [--inference-images 2000]
                                             [--in-situ rram,pcm] [--against REV --rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from golden.mnist import binarize_pixels, load_mnist
from golden.model import load_model
from golden.train import TrainConfig, Trainer
from roofline import gemm_roofline, training_flops

REPO = Path(__file__).resolve().parent.parent
TARGETS = {"mlp": 0.983, "cnn": 0.992}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--inference-images", type=int, default=2000)
    parser.add_argument("--in-situ", default="", metavar="DEVICES",
                        help="comma-separated device presets for in-situ MLP epochs")
    parser.add_argument("--against", metavar="REV",
                        help="also time an epoch on the code of this git revision")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternated timings per tree with --against")
    args = parser.parse_args()
    test = load_mnist("test")
    xt = binarize_pixels(test.images[: args.inference_images])
    for arch in ("mlp", "cnn"):
        shipped = REPO / "models" / f"{arch}.npz"
        if not shipped.exists():
            continue
        trainer = Trainer(TrainConfig.recipe(arch), init=load_model(shipped))
        rates = {}
        own = trainer.net.inference_batch()
        for batch in (500, 50, 500, 50):     # alternated
            t0 = time.perf_counter()
            trainer.predict(xt, batch_size=batch)
            rate = len(xt) / (time.perf_counter() - t0)
            rates[batch] = max(rates.get(batch, 0.0), rate)
        print(json.dumps({"arch": arch, "float_inference_images": len(xt),
                          "images_per_s_by_batch": {str(k): round(v, 1) for k, v in rates.items()},
                          "pass_size_used": own}))
    train = load_mnist("train")
    x = binarize_pixels(train.images[: args.images])
    y = train.labels[: args.images].astype(np.int64)
    roofline = gemm_roofline()
    for arch in ("mlp", "cnn"):
        trainer = Trainer(TrainConfig(arch=arch, epochs=1, seed=1, recalibrate_bn=False))
        t0 = time.perf_counter()
        trainer.fit(x, y, log=lambda *a, **k: None)
        per_epoch = (time.perf_counter() - t0) * 60000 / len(y)
        flops = 60000 * training_flops(trainer.arch)
        row = {"arch": arch, "seconds_per_epoch_60k": round(per_epoch, 1),
               "gemm_roofline_gflops": round(roofline / 1e9, 1),
               "fraction_of_roofline": round(flops / per_epoch / roofline, 3)}
        shipped = REPO / "models" / f"{arch}.npz"
        if shipped.exists():
            meta = load_model(shipped).metadata
            reached = [e for e, _, acc in meta.get("history", []) if acc is not None and acc >= TARGETS[arch]]
            row.update(shipped_accuracy=meta.get("test_accuracy"), target=TARGETS[arch],
                       shipped_train_seconds=meta.get("train_seconds"),
                       epoch_reaching_target=reached[0] if reached else None,
                       estimated_seconds_to_target=round(reached[0] * per_epoch, 1) if reached else None)
        print(json.dumps(row))
        if arch == "mlp":
            for device in filter(None, args.in_situ.split(",")):
                in_situ_epoch(device, x, y, per_epoch)
    if args.against:
        against(args.against, args.images, args.rounds)


# One recipe epoch (no recalibration) on the first N training images, timed in a fresh
# process on the code of the tree it runs in.
_EPOCH = """
import sys, time
import numpy as np
from golden.mnist import binarize_pixels, load_mnist
from golden.train import TrainConfig, Trainer
arch, n = sys.argv[1], int(sys.argv[2])
train = load_mnist("train")
x, y = binarize_pixels(train.images[:n]), train.labels[:n].astype(np.int64)
trainer = Trainer(TrainConfig.recipe(arch, epochs=1, recalibrate_bn=False))
t0 = time.perf_counter()
trainer.fit(x, y, log=lambda *a, **k: None)
print(time.perf_counter() - t0)
"""


def against(rev: str, images: int, rounds: int) -> None:
    """Seconds per epoch of this tree and of git revision ``rev``, alternated in fresh
    processes; prints the medians and their ratio per architecture."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", rev + "^{commit}"],
                            capture_output=True, text=True)
    if commit.returncode:
        sys.exit(f"--against: {rev!r} is not a commit of this repository")
    with tempfile.TemporaryDirectory(prefix="mbnn-against-") as tmp:
        old = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(old),
                        commit.stdout.strip()], check=True)
        try:
            for arch in ("mlp", "cnn"):
                times = {"this": [], rev: []}
                for _ in range(rounds):
                    for name, tree in (("this", REPO), (rev, old)):
                        env = dict(os.environ, PYTHONPATH=str(tree))
                        run = subprocess.run([sys.executable, "-c", _EPOCH, arch, str(images)],
                                             cwd=tree, env=env, capture_output=True, text=True)
                        if run.returncode:
                            sys.exit(f"--against: the epoch on {name} failed: {run.stderr[-500:]}")
                        times[name].append(float(run.stdout.split()[-1]))
                this, then = statistics.median(times["this"]), statistics.median(times[rev])
                print(json.dumps({"arch": arch, "images": images, "rounds": rounds,
                                  "seconds_this": [round(t, 2) for t in times["this"]],
                                  f"seconds_{rev}": [round(t, 2) for t in times[rev]],
                                  "speedup": round(then / this, 2)}))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)],
                           check=False)


def in_situ_epoch(device: str, x, y, software_per_epoch: float) -> None:
    """One in-situ epoch of the MLP (recipe, first epoch) on ``device``, scaled to 60 000."""
    from golden.analog.devices import device_preset
    from golden.analog.in_situ import train_in_situ
    from golden.chip import ChipConfig

    cfg = TrainConfig.recipe("mlp", epochs=1, recalibrate_bn=False)
    chip = ChipConfig(device=device_preset(device))
    r = train_in_situ(cfg, chip, 1, x, y, x[:100], y[:100], log=lambda *a, **k: None)
    scale = 60000 / len(y)
    per_epoch = r.seconds["epochs"][0] * scale
    s = r.summary()
    print(json.dumps({
        "arch": "mlp", "in_situ_device": device,
        "seconds_per_epoch_60k": round(per_epoch, 1),
        "software_seconds_per_epoch_60k": round(software_per_epoch, 1),
        "ratio": round(per_epoch / software_per_epoch, 2),
        "update_unit_seconds_60k": round(r.seconds["update_unit"] * scale, 1),
        "flip_programming_seconds_60k": round(r.seconds["flip_programming"] * scale, 1),
        "flips_60k": round(s["flips"] * scale), "pulses_60k": round(s["pulses"] * scale),
        "first_programming_seconds": r.seconds["program"]}))


if __name__ == "__main__":
    main()
