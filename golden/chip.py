"""Chip configuration: crossbar arrays, weight mapping scheme, ADC, clock.

Loaded from TOML (see ``configs/chip.toml``) and validated with messages that name the bad
value. Derived quantities (ADC code range, tiles per layer) are properties, never settings.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from .checks import check_int

__all__ = ["ChipConfig", "MAPPING_SCHEMES", "load_chip_config"]

# "differential": each weight is a conductance pair (G+, G-), the column current difference is
# proportional to sum w*x'. "reference_column": one cell per weight and a shared reference
# column; the difference to the reference gives the same sum. Digitally both deliver the signed
# column sum; they differ in the analog models (cells per weight, reference error).
MAPPING_SCHEMES = ("differential", "reference_column")


@dataclass(frozen=True)
class ChipConfig:
    """One accelerator configuration.

    Parameters
    ----------
    rows, columns : int
        Size of one crossbar array (word lines x bit-line columns of weights).
    mapping : str
        Weight mapping scheme, one of :data:`MAPPING_SCHEMES`.
    adc_bits : int, optional
        Resolution of the column ADCs. The code is the signed column sum in units of one
        weight, saturating at ``[-2**(bits-1), 2**(bits-1) - 1]``. Default: just enough bits
        for ``[-rows, rows]``, i.e. exact.
    arrays : int
        Physical arrays on the chip (tiles beyond this are time-multiplexed).
    clock_mhz : float
        Digital clock frequency.
    """

    rows: int = 128
    columns: int = 128
    mapping: str = "differential"
    adc_bits: int | None = None
    arrays: int = 4
    clock_mhz: float = 100.0

    def __post_init__(self):
        check_int("rows", self.rows, 1, 65536)
        check_int("columns", self.columns, 1, 65536)
        check_int("arrays", self.arrays, 1, 4096)
        if self.mapping not in MAPPING_SCHEMES:
            raise ValueError(f"mapping must be one of {', '.join(MAPPING_SCHEMES)}, "
                             f"not {self.mapping!r}")
        if self.adc_bits is None:
            object.__setattr__(self, "adc_bits", self.exact_adc_bits)
        check_int("adc_bits", self.adc_bits, 2, 24)
        if isinstance(self.clock_mhz, bool) or not isinstance(self.clock_mhz, (int, float)) \
                or not 0 < self.clock_mhz <= 10000:
            raise ValueError(f"clock_mhz must be a number in (0, 10000], not {self.clock_mhz!r}")

    @property
    def exact_adc_bits(self) -> int:
        """Smallest signed resolution holding every column sum of a full array, [-rows, rows]."""
        return self.rows.bit_length() + 1

    @property
    def adc_min(self) -> int:
        return -(1 << (self.adc_bits - 1))

    @property
    def adc_max(self) -> int:
        return (1 << (self.adc_bits - 1)) - 1

    @property
    def adc_exact(self) -> bool:
        return self.adc_min <= -self.rows and self.rows <= self.adc_max

    def tiles(self, fan_in: int, out: int) -> tuple[int, int]:
        """(row tiles, column tiles) of a fan_in x out weight matrix."""
        return -(-fan_in // self.rows), -(-out // self.columns)


def load_chip_config(path: str | Path) -> ChipConfig:
    """Read a chip configuration from TOML (flat keys or ``[array]``/``[adc]``/``[chip]``
    tables); unknown keys are errors, so a typo cannot silently fall back to a default."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"chip configuration not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    flat: dict = {}
    sections = {"array": {"rows": "rows", "columns": "columns", "mapping": "mapping"},
                "adc": {"bits": "adc_bits"}, "chip": {"arrays": "arrays", "clock_mhz": "clock_mhz"}}
    known = {f.name for f in fields(ChipConfig)}
    for key, value in raw.items():
        if isinstance(value, dict):
            if key not in sections:
                raise ValueError(f"{path}: unknown table [{key}]; expected {sorted(sections)}")
            for k, v in value.items():
                if k not in sections[key]:
                    raise ValueError(f"{path}: unknown key {k!r} in [{key}]; expected "
                                     f"{sorted(sections[key])}")
                flat[sections[key][k]] = v
        elif key in known:
            flat[key] = value
        else:
            raise ValueError(f"{path}: unknown key {key!r}; expected one of {sorted(known)}")
    try:
        return ChipConfig(**flat)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
