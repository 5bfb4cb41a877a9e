"""``mbnn generate --model``: a trained model on a chip, as a directory of simulation inputs.

Contents (all deterministic for the same model file and chip configuration, which includes
the device and the ADC):

``bnn_system.v``    the core and its crossbar instance, generated from Amaranth
``mbnn_crossbar.v`` the behavioural crossbar (hand-written, copied from ``rtl/analog``)
``gpos.hex``, ``gneg.hex``  per-cell conductances of every array as a read sees them: the
                    targets (golden.conductance) on an ideal chip, the programmed effective
                    conductances (golden.analog.chip_state) on a non-ideal one
``adc_gain.hex``, ``adc_offset.hex``  per-column ADC errors of every array (only when the
                    chip's ADC has them)
``model.npz``       the model file the hardware was generated from (testbenches' golden)
``manifest.json``   parameters (``chip``: the whole chip configuration, including the device
                    preset with every parameter and the ADC settings), derived figures and the
                    SHA-256 of every file above

Only the ideal device and the exact ADC are supported so far (the behavioural crossbar is
ideal); other chips are refused before anything is written.

The directory appears complete or not at all: it is built beside the target and renamed into
place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import numpy as np

from golden.chip import ChipConfig
from golden.analog.chip_state import ProgrammedChip, program_chip
from golden.conductance import hex_lines, read_hex_lines
from golden.core import CoreParams
from golden.mapping import compile_model
from golden.model import load_model

from .core import BnnSystem
from .generate import verilog_source

__all__ = ["generate_model", "load_programmed_chip", "CROSSBAR_SOURCE", "TOPLEVEL",
           "MANIFEST_FORMAT"]

CROSSBAR_SOURCE = Path(__file__).resolve().parent.parent / "rtl" / "analog" / "mbnn_crossbar.v"
# its compiled read for Icarus (define MBNN_CROSSBAR_VPI; see the file), shipped beside it
CROSSBAR_VPI_SOURCE = CROSSBAR_SOURCE.with_name("mbnn_crossbar_vpi.c")
TOPLEVEL = "bnn_system"
# 2: the device record and the ADC settings moved into "chip" (a complete ChipConfig)
MANIFEST_FORMAT = "mbnn-generated-2"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def generate_model(model_path: str | Path, chip: ChipConfig, out_dir: str | Path,
                   seed: int | None = None, read_time_sec: float | None = None) -> dict:
    """Write the generated hardware of ``model_path`` on ``chip`` to ``out_dir`` and return
    the manifest. The arrays are programmed through the chip's device, parasitics and ADC
    (:func:`golden.analog.chip_state.program_chip` with ``seed``, drift evaluated at
    ``read_time_sec``); an ideal chip gives the target conductances. Raises
    ``ValueError``/``ModelFormatError`` for inputs the core or the crossbar model cannot take,
    before anything is written."""
    model_path, out_dir = Path(model_path), Path(out_dir)
    model = load_model(model_path)
    mapped = compile_model(model, chip)
    params = CoreParams(mapped)          # validates that the core can implement it
    state = program_chip(mapped, seed, read_time_sec)
    adc_errors = not chip.adc.is_ideal
    system = BnnSystem(params, state.g_unit_s, state.v_read_v, adc_errors=adc_errors)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / f"{TOPLEVEL}.v").write_text(verilog_source(system, TOPLEVEL, params.describe()))
        shutil.copyfile(CROSSBAR_SOURCE, tmp / CROSSBAR_SOURCE.name)
        shutil.copyfile(CROSSBAR_VPI_SOURCE, tmp / CROSSBAR_VPI_SOURCE.name)
        (tmp / "gpos.hex").write_bytes(hex_lines(state.g_pos_s))
        (tmp / "gneg.hex").write_bytes(hex_lines(state.g_neg_s))
        if adc_errors:
            (tmp / "adc_gain.hex").write_bytes(hex_lines(state.adc_gain))
            (tmp / "adc_offset.hex").write_bytes(hex_lines(state.adc_offset_lsb))
        shutil.copyfile(model_path, tmp / "model.npz")
        files = sorted(f.name for f in tmp.iterdir())
        manifest = {
            "format": MANIFEST_FORMAT,
            "toplevel": TOPLEVEL,
            "generator": {"amaranth": version("amaranth")},
            "model": {"file": "model.npz", "architecture": model.arch.name,
                      "source_name": model_path.name},
            "chip": asdict(chip),
            "crossbar": {"g_unit_s": state.g_unit_s, "v_read_v": state.v_read_v},
            "programming": {"seed": seed, "read_time_sec": read_time_sec,
                            "ideal": not chip.non_ideal_settings(),
                            "stuck_cells": int((state.stuck != 0).sum()),
                            "cells": int(state.stuck.size)},
            "core": params.describe(),
            "analytical_cycles_per_image": params.analytical_cycles_per_image,
            "files": {name: {"sha256": _sha256(tmp / name), "bytes": (tmp / name).stat().st_size}
                      for name in files},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, old / "x")
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def load_programmed_chip(gen_dir: str | Path, chip: ChipConfig, tiles: int) -> ProgrammedChip:
    """The programmed chip a generated directory's crossbar loads (its conductance and ADC
    files, read back bit for bit), for testbenches that check the RTL against the golden read
    of exactly that state. ``stuck`` is not stored in the directory and comes back empty."""
    gen_dir = Path(gen_dir)
    manifest = json.loads((gen_dir / "manifest.json").read_text())
    shape = (tiles, chip.rows, chip.columns)

    def load(name, shape):
        return read_hex_lines((gen_dir / name).read_bytes(), name).reshape(shape)

    if (gen_dir / "adc_gain.hex").exists():
        gain, offset = load("adc_gain.hex", shape[::2]), load("adc_offset.hex", shape[::2])
    else:
        gain, offset = np.ones(shape[::2]), np.zeros(shape[::2])
    prog, xb = manifest["programming"], manifest["crossbar"]
    return ProgrammedChip(chip, prog["seed"], prog["read_time_sec"], load("gpos.hex", shape),
                          load("gneg.hex", shape), xb["g_unit_s"], xb["v_read_v"], gain, offset,
                          np.zeros((0, 0, 0), np.int8))
