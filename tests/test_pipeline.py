"""The layer-pipelined core's golden timing (golden.pipeline): banks, result queue, and the
steady-state interval its cycle rules reach; the settings that choose it."""

from pathlib import Path

import numpy as np
import pytest

from golden.chip import ChipConfig, load_chip_config
from golden.core import CoreParams
from golden.mapping import compile_model
from golden.model import load_model
from golden.pipeline import RESULT_LATENCY, PipelinePlan, plan, timing

REPO = Path(__file__).resolve().parent.parent


def _steady(p: PipelinePlan, images: int = 40) -> set:
    """The intervals between the last results of a long back-to-back run."""
    return set(timing(p, images).intervals[-12:])


def test_random_stage_lists_reach_the_slowest_stage(seed):
    """For any stages and input rate, the planned banks and queue let results leave at a
    constant interval equal to the slowest stage or the input beats (seeded)."""
    rng = np.random.default_rng(seed)
    print(f"seed {seed}")
    for _ in range(3000):
        cycles = [int(c) for c in rng.integers(1, 40, size=rng.integers(1, 6))]
        beats = int(rng.integers(1, 40))
        p = plan(cycles, beats)
        assert _steady(p) == {max(beats, *cycles)}, (cycles, beats, p)


def _mean(p: PipelinePlan, images: int = 40) -> float:
    return float(np.mean(timing(p, images).intervals[-12:]))


def test_one_bank_fewer_is_slower():
    """The bank counts are needed: one bank fewer in a buffer (or one queue entry fewer)
    loses the interval for the shipped MLP's stages at 8 reads per cycle (8, 8, 8, 1 cycles,
    1 input beat)."""
    p = plan([8, 8, 8, 1], 1)
    assert p.banks == (2, 3, 3, 2) and p.result_depth == 2 and _steady(p) == {8}
    # buffer 1: a bank is busy C + FULL_LATENCY + START_LATENCY = 15 cycles beyond its
    # producer's run, more than one interval of 8
    fewer = PipelinePlan(p.stage_cycles, 1, (2, 2, 3, 2), 2)
    assert _mean(fewer) > 8
    # a single-cycle stage: its queue entry must outlive RESULT_LATENCY + 1 = 5 cycles
    q = plan([1], 1)
    assert q.result_depth == 2 + RESULT_LATENCY
    assert _steady(q) == {1}
    assert _mean(PipelinePlan((1,), 1, q.banks, q.result_depth - 1)) > 1


def test_timing_of_one_image_follows_the_rules():
    """Cycle by cycle for one image through stages of 3 and 2 commands after 4 input beats:
    cycles counted by hand from the datapath's stages (periphery.core's dataflow table), not
    from the module's constants."""
    t = timing(plan([3, 2], 4), 1)
    # beats in cycles 0-3, bank full in 4, first command 5, last 7; the write-back of that
    # command in 7 + 5 = 12, layer 1's bank full in 13, its commands in 14 and 15; the
    # accumulator result of 15 three cycles later, in the queue in 19
    assert t.beats == (0,)
    assert t.first == ((5,), (14,))
    assert t.last == ((7,), (15,))
    assert t.results == (19,)
    assert t.latency == 19


def _shipped(name: str, **chip) -> CoreParams:
    return CoreParams(compile_model(load_model(REPO / "models" / f"{name}.npz"),
                                    ChipConfig(128, 128, pipeline=True, **chip)))


@pytest.mark.parametrize("name, p, words, stages, interval", [
    ("mlp", 1, 1, (56, 64, 64, 8), 64),
    ("mlp", 8, 7, (8, 8, 8, 1), 8),
    ("cnn", 1, 16, None, None),
    ("cnn", 8, 16, None, None),
])
def test_shipped_models_pipelined(name, p, words, stages, interval):
    """The shipped models' stages are their layers' read cycles (``read_cycles(P)``); the
    steady state of the golden timing is the slowest stage -- the array-bound limit."""
    params = _shipped(name, arrays=64, parallel_reads=p, input_words=words)
    plan_ = params.pipeline
    want = tuple(layer.read_cycles(p) for layer in params.mapped.layers)
    assert plan_.stage_cycles == want
    if stages is not None:
        assert want == stages and plan_.interval == interval
    assert params.compute_cycles_per_image == plan_.interval == max(want)
    assert _steady(plan_) == {max(want)}
    assert params.input_hidden and plan_.bottleneck.startswith("layer")
    assert params.latency_cycles == timing(plan_, 1).latency


def test_pipelined_chip_needs_arrays_for_every_stage():
    with pytest.raises(ValueError, match=r"\[chip\] pipeline = true: the layers read up to 31 "
                                         r"arrays in one cycle .* arrays = 16"):
        _shipped("mlp", arrays=16, parallel_reads=8, input_words=7)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_pipeline_setting_must_be_a_boolean(value):
    with pytest.raises(ValueError, match="pipeline must be true or false"):
        ChipConfig(pipeline=value)


def test_pipeline_from_toml(tmp_path):
    path = tmp_path / "chip.toml"
    path.write_text("[chip]\narrays = 8\nparallel_reads = 2\npipeline = true\n")
    assert load_chip_config(path).pipeline is True
    path.write_text("[chip]\npipeline = \"on\"\n")
    with pytest.raises(ValueError, match=r"chip.toml: pipeline must be true or false, not 'on'"):
        load_chip_config(path)


def test_plan_refuses_empty_or_zero_stages():
    with pytest.raises(ValueError, match="must be positive"):
        plan([], 1)
    with pytest.raises(ValueError, match="must be positive"):
        plan([3, 0], 1)
