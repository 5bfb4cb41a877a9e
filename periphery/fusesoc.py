"""FuseSoC core descriptions (CAPI2 ``.core`` files) of generated IP, so that a hardware team's
FuseSoC/Edalize flow picks the files up as a package: the file list in compile order, the data
files the simulation model reads, and the toplevel.

The generated modules have no Verilog parameters: every width and table is fixed at
generation and recorded in the files' header comments and ``manifest.json``. The core's
description says what was generated (model, chip, device, seed).
"""

from __future__ import annotations

import re

__all__ = ["core_file", "core_name"]

API = "CAPI=2:"
VERSION = "0.1.0"


def core_name(design: str, digest: str) -> str:
    """The VLNV ``mbnn:generated:<design>_<digest8>:<version>``: one name per distinct
    generated design (``digest``: a content hash of its files), so two generations of
    different chips can sit in one FuseSoC library."""
    design = re.sub(r"[^A-Za-z0-9_]", "_", design)
    return f"mbnn:generated:{design}_{digest[:8]}:{VERSION}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def core_file(name: str, description: str, toplevel: str, verilog: list[str],
              data: list[str] = ()) -> str:
    """The text of a CAPI2 core.

    Parameters
    ----------
    name : str
        VLNV (:func:`core_name`).
    verilog : list of str
        Verilog files, relative to the core file, in compile order.
    data : list of str
        Files the simulation reads at run time (``$readmemh``), copied beside the simulator's
        working directory (``copyto``).
    """
    lines = [API, "", f"name: {_quote(name)}", f"description: {_quote(description)}", "",
             "filesets:", "  rtl:", "    file_type: verilogSource", "    files:"]
    lines += [f"      - {_quote(f)}" for f in verilog]
    targets = ["rtl"]
    if data:
        lines += ["  data:", "    files:"]
        lines += [f"      - {_quote(f)}: {{file_type: user, copyto: {_quote(f)}}}" for f in data]
        targets.append("data")
    fs = "[" + ", ".join(targets) + "]"
    lines += ["", "targets:",
              "  default: &default", f"    filesets: {fs}", f"    toplevel: {toplevel}",
              # Icarus in Verilog-2005 mode: there Amaranth's register initialisers
              # (`reg x = 0;`) raise the time-0 events its combinational blocks rely on
              "  sim:", "    <<: *default", "    default_tool: icarus",
              "    tools:", "      icarus:", "        iverilog_options: [-g2005]", ""]
    return "\n".join(lines)
