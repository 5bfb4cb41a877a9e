"""Named regressions: which parameter sets each block is verified with, and how to run them."""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from golden.accumulator import AccumulatorParams
from golden.bn_binarize import BNBinarizeParams
from golden.chip import ChipConfig
from golden.conductance import hex_lines, program_tiles
from golden.core import CoreParams
from golden.fileio import atomic_write_bytes, atomic_write_text
from golden.mapping import compile_model
from golden.model import Architecture, LayerSpec, load_model
from golden.programming import WriteVerifyPolicy
from golden.update_unit import UpdateUnitParams
from golden.widths import index_bits
from periphery.accumulator import Accumulator
from periphery.bn_binarize import BNBinarize
from periphery.generate import (accumulator_verilog, bn_binarize_verilog,
                                programming_verilog, sequencer_verilog, update_unit_verilog)
from periphery.sequencer import Sequencer
from periphery.generate_model import CROSSBAR_SOURCE

from .rtl_dir import RtlDir
from .runner import DEFAULT_SEED, RunResult, run_cocotb

__all__ = ["BN_BINARIZE_SETS", "run_bn_binarize", "ACCUMULATOR_SETS", "run_accumulator",
           "accumulator_table", "CORE_SETS", "CoreSet", "TINY_ARCH", "run_sequencer", "CoreRun",
           "run_core", "CROSSBAR_SETS", "run_crossbar", "NETWORK_RUNS", "NetworkRun",
           "generate_network", "run_network", "regression_sets", "generate_verilog",
           "regression_component", "PROGRAMMING_SETS", "ProgrammingSet", "run_programming",
           "UPDATE_UNIT_SETS", "run_update_unit"]

# Parameter sets of the BN-binarize regression, chosen for coverage of the corners:
BN_BINARIZE_SETS = {
    # smallest legal block: one channel, 2-bit pre-activations (range -2..1)
    "c1_w2": BNBinarizeParams(channels=1, acc_width=2),
    # MNIST classifier-sized, channel count not a power of two, range narrower than the width
    "c10_w8_k100": BNBinarizeParams(channels=10, acc_width=8, fan_in=100),
    # 784-input hidden layer at exactly the minimum width (11 bits for +-784)
    "c128_w11_k784": BNBinarizeParams(channels=128, acc_width=11, fan_in=784),
    # widest pre-activation supported, odd channel count
    "c3_w64": BNBinarizeParams(channels=3, acc_width=64),
    # a full 256-column array's worth of channels
    "c256_w16": BNBinarizeParams(channels=256, acc_width=16),
    # the shipped MLP's core on 128x128 arrays (CoreParams.bn_params: a lane per column, a
    # channel per threshold-table entry, thresholds one above the accumulator's range; tested
    # equal)
    "c25_w14_l128_mlp": BNBinarizeParams(channels=25, acc_width=14, lanes=128),
    # a few lanes, odd
    "c6_w9_l5": BNBinarizeParams(channels=6, acc_width=9, lanes=5),
}


def run_bn_binarize(name: str, simulator: str, build_root: Path, seed: int = DEFAULT_SEED,
                    waves: bool = False, rtl_dir: RtlDir | None = None) -> RunResult:
    """Generate the block of parameter set ``name`` and run its cocotb testbench on
    ``simulator`` in ``build_root/bn_binarize/<name>/<simulator>`` (on ``rtl_dir``'s Verilog
    when given)."""
    build_dir = Path(build_root) / "bn_binarize" / name / simulator
    params = BN_BINARIZE_SETS[name]
    sources = _sources("bn_binarize", name, generate_verilog("bn_binarize", name, build_dir),
                       rtl_dir)
    return run_cocotb(simulator=simulator, sources=sources, toplevel="bn_binarize",
                      test_module="sim.tb.tb_bn_binarize", build_dir=build_dir,
                      params=asdict(params), seed=seed, waves=waves,
                      external=rtl_dir is not None)


# Parameter sets of the Accumulator regression:
ACCUMULATOR_SETS = {
    # degenerate: one lane, 2-bit codes, single-beat runs, no bias, one entry
    "l1_c2_t1": AccumulatorParams(lanes=1, code_bits=2, max_terms=1, bias_max=0, entries=1),
    # small and odd: 5 lanes, runs up to 7 row tiles, table of 3
    "l5_c4_t7": AccumulatorParams(lanes=5, code_bits=4, max_terms=7, bias_max=90, entries=3),
    # the shipped CNN on 128x128 arrays: 9-bit ADC codes, up to 49 row tiles, bias up to 6272
    "l128_c9_t49": AccumulatorParams(lanes=128, code_bits=9, max_terms=49, bias_max=6272,
                                     entries=9),
}


def accumulator_table(params: AccumulatorParams, seed: int) -> dict:
    """Seeded correction table; entries 0 and 1 (when present) are doubled with bias
    -bias_max and +bias_max, so the testbench can reach both ends of the value range, and
    entry 2 (when present) is plain, so both datapaths of the ``double`` flag are exercised
    whatever the seed."""
    rng = np.random.default_rng(seed)
    bias = rng.integers(-params.bias_max, params.bias_max, size=(params.entries, params.lanes),
                        endpoint=True)
    double = rng.random(params.entries) < 0.5
    if params.entries >= 2:
        bias[0], bias[1] = -params.bias_max, params.bias_max
        double[:2] = True
    if params.entries >= 3:
        double[2] = False
    return {"bias": bias.tolist(), "double": double.tolist()}


def run_accumulator(name: str, simulator: str, build_root: Path, seed: int = DEFAULT_SEED,
                    waves: bool = False, gen_seed: int | None = None,
                    rtl_dir: RtlDir | None = None) -> RunResult:
    """Generate the Accumulator of parameter set ``name`` with a table seeded by ``gen_seed``
    (default ``seed``) and run its cocotb testbench (on ``rtl_dir``'s Verilog when given)."""
    build_dir = Path(build_root) / "accumulator" / name / simulator
    params = ACCUMULATOR_SETS[name]
    sources = _sources("accumulator", name, generate_verilog(
        "accumulator", name, build_dir, seed if gen_seed is None else gen_seed), rtl_dir)
    table_file = (build_dir / "table.json").resolve()
    return run_cocotb(simulator=simulator, sources=sources, toplevel="accumulator",
                      test_module="sim.tb.tb_accumulator", build_dir=build_dir,
                      params={"params": asdict(params), "table": str(table_file)}, seed=seed,
                      waves=waves, external=rtl_dir is not None)


# --- mixed-precision update unit (in-situ training) -----------------------------------------

# Three layers with granularities that are and are not powers of two; the first with a cap of
# 3 pulses per update (multi-level devices), the second a binary device's single pulse with a
# wider chi and updates as wide as chi (saturation in one update).
UPDATE_UNIT_SETS = {
    "l3_chi12_cap3": UpdateUnitParams(chi_bits=12, frac_bits=8, update_bits=10,
                                      epsilon=(40, 64, 100), layer_sizes=(50, 30, 20),
                                      max_pulses=3),
    "l2_chi16_cap1": UpdateUnitParams(chi_bits=16, frac_bits=10, update_bits=16,
                                      epsilon=(1024, 77), layer_sizes=(24, 40), max_pulses=1),
}


def run_update_unit(name: str, simulator: str, build_root: Path, seed: int = DEFAULT_SEED,
                    waves: bool = False, rtl_dir: RtlDir | None = None) -> RunResult:
    """Generate the UpdateUnit of parameter set ``name`` and run its cocotb testbench (on
    ``rtl_dir``'s Verilog when given)."""
    build_dir = Path(build_root) / "update_unit" / name / simulator
    params = UPDATE_UNIT_SETS[name]
    sources = _sources("update_unit", name, generate_verilog("update_unit", name, build_dir,
                                                             seed), rtl_dir)
    return run_cocotb(simulator=simulator, sources=sources, toplevel="update_unit",
                      test_module="sim.tb.tb_update_unit", build_dir=build_dir,
                      params={"params": asdict(params)}, seed=seed, waves=waves,
                      external=rtl_dir is not None)


# --- write-verify programming controller --------------------------------------------------


@dataclass(frozen=True)
class ProgrammingSet:
    """A device (a preset with overrides), a write-verify policy and a number of cells; the
    cells' target levels are drawn with the regression's generation seed."""

    device: str
    overrides: tuple          # ((parameter, value), ...) over the preset
    policy: WriteVerifyPolicy
    cells: int

    def device_model(self):
        from golden.analog.devices import device_preset
        return device_preset(self.device, **dict(self.overrides))

    def targets(self, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).integers(0, self.policy.levels, self.cells)


# Stuck rates are raised far above the presets' so that every run reports failed cells.
PROGRAMMING_SETS = {
    # binary RRAM, stepped amplitude (1.0 V .. 1.4 V): most cells need retries
    "rram_ramp_64": ProgrammingSet("rram", (("stuck_on_rate", 0.05), ("stuck_off_rate", 0.05)),
                                   WriteVerifyPolicy(), 64),
    # 5-level domain-wall device, 5 target levels, stepped amplitude from below threshold
    "dw5_levels_40": ProgrammingSet("dw5", (("stuck_on_rate", 0.05), ("stuck_off_rate", 0.05)),
                                    WriteVerifyPolicy(levels=5, v_start_v=0.55, v_step_v=0.05,
                                                      v_max_v=1.0, max_pulses=12), 40),
    # continuous PCM with noisy steps (about 8 +- 5 codes), 4 target levels, fixed pulses:
    # overshoots and polarity changes
    "pcm_fixed_48": ProgrammingSet("pcm", (("stuck_on_rate", 0.04), ("stuck_off_rate", 0.04)),
                                   WriteVerifyPolicy(levels=4, window_codes=6, v_step_v=0.0,
                                                     max_pulses=40), 48),
}


def run_programming(name: str, simulator: str, build_root: Path, seed: int = DEFAULT_SEED,
                    waves: bool = False, gen_seed: int | None = None,
                    rtl_dir: RtlDir | None = None) -> RunResult:
    """Generate the ProgrammingController of set ``name`` (targets drawn with ``gen_seed``,
    default ``seed``) and run its cocotb testbench against the golden write-verify model."""
    build_dir = Path(build_root) / "programming" / name / simulator
    gen_seed = seed if gen_seed is None else gen_seed
    sources = _sources("programming", name, generate_verilog("programming", name, build_dir,
                                                             gen_seed), rtl_dir)
    return run_cocotb(simulator=simulator, sources=sources, toplevel="programming_controller",
                      test_module="sim.tb.tb_programming", build_dir=build_dir,
                      params={"set": name, "gen_seed": gen_seed}, seed=seed, waves=waves,
                      external=rtl_dir is not None)


# --- whole-core configurations: a model and a chip ---------------------------------------


# A small CNN whose mapping needs everything the shipped models do not: row tiles that split a
# window position (shifts), pooling that crops an odd map, several column tiles feeding a dense
# layer, a 3-channel input.
TINY_ARCH = Architecture("tiny", (3, 9, 7), (
    LayerSpec("conv", 6, kernel=3, padding=1, pool=2),
    LayerSpec("conv", 10, kernel=3, padding=0),
    LayerSpec("dense", 12),
    LayerSpec("dense", 5)))


@dataclass(frozen=True)
class CoreSet:
    """A model (a shipped file, or a seeded random model of an architecture) on a chip;
    ``program``: the system programs its arrays itself through its write-verify controller
    (:func:`periphery.generate_model.generate_model`) before it infers."""

    model: str
    chip: ChipConfig
    program: bool = False

    def load(self, seed: int):
        if self.model.endswith(".npz"):
            return load_model(Path(__file__).resolve().parent.parent / self.model)
        from .stimulus import random_model
        arch = {"tiny": TINY_ARCH}[self.model]
        model = random_model(arch, np.random.default_rng(seed))
        # Class 1 gets class 0's weights and class 3 class 2's, so their scores tie on every
        # image and the argmax's tie rule (lowest class wins) decides whenever one leads.
        w = model.layers[-1].weight
        w[:, 1], w[:, 3] = w[:, 0], w[:, 2]
        return model


# A non-ideal chip for the crossbar and whole-network regressions: RRAM with stuck cells,
# wire/driver/sense resistance and ADC gain/offset errors (every static non-ideality the
# behavioural crossbar reproduces).
NON_IDEAL = dict(device={"preset": "rram", "stuck_on_rate": 0.01, "stuck_off_rate": 0.05},
                 r_wire_ohm=1.0, r_source_ohm=5.0, r_sense_ohm=5.0, adc_gain_dtod=0.01,
                 adc_offset_dtod_lsb=0.1)

PROGRAMMED = {k: v for k, v in NON_IDEAL.items() if not k.startswith("r_")}

CORE_SETS = {
    "mlp_128x128": CoreSet("models/mlp.npz", ChipConfig(128, 128)),
    "cnn_128x128": CoreSet("models/cnn.npz", ChipConfig(128, 128)),
    "cnn_100x50": CoreSet("models/cnn.npz", ChipConfig(100, 50)),
    "tiny_16x8": CoreSet("tiny", ChipConfig(16, 8, adc_bits=3)),
    # the tiny CNN on a non-ideal chip (programmed with the run's seed); 5-bit ADCs hold the
    # column sums of 16 rows, so codes move by device/parasitic/ADC error, not by saturation
    "tiny_16x8_nonideal": CoreSet("tiny", ChipConfig(16, 8, adc_bits=5, **NON_IDEAL)),
    "tiny_16x8_ref_nonideal": CoreSet("tiny", ChipConfig(16, 8, mapping="reference_column",
                                                         adc_bits=5, **NON_IDEAL)),
    # the tiny CNN programmed by the system's own write-verify controller from a fresh RRAM
    # chip with stuck cells and ADC errors (no wire resistance: the behavioural crossbar reads
    # the programmed cells directly), then inferring on what it programmed
    "tiny_16x8_programmed": CoreSet("tiny", ChipConfig(16, 8, adc_bits=5, **PROGRAMMED),
                                    program=True),
    # likewise with multi-level targets: a reference column (its cells at the middle of three
    # levels) on the 5-level domain-wall device, two level steps from off to the middle
    "tiny_16x8_ref_programmed": CoreSet("tiny", ChipConfig(
        16, 8, mapping="reference_column", adc_bits=5,
        **{**PROGRAMMED, "device": {**PROGRAMMED["device"], "preset": "dw5"}}), program=True),
    # several arrays read per cycle (chip.parallel_reads): the tiny CNN's row tiles (2, 4, 2,
    # 1 per layer) three at a time, so groups are full, partial (4 = 3 + 1) and single; on the
    # non-ideal chip two at a time (every port with its own arrays' ADC errors); the MLP with
    # all 7 or 8 row tiles of a column tile in one cycle (192 reads in 25 cycles)
    # Both also take 7 and 9 of the 63 input words per beat (chip.input_words): 9 or 7 cycles
    # per image load behind the 11 cycles of the later layers, where one word per beat would
    # pace the core.
    "tiny_16x8_p3": CoreSet("tiny", ChipConfig(16, 8, adc_bits=3, parallel_reads=3,
                                               input_words=7)),
    "tiny_16x8_nonideal_p2": CoreSet("tiny", ChipConfig(16, 8, adc_bits=5, parallel_reads=2,
                                                        input_words=9, **NON_IDEAL)),
    "mlp_128x128_p8": CoreSet("models/mlp.npz", ChipConfig(128, 128, arrays=8,
                                                           parallel_reads=8)),
    # layers pipelined across images (chip.pipeline): the tiny CNN one read per cycle per
    # layer (stages of 126, 16, 4 and 1 commands per image; 4 arrays read at once), and three
    # or two at a time with 9 words per beat (stages of 63, 8, 2, 1 commands; 2 + 3 + 2 + 1 or
    # 2 + 2 + 2 + 1 arrays read at once), layer 0 pacing all three; the MLP with 8 row tiles
    # per command in every layer: 8 cycles per image, 7 + 8 + 8 + 8 = 31 arrays read at once
    # on a chip of 32
    "tiny_16x8_pipe": CoreSet("tiny", ChipConfig(16, 8, adc_bits=3, pipeline=True)),
    "tiny_16x8_p3_pipe": CoreSet("tiny", ChipConfig(16, 8, adc_bits=3, arrays=8,
                                                    parallel_reads=3, input_words=9,
                                                    pipeline=True)),
    "tiny_16x8_nonideal_p2_pipe": CoreSet("tiny", ChipConfig(
        16, 8, adc_bits=5, arrays=8, parallel_reads=2, input_words=9, pipeline=True,
        **NON_IDEAL)),
    "mlp_128x128_p8_pipe": CoreSet("models/mlp.npz", ChipConfig(
        128, 128, arrays=32, parallel_reads=8, input_words=7, pipeline=True)),
    # the shipped MLP likewise, on the demo chip's stuck-cell rates (0.5 % on, 2 % off)
    "mlp_128x128_programmed": CoreSet("models/mlp.npz", ChipConfig(
        128, 128, device={"preset": "rram", "stuck_on_rate": 0.005, "stuck_off_rate": 0.02},
        adc_gain_dtod=0.01, adc_offset_dtod_lsb=0.1), program=True),
}



def run_sequencer(name: str, simulator: str, build_root: Path, seed: int = DEFAULT_SEED,
                  layer_gap: int | None = None, waves: bool = False,
                  gen_seed: int | None = None, rtl_dir: RtlDir | None = None,
                  stage: int | None = None) -> RunResult:
    """Generate the Sequencer of core set ``name`` (a random model drawn with ``gen_seed``,
    default ``seed``) and check it against the golden schedule. ``layer_gap``: default the
    one the core instantiates it with (:attr:`golden.core.CoreParams.layer_gap`)."""
    build_dir = Path(build_root) / "sequencer" / (
        name if stage is None else f"{name}-stage{stage}") / simulator
    gen_seed = seed if gen_seed is None else gen_seed
    if stage is not None:
        if rtl_dir is not None:
            raise ValueError("a stage sequencer is not part of the exported regression tree")
        layer_gap = 0           # a stage issues one layer: there is no layer boundary
        core = CORE_SETS[name]
        mapped = compile_model(core.load(gen_seed), core.chip)
        path = atomic_write_text(build_dir / "sequencer.v",
                                 sequencer_verilog(mapped, 0, stage=stage))
        sources = [path]
    else:
        if layer_gap is None:
            core = CORE_SETS[name]
            layer_gap = CoreParams(compile_model(core.load(gen_seed), core.chip)).layer_gap
        sources = _sources("sequencer", name, generate_verilog(
            "sequencer", name, build_dir, gen_seed, layer_gap=layer_gap), rtl_dir)
    return run_cocotb(simulator=simulator, sources=sources, toplevel="sequencer",
                      test_module="sim.tb.tb_sequencer", build_dir=build_dir,
                      params={"set": name, "model_seed": gen_seed, "layer_gap": layer_gap,
                              "stage": stage},
                      seed=seed, waves=waves, external=rtl_dir is not None)


@dataclass
class CoreRun:
    """A whole-network run: the cocotb result and the testbench's summary."""

    result: RunResult
    summary: dict | None


def run_core(gen_dir: Path, simulator: str, build_root: Path, name: str, images: int,
             offset: int = 0, dataset: str = "mnist", check_layers: bool = True,
             seed: int = DEFAULT_SEED, waves: bool = False,
             sources_dir: Path | None = None, crossbar_vpi: bool = False,
             handshake: str = "back_to_back", sources: list[Path] | None = None) -> CoreRun:
    """Run ``images`` images through the hardware generated in ``gen_dir`` on ``simulator``.

    ``handshake``: ``back_to_back`` (exact cycle counts) or ``random`` (stalls on both
    streams and a reset in the middle of an image; :mod:`sim.tb.tb_core`).

    ``crossbar_vpi`` (Icarus): the crossbar reads through its compiled VPI task
    (:func:`sim.runner.build_crossbar_vpi`), the same codes in a fraction of the time.

    ``sources_dir``: take the Verilog from this directory instead (it must be byte-identical
    to ``gen_dir``'s, e.g. the same core on a chip that differs only in its conductance files):
    with the same source paths and build directory the simulator's build is reused.

    ``sources``: simulate these files (crossbar, then system) instead -- external RTL already
    checked against ``gen_dir``'s modules (:class:`sim.rtl_dir.RtlDir`)."""
    gen_dir = Path(gen_dir).resolve()
    external = sources is not None
    if sources is None:
        src_dir = Path(sources_dir).resolve() if sources_dir is not None else gen_dir
        for f in ("mbnn_crossbar.v", "bnn_system.v"):
            if (src_dir / f).read_bytes() != (gen_dir / f).read_bytes():
                raise ValueError(f"{src_dir / f} differs from {gen_dir / f}: not the same "
                                 f"hardware")
        sources = [src_dir / "mbnn_crossbar.v", src_dir / "bnn_system.v"]
    build_dir = (Path(build_root) / "core" / name /
                 (f"{simulator}-vpi" if crossbar_vpi else simulator)).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    # The crossbar opens its conductance (and ADC error) files relative to the simulator's
    # working directory; links left by an earlier run of another chip go first.
    for old in build_dir.glob("*.hex"):
        old.unlink()
    for f in sorted(gen_dir.glob("*.hex")):
        (build_dir / f.name).symlink_to(f)
    summary_file = build_dir / "summary.json"
    summary_file.unlink(missing_ok=True)
    result = run_cocotb(simulator=simulator,
                        sources=[Path(f).resolve() for f in sources],
                        toplevel="bnn_system", test_module="sim.tb.tb_core", build_dir=build_dir,
                        params={"dir": str(gen_dir), "images": images, "offset": offset,
                                "dataset": dataset, "check_layers": check_layers,
                                "handshake": handshake, "summary": str(summary_file)},
                        seed=seed, waves=waves, crossbar_vpi=crossbar_vpi,
                        external=external)
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
    return CoreRun(result, summary)


# Behavioural crossbar alone: (chip, tiles); the 3-bit ADC saturates on 16 rows.
# name: (chip, tiles, state). State "targets": ideal devices, the target conductances;
# "programmed": the chip's device, parasitics and ADC errors (golden.analog.chip_state);
# "boundary": target conductances with every ADC offset half an LSB (give or take 2^-50), so
# that every read's x = I / lsb + offset sits within rounding of a decision boundary.
CROSSBAR_SETS = {
    "diff_16x8_adc3": (ChipConfig(16, 8, mapping="differential", adc_bits=3), 3, "targets"),
    "ref_16x8_adc3": (ChipConfig(16, 8, mapping="reference_column", adc_bits=3), 3, "targets"),
    "diff_128x128": (ChipConfig(128, 128), 2, "targets"),
    # 13 columns: not a multiple of the crossbar's 8 columns per loop iteration
    "ref_37x13": (ChipConfig(37, 13, mapping="reference_column"), 2, "targets"),
    "nonideal_diff_32x16_adc6": (ChipConfig(32, 16, adc_bits=6, **NON_IDEAL), 3, "programmed"),
    "nonideal_ref_37x13": (ChipConfig(37, 13, mapping="reference_column", **NON_IDEAL), 2,
                           "programmed"),
    "boundary_16x8_adc5": (ChipConfig(16, 8, adc_bits=5, adc_offset_dtod_lsb=1e-9), 3,
                           "boundary"),
}


def run_crossbar(name: str, simulator: str, build_root: Path, seed: int = DEFAULT_SEED,
                 reads: int = 60, crossbar_vpi: bool = False, waves: bool = False,
                 rtl_dir: RtlDir | None = None) -> RunResult:
    """Random tiles programmed by golden.conductance (and, for non-ideal sets, through the
    chip's device, parasitics and ADC), read by the Verilog crossbar (``crossbar_vpi``, Icarus:
    by its compiled read, :func:`sim.runner.build_crossbar_vpi`)."""
    from golden.analog.chip_state import program_arrays

    chip, tiles, kind = CROSSBAR_SETS[name]
    build_dir = (Path(build_root) / "crossbar" / name /
                 (f"{simulator}-vpi" if crossbar_vpi else simulator)).resolve()
    rng = np.random.default_rng(seed)
    weights = rng.choice(np.array([-1, 0, 1], np.int8), p=[0.45, 0.1, 0.45],
                         size=(tiles, chip.rows, chip.columns))
    used = np.ones(weights.shape, bool)
    used[-1, chip.rows // 2:, :] = False          # a partly filled last array
    used[-1, :, chip.columns // 2:] = False
    weights = np.where(used, weights, 0).astype(np.int8)
    cond = program_tiles(weights, used, chip.mapping, chip.device)
    state = program_arrays(cond, chip, seed)
    if kind == "boundary":
        nudge = rng.choice([-1.0, 0.0, 1.0], state.adc_offset_lsb.shape) * 2.0 ** -50
        state = replace(state, adc_offset_lsb=0.5 + nudge)
    atomic_write_bytes(build_dir / "gpos.hex", hex_lines(state.g_pos_s))
    atomic_write_bytes(build_dir / "gneg.hex", hex_lines(state.g_neg_s))
    adc_errors = kind != "targets"
    if adc_errors:
        atomic_write_bytes(build_dir / "adc_gain.hex", hex_lines(state.adc_gain))
        atomic_write_bytes(build_dir / "adc_offset.hex", hex_lines(state.adc_offset_lsb))
    buf = io.BytesIO()
    np.savez(buf, weights=weights, g_pos_s=state.g_pos_s, g_neg_s=state.g_neg_s,
             adc_gain=state.adc_gain, adc_offset_lsb=state.adc_offset_lsb)
    atomic_write_bytes(build_dir / "state.npz", buf.getvalue())
    params = {"chip": asdict(chip), "state": str(build_dir / "state.npz"), "reads": reads,
              "kind": kind, "g_unit_s": state.g_unit_s, "v_read_v": state.v_read_v,
              "expect_saturation": kind == "targets" and not chip.adc_exact}
    hdl = {"ROWS": chip.rows, "COLS": chip.columns, "TILES": tiles,
           "TILE_BITS": index_bits(tiles), "ADC_BITS": chip.adc_bits,
           "G_UNIT": state.g_unit_s, "V_READ": state.v_read_v}
    if adc_errors:
        hdl["ADC_ERRORS"] = 1
    sources = _sources("crossbar", name, generate_verilog("crossbar", name, build_dir), rtl_dir)
    return run_cocotb(simulator=simulator, sources=sources, toplevel="mbnn_crossbar",
                      test_module="sim.tb.tb_crossbar", build_dir=build_dir, params=params,
                      seed=seed, hdl_parameters=hdl, crossbar_vpi=crossbar_vpi, waves=waves,
                      external=rtl_dir is not None)


# --- whole networks in `mbnn regress` -----------------------------------------------------


@dataclass(frozen=True)
class NetworkRun:
    """A whole-network regression of a core set: the images per simulator.

    ``images``: simulator -> (count, first image). The simulators see different images.
    ``handshake``: simulator -> ``back_to_back`` (exact intervals) or ``random`` (stalls on
    both streams, a mid-image reset). ``icarus_vpi``: on Icarus the crossbar reads through its
    compiled read (the same codes bit for bit, ``tests/test_rtl_crossbar.py``): interpreting
    128-row sums is most of an Icarus run's time otherwise."""

    dataset: str
    images: dict
    handshake: dict
    icarus_vpi: bool = False


_MIXED = {"icarus": "back_to_back", "verilator": "random"}
_RANDOM = {"icarus": "random", "verilator": "random"}
NETWORK_RUNS = {
    "mlp_128x128": NetworkRun("mnist", {"icarus": (100, 0), "verilator": (200, 100)}, _MIXED,
                              icarus_vpi=True),
    "cnn_128x128": NetworkRun("mnist", {"icarus": (2, 0), "verilator": (200, 2)}, _MIXED,
                              icarus_vpi=True),
    "cnn_100x50": NetworkRun("mnist", {"icarus": (2, 21), "verilator": (4, 23)}, _MIXED,
                             icarus_vpi=True),
    "tiny_16x8": NetworkRun("random", {"icarus": (40, 0), "verilator": (40, 0)}, _RANDOM),
    "tiny_16x8_nonideal": NetworkRun("random", {"icarus": (40, 0), "verilator": (40, 0)},
                                     _RANDOM),
    "tiny_16x8_ref_nonideal": NetworkRun("random", {"icarus": (40, 0), "verilator": (40, 0)},
                                         _RANDOM),
    "tiny_16x8_p3": NetworkRun("random", {"icarus": (40, 0), "verilator": (40, 0)}, _RANDOM),
    "tiny_16x8_nonideal_p2": NetworkRun("random", {"icarus": (40, 0), "verilator": (40, 0)},
                                        _MIXED),
    "mlp_128x128_p8": NetworkRun("mnist", {"icarus": (50, 400), "verilator": (200, 450)},
                                 _MIXED, icarus_vpi=True),
    "tiny_16x8_pipe": NetworkRun("random", {"icarus": (30, 0), "verilator": (30, 0)}, _MIXED),
    "tiny_16x8_p3_pipe": NetworkRun("random", {"icarus": (30, 0), "verilator": (30, 0)},
                                    {"icarus": "random", "verilator": "back_to_back"}),
    "tiny_16x8_nonideal_p2_pipe": NetworkRun("random", {"icarus": (30, 0),
                                                        "verilator": (30, 0)}, _MIXED),
    # (the pipelined MLP is not a regression set: its 3.3 MB of Verilog took 10 s of the lint
    # of every set and its Verilator build 2 minutes; tests/test_rtl_core.py runs it on both
    # simulators, `mbnn infer --config configs/pipelined.toml` for a user)
    # Icarus back to back: the programming phase's cycles are checked exactly
    "tiny_16x8_programmed": NetworkRun("random", {"icarus": (20, 0), "verilator": (40, 0)},
                                       _MIXED),
    "tiny_16x8_ref_programmed": NetworkRun("random", {"icarus": (20, 0), "verilator": (40, 0)},
                                           _MIXED),
}


def generate_network(name: str, out_dir: Path, seed: int) -> Path:
    """Generate core set ``name`` into ``out_dir`` (a seeded random model is drawn and saved
    beside it first, so the generator sees a model file); the chip is programmed with
    ``seed``."""
    from periphery.generate_model import generate_model

    core = CORE_SETS[name]
    out_dir = Path(out_dir)
    if core.model.endswith(".npz"):
        model_file = Path(__file__).resolve().parent.parent / core.model
    else:
        from golden.model import save_model
        model_file = save_model(out_dir.with_name(out_dir.name + "-model.npz"), core.load(seed))
    generate_model(model_file, core.chip, out_dir, seed=seed, program=core.program)
    return out_dir


def run_network(name: str, simulator: str, build_root: Path, seed: int = DEFAULT_SEED,
                waves: bool = False, gen_seed: int | None = None,
                rtl_dir: RtlDir | None = None) -> CoreRun:
    """The whole-network regression of core set ``name`` (:data:`NETWORK_RUNS`): generated
    with ``gen_seed`` (default ``seed``), images and handshakes drawn with ``seed``, on
    ``rtl_dir``'s Verilog when given."""
    run = NETWORK_RUNS[name]
    count, offset = run.images[simulator]
    gen_dir = Path(build_root).resolve() / "network" / name / f"generated-{simulator}"
    verilog = generate_verilog("network", name, gen_dir, seed if gen_seed is None else gen_seed)
    sources = _sources("network", name, verilog, rtl_dir)
    vpi = run.icarus_vpi and simulator == "icarus"
    return run_core(gen_dir, simulator, Path(build_root) / "network", name, count, offset=offset,
                    dataset=run.dataset, seed=seed, waves=waves, crossbar_vpi=vpi,
                    handshake=run.handshake[simulator], sources=sources)


# --- the Verilog each regression simulates ------------------------------------------------

def sequencer_sets() -> list[str]:
    """The core sets whose sequencers differ, first of each kind: a sequencer is generated from
    the model's layer geometry on the arrays (model, rows, columns, parallel reads), not from
    the device, ADC, mapping scheme or programming, so the tiny CNN's non-ideal and programmed
    sets have the ideal set's sequencer, byte for byte (tests/test_rtl_sequencer.py)."""
    seen, out = set(), []
    for name, core in CORE_SETS.items():
        key = (core.model, core.chip.rows, core.chip.columns, core.chip.parallel_reads)
        if key not in seen:
            seen.add(key)
            out.append(name)
    return out


# block -> its parameter sets, in the order `mbnn regress` runs them
def regression_sets() -> dict[str, list[str]]:
    return {"bn_binarize": list(BN_BINARIZE_SETS), "accumulator": list(ACCUMULATOR_SETS),
            "sequencer": sequencer_sets(),
            "programming": list(PROGRAMMING_SETS),
            "update_unit": list(UPDATE_UNIT_SETS),
            "crossbar": list(CROSSBAR_SETS), "network": list(NETWORK_RUNS)}


def regression_component(block: str, name: str, seed: int = DEFAULT_SEED,
                         layer_gap: int | None = None):
    """The Amaranth component regression ``block``/``name`` simulates, generated as
    :func:`generate_verilog` does (``seed`` draws seeded tables and random models):
    ``(component, module name)``. The crossbar set has none (hand-written Verilog)."""
    if block == "bn_binarize":
        return BNBinarize(BN_BINARIZE_SETS[name]), "bn_binarize"
    if block == "accumulator":
        table = accumulator_table(ACCUMULATOR_SETS[name], seed)
        return Accumulator(ACCUMULATOR_SETS[name], table["bias"], table["double"]), "accumulator"
    if block == "sequencer":
        core = CORE_SETS[name]
        mapped = compile_model(core.load(seed), core.chip)
        gap = CoreParams(mapped).layer_gap if layer_gap is None else layer_gap
        return Sequencer(mapped, gap), "sequencer"
    if block == "programming":
        from periphery.programming import ProgrammingController
        pset = PROGRAMMING_SETS[name]
        return ProgrammingController(pset.policy, pset.targets(seed)), "programming_controller"
    if block == "update_unit":
        from periphery.update_unit import UpdateUnit
        return UpdateUnit(UPDATE_UNIT_SETS[name]), "update_unit"
    if block == "network":
        from periphery.generate_model import TOPLEVEL, build_system
        core = CORE_SETS[name]
        return build_system(core.load(seed), core.chip, seed, program=core.program)[0], TOPLEVEL
    raise ValueError(f"regression block {block!r} has no Amaranth component")


def generate_verilog(block: str, name: str, out_dir: Path, seed: int = DEFAULT_SEED,
                     layer_gap: int | None = None) -> dict[str, tuple[Path, str]]:
    """Generate what regression ``block``/``name`` simulates into ``out_dir``: the Verilog
    (and the data files its testbench reads). Returns file name -> (path, toplevel module) of
    the Verilog, in compile order; ``seed`` draws seeded tables and random models."""
    out_dir = Path(out_dir)
    if block == "bn_binarize":
        path = atomic_write_text(out_dir / "bn_binarize.v",
                                 bn_binarize_verilog(BN_BINARIZE_SETS[name]))
        return {"bn_binarize.v": (path, "bn_binarize")}
    if block == "accumulator":
        params = ACCUMULATOR_SETS[name]
        table = accumulator_table(params, seed)
        atomic_write_text(out_dir / "table.json", json.dumps(table))
        path = atomic_write_text(out_dir / "accumulator.v",
                                 accumulator_verilog(params, table["bias"], table["double"]))
        return {"accumulator.v": (path, "accumulator")}
    if block == "sequencer":
        core = CORE_SETS[name]
        mapped = compile_model(core.load(seed), core.chip)
        if layer_gap is None:
            layer_gap = CoreParams(mapped).layer_gap
        path = atomic_write_text(out_dir / "sequencer.v", sequencer_verilog(mapped, layer_gap))
        return {"sequencer.v": (path, "sequencer")}
    if block == "programming":
        pset = PROGRAMMING_SETS[name]
        path = atomic_write_text(out_dir / "programming_controller.v",
                                 programming_verilog(pset.policy, pset.targets(seed)))
        return {"programming_controller.v": (path, "programming_controller")}
    if block == "update_unit":
        path = atomic_write_text(out_dir / "update_unit.v",
                                 update_unit_verilog(UPDATE_UNIT_SETS[name]))
        return {"update_unit.v": (path, "update_unit")}
    if block == "crossbar":
        CROSSBAR_SETS[name]     # a KeyError names an unknown set
        return {"mbnn_crossbar.v": (CROSSBAR_SOURCE, "mbnn_crossbar")}
    if block == "network":
        NETWORK_RUNS[name]
        generate_network(name, out_dir, seed)
        return {"mbnn_crossbar.v": (out_dir / "mbnn_crossbar.v", "mbnn_crossbar"),
                "bnn_system.v": (out_dir / "bnn_system.v", "bnn_system")}
    raise ValueError(f"unknown regression block {block!r}; expected one of "
                     f"{', '.join(regression_sets())}")


def _sources(block: str, name: str, verilog: dict[str, tuple[Path, str]],
             rtl_dir: RtlDir | None) -> list[Path]:
    """The files to simulate: the generated ones, or ``rtl_dir``'s after the port check."""
    if rtl_dir is None:
        return [path for path, _module in verilog.values()]
    return rtl_dir.sources(f"{block}/{name}", verilog)
