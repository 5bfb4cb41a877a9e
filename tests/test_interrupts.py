"""SIGINT and SIGTERM during the commands that write: each stops with one line saying what was
interrupted, exits 130 (SIGINT) or 143 (SIGTERM), stops the processes it started, and leaves no
temporary or half-written file behind.

Each test waits for evidence that the command is in the middle of its work (a temporary
directory on disk, a simulator process, a progress line) before it sends the signal, so that the
interruption lands where cleanup matters rather than before anything started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import require_simulator

REPO = Path(__file__).resolve().parent.parent


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-u", "-m", "sim.cli", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, what: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the command ended (rc {proc.returncode}) before {what}: "
                        f"{proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no sign of {what} within {timeout_s:.0f} s")
        time.sleep(0.01)


def processes_under(path: Path) -> list[str]:
    """Processes whose command line or working directory names ``path``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if str(path) in cmd or cwd.startswith(str(path)):
            found.append(f"{entry.name}: {cmd.strip()}")
    return found


def finish(proc: subprocess.Popen, sig: int, command: str) -> str:
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    expected = 143 if sig == signal.SIGTERM else 130
    assert proc.returncode == expected, stderr
    lines = stderr.strip().splitlines()
    name = "SIGTERM" if sig == signal.SIGTERM else "SIGINT"
    # the last line says what was interrupted; nothing after it (no traceback, no warnings)
    assert lines[-1].startswith(f"mbnn: interrupted ({name}): {command} stopped"), stderr
    assert "Traceback" not in stderr and "Warning" not in stderr, stderr
    return lines[-1]


def test_generate_interrupted_while_writing_leaves_nothing(tmp_path):
    out = tmp_path / "gen"
    proc = start("generate", "--model", "models/mlp.npz", "--out", str(out))
    # generate_model writes into a temporary directory beside --out, renamed at the end
    wait_for(lambda: any(p.name.startswith(".gen.") for p in tmp_path.iterdir()),
             "the temporary output directory", proc)
    finish(proc, signal.SIGTERM, "generate")
    assert list(tmp_path.iterdir()) == []


def test_train_interrupted_after_an_epoch_writes_no_model(tmp_path):
    proc = start("train", "--arch", "mlp", "--epochs", "50", "--train-images", "3000",
                 "--out", str(tmp_path / "m.npz"))
    first = proc.stderr.readline()          # progress goes to stderr
    assert first.startswith("epoch 1/50"), first
    finish(proc, signal.SIGINT, "train")
    assert list(tmp_path.iterdir()) == []


def test_infer_interrupted_while_simulating_stops_the_simulator(tmp_path):
    require_simulator("icarus")
    build = tmp_path / "build"
    proc = start("infer", "--model", "models/mlp.npz", "--sim", "icarus", "--images", "200",
                 "--build", str(build))
    wait_for(lambda: any("vvp" in p.split(": ", 1)[1] for p in processes_under(build)),
             "the Icarus simulation", proc)
    finish(proc, signal.SIGTERM, "infer")
    time.sleep(0.5)
    assert processes_under(build) == []
    # the generated design is complete (written whole or not at all); no temporary files
    generated = [p for p in build.iterdir() if p.is_dir() and (p / "manifest.json").exists()]
    assert len(generated) == 1
    assert not [p for p in build.rglob("*") if p.name.startswith(".") or
                p.name.endswith(".tmp")]


def test_regress_interrupted_stops_its_workers_and_writes_no_report(tmp_path):
    require_simulator("icarus")
    build, report = tmp_path / "build", tmp_path / "report.xml"
    # five short tests (1-2 s each): one finishes soon, and the others are still to run
    proc = start("regress", "-j", "2", "--sim", "icarus", "--filter",
                 "bn_binarize/(c1_w2|c3_w64|c10_w8_k100)/|accumulator/(l1_c2_t1|l5_c4_t7)/",
                 "--build", str(build), "--junit", str(report))
    header = proc.stdout.readline()
    assert header.startswith("mbnn regress:"), header
    first = proc.stdout.readline()          # one test finished: the others are running
    assert first.startswith(("PASS", "FAIL")), first
    line = finish(proc, signal.SIGTERM, "regress")
    assert "no report written" in line
    time.sleep(0.5)
    assert processes_under(build) == []
    assert not report.exists()


# mbnn with SIGTERM delivered from inside concurrent.futures.wait(), while it holds a future's
# lock, at its first call after a test's result arrived: the moment the signal of the test above
# can land at when the machine is loaded. An interrupt raised there in the main thread once left
# the lock held, and the pool's shutdown waited for it forever.
_SIGNAL_INSIDE_WAIT = """
import concurrent.futures._base as base, os, signal, sys
state = {"result": False, "sent": False}
set_result, enter = base.Future.set_result, base._AcquireFutures.__enter__
def on_result(self, result):
    state["result"] = True
    set_result(self, result)
def acquire_and_signal(self):
    if not state["result"] or state["sent"]:
        return enter(self)
    state["sent"] = True
    futures = list(self.futures)
    futures[0]._condition.acquire()
    os.kill(os.getpid(), signal.SIGTERM)
    for future in futures[1:]:
        future._condition.acquire()
if __name__ == "__main__":
    base.Future.set_result, base._AcquireFutures.__enter__ = on_result, acquire_and_signal
    from sim.cli import main
    sys.exit(main(sys.argv[1:]))
"""


def test_regress_interrupted_inside_the_pool_wait_still_stops(tmp_path):
    require_simulator("icarus")
    build, report = tmp_path / "build", tmp_path / "report.xml"
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", _SIGNAL_INSIDE_WAIT, "regress", "-j", "2", "--sim",
         "icarus", "--filter", "bn_binarize/(c1_w2|c3_w64|c10_w8_k100)/", "--build", str(build),
         "--junit", str(report)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        for pid in [int(p.split(":")[0]) for p in processes_under(build)] + [proc.pid]:
            os.kill(pid, signal.SIGKILL)
        pytest.fail("mbnn regress hung after a SIGTERM that landed inside the pool's wait()")
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1].startswith(
        "mbnn: interrupted (SIGTERM): regress stopped"), stderr
    time.sleep(0.5)
    assert processes_under(build) == []
    assert not report.exists()


def test_interrupt_cleanup_misses_no_child_started_during_the_scan(tmp_path):
    # A shell that starts a sleeping child every few milliseconds: a child started between the
    # scan of /proc and its parent's termination is an orphan that a plain scan-and-kill
    # misses (it did, every time, in 3 of 3 trials). Freezing the tree first catches it.
    script = ("import subprocess, sys, time\n"
              "from sim.cli import _terminate_descendants\n"
              "subprocess.Popen(['sh', '-c', 'while :; do sleep 300 & sleep 0.002; done'], "
              f"cwd={str(tmp_path)!r})\n"
              "time.sleep(0.5)\n"
              "_terminate_descendants()\n")
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=60)
    time.sleep(0.5)
    left = processes_under(tmp_path)
    for entry in left:
        os.kill(int(entry.split(":")[0]), signal.SIGKILL)
    assert left == []
