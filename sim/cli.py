"""The ``mbnn`` command line: HDL generation, RTL regressions and the demo."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

__all__ = ["main"]

DEFAULT_BUILD = Path("build")


def _cmd_generate(args) -> int:
    if args.model is not None:
        return _generate_model(args)
    if args.block is None:
        raise ValueError("give a block to generate (bn-binarize) or --model FILE")
    if args.channels is None or args.acc_width is None:
        raise ValueError(f"{args.block} needs --channels and --acc-width")
    from golden.fileio import atomic_write_text
    from periphery.generate import BLOCKS

    params_cls, emit = BLOCKS[args.block]
    params = params_cls(channels=args.channels, acc_width=args.acc_width, fan_in=args.fan_in)
    text = emit(params, name=args.name)
    path = atomic_write_text(Path(args.out) / f"{args.name}.v", text)
    print(path)
    return 0


def _chip(config: str | None, device: str | None = None):
    """The chip of ``--config`` (default 128x128), its device replaced by the preset
    ``--device`` when given."""
    from dataclasses import replace

    from golden.analog.devices import device_preset
    from golden.chip import ChipConfig, load_chip_config
    chip = ChipConfig() if config is None else load_chip_config(config)
    if device is not None:
        try:
            chip = replace(chip, device=device_preset(device))
        except ValueError as exc:
            raise ValueError(f"--device: {exc}") from None
    return chip


def _generate_model(args) -> int:
    from periphery.generate_model import generate_model

    if args.block is not None:
        raise ValueError(f"give either a block ({args.block}) or --model, not both")
    t0 = time.perf_counter()
    manifest = generate_model(args.model, _chip(args.config, args.device), args.out,
                              seed=args.seed, read_time_sec=args.drift_s)
    core = manifest["core"]
    print(f"generated {args.out}: {manifest['model']['architecture']} on {core['tiles']} arrays "
          f"of {core['rows']}x{core['columns']}, {core['reads_per_image']} array reads per "
          f"image, {len(manifest['files'])} files in {time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_regress(args) -> int:
    from sim import regress as rg
    from sim import toolchain
    from sim.junit import merge_junit, write_junit

    if args.merge:
        if not args.junit:
            raise ValueError("--merge needs --junit FILE: the merged report to write")
        tests, failures = merge_junit(args.merge, Path(args.junit))
        print(f"merged {len(args.merge)} reports into {args.junit}: {tests} tests, "
              f"{failures} failed")
        return 0 if tests and not failures else 1
    sims = toolchain.RTL_SIMULATORS if args.sim == "all" else (args.sim,)
    tests = rg.select(rg.plan(sims), args.filter)
    if args.set:
        tests = [t for t in tests if t.set in args.set]
    items = [(t, s) for t in tests for s in rg.seeds_for(args.seed, args.seeds)]
    total = len(items)
    if args.shard:
        items = rg.shard(items, *args.shard, rg.load_costs(args.costs))
    where = f" (shard {args.shard[0]}/{args.shard[1]} of {total})" if args.shard else ""
    if not items:
        print(f"mbnn: error: no tests selected{where}: --sim {args.sim}, --filter "
              f"{args.filter or '(none)'}, --set {args.set or '(all)'} matched none",
              file=sys.stderr)
        return 1
    costs = rg.load_costs(args.costs)
    if args.jobs > 1:     # longest first, so that no long test starts last (stable: ties keep order)
        items.sort(key=lambda item: -rg.cost(item[0], costs))
    if args.list:
        for test, seed in items:
            print(f"{test.id}  seed {seed}  ~{rg.cost(test, costs):.0f} s")
        print(f"{len(items)} tests{where}, ~{sum(rg.cost(t, costs) for t, _ in items):.0f} s "
              f"of work")
        return 0
    if args.export_rtl:
        return _export_rtl(args, items)
    for sim in dict.fromkeys(t.simulator for t, _ in items):
        toolchain.require(sim)        # before anything is generated
    build = Path(args.build)
    gen_seed = None
    if args.rtl_dir:
        from sim.rtl_dir import RtlDir
        gen_seed = RtlDir(args.rtl_dir).seed
        t0 = time.perf_counter()
        rg.preflight([t for t, _ in items], args.rtl_dir, build)
        print(f"--rtl-dir {args.rtl_dir}: every selected module found with the generated "
              f"ports (tables drawn with its seed {gen_seed}; checked in "
              f"{time.perf_counter() - t0:.1f} s)")
    print(f"mbnn regress: {len(items)} tests{where} on {args.jobs} worker"
          f"{'s' if args.jobs > 1 else ''}, build {build}", flush=True)
    progress = _Progress(len(items), rg.is_terminal())

    def done(rec):
        progress.finish(rec)
        verdict = "PASS" if rec.ok else "FAIL"
        print(f"{verdict} {rec.test.id} seed {rec.seed}: {rec.passed} passed, {rec.failed} "
              f"failed, {rec.wall_s:.1f} s", flush=True)
        if not rec.ok:
            for m in rec.messages[:5]:
                print(f"    {m}")
            print(f"    build: {rec.build_dir or '-'}")
            for w in rec.waves:
                print(f"    waves: {w}")
            print(f"    replay: {rg.replay_command(rec.test, rec.seed, args.rtl_dir)}")
        progress.show()

    t0 = time.perf_counter()
    try:
        records = rg.run_tests(items, build, args.jobs, rtl_dir=args.rtl_dir, gen_seed=gen_seed,
                               waves=args.waves, keep_waves=args.keep_waves,
                               on_start=progress.start, on_done=done)
    except KeyboardInterrupt:
        progress.clear()
        print(f"mbnn: interrupted: regress stopped after {progress.finished} of {len(items)} "
              f"tests; no report written", file=sys.stderr)
        return 130
    progress.clear()
    wall = time.perf_counter() - t0
    print(rg.summary_table(records))
    failed = [r for r in records if not r.ok]
    print(f"wall {wall:.1f} s; {len(records) - len(failed)} passed, {len(failed)} failed")
    for rec in failed:
        print(f"  replay: {rg.replay_command(rec.test, rec.seed, args.rtl_dir)}")
    if args.junit:
        write_junit(records, Path(args.junit),
                    lambda rec: rg.replay_command(rec.test, rec.seed, args.rtl_dir))
        print(f"JUnit report: {args.junit}")
    if args.record_costs:
        rg.record_costs(records, Path(args.record_costs))
    print("RESULT: PASS" if not failed else "RESULT: FAIL")
    return 0 if not failed else 1


def _export_rtl(args, items) -> int:
    """Write the Verilog of the selected sets into ``--export-rtl`` (sim.rtl_dir)."""
    import tempfile

    from sim.regressions import generate_verilog
    from sim.rtl_dir import RtlDir

    sets = {}
    with tempfile.TemporaryDirectory(prefix="mbnn-export-") as tmp:
        for key in dict.fromkeys(t.key for t, _ in items):
            block, name = key.split("/")
            sets[key] = generate_verilog(block, name, Path(tmp) / key, args.seed)
        RtlDir.export(args.export_rtl, args.seed, sets)
    files = sum(len(f) for f in sets.values())
    print(f"exported {files} Verilog files of {len(sets)} sets to {args.export_rtl} (seed "
          f"{args.seed}); run them with mbnn regress --rtl-dir {args.export_rtl}")
    return 0


class _Progress:
    """A status line on a terminal (tests done, failed, running); nothing otherwise."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self.finished = self.failed = 0
        self.running: list[str] = []
        self.t0 = time.perf_counter()

    def start(self, test, seed) -> None:
        self.running.append(test.id)
        self.show()

    def finish(self, rec) -> None:
        self.clear()
        self.finished += 1
        self.failed += not rec.ok
        if rec.test.id in self.running:
            self.running.remove(rec.test.id)

    def show(self) -> None:
        if self.enabled:
            line = (f"[{self.finished}/{self.total}] {self.failed} failed, "
                    f"{time.perf_counter() - self.t0:.0f} s; running {', '.join(self.running)}")
            sys.stdout.write("\r" + line[:150].ljust(150))
            sys.stdout.flush()

    def clear(self) -> None:
        if self.enabled:
            sys.stdout.write("\r" + " " * 150 + "\r")
            sys.stdout.flush()


def _cmd_demo(args) -> int:
    from sim import toolchain
    from sim.runner import REPO_ROOT

    mlp = REPO_ROOT / "models" / "mlp.npz"
    nonideal = REPO_ROOT / "configs" / "demo_nonideal.toml"
    print("mbnn demo: shipped MLP -> generated RTL (Amaranth core + behavioural crossbar) -> "
          f"{args.images} MNIST test images through the RTL on {args.sim}, every class, score "
          "and layer checked against the golden model; first on an ideal chip, then on a "
          f"non-ideal one ({nonideal.relative_to(REPO_ROOT)}: RRAM spread, stuck cells, wire, "
          "driver and sense resistance)")
    print(f"  {toolchain.require(args.sim).version}")
    from concurrent.futures import ThreadPoolExecutor

    from periphery.generate_model import generate_model

    build = Path(args.build) / "demo"
    chip = _chip(str(nonideal))
    gen_nonideal = _generated_dir(mlp, chip, args.seed, None, build)

    def program_nonideal() -> float:
        t = time.perf_counter()
        generate_model(mlp, chip, gen_nonideal, seed=args.seed)
        return time.perf_counter() - t

    # Programming the non-ideal chip (every array's parasitic network solved) runs while the
    # ideal chip's RTL is built and simulated: both are mostly waiting on different cores.
    with ThreadPoolExecutor(1) as pool:
        programming = pool.submit(program_nonideal)
        ideal = _run_inference(mlp, None, args.sim, args.images, 0, True, build, args.seed,
                               quiet=False)
        _print_inference(ideal)
        t0 = time.perf_counter()
        program_s = programming.result()
    real = _run_inference(mlp, str(nonideal), args.sim, args.images, 0, True, build, args.seed,
                          quiet=False, share_build=Path(ideal["generated"]), pregenerated=True)
    _print_inference(real)
    print(f"  (programming the non-ideal chip, every array with its parasitics, and generating "
          f"its files: {program_s:.1f} s alongside the ideal run; non-ideal run after it "
          f"{time.perf_counter() - t0:.1f} s)")
    print(f"co-design summary, {args.images} images: ideal chip RTL "
          f"{100 * ideal['rtl_accuracy']:.2f}%, non-ideal chip RTL "
          f"{100 * real['rtl_accuracy']:.2f}% "
          f"(golden read of that chip {100 * real['golden_accuracy']:.2f}%); mismatches "
          f"{ideal['mismatches']} + {real['mismatches']}")
    _print_shipped_models()
    ok = all(s["mismatches"] == 0 and s["images"] == args.images and s.get("passed", True)
             for s in (ideal, real))
    print("RESULT: PASS" if ok else "RESULT: FAIL")
    return 0 if ok else 1


def _generated_dir(model_path: Path, chip, seed, drift_s, build) -> Path:
    """Where ``infer`` generates a model on a chip: one directory per (model, chip, seed,
    read time)."""
    import hashlib
    key = hashlib.sha256(Path(model_path).read_bytes() + repr(chip).encode()
                         + repr((seed, drift_s)).encode()).hexdigest()[:12]
    return Path(build) / f"{Path(model_path).stem}-{key}"


def _run_inference(model, config, sim, images, offset, check_layers, build, seed, device=None,
                   drift_s=None, share_build: Path | None = None, pregenerated: bool = False,
                   crossbar: str = "behavioural", dataset: str = "mnist",
                   quiet=True) -> dict:
    """Generate the hardware of ``model`` and run ``images`` images
    through it on ``sim``; ``golden`` runs the mapped golden model instead."""
    import numpy as np

    from golden.mapping import compile_model, mapped_infer
    from golden.mnist import binarize_pixels, load_mnist
    from golden.model import infer, load_model
    from periphery.generate_model import generate_model
    from sim.regressions import run_core

    chip = _chip(config, device)
    model_path = Path(model)
    loaded = load_model(model_path)          # clear error before any work
    non_ideal = bool(chip.non_ideal_settings())
    test = load_mnist("test")
    if dataset == "mnist":
        if int(np.prod(loaded.arch.input_shape)) != test.images[0].size:
            raise ValueError(f"--model {model_path}: input shape {loaded.arch.input_shape} is not "
                             f"an MNIST image; use --dataset random")
        if offset + images > len(test.labels):
            raise ValueError(f"--images {images} from --offset {offset} exceeds the "
                             f"{len(test.labels)} MNIST test images")
    elif sim == "golden":
        raise ValueError("--dataset random runs the RTL (random images have no labels); give "
                         "--sim icarus or verilator")
    if sim == "golden":
        t0 = time.perf_counter()
        pixels = binarize_pixels(test.images[offset:offset + images])
        labels = test.labels[offset:offset + images]
        mapped = compile_model(loaded, chip)
        want = infer(loaded, pixels)
        if non_ideal:
            from golden.analog.chip_state import analog_infer, program_chip
            got = analog_infer(mapped, program_chip(mapped, seed, drift_s), pixels)
            # the reference of a non-ideal chip is the ideal chip (saturation included)
            ideal = mapped_infer(compile_model(loaded, chip.ideal()), pixels)
            mism = 0
        else:
            got = ideal = mapped_infer(mapped, pixels)
            mism = int(np.sum(np.any(got.scores != want.scores, axis=1)))
        dt = time.perf_counter() - t0
        return {"simulator": "golden", "images": images, "mismatches": mism,
                "rtl_accuracy": None, "golden_accuracy": float(np.mean(got.predictions == labels)),
                "ideal_golden_accuracy": float(np.mean(ideal.predictions == labels)),
                "mapped_accuracy": float(np.mean(got.predictions == labels)),
                "non_ideal_chip": non_ideal,
                "cycles_per_image": None,
                "min_cycles_per_image": mapped.reads_per_image, "images_per_s": images / dt}
    gen_dir = _generated_dir(model_path, chip, seed, drift_s, build)
    t0 = time.perf_counter()
    # Always regenerated (unless the caller just did): a directory left by an older mbnn
    # would otherwise be simulated in place of what this version generates.
    if not pregenerated:
        generate_model(model_path, chip, gen_dir, seed=seed, read_time_sec=drift_s)
    gen_s = time.perf_counter() - t0
    if crossbar == "vacask":
        # every array read answered by the Verilog-A arrays solved in VACASK (batched ahead
        # from the golden schedule); the core alone is simulated
        from sim.cosim_vacask import run_core_vacask
        run = run_core_vacask(gen_dir, sim, Path(build) / "sim-vacask", gen_dir.name, images,
                              offset=offset, check_layers=check_layers, seed=seed,
                              dataset=dataset)
        if not quiet:
            print(run.result.summary())
        if run.summary is None:
            raise RuntimeError(f"the RTL run produced no summary: {run.result.summary()}")
        out = dict(run.summary)
        out.update(simulator=sim, generate_s=time.perf_counter() - t0 - run.result.build_s
                   - run.result.test_s, build_s=run.result.build_s, run_s=run.result.test_s,
                   generated=str(gen_dir), passed=run.result.ok)
        return out
    name, sources = gen_dir.name, None
    if share_build is not None and all(
            (gen_dir / f).read_bytes() == (Path(share_build) / f).read_bytes()
            for f in ("bnn_system.v", "mbnn_crossbar.v")):
        # the same hardware with other conductance files: reuse that run's simulator build
        name, sources = Path(share_build).name, Path(share_build)
    run = run_core(gen_dir, sim, Path(build) / "sim", name, images, offset=offset,
                   check_layers=check_layers, seed=seed, sources_dir=sources, dataset=dataset,
                   crossbar_vpi=crossbar == "compiled")
    if not quiet:
        print(run.result.summary())
    if run.summary is None:
        raise RuntimeError(f"the RTL run produced no summary: {run.result.summary()}")
    out = dict(run.summary)
    out.update(simulator=sim, crossbar=crossbar, generate_s=gen_s, build_s=run.result.build_s,
               run_s=run.result.test_s, generated=str(gen_dir), passed=run.result.ok)
    return out


def _print_inference(s: dict) -> None:
    if s["simulator"] == "golden":
        if s["non_ideal_chip"]:
            print(f"golden read of the non-ideal chip: {s['images']} images, accuracy "
                  f"{100 * s['golden_accuracy']:.2f}% (ideal chip "
                  f"{100 * s['ideal_golden_accuracy']:.2f}%), {s['min_cycles_per_image']} "
                  f"array reads per image")
            return
        print(f"golden mapped model: {s['images']} images, {s['mismatches']} differ from the "
              f"unmapped model, accuracy {100 * s['mapped_accuracy']:.2f}%, "
              f"{s['min_cycles_per_image']} array reads per image")
        return
    print(f"RTL on {s['simulator']}: {s['images']} images, {s['mismatches']} mismatches against "
          f"the golden model (class, scores{', layer bits' if s['layer_checks'] else ''})")
    if s.get("rtl_accuracy") is not None:
        chip = "this non-ideal chip" if s.get("non_ideal_chip") else "golden"
        print(f"  accuracy: RTL {100 * s['rtl_accuracy']:.2f}%, {chip} "
              f"{100 * s['golden_accuracy']:.2f}%"
              + (f", ideal chip {100 * s['ideal_golden_accuracy']:.2f}%"
                 if s.get("non_ideal_chip") else ""))
    if s.get("crossbar") == "vacask":
        print(f"  array reads answered by VACASK: {s['reads_answered']} ({s['reads_distinct']} "
              f"distinct, {s['vacask_runs']} VACASK run(s), {s['vacask_wall_s']:.1f} s); "
              f"codes differing from the golden read: {s['code_disagreements']}, reads within "
              f"{s['boundary_margin_lsb']:g} LSB of an ADC boundary: {s['near_boundary_reads']}")
    print(f"  cycles per image: {s['cycles_per_image']:.0f} (analytical minimum "
          f"{s['min_cycles_per_image']}: one array read per cycle)")
    print(f"  simulation: {s['images_per_s']:.1f} images/s; build {s['build_s']:.1f} s, "
          f"whole run {s['run_s']:.1f} s")


def _cmd_infer(args) -> int:
    import json as _json
    if args.crossbar == "vacask" and args.sim == "golden":
        raise ValueError("--crossbar vacask answers the RTL's reads: give --sim icarus or "
                         "verilator, not golden")
    if args.crossbar == "compiled" and args.sim != "icarus":
        raise ValueError(f"--crossbar compiled is the crossbar's VPI read for Icarus; "
                         f"--sim {args.sim} takes --crossbar behavioural (Verilator compiles the "
                         f"Verilog crossbar itself)")
    summary = _run_inference(args.model, args.config, args.sim, args.images, args.offset,
                             not args.no_layer_check, Path(args.build), args.seed,
                             device=args.device, drift_s=args.drift_s, crossbar=args.crossbar,
                             dataset=args.dataset)
    if args.json:
        print(_json.dumps(summary, sort_keys=True))
    else:
        _print_inference(summary)
    return 0 if summary["mismatches"] == 0 and summary.get("passed", True) else 1


def _print_shipped_models(evaluate: tuple[str, ...] = ("mlp.npz",)) -> None:
    """Golden (integer) accuracy of the shipped models on the 10k MNIST test images: evaluated
    now for the files named in ``evaluate``, the accuracy recorded in the file for the others
    (the test suite checks that record against a fresh evaluation)."""
    from golden.mnist import binarize_pixels, load_mnist
    from golden.model import infer, load_model
    from sim.runner import REPO_ROOT

    test = load_mnist("test")
    pixels = binarize_pixels(test.images)
    for path in sorted((REPO_ROOT / "models").glob("*.npz")):
        model = load_model(path)
        if path.name not in evaluate:
            print(f"golden model {path.name}: {model.arch.name}, test accuracy "
                  f"{100 * model.metadata['test_accuracy']:.2f}% on {len(pixels)} images "
                  f"(recorded in the model file)")
            continue
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


def _cmd_spice_check(args) -> int:
    import json

    from golden.analog.parasitics import Parasitics
    from sim.circuit.check import spice_check

    result = spice_check(args.rows, args.cols,
                         Parasitics(args.r_wire, args.r_source, args.r_sense),
                         device_name=args.device, seed=args.seed, ngspice=args.ngspice,
                         iv_v0_v=args.iv_v0, timeout_s=args.timeout)
    if args.json:
        print(json.dumps(result.as_dict(), sort_keys=True))
    else:
        law = "sinh I-V" if result.nonlinear else "linear cells"
        print(f"{result.rows}x{result.columns} array, device {result.device}, {law}, "
              f"seed {result.seed}")
        print(f"max_rel_err: {result.max_rel_err:.3e} (golden vs VACASK; tolerance "
              f"{result.tolerance:g})")
        if result.ngspice_max_rel_err is not None:
            print(f"ngspice_max_rel_err: {result.ngspice_max_rel_err:.3e} (golden vs ngspice)")
        print(f"golden: {result.golden_precompute_s:.3f} s precompute, "
              f"{result.golden_read_s * 1e3:.3f} ms read, "
              f"{result.precomputed_bytes / 2**20:.1f} MiB held")
        print(f"vacask: {result.vacask_s:.3f} s per operating point")
        if result.ngspice_s is not None:
            print(f"ngspice: {result.ngspice_s:.3f} s per operating point")
        print(f"ir_drop_v: {result.ir_drop_v:.6f} (worst cell, every row at V_read)")
        print("RESULT " + ("PASS" if result.passed else "FAIL"))
    return 0 if result.passed else 1


def _eval_chip(base, values: dict):
    """The chip of ``evaluate``: ``base`` with the option values."""
    from dataclasses import replace

    from golden.analog.devices import device_preset
    dev = base.device
    overrides = {}
    if "variation" in values:
        overrides["g_dtod_sigma_ln"] = values["variation"]
    if "saf-rate" in values:
        overrides["stuck_on_rate"] = overrides["stuck_off_rate"] = values["saf-rate"] / 2
    if overrides:
        dev = device_preset(dev.preset, **{**_device_overrides(dev), **overrides})
    chip = replace(base, device=dev)
    if "r-wire" in values:
        chip = replace(chip, r_wire_ohm=values["r-wire"])
    if "adc-bits" in values:
        chip = replace(chip, adc_bits=int(values["adc-bits"]), adc_full_scale=None)
    return chip


def _device_overrides(dev) -> dict:
    """The parameters of ``dev`` that differ from its preset's defaults."""
    from golden.analog.devices import device_preset
    base = device_preset(dev.preset).record()
    return {k: v for k, v in dev.record().items() if k != "preset" and base.get(k) != v}


def _parse_sweep(text: str, fixed: dict) -> tuple[str, list]:
    """``--sweep PARAM=V1,V2,...`` as (PARAM, values), each value checked by PARAM's own
    option type; ``fixed`` are the non-ideality options given, which must not include PARAM."""
    name, eq, values_text = text.partition("=")
    if name not in _EVAL_PARAMS:
        raise ValueError(f"--sweep: unknown parameter {name!r}; expected one of "
                         f"{', '.join(_EVAL_PARAMS)}")
    parse = _EVAL_PARAMS[name].parse
    if not eq or not values_text.strip():
        raise ValueError(f"--sweep {text!r}: no values; expected {name}=V1,V2,...")
    values = []
    for item in values_text.split(","):
        try:
            values.append(parse(item.strip()))
        except argparse.ArgumentTypeError:
            raise ValueError(f"--sweep {text!r}: expected {name}=V1,V2,... with each value "
                             f"{parse.description}, not {item.strip()!r}") from None
    twice = next((v for k, v in enumerate(values) if v in values[:k]), None)
    if twice is not None:
        raise ValueError(f"--sweep {text!r}: the value {twice:g} is given twice; expected "
                         f"distinct values")
    if name in fixed:
        raise ValueError(f"--sweep {text!r} and --{name} {fixed[name]:g} both set {name}; "
                         f"give one of them")
    return name, values


def _checked_eval_chip(base, values: dict, where: str):
    """:func:`_eval_chip`, with the read time checked against the device's drift t0 too (the
    programming would refuse it only once the Monte Carlo is under way); errors start with
    ``where``, the option that set the values."""
    try:
        chip = _eval_chip(base, values)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    t0 = chip.device.drift_t0_sec
    if values.get("drift-s") is not None and values["drift-s"] < t0:
        raise ValueError(f"{where}: expected a read time >= the device's drift t0 ({t0:g} s), "
                         f"not {values['drift-s']:g} s")
    return chip


def _series(label: str, row: dict) -> list[tuple[str, dict]]:
    """The curves of one result row: the chips as programmed, and calibrated if asked."""
    out = [(label, row)]
    if "calibrated" in row:
        out.append((f"{label}, thresholds calibrated", row["calibrated"]))
    return out


def _evaluate_figure(plots, out: dict, parameter: str | None, device: str):
    """The figure of an ``evaluate`` run from its JSON record ``out``: accuracy against the
    swept ``parameter`` (its ``--sweep`` name), or each chip's accuracy without a sweep."""
    model = Path(out["model"]).name
    label = f"device {device}"
    rows = out["results"]
    if parameter is None:
        row = rows[0]
        return plots.chips_figure(plots.ChipSpread(
            seeds=[out["seed"] + k for k in range(out["chips"])],
            series=[plots.ChipSeries(name, [100.0 * a for a in r["accuracies"]],
                                     100.0 * r["mean"], 100.0 * r["std"])
                    for name, r in _series(label, row)],
            ideal_pct=100.0 * row["ideal_accuracy"], model=model, images=out["images"]))
    return plots.sweep_figure(plots.AccuracySweep(
        parameter=_EVAL_PARAMS[parameter].axis, values=[row["value"] for row in rows],
        series=[plots.SweepSeries.from_accuracy_rows(name, [_series(label, r)[k][1]
                                                             for r in rows])
                for k, (name, _) in enumerate(_series(label, rows[0]))],
        ideal_pct=[100.0 * row["ideal_accuracy"] for row in rows], model=model,
        chips=out["chips"], images=out["images"]))


def _cmd_evaluate(args) -> int:
    import json

    from golden.analog.evaluate import evaluate_chips
    from golden.mnist import binarize_pixels, load_mnist
    from golden.model import load_model

    # everything checked before the first chip is programmed (the --plot path by its type)
    plots = None
    if args.plot is not None:
        from sim import plots   # matplotlib: imported now, so a broken install fails first
    model = load_model(args.model)
    base = _chip(args.config, args.device)
    fixed = {k: getattr(args, k.replace("-", "_")) for k in _EVAL_PARAMS
             if getattr(args, k.replace("-", "_")) is not None}
    for k, v in fixed.items():      # each option alone, so an error names the one at fault
        _checked_eval_chip(base, {k: v}, f"--{k} {v:g}")
    sweep_name, sweep_values = None, [None]
    if args.sweep is not None:
        sweep_name, sweep_values = _parse_sweep(args.sweep, fixed)
    chips = []
    for v in sweep_values:
        values = dict(fixed, **({sweep_name: v} if sweep_name else {}))
        where = (f"--sweep {sweep_name}={v:g}" if sweep_name
                 else " ".join(f"--{k} {x:g}" for k, x in fixed.items()) or "evaluate")
        chips.append((v, _checked_eval_chip(base, values, where), values.get("drift-s")))
    test = load_mnist("test")
    if args.images > len(test.labels):
        raise ValueError(f"--images {args.images} exceeds the {len(test.labels)} MNIST test "
                         f"images")
    pixels = binarize_pixels(test.images[:args.images])
    labels = test.labels[:args.images]
    calibration = None
    if args.calibrate is not None:
        train = load_mnist("train")
        if not 2 <= args.calibrate <= len(train.labels):
            raise ValueError(f"--calibrate {args.calibrate}: expected 2 to "
                             f"{len(train.labels)} MNIST training images")
        calibration = binarize_pixels(train.images[:args.calibrate])
    tty = sys.stderr.isatty() and not args.json

    def progress(done, total):
        if tty:
            print(f"\r  chips {done}/{total}", end="" if done < total else "\n",
                  file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    results = []
    for v, chip, drift in chips:
        acc = evaluate_chips(model, chip, pixels, labels, args.chips, args.seed, drift,
                             progress=progress, calibration_pixels=calibration)
        row = dict(acc.as_dict(), value=v, device=chip.device.record(),
                   r_wire_ohm=chip.r_wire_ohm, adc_bits=chip.adc_bits)
        results.append(row)
        if not args.json:
            label = f"{sweep_name} = {v:g}: " if sweep_name else ""
            print(f"{label}accuracy over {args.chips} chips: mean {100 * row['mean']:.2f}%, std "
                  f"{100 * row['std']:.2f}, min {100 * row['min']:.2f}%, max "
                  f"{100 * row['max']:.2f}% (ideal chip {100 * row['ideal_accuracy']:.2f}%)")
            if "calibrated" in row:
                cal = row["calibrated"]
                print(f"{' ' * len(label)}calibrated on {args.calibrate} training images: mean "
                      f"{100 * cal['mean']:.2f}%, std {100 * cal['std']:.2f}, min "
                      f"{100 * cal['min']:.2f}%, max {100 * cal['max']:.2f}%")
    out = {"model": str(args.model), "images": args.images, "chips": args.chips,
           "seed": args.seed, "sweep": sweep_name, "results": results,
           "calibration_images": args.calibrate,
           "wall_s": time.perf_counter() - t0}
    if plots is not None:
        fig = _evaluate_figure(plots, out, sweep_name, base.device.preset)
        out["plot"] = str(plots.write_png(fig, args.plot))
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print(f"{len(results) * args.chips} chips x {args.images} images in "
              f"{out['wall_s']:.1f} s (read noise on every read)")
        if plots is not None:
            print(f"plot: {out['plot']}")
    return 0


def _real(description: str, lo: float, lo_open: bool, hi: float = float("inf")):
    """An argparse type: a finite float in ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``); bad
    text and out-of-range values are "expected <description>, not <text>"."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        ok = math.isfinite(value) and (value > lo if lo_open else value >= lo) and value <= hi
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {description}, not {text}")
        return value
    parse.description = description       # for messages about values not given as options
    return parse


_ohms = _real("a finite resistance >= 0 ohms", 0.0, False)
_volts = _real("a finite voltage > 0", 0.0, True)
_seconds = _real("a finite time > 0 s", 0.0, True)
_non_negative = _real("a finite number >= 0", 0.0, False)
_fraction = _real("a number in [0, 1]", 0.0, False, 1.0)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a seed >= 0, not {value}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {value}")
    return value


_positive.description = "a positive integer"


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N (shard I of N), not {text!r}") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N, not {text!r}")
    return index, count


def _check_regress_args(parser, args) -> None:
    """Conflicting or useless combinations of regress options, refused before any work."""
    if args.merge and (args.list or args.export_rtl or args.rtl_dir or args.shard):
        parser.error("--merge only merges reports: use it with --junit FILE alone")
    if args.export_rtl and args.rtl_dir:
        parser.error("--export-rtl writes a tree and --rtl-dir runs one: give one of them")
    if args.keep_waves and not args.waves:
        parser.error("--keep-waves needs --waves")
    for option in ("junit", "record_costs"):
        if getattr(args, option):
            _check_output_file(parser, f"--{option.replace('_', '-')}",
                               Path(getattr(args, option)))


def _check_output_file(parser, option: str, path: Path) -> None:
    """An output file the command will write at the end: refused now if it cannot be."""
    if path.is_dir():
        parser.error(f"{option} {path}: is a directory; expected a file to write")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        parser.error(f"{option} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK):
        parser.error(f"{option} {path}: {parent} is not writable")


def _png_path(text: str) -> Path:
    """An argparse type: a ``.png`` file to (over)write in an existing, writable directory,
    checked when the command line is read: a long run must not fail at its end on its output
    path."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a .png file, not the directory {text}")
    if path.suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"expected a file name ending in .png, not {text}")
    parent = path.parent
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"expected a .png file in an existing directory, not "
                                         f"{text} ({parent} is not a directory)")
    # access() answers for this user (and for a read-only file system); root passes it
    # everywhere else, where writing does succeed
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"expected a .png file in a writable directory, not "
                                         f"{text} ({parent} is not writable)")
    return path


class _EvalParam(NamedTuple):
    """A non-ideality option of ``evaluate``: its help and metavar, its argparse type (which
    also checks each ``--sweep`` value) and its plot axis label with the unit."""

    help: str
    metavar: str
    parse: Callable[[str], float]
    axis: str


_EVAL_PARAMS = {
    "variation": _EvalParam("device g_dtod_sigma_ln: lognormal programming spread (sigma of "
                            "ln G)", "X", _non_negative, "programming spread σ(ln G)"),
    "saf-rate": _EvalParam("stuck-at fault rate, split evenly between stuck at G_on and at "
                           "G_off", "X", _fraction, "stuck-at fault rate (fraction of cells)"),
    "r-wire": _EvalParam("wire resistance per cell segment, ohms", "OHM", _ohms,
                         "wire resistance per cell segment (ohm)"),
    "adc-bits": _EvalParam("ADC resolution, bits", "N", _positive, "ADC resolution (bits)"),
    "drift-s": _EvalParam("read time after programming, seconds", "T", _seconds,
                          "read time after programming (s)"),
}


def build_parser() -> argparse.ArgumentParser:
    from sim.runner import DEFAULT_SEED

    parser = argparse.ArgumentParser(
        prog="mbnn", description="Co-design toolchain for a memristive binary neural network "
                                 "accelerator: golden model, HDL generation, RTL verification.")
    parser.add_argument("--version", action="version", version="mbnn 0.1.0")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="write the Verilog of a periphery block, or of a "
                                          "whole model on a chip (--model)")
    gen.add_argument("block", nargs="?", choices=["bn-binarize"], help="block to generate")
    gen.add_argument("--model", default=None,
                     help="model file: write the core, crossbar, conductances and manifest")
    gen.add_argument("--config", default=None, help="chip configuration TOML (with --model)")
    gen.add_argument("--device", default=None,
                     help="device preset replacing the configuration's (with --model)")
    gen.add_argument("--seed", type=_seed, default=None,
                     help="seed programming a non-ideal chip (device and ADC draws)")
    gen.add_argument("--drift-s", type=_seconds, default=None, metavar="T",
                     help="read time after programming, seconds (drift; default t0)")
    gen.add_argument("--channels", type=_positive, default=None, help="output channels")
    gen.add_argument("--acc-width", type=_positive, default=None,
                     help="signed pre-activation width in bits")
    gen.add_argument("--fan-in", type=_positive, default=None,
                     help="products per pre-activation; checks that --acc-width can hold them")
    gen.add_argument("--name", default="bn_binarize", help="Verilog module name")
    gen.add_argument("--out", required=True, help="output directory")
    gen.set_defaults(func=_cmd_generate)

    reg = sub.add_parser("regress", help="run the RTL regression (cocotb: every block's "
                         "parameter sets and whole networks) on the simulators")
    reg.add_argument("--sim", choices=["icarus", "verilator", "all"], default="all")
    reg.add_argument("--seed", type=_seed, default=DEFAULT_SEED,
                     help=f"seed of every test (default {DEFAULT_SEED})")
    reg.add_argument("--seeds", type=_positive, default=1, metavar="N",
                     help="run each test with N seeds: --seed, --seed + 1, ...")
    reg.add_argument("-j", "--jobs", type=_positive, default=1, metavar="N",
                     help="parallel workers (one test each)")
    reg.add_argument("--filter", action="append", metavar="REGEX",
                     help="run tests whose id (block/set/simulator) matches (repeatable)")
    reg.add_argument("--set", action="append", help="parameter set name (repeatable)")
    reg.add_argument("--list", action="store_true", help="print what would run, run nothing")
    reg.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                     help="run shard I of N (balanced by recorded test costs; the N shards "
                          "together run every test once)")
    reg.add_argument("--costs", default=None, metavar="FILE",
                     help="test costs (JSON id -> seconds) for --shard; default the recorded "
                          "sim/regress_costs.json")
    reg.add_argument("--record-costs", default=None, metavar="FILE",
                     help="merge this run's measured test times into FILE")
    reg.add_argument("--junit", default=None, metavar="FILE", help="write a JUnit XML report")
    reg.add_argument("--merge", nargs="+", default=None, metavar="XML",
                     help="merge JUnit reports of shards into --junit FILE (runs nothing)")
    reg.add_argument("--rtl-dir", default=None, metavar="DIR",
                     help="simulate the Verilog in DIR (a tree written by --export-rtl, then "
                          "edited) instead of freshly generated files")
    reg.add_argument("--export-rtl", default=None, metavar="DIR",
                     help="write the selected tests' generated Verilog to DIR, run nothing")
    reg.add_argument("--build", default=str(DEFAULT_BUILD / "regress"), help="build root")
    reg.add_argument("--waves", action="store_true",
                     help="dump waveforms (FST on Icarus, VCD on Verilator); kept for failed "
                          "tests only unless --keep-waves")
    reg.add_argument("--keep-waves", action="store_true",
                     help="keep the waveforms of passing tests too")
    reg.set_defaults(func=_cmd_regress)

    tr = sub.add_parser("train", help="train a BNN on MNIST and write a model file")
    tr.add_argument("--arch", choices=["mlp", "cnn"], required=True)
    tr.add_argument("--epochs", type=_positive, default=None,
                    help="epochs (default: the shipped model's recipe)")
    tr.add_argument("--seed", type=_seed, default=1)
    tr.add_argument("--weight-noise", type=_non_negative, default=0.0,
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

    inf = sub.add_parser("infer", help="MNIST test images through the generated RTL (or the "
                                       "golden mapped model), checked against the golden model")
    inf.add_argument("--model", required=True)
    inf.add_argument("--config", default=None, help="chip configuration TOML (default 128x128)")
    inf.add_argument("--sim", choices=["icarus", "verilator", "golden"], default="verilator")
    inf.add_argument("--images", type=_positive, default=200)
    inf.add_argument("--offset", type=int, default=0, help="first test image")
    inf.add_argument("--no-layer-check", action="store_true",
                     help="check classes and scores only (not every layer's bits)")
    inf.add_argument("--seed", type=_seed, default=DEFAULT_SEED,
                     help="cocotb seed, and the seed programming a non-ideal chip")
    inf.add_argument("--device", default=None,
                     help="device preset replacing the configuration's")
    inf.add_argument("--dataset", choices=["mnist", "random"], default="mnist",
                     help="MNIST test images, or seeded random inputs (models of other shapes)")
    inf.add_argument("--crossbar", choices=["behavioural", "compiled", "vacask"],
                     default="behavioural",
                     help="who answers the RTL's array reads: the behavioural Verilog crossbar; "
                          "its compiled read (Icarus: the same codes from a VPI module, several "
                          "times faster); or the Verilog-A arrays in VACASK (small chips: every "
                          "distinct read is solved)")
    inf.add_argument("--drift-s", type=_seconds, default=None, metavar="T",
                     help="read time after programming, seconds (drift; default t0)")
    inf.add_argument("--build", default=str(DEFAULT_BUILD / "infer"))
    inf.add_argument("--json", action="store_true", help="print one JSON object")
    inf.set_defaults(func=_cmd_infer)

    ev2 = sub.add_parser("evaluate", help="Monte-Carlo accuracy over many non-ideal chips "
                                          "(golden reads with read noise)")
    ev2.add_argument("--model", required=True)
    ev2.add_argument("--config", default=None, help="chip configuration TOML")
    ev2.add_argument("--device", default=None, help="device preset replacing the config's")
    for name, param in _EVAL_PARAMS.items():
        ev2.add_argument(f"--{name}", type=param.parse, default=None,
                         metavar=param.metavar, help=param.help)
    ev2.add_argument("--chips", type=_positive, required=True, metavar="K",
                     help="chips (seeds S, S+1, ...)")
    ev2.add_argument("--images", type=_positive, default=10000)
    ev2.add_argument("--seed", type=_seed, default=1)
    ev2.add_argument("--sweep", default=None, metavar="PARAM=V1,V2,...",
                     help=f"accuracy against one parameter ({', '.join(_EVAL_PARAMS)})")
    ev2.add_argument("--calibrate", type=_positive, default=None, metavar="N",
                     help="also calibrate every chip's thresholds on the first N MNIST "
                          "training images (golden/analog/calibration.py) and report both")
    ev2.add_argument("--plot", type=_png_path, default=None, metavar="FILE.png",
                     help="draw accuracy against the --sweep parameter (without --sweep: each "
                          "chip's accuracy) to this PNG")
    ev2.add_argument("--json", action="store_true")
    ev2.set_defaults(func=_cmd_evaluate)

    sc = sub.add_parser("spice-check", help="golden parasitic solver vs VACASK (and ngspice) "
                                            "on one random programmed array")
    sc.add_argument("--rows", type=_positive, required=True, help="word lines")
    sc.add_argument("--cols", type=_positive, required=True, help="bit-line columns (cells)")
    sc.add_argument("--r-wire", type=_ohms, default=2.0, metavar="OHM",
                    help="wire resistance per cell segment (default 2)")
    sc.add_argument("--r-source", type=_ohms, default=10.0, metavar="OHM",
                    help="word-line driver resistance (default 10)")
    sc.add_argument("--r-sense", type=_ohms, default=10.0, metavar="OHM",
                    help="column sense resistance to virtual ground (default 10)")
    sc.add_argument("--device", default="ideal", help="device preset programming the array")
    sc.add_argument("--iv-v0", type=_volts, default=None, metavar="V",
                    help="sinh I-V law with this characteristic voltage (default: the "
                         "device's law)")
    sc.add_argument("--ngspice", action="store_true",
                    help="also solve the plain-resistor netlist in ngspice (linear cells)")
    sc.add_argument("--seed", type=_seed, default=1)
    sc.add_argument("--timeout", type=_seconds, default=600.0, metavar="S",
                    help="time limit per simulator run (default 600)")
    sc.add_argument("--json", action="store_true", help="print one JSON object")
    sc.set_defaults(func=_cmd_spice_check)

    demo = sub.add_parser("demo", help="the README's main command")
    demo.add_argument("--seed", type=_seed, default=DEFAULT_SEED)
    demo.add_argument("--sim", choices=["icarus", "verilator"], default="verilator")
    demo.add_argument("--images", type=_positive, default=300)
    demo.add_argument("--build", default=str(DEFAULT_BUILD))
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "set", None):
        from sim.regressions import regression_sets
        known = list(dict.fromkeys(n for names in regression_sets().values() for n in names))
        unknown = [s for s in args.set if s not in known]
        if unknown:
            parser.error(f"unknown parameter set {unknown[0]!r}; expected one of "
                         f"{', '.join(known)}")
    if args.command == "regress":
        _check_regress_args(parser, args)
    if getattr(args, "offset", 0) < 0:
        parser.error(f"--offset must be >= 0, not {args.offset}")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, MemoryError) as exc:
        # includes ModelFormatError, IdxFormatError, and solves refused for their memory
        print(f"mbnn: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a missing simulator is reported, not dumped
        from sim.circuit import CircuitSimulationError
        from sim.toolchain import SimulatorMissing
        if isinstance(exc, SimulatorMissing):
            print(f"mbnn: error: {exc}", file=sys.stderr)
            return 3
        if isinstance(exc, CircuitSimulationError):
            print(f"mbnn: error: {exc}", file=sys.stderr)
            return 4
        if isinstance(exc, RuntimeError):     # a simulation that could not report
            print(f"mbnn: error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
