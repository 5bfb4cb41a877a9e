"""The engine of ``mbnn regress``: which tests exist, which ones a run selects (filter, seeds,
shard), running them on parallel workers, and what a run reports (one line per test, a
summary table, replay commands).

A test is one regression (:mod:`sim.regressions`) -- a block's parameter set or a whole
network -- on one simulator with one seed; its id is ``block/set/simulator``. The order of
:func:`plan` is fixed, so selections, shards and reports are deterministic.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from golden.fileio import atomic_write_text

__all__ = ["RegressionTest", "plan", "select", "seeds_for", "load_costs", "shard", "TestRecord",
           "run_test", "run_tests", "preflight", "replay_command", "summary_table", "coverage_table",
           "COSTS_FILE"]

# Measured wall time of each test (seconds, one test alone on the 2-core reference machine),
# recorded with `mbnn regress --record-costs`; used to balance shards.
COSTS_FILE = Path(__file__).with_name("regress_costs.json")
# Estimates for tests the cost file does not know (a new parameter set): seconds per block on
# (icarus, verilator), rounded from earlier measurements of the same blocks.
_ESTIMATE_S = {"bn_binarize": (3, 8), "accumulator": (4, 9), "sequencer": (4, 9),
               "programming": (4, 9), "update_unit": (4, 9), "crossbar": (4, 10),
               "network": (60, 60)}


@dataclass(frozen=True)
class RegressionTest:
    """One regression on one simulator (the seed is chosen per run)."""

    block: str
    set: str
    simulator: str

    @property
    def key(self) -> str:
        """``block/set``: what the Verilog depends on (not the simulator)."""
        return f"{self.block}/{self.set}"

    @property
    def id(self) -> str:
        return f"{self.block}/{self.set}/{self.simulator}"


def plan(simulators) -> list[RegressionTest]:
    """Every test on ``simulators``, blocks first and whole networks last."""
    from .regressions import regression_sets

    return [RegressionTest(block, name, sim) for block, names in regression_sets().items()
            for name in names for sim in simulators]


def select(tests: list, patterns: list[str] | None, key=lambda test: test.id) -> list:
    """The tests whose id (or ``key(test)``) matches any of the regular expressions
    ``patterns`` (all when none is given).

    Raises
    ------
    ValueError
        A pattern is not a regular expression (naming ``--filter`` and the pattern).
    """
    if not patterns:
        return list(tests)
    compiled = []
    for p in patterns:
        try:
            compiled.append(re.compile(p))
        except re.error as exc:
            raise ValueError(f"--filter {p!r}: not a regular expression ({exc})") from None
    return [t for t in tests if any(c.search(key(t)) for c in compiled)]


def seeds_for(seed: int, count: int) -> list[int]:
    """The seeds of ``--seed S --seeds N``: S, S+1, ..., S+N-1."""
    return [seed + k for k in range(count)]


def load_costs(path: Path | None = None) -> dict[str, float]:
    """Recorded test costs (id -> seconds) from ``path`` (default :data:`COSTS_FILE`).

    Raises
    ------
    ValueError
        The file is not a JSON object of numbers (naming the file).
    """
    path = COSTS_FILE if path is None else Path(path)
    if not path.is_file():
        if path == COSTS_FILE:
            return {}
        raise ValueError(f"--costs {path}: no such file")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise TypeError
        return {str(k): float(v) for k, v in data.items()}
    except (ValueError, TypeError):
        raise ValueError(f"--costs {path}: expected a JSON object of test id -> seconds") \
            from None


def cost(test: RegressionTest, costs: dict[str, float]) -> float:
    """Seconds ``test`` is expected to take: recorded, else the block's estimate."""
    if test.id in costs:
        return costs[test.id]
    icarus_s, verilator_s = _ESTIMATE_S.get(test.block, (10, 10))
    return icarus_s if test.simulator == "icarus" else verilator_s


def shard(items: list, index: int, count: int, costs: dict[str, float]) -> list:
    """Shard ``index`` (1-based) of ``count`` of ``items`` ((test, seed) pairs).

    Longest first onto the least loaded shard (ties: the lower shard), from the items' fixed
    order, so every runner given the same selection and costs computes the same split, and the
    shards together hold every item exactly once."""
    if not 1 <= index <= count:
        raise ValueError(f"--shard {index}/{count}: expected I/N with 1 <= I <= N")
    order = sorted(range(len(items)), key=lambda k: (-cost(items[k][0], costs), k))
    load = [0.0] * count
    owner = {}
    for k in order:
        target = min(range(count), key=lambda s: (load[s], s))
        owner[k] = target
        load[target] += cost(items[k][0], costs)
    return [items[k] for k in range(len(items)) if owner[k] == index - 1]


@dataclass
class TestRecord:
    """What one test did."""

    test: RegressionTest
    seed: int
    passed: int = 0                 # cocotb tests passed
    failed: int = 0                 # cocotb tests failed (or the build, or an error)
    messages: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    build_dir: str = ""
    waves: list[str] = field(default_factory=list)
    coverage: dict | None = None          # sim.coverage: {"block", "bins": {name: {hits}}}

    @property
    def ok(self) -> bool:
        return self.passed > 0 and self.failed == 0


def _build_root(root: Path, seed: int) -> Path:
    # one tree per seed: tests of different seeds may run at the same time
    return Path(root) / f"seed-{seed}"


def run_test(test: RegressionTest, seed: int, build_root: str, rtl_dir: str | None = None,
             gen_seed: int | None = None, waves: bool = False,
             keep_waves: bool = False) -> TestRecord:
    """Run one test (in a worker process: arguments and result are plain data).

    ``gen_seed``: the seed the Verilog's tables and random models are drawn with (with
    ``rtl_dir``, the one the tree was exported with); default ``seed``. Waveforms of passing
    tests are deleted unless ``keep_waves``."""
    from . import regressions as r
    from .rtl_dir import RtlDir

    t0 = time.perf_counter()
    root = _build_root(Path(build_root).resolve(), seed)
    ext = RtlDir(rtl_dir) if rtl_dir else None
    record = TestRecord(test, seed)
    try:
        if test.block == "bn_binarize":
            result = r.run_bn_binarize(test.set, test.simulator, root, seed, waves, rtl_dir=ext)
        elif test.block == "accumulator":
            result = r.run_accumulator(test.set, test.simulator, root, seed, waves, gen_seed,
                                       rtl_dir=ext)
        elif test.block == "sequencer":
            result = r.run_sequencer(test.set, test.simulator, root, seed, waves=waves,
                                     gen_seed=gen_seed, rtl_dir=ext)
        elif test.block == "programming":
            result = r.run_programming(test.set, test.simulator, root, seed, waves, gen_seed,
                                       rtl_dir=ext)
        elif test.block == "update_unit":
            result = r.run_update_unit(test.set, test.simulator, root, seed, waves,
                                       rtl_dir=ext)
        elif test.block == "crossbar":
            result = r.run_crossbar(test.set, test.simulator, root, seed, waves=waves,
                                    rtl_dir=ext)
        elif test.block == "network":
            result = r.run_network(test.set, test.simulator, root, seed, waves, gen_seed,
                                   rtl_dir=ext).result
        else:
            raise ValueError(f"unknown block {test.block!r}")
    except Exception as exc:      # generation or set-up failed: a failed test, reported
        record.failed = 1
        record.messages = [f"{type(exc).__name__}: {exc}"]
        record.wall_s = time.perf_counter() - t0
        return record
    record.passed, record.failed = result.passed, result.failed
    record.coverage = result.coverage
    if not result.outcomes or not result.ok:
        record.failed = max(record.failed, 1)
    record.messages = [f"{o.name}: {o.message}" for o in result.outcomes if not o.passed]
    record.build_dir = str(result.build_dir)
    dumps = sorted(p for pattern in ("*.fst", "*.vcd") for p in result.build_dir.glob(pattern))
    if record.ok and not keep_waves:
        for p in dumps:
            p.unlink()
        dumps = []
    record.waves = [str(p) for p in dumps]
    record.wall_s = time.perf_counter() - t0
    return record


def preflight(tests: list[RegressionTest], rtl_dir: str, build_root: Path) -> None:
    """Check, before any simulation, that ``rtl_dir`` holds every selected set's Verilog
    with the generated modules' ports (each set generated once with the tree's seed).

    Raises
    ------
    sim.rtl_dir.RtlDirError
        Naming the file, module and port.
    """
    from .regressions import generate_verilog
    from .rtl_dir import RtlDir

    ext = RtlDir(rtl_dir)
    for key in dict.fromkeys(t.key for t in tests):
        block, name = key.split("/")
        if key not in ext.sets:
            ext.sources(key, {})          # raises: the tree holds nothing for this set
        verilog = generate_verilog(block, name, Path(build_root) / "preflight" / key, ext.seed)
        ext.sources(key, verilog)


def run_tests(items: list[tuple[RegressionTest, int]], build_root: Path, jobs: int = 1,
              rtl_dir: str | None = None, gen_seed: int | None = None, waves: bool = False,
              keep_waves: bool = False, on_start=None, on_done=None) -> list[TestRecord]:
    """Run (test, seed) ``items`` on ``jobs`` worker processes; ``on_start(test, seed)`` and
    ``on_done(record)`` are called in this process as tests start and finish. Returns the
    records in the order of ``items``.

    An interrupt (KeyboardInterrupt) cancels the tests not started, waits for the running
    ones' workers to stop, and propagates; ``on_done`` is not called after it."""
    kwargs = dict(build_root=str(build_root), rtl_dir=rtl_dir, gen_seed=gen_seed, waves=waves,
                  keep_waves=keep_waves)
    if jobs <= 1:
        records = []
        for test, seed in items:
            if on_start:
                on_start(test, seed)
            records.append(run_test(test, seed, **kwargs))
            if on_done:
                on_done(records[-1])
        return records
    # The pool is driven from a helper thread and the main thread only waits on an event.
    # Python raises an interrupt in the main thread between any two bytecodes: raised inside
    # concurrent.futures.wait() it can leave a future's lock held, and the pool's shutdown
    # then waits forever for that lock (a SIGTERM right after a test finished hung this way).
    stop, finished = threading.Event(), threading.Event()
    outcome: dict = {}

    def drive():
        try:
            outcome["records"] = _run_on_pool(items, jobs, kwargs, on_start, on_done, stop)
        except BaseException as exc:        # handed to the main thread
            outcome["error"] = exc
        finally:
            finished.set()

    driver = threading.Thread(target=drive, name="mbnn-regress-pool", daemon=True)
    driver.start()
    try:
        finished.wait()         # a signal's handler runs during this wait (POSIX)
    except BaseException:
        stop.set()
        finished.wait()
        raise
    driver.join()
    if "error" in outcome:
        raise outcome["error"]
    return [outcome["records"][k] for k in range(len(items))]


def _run_on_pool(items, jobs, kwargs, on_start, on_done, stop) -> dict[int, TestRecord]:
    """:func:`run_tests` on a process pool: the records by their index in ``items``, all of
    them, or those finished before ``stop`` was set."""
    records: dict[int, TestRecord] = {}
    # spawned workers: no state (locks, threads) inherited from this process
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        pending = {}
        queue = list(enumerate(items))
        try:
            while queue or pending:
                while queue and len(pending) < jobs and not stop.is_set():
                    k, (test, seed) = queue.pop(0)
                    if on_start:
                        on_start(test, seed)
                    pending[pool.submit(run_test, test, seed, **kwargs)] = k
                if stop.is_set():
                    # interrupted: the tests not started are cancelled; the running ones end
                    # (their workers were killed, or they run on) and are not reported
                    for fut in pending:
                        fut.cancel()
                    wait(pending)
                    return records
                # a timeout, so that a stop is seen while tests run
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in done:
                    k = pending.pop(fut)
                    records[k] = fut.result()
                    if on_done:
                        on_done(records[k])
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return records


def replay_command(test: RegressionTest, seed: int, rtl_dir: str | None = None) -> str:
    """The command that runs ``test`` alone with ``seed`` again."""
    cmd = ["mbnn", "regress", "--sim", test.simulator, "--filter", f"^{re.escape(test.id)}$",
           "--seed", str(seed)]
    if rtl_dir:
        cmd += ["--rtl-dir", str(rtl_dir)]
    return shlex.join(cmd)


def summary_table(records: list[TestRecord]) -> str:
    """Per block and simulator: tests passed, failed, and their summed wall time."""
    rows: dict[tuple[str, str], list[float]] = {}
    for rec in records:
        row = rows.setdefault((rec.test.block, rec.test.simulator), [0, 0, 0.0])
        row[0 if rec.ok else 1] += 1
        row[2] += rec.wall_s
    lines = [f"{'block':<13} {'simulator':<10} {'passed':>6} {'failed':>6} {'time':>9}"]
    for (block, sim), (p, f, t) in rows.items():
        lines.append(f"{block:<13} {sim:<10} {p:>6} {f:>6} {t:>8.1f}s")
    p = sum(r[0] for r in rows.values())
    f = sum(r[1] for r in rows.values())
    t = sum(r[2] for r in rows.values())
    lines.append(f"{'total':<13} {'':<10} {p:>6} {f:>6} {t:>8.1f}s")
    return "\n".join(lines)


def coverage_table(records: list[TestRecord]) -> str:
    """Per block: the functional coverage bins hit in the run (in any set, on any simulator)
    out of those declared, and the bins no test hit (each test's own closure already fails
    when one of its bins is missed)."""
    bins: dict[str, dict[str, int]] = {}
    for rec in records:
        if rec.coverage:
            block = bins.setdefault(rec.test.block, {})
            for name, b in rec.coverage["bins"].items():
                block[name] = block.get(name, 0) + b["hits"]
    if not bins:
        return "coverage: no testbench reported any"
    lines = ["coverage (bins hit / declared, over every set and simulator):"]
    for block, hits in bins.items():
        missed = [b for b, n in hits.items() if not n]
        lines.append(f"  {block:<13} {len(hits) - len(missed)}/{len(hits)}"
                     + (f"; never hit: {', '.join(missed)}" if missed else ""))
    return "\n".join(lines)


def record_costs(records: list[TestRecord], path: Path) -> None:
    """Merge the measured wall times of ``records`` into the cost file ``path``."""
    path = Path(path)
    costs = load_costs(path) if path.is_file() else {}
    for rec in records:
        costs[rec.test.id] = round(rec.wall_s, 1)
    atomic_write_text(path, json.dumps(dict(sorted(costs.items())), indent=1) + "\n")


def is_terminal() -> bool:
    return os.isatty(1) and os.environ.get("TERM") != "dumb"
