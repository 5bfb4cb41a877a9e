"""The ``mbnn`` command line: HDL generation, RTL regressions and the demo."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main"]

DEFAULT_BUILD = Path("build")


def _cmd_generate(args) -> int:
    from golden.fileio import atomic_write_text
    from periphery.generate import BLOCKS

    params_cls, emit = BLOCKS[args.block]
    params = params_cls(channels=args.channels, acc_width=args.acc_width, fan_in=args.fan_in)
    text = emit(params, name=args.name)
    path = atomic_write_text(Path(args.out) / f"{args.name}.v", text)
    print(path)
    return 0


def _run_regression(simulators, seed, build_root, sets, waves=False):
    from sim.regressions import BN_BINARIZE_SETS, run_bn_binarize

    results = []
    for name in sets:
        params = BN_BINARIZE_SETS[name]
        for sim in simulators:
            r = run_bn_binarize(name, params, sim, build_root, seed=seed, waves=waves)
            print(f"bn_binarize[{name}] {r.summary()}", flush=True)
            results.append(r)
    return results


def _print_totals(results, wall_s: float) -> bool:
    by_sim: dict[str, list[int]] = {}
    for r in results:
        t = by_sim.setdefault(r.simulator, [0, 0])
        t[0] += r.passed
        t[1] += r.failed
    print("summary: " + "; ".join(f"{sim}: {p} passed, {f} failed cocotb tests"
                                  for sim, (p, f) in by_sim.items()) + f"; wall {wall_s:.1f} s")
    ok = all(r.ok for r in results)
    print("RESULT: PASS" if ok else "RESULT: FAIL")
    return ok


def _cmd_regress(args) -> int:
    from sim import toolchain
    from sim.regressions import BN_BINARIZE_SETS

    sims = toolchain.RTL_SIMULATORS if args.sim == "all" else (args.sim,)
    sets = args.set or list(BN_BINARIZE_SETS)
    t0 = time.perf_counter()
    results = _run_regression(sims, args.seed, Path(args.build), sets, args.waves)
    return 0 if _print_totals(results, time.perf_counter() - t0) else 1


def _cmd_demo(args) -> int:
    from periphery.generate import bn_binarize_verilog
    from golden.fileio import atomic_write_text
    from sim import toolchain
    from sim.regressions import BN_BINARIZE_SETS

    t0 = time.perf_counter()
    print("mbnn demo: BN-binarize block -> generated Verilog -> cocotb regression on "
          "Icarus and Verilator, checked against the golden model")
    for sim in toolchain.RTL_SIMULATORS:
        print(f"  {toolchain.require(sim).version}")
    out = Path(args.build) / "demo"
    params = BN_BINARIZE_SETS["c128_w11_k784"]
    path = atomic_write_text(out / "bn_binarize.v", bn_binarize_verilog(params))
    print(f"generated {path} ({params.channels} channels, {params.acc_width}-bit "
          f"pre-activations, latency {params.latency} cycles)")
    results = _run_regression(toolchain.RTL_SIMULATORS, args.seed, out, list(BN_BINARIZE_SETS))
    _print_shipped_models()
    return 0 if _print_totals(results, time.perf_counter() - t0) else 1


def _print_shipped_models() -> None:
    """Golden (integer) accuracy of the shipped models on the 10k MNIST test images."""
    from golden.mnist import binarize_pixels, load_mnist
    from golden.model import infer, load_model
    from sim.runner import REPO_ROOT

    test = load_mnist("test")
    pixels = binarize_pixels(test.images)
    for path in sorted((REPO_ROOT / "models").glob("*.npz")):
        model = load_model(path)
        t0 = time.perf_counter()
        acc = float((infer(model, pixels).predictions == test.labels).mean())
        dt = time.perf_counter() - t0
        print(f"golden model {path.name}: {model.arch.name}, test accuracy {100 * acc:.2f}% "
              f"on {len(pixels)} images ({len(pixels) / dt:.0f} images/s, integer inference)")


def _cmd_train(args) -> int:
    import json as _json

    import numpy as np

    from golden.mnist import PIXEL_THRESHOLD, binarize_pixels, load_mnist
    from golden.model import infer, save_model
    from golden.train import TrainConfig, Trainer

    overrides = {"seed": args.seed, "weight_noise_std": args.weight_noise}
    if args.epochs:
        overrides["epochs"] = args.epochs
    cfg = TrainConfig.recipe(args.arch, **overrides)
    train, test = load_mnist("train"), load_mnist("test")
    n = args.train_images or len(train)
    x_train, x_test = binarize_pixels(train.images[:n]), binarize_pixels(test.images)
    y_train, y_test = train.labels[:n].astype(np.int64), test.labels.astype(np.int64)
    trainer = Trainer(cfg)
    log = (lambda text, final=False: None) if args.json else None
    trainer.fit(x_train, y_train, x_test, y_test, **({"log": log} if log else {}))
    float_acc = trainer.evaluate(x_test, y_test)
    model = trainer.export({"dataset": {"name": "mnist", "pixel_threshold": PIXEL_THRESHOLD,
                                        "train_images": n}})
    golden = infer(model, x_test).predictions
    golden_acc = float((golden == y_test).mean())
    if golden_acc != float_acc:   # the folding theorem says this cannot happen
        raise RuntimeError(f"exported integer model scores {golden_acc}, the float network "
                           f"{float_acc}: folding is broken")
    model.metadata.update(test_accuracy=golden_acc, test_images=len(y_test),
                          epochs_run=len(trainer.history),
                          history=[[h.epoch, round(h.loss, 5), h.test_accuracy]
                                   for h in trainer.history])
    save_model(args.out, model)
    result = {"model": str(args.out), "arch": args.arch, "test_accuracy": golden_acc,
              "images": len(y_test), "train_seconds": round(trainer.train_seconds, 1),
              "seconds_per_epoch": round(trainer.train_seconds / len(trainer.history), 1)}
    print(_json.dumps(result) if args.json else
          f"{args.arch}: test accuracy {100 * golden_acc:.2f}% on {len(y_test)} images "
          f"(integer export agrees), {result['train_seconds']} s; wrote {args.out}")
    return 0


def _cmd_eval(args) -> int:
    import json as _json

    from golden.mnist import binarize_pixels, load_mnist
    from golden.model import infer, load_model

    model = load_model(args.model)
    test = load_mnist("test")
    pred = infer(model, binarize_pixels(test.images)).predictions
    acc = float((pred == test.labels).mean())
    if args.json:
        print(_json.dumps({"test_accuracy": acc, "images": len(test.labels)}))
    else:
        print(f"{model.arch.name}: test accuracy {100 * acc:.2f}% on {len(test.labels)} images")
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from sim.runner import DEFAULT_SEED

    parser = argparse.ArgumentParser(
        prog="mbnn", description="Co-design toolchain for a memristive binary neural network "
                                 "accelerator: golden model, HDL generation, RTL verification.")
    parser.add_argument("--version", action="version", version="mbnn 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="write the Verilog of a periphery block")
    gen.add_argument("block", choices=["bn-binarize"], help="block to generate")
    gen.add_argument("--channels", type=_positive, required=True, help="output channels")
    gen.add_argument("--acc-width", type=_positive, required=True,
                     help="signed pre-activation width in bits")
    gen.add_argument("--fan-in", type=_positive, default=None,
                     help="products per pre-activation; checks that --acc-width can hold them")
    gen.add_argument("--name", default="bn_binarize", help="Verilog module name")
    gen.add_argument("--out", required=True, help="output directory")
    gen.set_defaults(func=_cmd_generate)

    reg = sub.add_parser("regress", help="run the RTL regression (cocotb) on the simulators")
    reg.add_argument("--sim", choices=["icarus", "verilator", "all"], default="all")
    reg.add_argument("--seed", type=int, default=DEFAULT_SEED,
                     help=f"global cocotb seed (default {DEFAULT_SEED}); printed for replay")
    reg.add_argument("--set", action="append", help="parameter set name (repeatable; default all)")
    reg.add_argument("--build", default=str(DEFAULT_BUILD / "regress"), help="build root")
    reg.add_argument("--waves", action="store_true", help="dump waveforms in the build dirs")
    reg.set_defaults(func=_cmd_regress)

    tr = sub.add_parser("train", help="train a BNN on MNIST and write a model file")
    tr.add_argument("--arch", choices=["mlp", "cnn"], required=True)
    tr.add_argument("--epochs", type=_positive, default=None,
                    help="epochs (default: the shipped model's recipe)")
    tr.add_argument("--seed", type=int, default=1)
    tr.add_argument("--weight-noise", type=float, default=0.0,
                    help="relative std of weight noise injected during training")
    tr.add_argument("--train-images", type=_positive, default=None,
                    help="train on the first N training images only (quick checks)")
    tr.add_argument("--out", required=True, help="model file to write (.npz)")
    tr.add_argument("--json", action="store_true", help="print one JSON line, no progress")
    tr.set_defaults(func=_cmd_train)

    ev = sub.add_parser("eval", help="golden (integer) test accuracy of a model file")
    ev.add_argument("--model", required=True)
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=_cmd_eval)

    demo = sub.add_parser("demo", help="the README's main command")
    demo.add_argument("--seed", type=int, default=DEFAULT_SEED)
    demo.add_argument("--build", default=str(DEFAULT_BUILD))
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "set", None):
        from sim.regressions import BN_BINARIZE_SETS
        unknown = [s for s in args.set if s not in BN_BINARIZE_SETS]
        if unknown:
            parser.error(f"unknown parameter set {unknown[0]!r}; expected one of "
                         f"{', '.join(BN_BINARIZE_SETS)}")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:   # includes ModelFormatError, IdxFormatError
        print(f"mbnn: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a missing simulator is reported, not dumped
        from sim.toolchain import SimulatorMissing
        if isinstance(exc, SimulatorMissing):
            print(f"mbnn: error: {exc}", file=sys.stderr)
            return 3
        raise


if __name__ == "__main__":
    sys.exit(main())
