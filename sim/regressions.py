"""Named regressions: which parameter sets each block is verified with, and how to run them."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from golden.bn_binarize import BNBinarizeParams
from golden.fileio import atomic_write_text
from periphery.generate import bn_binarize_verilog

from .runner import DEFAULT_SEED, RunResult, run_cocotb

__all__ = ["BN_BINARIZE_SETS", "run_bn_binarize"]

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
}


def run_bn_binarize(name: str, params: BNBinarizeParams, simulator: str, build_root: Path,
                    seed: int = DEFAULT_SEED, waves: bool = False) -> RunResult:
    """Generate the block for ``params`` and run its cocotb testbench on ``simulator`` in
    ``build_root/bn_binarize/<name>/<simulator>``."""
    build_dir = Path(build_root) / "bn_binarize" / name / simulator
    source = atomic_write_text(build_dir / "bn_binarize.v", bn_binarize_verilog(params))
    return run_cocotb(simulator=simulator, sources=[source], toplevel="bn_binarize",
                      test_module="sim.tb.tb_bn_binarize", build_dir=build_dir,
                      params=asdict(params), seed=seed, waves=waves)
