"""``mbnn generate --model``: a trained model on a chip, as a directory of simulation inputs.

Contents (all deterministic for the same model file and chip configuration, which includes
the device and the ADC):

``bnn_system.v``    the core and its crossbar instance, generated from Amaranth
``mbnn_crossbar.v`` the behavioural crossbar (hand-written, copied from ``rtl/analog``)
``gpos.hex``, ``gneg.hex``  per-cell conductances of every array (see golden.conductance)
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

from golden.chip import ChipConfig
from golden.conductance import hex_lines, program
from golden.core import CoreParams
from golden.mapping import compile_model
from golden.model import load_model

from .core import BnnSystem
from .generate import verilog_source

__all__ = ["generate_model", "CROSSBAR_SOURCE", "TOPLEVEL", "MANIFEST_FORMAT"]

CROSSBAR_SOURCE = Path(__file__).resolve().parent.parent / "rtl" / "analog" / "mbnn_crossbar.v"
TOPLEVEL = "bnn_system"
# 2: the device record and the ADC settings moved into "chip" (a complete ChipConfig)
MANIFEST_FORMAT = "mbnn-generated-2"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def generate_model(model_path: str | Path, chip: ChipConfig, out_dir: str | Path) -> dict:
    """Write the generated hardware of ``model_path`` on ``chip`` to ``out_dir`` and return
    the manifest. Raises ``ValueError``/``ModelFormatError`` for inputs the core cannot take
    (including a non-ideal device or ADC), before anything is written."""
    unsupported = chip.non_ideal_settings()
    if unsupported:
        raise ValueError(f"{unsupported[0]} needs the non-ideal RTL crossbar, not yet supported")
    model_path, out_dir = Path(model_path), Path(out_dir)
    model = load_model(model_path)
    mapped = compile_model(model, chip)
    params = CoreParams(mapped)          # validates that the core can implement it
    cond = program(mapped)
    system = BnnSystem(params, cond.g_unit_s, cond.v_read_v)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / f"{TOPLEVEL}.v").write_text(verilog_source(system, TOPLEVEL, params.describe()))
        shutil.copyfile(CROSSBAR_SOURCE, tmp / CROSSBAR_SOURCE.name)
        (tmp / "gpos.hex").write_bytes(hex_lines(cond.g_pos_s))
        (tmp / "gneg.hex").write_bytes(hex_lines(cond.g_neg_s))
        shutil.copyfile(model_path, tmp / "model.npz")
        files = sorted(f.name for f in tmp.iterdir())
        manifest = {
            "format": MANIFEST_FORMAT,
            "toplevel": TOPLEVEL,
            "generator": {"amaranth": version("amaranth")},
            "model": {"file": "model.npz", "architecture": model.arch.name,
                      "source_name": model_path.name},
            "chip": asdict(chip),
            "crossbar": {"g_unit_s": cond.g_unit_s, "v_read_v": cond.v_read_v},
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
