"""Whole networks through the generated core and behavioural crossbar on Icarus and Verilator,
image by image against the golden model (testbench: sim/tb/tb_core.py): the class, every class
score and every hidden layer's output bits."""

from pathlib import Path

import pytest

from golden.analog.chip_state import program_chip
from golden.chip import ChipConfig
from golden.conductance import hex_lines
from golden.core import CoreParams
from golden.mapping import compile_model
from golden.model import save_model
from golden.schedule import commands
from periphery.generate_model import generate_model
from sim.regressions import CORE_SETS, run_core

from conftest import check_cocotb_run, require_simulator

REPO = Path(__file__).resolve().parent.parent

# (core set, simulator, images, first image) in the default run. The MLP meets the >= 200 images
# per simulator of the issue; on Icarus they are split in two halves so the two pytest workers
# share them. "icarus-vpi": Icarus with the crossbar's compiled read (the same codes bit for
# bit, tests/test_rtl_crossbar.py), since interpreting the crossbar's sums was most of these
# runs' time; the Verilog loops themselves run whole networks on Icarus in the tiny-CNN tests
# below and on Verilator here. The CNN costs 2405 array reads per image. The two simulators see
# different images.
DEFAULT_RUNS = [
    ("mlp_128x128", "icarus-vpi", 100, 0),
    ("mlp_128x128", "icarus-vpi", 100, 100),
    ("mlp_128x128", "verilator", 200, 200),
    ("cnn_128x128", "icarus-vpi", 2, 0),
    ("cnn_128x128", "verilator", 200, 2),
]


def _generate(name: str, build_root: Path, seed: int, tag: str) -> Path:
    """Generate core set ``name`` into its own directory (one per test: xdist-safe)."""
    core = CORE_SETS[name]
    out = build_root / "generated" / f"{name}-{tag}"
    if core.model.endswith(".npz"):
        model_file = REPO / core.model
    else:   # a seeded random model: save it so the generator sees a model file
        model_file = save_model(build_root / "generated" / f"{name}-{tag}-model.npz",
                                core.load(seed))
    generate_model(model_file, core.chip, out, seed=seed, program=core.program)
    return out


def _report(run, record_property):
    print(run.summary)
    check_cocotb_run(run.result, record_property, tests=1)


@pytest.mark.rtl
@pytest.mark.parametrize("name, simulator, images, offset", DEFAULT_RUNS,
                         ids=[f"{n}-{s}-{o}..{o + k - 1}" for n, s, k, o in DEFAULT_RUNS])
def test_network_on_rtl(name, simulator, images, offset, seed, build_root, record_property):
    sim, _, vpi = simulator.partition("-")
    require_simulator(sim)
    tag = f"{simulator}-{offset}"
    gen = _generate(name, build_root, seed, tag)
    # back-to-back streams on Icarus (exact steady-state intervals), random handshakes with a
    # mid-image reset on Verilator (every image's start-to-result latency still exact)
    handshake = "random" if sim == "verilator" else "back_to_back"
    run = run_core(gen, sim, build_root, f"{name}-{offset}", images, offset=offset,
                   seed=seed, crossbar_vpi=bool(vpi), handshake=handshake)
    _report(run, record_property)
    s = run.summary
    assert s["images"] == images and s["offset"] == offset
    assert s["mismatches"] == 0 and s["layer_checks"]
    assert s["rtl_accuracy"] == s["golden_accuracy"]
    # Every cycle above the analytical minimum (one array read per cycle) is accounted for:
    # a layer gap per layer boundary and the image turnaround (golden.core).
    params = CoreParams(compile_model(CORE_SETS[name].load(seed), CORE_SETS[name].chip))
    assert params.input_hidden
    assert s["min_cycles_per_image"] == params.mapped.read_cycles_per_image
    assert s["latency_cycles_seen"] == [params.latency_cycles] and \
        s["latencies_measured"] == images, "every image computes in exactly the same cycles"
    if handshake == "back_to_back" and params.input_hidden:
        assert s["cycles_per_image_seen"] == [params.compute_cycles_per_image]
    elif handshake == "back_to_back":   # the input stream sets the pace (CoreParams)
        assert len(s["cycles_per_image_seen"]) == 1, \
            "every image after the first takes exactly the steady-state cycles"
    elif images >= 3:
        assert s["mid_image_resets"] == 1


# (core set, simulator, images, first image, handshake): several arrays read per cycle. The
# MLP with 8 ports on Verilator is in `make test-long` (its build alone took 30 s of the
# default run on an empty compiler cache); the tiny sets cover P > 1 on Verilator there.
PARALLEL_RUNS = [
    ("tiny_16x8_p3", "icarus", 40, 0, "random"),
    ("tiny_16x8_p3", "verilator", 40, 0, "random"),
    ("tiny_16x8_nonideal_p2", "icarus", 40, 0, "back_to_back"),
    ("tiny_16x8_nonideal_p2", "verilator", 40, 0, "random"),
    ("mlp_128x128_p8", "icarus-vpi", 30, 400, "back_to_back"),
    pytest.param("mlp_128x128_p8", "verilator", 2000, 450, "random",
                 marks=pytest.mark.slow),
]


def _run_ids(runs, fields=(0, 1)) -> list[str]:
    """Test ids of run tuples (or pytest.param of them): the chosen fields joined."""
    return ["-".join(str((r.values if hasattr(r, "values") else r)[k]) for k in fields)
            for r in runs]


@pytest.mark.rtl
@pytest.mark.parametrize("name, simulator, images, offset, handshake", PARALLEL_RUNS,
                         ids=_run_ids(PARALLEL_RUNS))
def test_parallel_reads_on_rtl(name, simulator, images, offset, handshake, seed, build_root,
                               record_property):
    """``parallel_reads = P``: the core reads up to P row tiles of a pixel in one cycle through
    P crossbar ports and sums their codes in an adder tree. Every image's class, scores and
    layer bits equal the golden model's (ideal chips: the unmapped model's; the non-ideal one:
    the golden read of its programmed arrays, every port with its own arrays' ADC errors), and
    the cycles are the schedule's: reads in ceil(row tiles / P) cycles per pixel and column
    tile, every image's latency exact, and back to back every image interval exact."""
    sim, _, vpi = simulator.partition("-")
    require_simulator(sim)
    core = CORE_SETS[name]
    params = CoreParams(compile_model(core.load(seed), core.chip))
    assert params.read_ports == core.chip.parallel_reads > 1
    gen = _generate(name, build_root, seed, f"{simulator}-{offset}")
    assert f".PORTS(32'd{params.read_ports})" in (gen / "bnn_system.v").read_text(), \
        "the generated system does not instantiate a crossbar with a port per parallel read"
    run = run_core(gen, sim, build_root, f"{name}-{offset}", images, offset=offset,
                   dataset="random" if core.model == "tiny" else "mnist", seed=seed,
                   crossbar_vpi=bool(vpi), handshake=handshake)
    _report(run, record_property)
    s = run.summary
    assert s["images"] == images and s["mismatches"] == 0 and s["layer_checks"]
    # the testbench's minimum is the formula; the golden schedule built read by read agrees
    cycles = len(commands(params.mapped))
    assert s["min_cycles_per_image"] == cycles < params.mapped.reads_per_image
    assert s["latency_cycles_seen"] == [params.latency_cycles]
    assert s["latencies_measured"] == images
    if handshake == "back_to_back" and params.input_hidden:
        assert s["cycles_per_image_seen"] == [params.compute_cycles_per_image]
    elif handshake == "back_to_back":   # the input stream sets the pace (CoreParams)
        assert len(s["cycles_per_image_seen"]) == 1
    else:
        assert s["mid_image_resets"] == 1


# (core set, simulator, images, first image, handshake): layers pipelined across images. Back
# to back, every result's cycle is golden.pipeline's; random handshakes stall both streams and
# reset the core mid-image. The MLP at 8 reads per cycle on Verilator (2000 images, random
# handshakes) is in `make test-long`, beside the tiny CNN one read per cycle there.
PIPELINE_RUNS = [
    ("tiny_16x8_pipe", "icarus", 30, 0, "back_to_back"),
    ("tiny_16x8_p3_pipe", "icarus", 30, 0, "random"),
    ("tiny_16x8_p3_pipe", "verilator", 30, 0, "back_to_back"),
    ("tiny_16x8_nonideal_p2_pipe", "verilator", 30, 0, "random"),
    ("mlp_128x128_p8_pipe", "icarus-vpi", 30, 650, "back_to_back"),
    pytest.param("tiny_16x8_pipe", "verilator", 30, 0, "random", marks=pytest.mark.slow),
    pytest.param("mlp_128x128_p8_pipe", "verilator", 2000, 700, "random",
                 marks=pytest.mark.slow),
]


@pytest.mark.rtl
@pytest.mark.parametrize("name, simulator, images, offset, handshake", PIPELINE_RUNS,
                         ids=_run_ids(PIPELINE_RUNS, (0, 1, 4)))
def test_pipelined_layers_on_rtl(name, simulator, images, offset, handshake, seed, build_root,
                                 record_property):
    """``pipeline = true``: a stage per layer with its own read ports, accumulator and
    BN-binarize, banked activations between them. Every image's class and scores equal the
    golden model's, every hidden layer's bits (rebuilt from the write-back trace: the banks
    are reused before a result leaves) too, and back to back every result appears in the
    cycle golden.pipeline's rules give -- at the slowest stage's interval in the steady
    state."""
    from golden.pipeline import timing

    sim, _, vpi = simulator.partition("-")
    require_simulator(sim)
    core = CORE_SETS[name]
    params = CoreParams(compile_model(core.load(seed), core.chip))
    assert params.pipelined
    gen = _generate(name, build_root, seed, f"{simulator}-{offset}")
    assert f".PORTS(32'd{params.crossbar_ports})" in (gen / "bnn_system.v").read_text(), \
        "the generated system does not instantiate a crossbar port per stage's read lane"
    run = run_core(gen, sim, build_root, f"{name}-{offset}", images, offset=offset,
                   dataset="random" if core.model == "tiny" else "mnist", seed=seed,
                   crossbar_vpi=bool(vpi), handshake=handshake)
    _report(run, record_property)
    s = run.summary
    assert s["images"] == images and s["mismatches"] == 0 and s["layer_checks"]
    assert s["pipelined"]
    if handshake == "back_to_back":
        assert s["result_cycles"] == list(timing(params.pipeline, images).results)
        interval = params.compute_cycles_per_image
        assert interval == max(params.pipeline.stage_cycles) and params.input_hidden
        assert s["cycles_per_image_seen"] == [interval], "not at the slowest stage's interval"
    else:
        assert s["mid_image_resets"] == 1


@pytest.mark.rtl
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_random_tiny_cnn_with_saturating_adcs(simulator, seed, build_root, record_property):
    """A seeded random CNN on 16x8 arrays with 3-bit ADCs: row tiles that split window
    positions (shifted gathers), pooling that crops a 9x7 map, several column tiles into a
    dense layer, ADC saturation and tied class scores -- checked against the mapped golden
    model, which models saturation exactly. Random handshakes on both streams and one reset
    in the middle of an image (sim.tb.tb_core)."""
    require_simulator(simulator)
    assert not CORE_SETS["tiny_16x8"].chip.adc_exact
    gen = _generate("tiny_16x8", build_root, seed, simulator)
    run = run_core(gen, simulator, build_root, "tiny_16x8", 40, dataset="random", seed=seed,
                   handshake="random")
    _report(run, record_property)
    assert run.summary["mismatches"] == 0 and run.summary["images"] == 40
    assert run.summary["handshake"] == "random" and run.summary["mid_image_resets"] == 1
    core = CORE_SETS["tiny_16x8"]
    params = CoreParams(compile_model(core.load(seed), core.chip))
    assert run.summary["latency_cycles_seen"] == [params.latency_cycles]
    assert run.summary["latencies_measured"] == 40
    assert run.summary["score_ties"] > 0, "no image exercised the argmax tie rule"


@pytest.mark.rtl
@pytest.mark.parametrize("name, simulator", [("tiny_16x8_nonideal", "icarus"),
                                             ("tiny_16x8_nonideal", "verilator"),
                                             ("tiny_16x8_ref_nonideal", "verilator")])
def test_random_tiny_cnn_on_a_non_ideal_chip(name, simulator, seed, build_root,
                                             record_property):
    """The tiny CNN on a chip with RRAM programming spread, stuck cells, wire/driver/sense
    resistance and ADC gain/offset errors, programmed with the run's seed: every image's
    class, scores and layer bits equal the golden read of the same programmed chip, and the
    chip's non-idealities do move scores away from the ideal chip's (else the check proves
    nothing about them). Random handshakes and a mid-image reset, as above."""
    require_simulator(simulator)
    gen = _generate(name, build_root, seed, simulator)
    # the testbench checks against the state in the generated files: first, that state is the
    # golden programming of this seed
    core = CORE_SETS[name]
    mapped = compile_model(core.load(seed), core.chip)
    state = program_chip(mapped, seed)
    assert (gen / "gpos.hex").read_bytes() == hex_lines(state.g_pos_s)
    assert (gen / "gneg.hex").read_bytes() == hex_lines(state.g_neg_s)
    assert (gen / "adc_offset.hex").read_bytes() == hex_lines(state.adc_offset_lsb)
    run = run_core(gen, simulator, build_root, name, 40, dataset="random", seed=seed,
                   handshake="random")
    _report(run, record_property)
    s = run.summary
    assert s["non_ideal_chip"] and s["mismatches"] == 0 and s["images"] == 40
    assert s["handshake"] == "random" and s["mid_image_resets"] == 1
    assert s["latency_cycles_seen"] == [CoreParams(mapped).latency_cycles]
    assert s["latencies_measured"] == 40
    assert s["scores_off_ideal"] > 0, "the non-ideal chip scored every image like an ideal one"


@pytest.mark.rtl
@pytest.mark.parametrize("name, simulator", [("tiny_16x8_programmed", "icarus"),
                                             ("tiny_16x8_programmed", "verilator"),
                                             ("tiny_16x8_ref_programmed", "verilator")])
def test_the_system_programs_its_arrays_then_infers_on_them(name, simulator, seed, build_root,
                                                            record_property):
    """The programming phase of BnnSystem: the tiny CNN's arrays start as a fresh RRAM chip
    (stuck cells, device spread, ADC errors; no wire resistance) and the system's write-verify
    controller programs them through the crossbar's pulse port; then images run on what it
    programmed. The programming must be golden write-verify's pulse for pulse (no pulse off
    the golden log, every pulse of it applied, the same failed cells reported), and every
    image's class, scores and layer bits must equal the golden read of the chip golden
    programming leaves, stuck and failed cells included. Icarus: back-to-back streams, the
    programming cycles exact; Verilator: random ready on the failure reports and random image
    handshakes with a mid-image reset. The reference-column chip has multi-level targets:
    its reference cells sit at the middle of three levels of a 5-level device."""
    from golden.programming import chip_policy, initial_cells, model_targets, program_model

    require_simulator(simulator)
    core = CORE_SETS[name]
    assert core.program and core.chip.parasitics.ideal and core.chip.non_ideal_settings()
    gen = _generate(name, build_root, seed, simulator)
    mapped = compile_model(core.load(seed), core.chip)
    result, state = program_model(mapped, chip_policy(core.chip), seed)
    # the testbench's golden side reads gpos/gneg: the chip golden programming leaves; the
    # crossbar starts from the fresh chip's cells
    assert (gen / "gpos.hex").read_bytes() == hex_lines(state.g_pos_s)
    assert (gen / "gneg.hex").read_bytes() == hex_lines(state.g_neg_s)
    assert (gen / "prog_cells.hex").read_bytes() == \
        hex_lines(initial_cells(core.chip.device, len(result.g_s), seed)[0])
    handshake = "back_to_back" if simulator == "icarus" else "random"
    images = 20 if simulator == "icarus" else 40
    run = run_core(gen, simulator, build_root, name, images, dataset="random", seed=seed,
                   handshake=handshake)
    _report(run, record_property)
    s, p = run.summary, run.summary["programming"]
    assert s["mismatches"] == 0 and s["images"] == images
    assert p["pulses"] == result.pulses > 0
    assert p["failed_cells"] == int(result.failed.sum()) > 0
    # the stimulus exercises read-before-write skips (golden; the RTL's follow from no pulse
    # off the golden log and from the exact cycle count)
    assert 0 < result.skipped.sum() < len(result.g_s)
    if core.chip.mapping == "reference_column":
        # multi-level: cells programmed to the middle level reached it in two or more steps
        targets = model_targets(mapped, 3)
        stepped = result.pulse_cell[result.pulse_index == 1]
        assert chip_policy(core.chip).levels == 3
        assert (~result.failed[stepped] & (targets[stepped] == 1)).any()
    assert s["scores_off_ideal"] > 0, "the programmed chip scored every image like an ideal one"
    if handshake == "back_to_back":
        # 2 cycles a cell, 3 a pulse, 1 a report (periphery.programming)
        assert p["cycles"] == 2 * len(result.g_s) + 3 * result.pulses + p["failed_cells"]
    else:
        assert s["mid_image_resets"] == 1


@pytest.mark.slow
@pytest.mark.rtl
def test_the_mlp_programmed_by_the_rtl_then_mnist_on_verilator(seed, build_root,
                                                              record_property):
    """The shipped MLP's 6.3 M cells programmed by the system's write-verify controller on a
    fresh RRAM chip with stuck cells (about 52 M cycles: minutes on Verilator), then MNIST test
    images on what it programmed, image by image against the golden read of the chip golden
    write-verify leaves; the programming pulse for pulse against golden write-verify."""
    require_simulator("verilator")
    name = "mlp_128x128_programmed"
    gen = _generate(name, build_root, seed, "verilator")
    run = run_core(gen, "verilator", build_root, name, 100, seed=seed)
    _report(run, record_property)
    s, p = run.summary, run.summary["programming"]
    assert s["mismatches"] == 0 and s["images"] == 100
    assert p["golden_cells"] == 192 * 128 * 256 and p["pulses"] == p["golden_pulses"]
    assert p["cycles"] == 2 * p["golden_cells"] + 3 * p["pulses"] + p["failed_cells"]
    assert p["failed_cells"] == p["golden_failed_cells"] > 0
    print(f"programmed chip: RTL accuracy {s['rtl_accuracy']:.4f}, golden "
          f"{s['golden_accuracy']:.4f}, ideal chip {s['ideal_golden_accuracy']:.4f}; "
          f"programming {p['cycles']} cycles in {p['sim_wall_s']:.0f} s")


@pytest.mark.slow
@pytest.mark.rtl
def test_all_mnist_test_images_on_verilator(seed, build_root, record_property):
    """The long regression: all 10 000 MNIST test images through the MLP's RTL on Verilator."""
    require_simulator("verilator")
    gen = _generate("mlp_128x128", build_root, seed, "verilator-10k")
    run = run_core(gen, "verilator", build_root, "mlp_10k", 10000, seed=seed)
    _report(run, record_property)
    assert run.summary["mismatches"] == 0 and run.summary["images"] == 10000


def test_generated_directory_is_deterministic(tmp_path):
    """Two generations of the same model and chip are byte-identical, and the manifest's
    hashes are those of the files."""
    import hashlib
    import json
    chip = ChipConfig(64, 32)
    a = generate_model(REPO / "models" / "mlp.npz", chip, tmp_path / "a")
    b = generate_model(REPO / "models" / "mlp.npz", chip, tmp_path / "b")
    assert a == b
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(list(a["files"]) + ["manifest.json"])
    for name in names:
        data = (tmp_path / "a" / name).read_bytes()
        assert data == (tmp_path / "b" / name).read_bytes(), name
        if name != "manifest.json":
            assert hashlib.sha256(data).hexdigest() == a["files"][name]["sha256"]
    assert str(tmp_path) not in (tmp_path / "a" / "bnn_system.v").read_text()
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["analytical_cycles_per_image"] == manifest["core"]["reads_per_image"]


def test_generate_rejects_a_chip_the_core_cannot_take(tmp_path):
    """Nothing is written when the configuration is unsupported."""
    with pytest.raises(ValueError, match=r"array rows \(40\) to be a multiple"):
        generate_model(REPO / "models" / "mlp.npz", ChipConfig(40, 16), tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_generate_replaces_an_existing_directory_whole(tmp_path):
    out = tmp_path / "out"
    generate_model(REPO / "models" / "mlp.npz", ChipConfig(128, 128), out)
    (out / "stale.txt").write_text("left over")
    generate_model(REPO / "models" / "mlp.npz", ChipConfig(64, 64), out)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
