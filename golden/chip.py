"""Chip configuration: crossbar arrays, weight mapping scheme, device, ADC, clock.

Loaded from TOML (see ``configs/chip.toml``) and validated with messages that name the bad
value. Derived quantities (ADC code range, tiles per layer) are properties, never settings.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .analog.adc import Adc
from .analog.devices import Device, IdealDevice, device_from_record
from .analog.parasitics import Parasitics
from .checks import check_int, check_real

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
        Resolution of the column ADCs: signed codes in ``[-2**(bits-1), 2**(bits-1) - 1]``.
        Default: just enough bits for ``[-rows, rows]``.
    arrays : int
        Physical arrays on the chip (tiles beyond this are time-multiplexed).
    parallel_reads : int
        Arrays the core reads in one cycle (``[chip] parallel_reads``, at most ``arrays``):
        up to this many row tiles of one output pixel and column tile, each array with its own
        ADCs, their codes summed by an adder tree before the accumulator
        (:func:`golden.schedule.commands`). Default 1: one array read per cycle.
    input_words : int
        Words of the first activation buffer the core's input stream carries per beat
        (``[chip] input_words``): an image loads in ``depth / input_words`` cycles, so that
        loading it does not pace a core whose later layers take fewer cycles (a model's first
        buffer must hold a whole number of beats, checked by :class:`golden.core.CoreParams`).
        Default 1.
    pipeline : bool
        Pipeline the layers across images (``[chip] pipeline``): every layer has its own
        sequencer, accumulator and BN-binarize and reads its own arrays, so that while layer
        ``l`` computes image ``n + 1`` layer ``l + 1`` computes image ``n``; activations are
        multi-banked (:mod:`golden.pipeline`). Default false: one datapath runs the layers one
        after another, one image at a time.
    clock_mhz : float
        Digital clock frequency.
    adc_full_scale : float, optional
        Column-sum magnitude, in weight units, at which the ADC saturates (code
        ``2**(adc_bits-1)``). Default ``2**(adc_bits-1)``: an LSB of exactly one weight, so a
        code is the signed column sum -- with the default ``adc_bits``, exact.
    adc_gain_dtod, adc_offset_dtod_lsb : float
        Per-column gain error (relative) and offset error (LSB) of the ADCs, standard
        deviations; the errors are drawn once per chip (:meth:`golden.analog.adc.Adc.draw_errors`).
        Default 0.
    r_wire_ohm, r_source_ohm, r_sense_ohm : float
        Parasitic resistance of every array, ohms (``[parasitics]`` table; see
        :mod:`golden.analog.parasitics` for the network). Default 0: ideal wiring.
    device : Device, str or mapping, optional
        The memristive device (:mod:`golden.analog.devices`): a Device, a preset name, or a
        record ``{"preset": name, **parameters}`` (the ``[device]`` TOML table). Default: the
        ideal preset.
    read_pulse_ns : float, optional
        Duration of one array read, ns (``[array] read_pulse_ns``): how long the word lines
        of a read stay at ``V_read``, the ``t_read`` of the crossbar read energy
        (:mod:`sim.report`). Default: one clock period, ``1000 / clock_mhz``
        (:attr:`read_pulse_s`), as the core reads the arrays once per cycle. (Not the drift
        read time after programming, ``--drift-s``.)
    adc_energy_pj : float
        Energy of one ADC conversion, pJ (``[adc] energy_pj``). Default 16/(8 * 1.2) =
        1.667 pJ: the ADC of ISAAC (Shafiee et al., "ISAAC: a convolutional neural network
        accelerator with in-situ analog arithmetic in crossbars", ISCA 2016, Table 2: 8 ADCs
        of 8 bits at 1.2 GS/s per in-situ multiply-accumulate unit, 16 mW together), scaled
        from Kull et al., "A 3.1 mW 8b 1.2 GS/s single-channel asynchronous SAR ADC with
        alternate comparators", ISSCC 2013 (32 nm SOI). An 8-bit figure: SAR energy roughly
        doubles per extra bit, so set it for the ADC of ``adc_bits``.
    cell_area_um2 : float
        Area of one physical memristor cell, um^2 (``[array] cell_area_um2``). Default
        4 F^2 at F = 32 nm (0.004096 um^2): the cell of a cross-point array, whose word and
        bit lines have a pitch of 2 F, at ISAAC's node. A lower bound: a one-transistor
        one-resistor (1T1R) cell is transistor-limited and several times larger; give the
        cell of the process for a real figure.

    The RTL path (``mbnn generate``) and the golden mapped read support the ideal device and
    the exact ADC only so far; :meth:`non_ideal_settings` names what a chip needs beyond that.
    """

    rows: int = 128
    columns: int = 128
    mapping: str = "differential"
    adc_bits: int | None = None
    arrays: int = 4
    parallel_reads: int = 1
    input_words: int = 1
    pipeline: bool = False
    clock_mhz: float = 100.0
    adc_full_scale: float | None = None
    adc_gain_dtod: float = 0.0
    adc_offset_dtod_lsb: float = 0.0
    device: Device = IdealDevice()
    r_wire_ohm: float = 0.0
    r_source_ohm: float = 0.0
    r_sense_ohm: float = 0.0
    read_pulse_ns: float | None = None
    adc_energy_pj: float = 16.0 / (8 * 1.2)     # mW / (GS/s) = pJ; see the docstring
    cell_area_um2: float = 0.004096                # 4 F^2 at F = 32 nm

    def __post_init__(self):
        check_int("rows", self.rows, 1, 65536)
        check_int("columns", self.columns, 1, 65536)
        check_int("arrays", self.arrays, 1, 4096)
        check_int("parallel_reads", self.parallel_reads, 1, 4096)
        check_int("input_words", self.input_words, 1, 65536)
        if not isinstance(self.pipeline, bool):
            raise ValueError(f"pipeline must be true or false, not {self.pipeline!r}")
        if self.parallel_reads > self.arrays:
            raise ValueError(f"parallel_reads ({self.parallel_reads}) must not exceed arrays "
                             f"({self.arrays}): each array read in a cycle is a physical array")
        if self.mapping not in MAPPING_SCHEMES:
            raise ValueError(f"mapping must be one of {', '.join(MAPPING_SCHEMES)}, "
                             f"not {self.mapping!r}")
        if self.adc_bits is None:
            object.__setattr__(self, "adc_bits", self.exact_adc_bits)
        check_int("adc_bits", self.adc_bits, 2, 24)
        try:
            adc = Adc(self.adc_bits, self.adc_full_scale, self.adc_gain_dtod,
                      self.adc_offset_dtod_lsb)
        except ValueError as exc:            # Adc names its fields; here they are adc_*
            raise ValueError(f"adc_{exc}") from None
        object.__setattr__(self, "adc_full_scale", adc.full_scale)
        object.__setattr__(self, "adc_gain_dtod", adc.gain_dtod)
        object.__setattr__(self, "adc_offset_dtod_lsb", adc.offset_dtod_lsb)
        object.__setattr__(self, "device", device_from_record(self.device))
        p = Parasitics(self.r_wire_ohm, self.r_source_ohm, self.r_sense_ohm)
        for name in ("r_wire_ohm", "r_source_ohm", "r_sense_ohm"):
            object.__setattr__(self, name, getattr(p, name))
        if isinstance(self.clock_mhz, bool) or not isinstance(self.clock_mhz, (int, float)) \
                or not 0 < self.clock_mhz <= 10000:
            raise ValueError(f"clock_mhz must be a number in (0, 10000], not {self.clock_mhz!r}")
        if self.read_pulse_ns is not None:
            object.__setattr__(self, "read_pulse_ns",
                               check_real("read_pulse_ns", self.read_pulse_ns, 0.0, True,
                                          "positive"))
        for name in ("adc_energy_pj", "cell_area_um2"):
            object.__setattr__(self, name, check_real(name, getattr(self, name), 0.0, True,
                                                      "positive"))

    @property
    def read_pulse_s(self) -> float:
        """Duration of one array read in seconds: ``read_pulse_ns``, or one clock period."""
        ns = 1e3 / self.clock_mhz if self.read_pulse_ns is None else self.read_pulse_ns
        return ns * 1e-9

    @property
    def exact_adc_bits(self) -> int:
        """Smallest signed resolution holding every column sum of a full array, [-rows, rows]."""
        return self.rows.bit_length() + 1

    @property
    def parasitics(self) -> Parasitics:
        """Wire, source and sense resistance of every array
        (:class:`golden.analog.parasitics.Parasitics`)."""
        return Parasitics(self.r_wire_ohm, self.r_source_ohm, self.r_sense_ohm)

    @property
    def adc(self) -> Adc:
        """The column ADC model (:class:`golden.analog.adc.Adc`) of these settings."""
        return Adc(self.adc_bits, self.adc_full_scale, self.adc_gain_dtod,
                   self.adc_offset_dtod_lsb)

    @property
    def adc_min(self) -> int:
        return self.adc.code_min

    @property
    def adc_max(self) -> int:
        return self.adc.code_max

    @property
    def adc_exact(self) -> bool:
        """Every column sum of a full array is coded exactly: an ideal ADC (LSB of one weight,
        no gain/offset error) whose range holds ``[-rows, rows]``."""
        return self.adc.is_ideal and self.adc_min <= -self.rows and self.rows <= self.adc_max

    def ideal(self) -> "ChipConfig":
        """The same arrays, mapping and ADC resolution with an ideal device, ideal wiring and
        an ideal ADC: the chip this one would be without its analog non-idealities."""
        return replace(self, device=IdealDevice(), adc_full_scale=None, adc_gain_dtod=0.0,
                       adc_offset_dtod_lsb=0.0, r_wire_ohm=0.0, r_source_ohm=0.0,
                       r_sense_ohm=0.0)

    def non_ideal_settings(self) -> list[str]:
        """The settings, as ``"[table] key = value"`` phrases, that make this chip differ from
        an ideal device with the exact ADC (empty for such a chip). The first is what
        :func:`periphery.generate_model.generate_model` names when it refuses a chip."""
        out = []
        for name, value in self.device.non_ideal_parameters().items():
            out.append(f"[device] preset = {self.device.preset!r} with {name} = {value!r}")
        adc = self.adc
        if not adc.unit_lsb:
            out.append(f"[adc] full_scale = {adc.full_scale!r} (not "
                       f"{float(1 << (adc.bits - 1))!r}, an LSB of one weight)")
        if adc.gain_dtod:
            out.append(f"[adc] gain_dtod = {adc.gain_dtod!r}")
        if adc.offset_dtod_lsb:
            out.append(f"[adc] offset_dtod_lsb = {adc.offset_dtod_lsb!r}")
        for name in ("r_wire_ohm", "r_source_ohm", "r_sense_ohm"):
            if getattr(self, name):
                out.append(f"[parasitics] {name} = {getattr(self, name)!r}")
        return out

    def tiles(self, fan_in: int, out: int) -> tuple[int, int]:
        """(row tiles, column tiles) of a fan_in x out weight matrix."""
        return -(-fan_in // self.rows), -(-out // self.columns)


def load_chip_config(path: str | Path) -> ChipConfig:
    """Read a chip configuration from TOML (flat keys or ``[array]``/``[adc]``/``[chip]``/
    ``[device]`` tables); unknown keys are errors, so a typo cannot silently fall back to a
    default. ``[device]`` holds ``preset`` (default ``"ideal"``) and any parameters of
    :class:`golden.analog.devices.Device` overriding the preset's defaults."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"chip configuration not found: {path}")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from exc
    flat: dict = {}
    sections = {"array": {"rows": "rows", "columns": "columns", "mapping": "mapping",
                          "read_pulse_ns": "read_pulse_ns", "cell_area_um2": "cell_area_um2"},
                "adc": {"bits": "adc_bits", "full_scale": "adc_full_scale",
                        "gain_dtod": "adc_gain_dtod", "offset_dtod_lsb": "adc_offset_dtod_lsb",
                        "energy_pj": "adc_energy_pj"},
                "chip": {"arrays": "arrays", "parallel_reads": "parallel_reads",
                         "input_words": "input_words", "pipeline": "pipeline",
                         "clock_mhz": "clock_mhz"},
                "parasitics": {k: k for k in ("r_wire_ohm", "r_source_ohm", "r_sense_ohm")}}
    known = {f.name for f in fields(ChipConfig)}
    for key, value in raw.items():
        if key == "device" and isinstance(value, dict):
            flat["device"] = dict(value)         # validated by ChipConfig
        elif isinstance(value, dict):
            if key not in sections:
                raise ValueError(f"{path}: unknown table [{key}]; expected "
                                 f"{sorted([*sections, 'device'])}")
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
