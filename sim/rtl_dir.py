"""External RTL for the regression (``mbnn regress --rtl-dir DIR``).

A hardware team verifies Verilog that did not come straight from mbnn's generator: a
hand-edited copy, another flow's output, a synthesised netlist. ``mbnn regress --export-rtl
DIR`` writes the Verilog of every selected regression into DIR, one folder per block and
parameter set::

    DIR/manifest.json                       generation seed and the files of each set
    DIR/bn_binarize/c1_w2/bn_binarize.v
    DIR/network/tiny_16x8/bnn_system.v
    DIR/network/tiny_16x8/mbnn_crossbar.v
    ...

The team edits or replaces those files; ``mbnn regress --rtl-dir DIR`` then generates every
set afresh with the manifest's seed (the tables and conductance files the testbenches need),
checks that each file of DIR defines the module the testbench drives with the same ports
(name, direction, width) as the generated one, and simulates DIR's files instead. The port
check runs for every selected test before the first simulation starts, so a missing module
or a renamed port is one clear line, not a failure deep inside a testbench.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from golden.fileio import atomic_write_text

__all__ = ["RtlDirError", "verilog_ports", "check_module", "RtlDir", "MANIFEST"]

MANIFEST = "manifest.json"
_FORMAT = "mbnn-rtl-dir"


class RtlDirError(ValueError):
    """The external RTL directory cannot stand in for the generated Verilog."""


_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/|\(\*.*?\*\)", re.S)
# a Verilog identifier, plain or escaped (backslash up to white space)
_IDENT = r"(?:\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"
_MODULE = re.compile(rf"\bmodule\s+({_IDENT})\s*(#\s*\(.*?\)\s*)?\((.*?)\)\s*;(.*?)\bendmodule\b",
                     re.S)
_DECL = re.compile(rf"\b(input|output|inout)\b((?:\s+(?:wire|reg|logic|signed|var))*)\s*"
                   rf"(\[[^\]]*\])?\s*((?:(?!(?:input|output|inout)\b){_IDENT}\s*,?\s*)+)")
_RANGE = re.compile(r"\[\s*(-?\d+)\s*:\s*(-?\d+)\s*\]")


def _width(rng: str | None) -> int | str:
    """Bits of a packed range ``[msb:lsb]`` with literal bounds; the range text otherwise."""
    if not rng:
        return 1
    m = _RANGE.fullmatch(rng.strip())
    if m is None:
        return re.sub(r"\s+", "", rng)
    return abs(int(m.group(1)) - int(m.group(2))) + 1


def _name(ident: str) -> str:
    # an escaped identifier names the same net as the plain one when its characters allow
    return ident[1:] if ident.startswith("\\") else ident


def verilog_ports(text: str, module: str) -> dict[str, tuple[str, int | str]]:
    """Ports of ``module`` in Verilog source ``text``: name -> (direction, width in bits).

    Both header styles are read: ANSI (``module m(input [3:0] a, ...)``) and the port list
    with declarations in the body that Amaranth and Yosys write. A width whose range is not
    made of integer literals is kept as the range's text.

    Raises
    ------
    RtlDirError
        ``text`` defines no module named ``module``.
    """
    text = _COMMENT.sub(" ", text)
    for m in _MODULE.finditer(text):
        if _name(m.group(1)) != module:
            continue
        header, body = m.group(3), m.group(4)
        ports: dict[str, tuple[str, int | str]] = {}
        decls = list(_DECL.finditer(header)) or list(_DECL.finditer(body))
        for d in decls:
            names = re.findall(_IDENT, d.group(4))
            for n in names:
                if n not in ("wire", "reg", "logic", "signed", "var"):
                    ports[_name(n)] = (d.group(1), _width(d.group(3)))
        listed = [_name(p) for p in re.findall(_IDENT, header)] if not _DECL.search(header) \
            else list(ports)
        return {p: ports.get(p, ("undeclared", 0)) for p in listed}
    raise RtlDirError(f"no module {module!r}")


def check_module(generated: Path, external: Path, module: str) -> None:
    """Require ``external`` to define ``module`` with the ports of ``generated``'s.

    Raises
    ------
    RtlDirError
        Naming the file, the module and the first port that is missing, extra, or differs in
        direction or width.
    """
    want = verilog_ports(generated.read_text(), module)
    try:
        text = external.read_text()
    except UnicodeDecodeError:
        raise RtlDirError(f"{external}: not a Verilog text file") from None
    try:
        got = verilog_ports(text, module)
    except RtlDirError:
        raise RtlDirError(f"{external}: defines no module {module!r} (the testbench's "
                          f"toplevel)") from None
    for port, (direction, width) in want.items():
        if port not in got:
            raise RtlDirError(f"{external}: module {module!r} has no port {port!r} "
                              f"({direction}, {width} bits)")
        if got[port] != (direction, width):
            raise RtlDirError(f"{external}: module {module!r} port {port!r} is "
                              f"{got[port][0]} of {got[port][1]} bits; the testbench expects "
                              f"{direction} of {width} bits")
    extra = sorted(set(got) - set(want))
    if extra:
        raise RtlDirError(f"{external}: module {module!r} has port {extra[0]!r} the generated "
                          f"module does not (an input no testbench drives)")


class RtlDir:
    """A directory of external Verilog laid out as :func:`RtlDir.export` writes it.

    Parameters
    ----------
    path : Path
        The directory; it must hold ``manifest.json``.

    Raises
    ------
    RtlDirError
        The directory or its manifest is missing or is not an mbnn RTL tree.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise RtlDirError(f"--rtl-dir {self.path}: not a directory")
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            raise RtlDirError(f"--rtl-dir {self.path}: no {MANIFEST} (write the tree with "
                              f"mbnn regress --export-rtl {self.path})")
        try:
            data = json.loads(manifest.read_text())
            if data.get("format") != _FORMAT:
                raise ValueError("format")
            self.seed = int(data["seed"])
            self.sets: dict[str, dict[str, str]] = dict(data["sets"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RtlDirError(f"--rtl-dir {self.path}: {MANIFEST} is not an mbnn RTL tree "
                              f"manifest (format {_FORMAT!r} with seed and sets)") from None

    def sources(self, key: str, generated: dict[str, tuple[Path, str]]) -> list[Path]:
        """DIR's files standing in for ``generated`` (file name -> (generated path, toplevel
        module), in compile order) of the set ``key`` (``block/set``), each checked against
        the generated module.

        Raises
        ------
        RtlDirError
            A file is missing, or its module or ports differ.
        """
        modules = self.sets.get(key)
        if modules is None:
            raise RtlDirError(f"--rtl-dir {self.path}: holds no Verilog for {key} (it was "
                              f"exported for {len(self.sets)} other sets; export it again "
                              f"with this selection)")
        out = []
        for name, (gen_path, module) in generated.items():
            ext = self.path / key / name
            if not ext.is_file():
                raise RtlDirError(f"--rtl-dir {self.path}: missing {key}/{name} "
                                  f"(module {module!r})")
            check_module(gen_path, ext, module)
            out.append(ext.resolve())
        return out

    @staticmethod
    def check_destination(root: Path, option: str = "--export-rtl") -> None:
        """Refuse a destination that is a file, lies under a file, is not writable, or is a
        non-empty directory that is not an earlier tree (checked before any work)."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise RtlDirError(f"{option} {root}: exists and is not a directory")
        if root.is_dir() and any(root.iterdir()) and not (root / MANIFEST).is_file():
            raise RtlDirError(f"{option} {root}: a non-empty directory that is not an "
                              f"earlier export (no {MANIFEST}); refusing to write into it")
        parent = root
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise RtlDirError(f"{option} {root}: {parent} is a file")
        if not os.access(parent, os.W_OK):
            raise RtlDirError(f"{option} {root}: {parent} is not writable")

    @staticmethod
    def export(path: str | Path, seed: int, sets: dict[str, dict[str, tuple[Path, str]]]) -> None:
        """Write a tree: ``sets`` maps ``block/set`` to file name -> (generated path, module).

        The directory must not exist or be empty or an earlier export (its manifest is
        replaced last, so an interrupted export leaves no manifest that lies)."""
        root = Path(path)
        RtlDir.check_destination(root)
        (root / MANIFEST).unlink(missing_ok=True)
        for key, files in sets.items():
            for name, (gen_path, _module) in files.items():
                dest = root / key / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(gen_path, dest)
        atomic_write_text(root / MANIFEST, json.dumps(
            {"format": _FORMAT, "seed": seed,
             "sets": {k: {n: m for n, (_p, m) in f.items()} for k, f in sets.items()}},
            indent=2, sort_keys=True) + "\n")
