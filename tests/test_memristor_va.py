"""The dynamic Verilog-A memristor ``rtl/analog/mbnn_memristor.va`` in VACASK, against the golden
switching model (``golden.analog.devices.Device``, ``rram`` preset).

The model is the deterministic ensemble of the golden stochastic switching law: its state x
(the voltage of an internal node) is the probability that one golden cell is ON. After a
rectangular pulse of amplitude V and width w it must have moved exactly as the golden
recursion says, with ``p = Device.switching_probability(|V|, w)``:

* SET (V > 0):   x <- x + (1 - x) p
* RESET (V < 0): x <- x (1 - p)

The tests read x back from the cell current at the read voltage,
``x = (I / V - g_off_s) / (g_on_s - g_off_s)``, and compute the golden numbers here from the
golden model alone.
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

from golden.analog.devices import RESET, SET, device_preset
from sim import toolchain
from sim.circuit import ModelCompileError, run_simulator
from sim.circuit import vacask
from sim.spice_raw import read_raw

from conftest import require_simulator

MODEL = vacask.MEMRISTOR_MODEL
DEVICE = device_preset("rram")

# Edges of every PWL step, seconds. The golden pulse is rectangular; the simulated one spends
# part of each edge above threshold and switches a little more. Over an edge from v_read to V
# that extra is (edge / (|V| - v_read)) * integral of 1/tau(u) du from v_th to |V|, at most
# edge * v0 / ((|V| - v_read) tau(|V|)) in x: 2.5e-6 per edge at 1.3 V, 1.7e-7 at 1.0 V, about
# 1e-5 summed over both edges of the 1.0-1.3 V SET pulses of PULSE_TRAIN and 8e-6 over the
# RESETs. The 1.5 V pulses (tau 5 ns, 1.5e-5 per edge) saturate x: their pulse multiplies any
# earlier deviation, that of its rising edge included, by exp(-w / tau) = 2e-9, and the extra
# of the falling edge is weighted by 1 - x (SET) or x (RESET), ~2e-9. So the edges add at most
# about 2e-5 (their unweighted sum) to the errors below.
EDGE_SEC = 1e-12
# Simulator tolerances: vntol bounds the Newton error of x itself (a node voltage), 1e-9;
# reltol 1e-6 keeps the time-step control from widening steps through a switching pulse and
# bounds the Newton error of the source current to 1e-6 of its largest value (1.5e-4 A at
# 1.5 V), i.e. < 1e-5 in x read back from a 0.2 V read; abstol 1e-15 A is 1e-9 of the
# smallest read current (2 uA). The model bounds its own time steps to 0.02 tau(|V|) while
# switching (parameter step_per_tau), which is what sets the integration error of x
# (trapezoidal rule: about 1e-6 per pulse, measured).
OPTIONS = "reltol=1e-6 vntol=1e-9 abstol=1e-15"
# |x_VA - x_golden| allowed after a pulse: the edge bias above (at most ~2e-5), the integration
# error (~1e-5 measured over the train) and the Newton error of the read current (< 1e-5),
# with margin. A 1 % error in tau moves x by 1.2e-3 on these pulses (tried), so the check
# still discriminates.
X_TOL = 1e-4

# The pulse train from x0 = 0: SETs of 1.0-1.3 V and 10-100 ns, RESETs, then a saturating
# SET/RESET pair (x to ~1 and back to ~0) and one more SET from ~0. Amplitude V, width s.
PULSE_TRAIN = [(1.0, 100e-9), (1.1, 50e-9), (1.2, 20e-9), (1.3, 10e-9), (1.25, 30e-9),
               (-1.2, 50e-9), (-1.1, 100e-9), (-1.3, 20e-9), (-1.0, 100e-9),
               (1.5, 100e-9), (-1.5, 100e-9), (1.0, 100e-9)]
READ_SEC = 20e-9


def _model_card(name: str = "mem", **extra) -> str:
    """A VACASK model card for the rram preset's parameters (read from the golden model)."""
    params = dict(g_on_s=DEVICE.g_on_s, g_off_s=DEVICE.g_off_s, v_th_v=DEVICE.switch_v_th_v,
                  tau_s=DEVICE.switch_tau_sec, v_ref_v=DEVICE.switch_v_ref_v,
                  v0_v_switch=DEVICE.switch_v0_v, **extra)
    return f"model {name} mbnn_memristor " + " ".join(f"{k}={v!r}" for k, v in params.items())


def _pwl(levels) -> tuple[str, list[tuple[float, float]]]:
    """A PWL wave from 0 V at t = 0 through ``levels`` (volts, seconds), each reached over
    one EDGE_SEC edge and held for its duration; returns the ``wave=[...]`` list and the
    (start, end) time of every plateau."""
    t, v, plateaus = [0.0], [0.0], []
    for level_v, dur_s in levels:
        t += [t[-1] + EDGE_SEC]
        v += [level_v]
        t += [t[-1] + dur_s]
        v += [level_v]
        plateaus.append((t[-2], t[-1]))
    return "[" + ", ".join(f"{a!r}, {b!r}" for a, b in zip(t, v)) + "]", plateaus


def _run(tmp_path, body: list[str], analysis: str, model_file=MODEL) -> dict:
    """Run one netlist (``body``: instances; the model file is loaded, ground and a voltage
    source model declared) in VACASK; VACASK's failures become one-line exceptions."""
    shutil.copyfile(model_file, tmp_path / model_file.name)
    lines = ["mbnn_memristor test", f'load "{model_file.name}"', "ground 0",
             "model vsrc vsource", *body, "control", "  abort always",
             f"  options {OPTIONS}", f"  analysis {analysis}", "endc", ""]
    (tmp_path / "mem.sim").write_text("\n".join(lines))
    done = run_simulator([toolchain.require("vacask").executable, "mem.sim"], tmp_path, 120.0,
                         "VACASK (mbnn_memristor)")
    vacask.check_output(done.returncode, done.output, model_file.name,
                        "VACASK (mbnn_memristor)", "default iteration limits")
    return read_raw(tmp_path / f"{analysis.split()[0]}.raw")


def _state(raw: dict, source: str, node: str, window) -> np.ndarray:
    """The state read from the cell current at every time point of a read plateau:
    ``(I / V - g_off) / (g_on - g_off)`` with the source's own current and voltage."""
    t = raw["time"]
    inside = (t >= window[0]) & (t <= window[1])
    assert inside.sum() >= 2, f"only {inside.sum()} time points in the read {window}"
    g_s = -raw[f"{source}:flow(br)"][inside] / raw[node][inside]
    return (g_s - DEVICE.g_off_s) / (DEVICE.g_on_s - DEVICE.g_off_s)


def test_compiles_and_holds_x0_at_dc(tmp_path):
    """OpenVAF compiles the model inside VACASK (a ``.osdi`` appears, the run succeeds). In an
    operating point each instance sits at its own x0 -- also above threshold, where a static
    solve has no time to switch -- and carries G(x0) V (linear) or G(x0) v0 sinh(V / v0)."""
    require_simulator("vacask")
    v0_v = 0.25
    cases = [(0.0, 0.2), (0.3, -0.2), (1.0, 0.2), (0.7, 1.3), (0.4, -1.3)]   # (x0, V)
    body = [_model_card("mem"), _model_card("memsinh", v0_v=v0_v)]
    for k, (x0, v) in enumerate(cases):
        body += [f"v{k} (a{k} 0) vsrc dc={v!r}", f"x{k} (a{k} 0) mem x0={x0!r}",
                 f"vs{k} (b{k} 0) vsrc dc={v!r}", f"xs{k} (b{k} 0) memsinh x0={x0!r}"]
    op = _run(tmp_path, body, "op1 op")
    assert (tmp_path / "mbnn_memristor.osdi").is_file()
    for k, (x0, v) in enumerate(cases):
        g_s = DEVICE.g_off_s + x0 * (DEVICE.g_on_s - DEVICE.g_off_s)
        i_lin, i_sinh = -op[f"v{k}:flow(br)"][0], -op[f"vs{k}:flow(br)"][0]
        print(f"x0 {x0}, V {v:+.1f} V: state {float(op[f'x{k}:x'][0])!r}, I {i_lin:.6e} A, "
              f"sinh {i_sinh:.6e} A")
        assert op[f"x{k}:x"][0] == pytest.approx(x0, abs=1e-12)
        assert op[f"xs{k}:x"][0] == pytest.approx(x0, abs=1e-12)
        assert i_lin == pytest.approx(g_s * v, rel=1e-9)
        assert i_sinh == pytest.approx(g_s * v0_v * np.sinh(v / v0_v), rel=1e-9)


def test_broken_model_fails_with_the_compiler_message(tmp_path):
    """A copy with a missing semicolon is refused with OpenVAF's first error, not a raw dump."""
    require_simulator("vacask")
    text = MODEL.read_text()
    assert "rate = 0.0;" in text
    broken = tmp_path / "src" / "mbnn_memristor.va"
    broken.parent.mkdir()
    broken.write_text(text.replace("rate = 0.0;", "rate = 0.0", 1))
    with pytest.raises(ModelCompileError, match="does not compile: error: .*expected ';'"):
        _run(tmp_path, [_model_card(), "v0 (a 0) vsrc dc=0.2", "x1 (a 0) mem"], "op1 op",
             model_file=broken)


def test_pulse_train_follows_the_golden_switching_law(tmp_path):
    """A train of SET and RESET pulses (``PULSE_TRAIN``) on one cell from x0 = 0, each followed
    by a read at ``v_read_v``. The state read back after every pulse equals the golden
    recursion to ``X_TOL`` = 1e-4 absolute. That budget is the edge bias (the 1 ps edges
    switch a little more than a rectangular pulse: at most ~2e-5 in total, see ``EDGE_SEC``) plus
    the transient's integration error (~1e-5 measured with the model's own step bound of
    0.02 tau), with margin; a 1 % error in tau, or a threshold in the wrong place, moves x by
    1e-3 or more. The state node is flat during every read (to 1e-12: the state does not move
    while it is read) and stays within [0, 1] throughout."""
    require_simulator("vacask")
    v_read = DEVICE.v_read_v
    levels = [(v_read, READ_SEC)]
    for amplitude_v, width_s in PULSE_TRAIN:
        levels += [(amplitude_v, width_s), (v_read, READ_SEC)]
    wave, plateaus = _pwl(levels)
    reads = plateaus[0::2]
    stop = plateaus[-1][1]
    start = time.perf_counter()
    raw = _run(tmp_path, [_model_card(), f'v1 (a 0) vsrc type="pwl" wave={wave}',
                          "x1 (a 0) mem x0=0.0"], f"tr tran step=1n stop={stop!r}")
    wall_s = time.perf_counter() - start

    t = raw["time"]
    x_golden, worst = 0.0, 0.0
    for k, window in enumerate(reads):
        if k > 0:
            amplitude_v, width_s = PULSE_TRAIN[k - 1]
            polarity = SET if amplitude_v > 0 else RESET
            p = float(DEVICE.switching_probability(abs(amplitude_v), width_s, polarity))
            x_golden = x_golden + (1.0 - x_golden) * p if polarity == SET \
                else x_golden * (1.0 - p)
            print(f"pulse {amplitude_v:+.2f} V {width_s * 1e9:5.1f} ns: p {p:.6f}", end=", ")
        x_read = _state(raw, "v1", "a", window)
        x_node = raw["x1:x"][(t >= window[0]) & (t <= window[1])]
        err = float(np.max(np.abs(x_read - x_golden)))
        worst = max(worst, err)
        print(f"read {k}: golden x {x_golden:.7f}, Verilog-A x {x_read.mean():.7f}, "
              f"|dx| {err:.2e}, state node spread over {x_node.size} points "
              f"{np.ptp(x_node):.1e}")
        assert np.ptp(x_node) <= 1e-12, f"the state moved during read {k}"
        assert err <= X_TOL, f"read {k}: x {x_read.mean()!r} against golden {x_golden!r}"
    x_trace = raw["x1:x"]
    print(f"worst |x_VA - x_golden| = {worst:.3g} (tolerance {X_TOL:g}); state node from "
          f"{x_trace.min():.3g} to {1 - x_trace.max():.3g} below 1; {t.size} time points; "
          f"VACASK wall {wall_s:.3f} s")
    assert x_trace.min() >= -1e-9 and x_trace.max() <= 1.0 + 1e-9
    # the saturating pair really reaches the bounds (so the range check above means something)
    assert x_trace.max() > 1.0 - 1e-6 and _state(raw, "v1", "a", reads[-2]).max() < 1e-6


def test_long_reads_do_not_disturb(tmp_path):
    """A cell at x0 = 0.5 read for 10 us at +v_read and 10 us at -v_read keeps its state node
    at 0.5 to 1e-12 (reads are below threshold: the rate is exactly zero there) and carries
    G(0.5) V: the state read back from the current is 0.5 to 1e-9 (the current is a Newton
    unknown, converged to reltol 1e-6 of its largest value; here the read is linear and it
    comes out exact)."""
    require_simulator("vacask")
    v_read = DEVICE.v_read_v
    wave, (plus, minus, _) = _pwl([(v_read, 10e-6), (-v_read, 10e-6), (0.0, 1e-6)])
    raw = _run(tmp_path, [_model_card(), f'v1 (a 0) vsrc type="pwl" wave={wave}',
                          "x1 (a 0) mem x0=0.5"], f"tr tran step=100n stop={minus[1] + 1e-6!r}")
    for name, window in (("+v_read", plus), ("-v_read", minus)):
        x_read = _state(raw, "v1", "a", window)
        print(f"{name}: x from current in [{float(x_read.min())!r}, {float(x_read.max())!r}] over "
              f"{x_read.size} points")
        assert np.max(np.abs(x_read - 0.5)) <= 1e-9
    assert np.max(np.abs(raw["x1:x"] - 0.5)) <= 1e-12


def test_pulses_below_threshold_do_not_switch(tmp_path):
    """Pulses of +-0.95 v_th for 1 us leave x0 = 0.5 alone (state node to 1e-12, the state
    read from the current to 1e-9, see the read-disturb test), as the golden model
    says (p = 0). Without the threshold those pulses would move x by several percent
    (checked below), so this is a real test of it. A pulse exactly at v_th then switches as
    the golden model says (the threshold is inclusive in both)."""
    require_simulator("vacask")
    v_th, width_s, v_read = DEVICE.switch_v_th_v, 1e-6, DEVICE.v_read_v
    below = 0.95 * v_th
    assert DEVICE.switching_probability(below, width_s, SET) == 0.0
    tau_s = DEVICE.switch_tau_sec * np.exp(-(below - DEVICE.switch_v_ref_v) / DEVICE.switch_v0_v)
    p_without_threshold = -np.expm1(-width_s / tau_s)
    assert 0.5 * p_without_threshold > 100 * X_TOL   # what the check would see if ignored

    wave, plateaus = _pwl([(v_read, READ_SEC), (below, width_s), (v_read, READ_SEC),
                           (-below, width_s), (v_read, READ_SEC), (v_th, width_s),
                           (v_read, READ_SEC)])
    raw = _run(tmp_path, [_model_card(), f'v1 (a 0) vsrc type="pwl" wave={wave}',
                          "x1 (a 0) mem x0=0.5"], f"tr tran step=10n stop={plateaus[-1][1]!r}")
    before_threshold_pulse = raw["time"] <= plateaus[4][1]
    assert np.max(np.abs(raw["x1:x"][before_threshold_pulse] - 0.5)) <= 1e-12
    for k in (0, 2, 4):
        x_read = _state(raw, "v1", "a", plateaus[k])
        print(f"read after {k // 2} sub-threshold pulse(s): x {float(x_read.mean())!r}")
        assert np.max(np.abs(x_read - 0.5)) <= 1e-9
    p_at_threshold = float(DEVICE.switching_probability(v_th, width_s, SET))
    x_golden = 0.5 + 0.5 * p_at_threshold
    x_read = _state(raw, "v1", "a", plateaus[6])
    print(f"after a pulse at v_th: golden x {x_golden:.7f}, Verilog-A x {x_read.mean():.7f}")
    assert np.max(np.abs(x_read - x_golden)) <= X_TOL
