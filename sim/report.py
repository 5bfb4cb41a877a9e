"""Sizing figures of a model compiled on a chip (``mbnn report``): what a hardware team sizes a
chip by, per layer and in total.

Time
    Arrays (tiles), array reads and cycles of reads per image come from the mapping
    (:class:`golden.mapping.MappedLayer`: ``reads``, ``read_cycles(parallel_reads)``); the
    core's steady-state cycles per image and its latency from
    :class:`golden.core.CoreParams` (``compute_cycles_per_image``, ``latency_cycles``), the
    figures the whole-network RTL tests assert. At ``chip.clock_mhz``: latency
    ``latency_cycles / clock_mhz`` µs, throughput ``1e6 * clock_mhz / compute_cycles_per_image``
    images/s. When the next image's input does not load behind layers >= 1
    (``CoreParams.input_hidden`` false: e.g. the shipped CNN reading 4 or more arrays per
    cycle with one input word per beat; ``[chip] input_words`` fixes it) the input stream
    paces the core and the throughput is an upper bound; the report says so.

Crossbar read energy
    From golden column currents of real images: the model runs through
    :func:`golden.mapping.mapped_infer` on the ideal twin of the chip (``chip.ideal()``: the
    activations an exact chip computes) and every array read it makes is charged, on the
    target conductances of the chip's device (:func:`golden.conductance.program`; on an ideal
    device these are the programmed cells), in the physical layout of the arrays
    (:func:`golden.analog.parasitics.physical_conductances`: a differential pair is two
    columns, G+ and G-; the reference-column scheme has the weight columns and one reference
    column). A read of array ``t`` with word-line bits ``x`` (1: driven at ``V_read``) draws

        I = V_read * sum_{r: x_r = 1} sum_{c} G[t, r, c]                      (amperes)
        E = V_read * I * t_read  = V_read^2 * t_read * sum_{r: x_r = 1} sum_c G[t, r, c]

    the sum running over every physical column of the array (used or not: a driven word line
    sees every cell on it; cells that carry no weight sit at G_off, or at the reference
    conductance, :mod:`golden.conductance`). ``t_read`` is ``chip.read_pulse_s`` (one clock
    period unless ``[array] read_pulse_ns`` says otherwise). Undriven rows are at 0 V and draw
    nothing; the columns are held at virtual ground by the sense amplifiers. Left out: wire,
    driver and sense resistance (they lower the current a little), programming spread, the
    energy of the word-line drivers and of charging the lines.

ADC energy
    One conversion per read per weight column the read uses (the column's output channel
    exists): ``pixels * row_tiles * out_channels`` per layer and image. An array has
    ``columns`` ADCs, but the codes of columns past a layer's channels are never used (the
    core's lanes past the channels hold a threshold no value reaches), so those ADCs are
    assumed gated. Energy ``conversions * chip.adc_energy_pj``.

Area
    Array: ``tiles * rows * physical columns`` cells (the generated crossbar holds every tile
    of the model; ``arrays`` of the configuration bounds the parallel reads only) times
    ``chip.cell_area_um2``. Periphery: the generated core (:class:`periphery.core.BnnCore`:
    sequencer, activation buffers, accumulator, BN-binarize, argmax; with ``[chip] pipeline``
    :class:`periphery.pipeline.PipelinedCore`, all of them per layer and banked buffers; the
    crossbar and its ADCs are outside it) synthesised by Yosys (:func:`periphery.synth.synthesize`): generic
    cells and flip-flops, a size to compare designs by, not µm² (no cell library).

JSON (``mbnn report --json``, :meth:`ChipReport.as_dict` plus the command's own keys)
    ``chip``: ``rows``, ``columns``, ``mapping``, ``physical_columns``, ``adc_bits``,
    ``arrays``, ``parallel_reads``, ``read_ports`` (arrays read at once: the crossbar
    ports), ``pipeline``, ``clock_mhz``, ``read_pulse_ns``,
    ``adc_energy_pj``, ``cell_area_um2``, ``device`` (preset), ``v_read_v``, ``g_on_s``,
    ``g_off_s``. ``layers`` (one per layer): ``layer``, ``kind``, ``arrays``, ``row_tiles``,
    ``column_tiles``, ``reads_per_image``, ``read_cycles_per_image``,
    ``adc_conversions_per_image``, ``crossbar_energy_per_image_nj``,
    ``adc_energy_per_image_nj``, ``energy_per_image_nj``, ``cells``, ``array_area_um2``.
    ``total``: the sums of those, and ``compute_cycles_per_image``, ``latency_cycles``,
    ``latency_us``, ``throughput_images_per_s``, ``input_hidden``, ``array_power_mw`` (crossbar
    and ADC energy per image times the throughput), ``array_area_mm2``. ``periphery``: None
    (``--no-synth``) or ``cells``, ``flip_flops``, ``longest_path_cells``, ``yosys_s``,
    ``yosys`` (version). The command adds ``model``, ``architecture``, ``images``,
    ``energy_pass_s``, ``synthesis_s``, ``wall_s`` and, with ``--plot``, ``plot`` and
    ``sweep``: per parallel-read count ``parallel_reads``, ``read_ports``,
    ``read_cycles_per_image``, ``compute_cycles_per_image``, ``latency_us``,
    ``throughput_images_per_s``, ``input_hidden``, ``energy_per_image_nj``,
    ``periphery_cells``, ``periphery_flip_flops`` (None without synthesis).

Sweep (``--plot``)
    Parallel reads P = 1, 2, 4, ... below the widest layer's row tiles, and that count (more
    read ports would never be used), each on ``dataclasses.replace(chip, parallel_reads=P,
    arrays=max(chip.arrays, P))`` (pipelined: at least the stages' concurrent reads). The energy is the same at every P (the same reads); the
    core is synthesised once per P unless ``--no-synth``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from golden.analog.parasitics import physical_conductances
from golden.chip import ChipConfig
from golden.conductance import ArrayConductances, program
from golden.core import CoreParams
from golden.mapping import MappedModel, compile_model, crossbar_read, mapped_infer
from golden.model import BnnModel

__all__ = ["LayerActivity", "LayerFigures", "ChipReport", "physical_columns",
           "row_conductance_s", "read_energy_j", "array_activity", "core_params",
           "synthesize_core", "chip_report", "sweep_values", "sweep_chip", "format_report",
           "check_energy_memory"]


def physical_columns(chip: ChipConfig) -> int:
    """Physical bit-line columns of one array: ``2 * columns`` (differential pairs) or
    ``columns + 1`` (reference column), as :func:`golden.analog.parasitics.
    physical_conductances` lays them out."""
    empty = np.zeros((1, chip.columns))
    return physical_conductances(empty, empty, chip.mapping).shape[1]


def row_conductance_s(g: ArrayConductances, mapping: str) -> np.ndarray:
    """Sum of the conductances of every physical cell on each word line, siemens: an array
    (tiles, rows). A read's current is ``V_read`` times the sum over its driven rows."""
    return np.stack([physical_conductances(p, n, mapping).sum(axis=1)
                     for p, n in zip(g.g_pos_s, g.g_neg_s)])


def read_energy_j(bits: np.ndarray, row_g_s: np.ndarray, v_read_v: float,
                  t_read_s: float) -> np.ndarray:
    """Energy of each of ``P`` reads of one array, joules: ``V_read * I * t_read`` with
    ``I = V_read * sum_r bits[p, r] * row_g_s[r]`` (module docstring).

    Parameters
    ----------
    bits : array (P, r) of {0, 1}
        Word lines driven by each read (the first ``r`` rows of the array).
    row_g_s : array (rows,)
        :func:`row_conductance_s` of the array.
    """
    current_a = v_read_v * (np.asarray(bits, np.float64) @ row_g_s[:np.shape(bits)[1]])
    return v_read_v * current_a * t_read_s


@dataclass(frozen=True)
class LayerActivity:
    """What the arrays of one layer did over a batch of images (:func:`array_activity`)."""

    reads: int
    conversions: int
    crossbar_energy_j: float


def array_activity(model: BnnModel, chip: ChipConfig,
                   pixels: np.ndarray) -> list[LayerActivity]:
    """Reads, ADC conversions (codes of the weight columns) and crossbar read energy of every
    layer while ``pixels`` (N images of {0, 1}) run through the arrays of ``chip`` (module
    docstring: the ideal chip's activations, the target conductances of the chip's device).
    The same for every ``parallel_reads``: reading row tiles together changes no read."""
    ideal = chip.ideal()
    mapped = compile_model(model, ideal)
    g = program(mapped, chip.device)
    row_g = row_conductance_s(g, chip.mapping)
    t_read = chip.read_pulse_s
    reads = [0] * len(mapped.layers)
    conversions = [0] * len(mapped.layers)
    energy = [0.0] * len(mapped.layers)

    def read(bits, layer, row_tile, column_tile):
        r0, c0 = row_tile * chip.rows, column_tile * chip.columns
        c1 = min(c0 + chip.columns, layer.out_channels)
        codes = crossbar_read(bits, layer.weights[r0:r0 + bits.shape[1], c0:c1], ideal)
        tile = layer.tile_base + column_tile * layer.row_tiles + row_tile
        reads[layer.index] += len(bits)
        conversions[layer.index] += codes.size
        # per row, how often it was driven: one product instead of one per read
        driven = np.asarray(bits, np.int64).sum(axis=0)[None, :]
        energy[layer.index] += float(read_energy_j(driven, row_g[tile], g.v_read_v, t_read)[0])
        return codes

    mapped_infer(mapped, pixels, read=read)
    return [LayerActivity(r, c, e) for r, c, e in zip(reads, conversions, energy)]


# Bytes per cell the energy pass holds at its peak: the weights (int8) and their use mask
# (bool) of every array, G+ and G- (float64) and the temporaries that build them
# (golden.conductance.program_tiles: two float64 arrays and a mask more)
ENERGY_PASS_BYTES_PER_CELL = 40


def check_energy_memory(mapped: MappedModel, available_bytes: int | None = None) -> None:
    """Refuse, before anything is allocated, an energy pass (:func:`array_activity`) whose
    conductances of every array cannot fit in memory (default: the machine's available
    memory): ``MemoryError`` saying how much it needs and how much there is."""
    from golden.analog.parasitics import available_memory_bytes
    chip = mapped.chip
    need = mapped.tiles * chip.rows * chip.columns * ENERGY_PASS_BYTES_PER_CELL
    have = available_memory_bytes() if available_bytes is None else available_bytes
    if need > have:
        raise MemoryError(
            f"the read energy needs the conductances of {mapped.tiles} arrays of "
            f"{chip.rows}x{chip.columns} cells: about {need / 2**30:.1f} GiB "
            f"({ENERGY_PASS_BYTES_PER_CELL} bytes per cell); {have / 2**30:.1f} GiB available "
            f"-- choose smaller [array] rows and columns")


def core_params(mapped: MappedModel) -> CoreParams:
    """:class:`golden.core.CoreParams` of ``mapped``; ``ValueError`` saying that the core
    cannot implement the model, and why, otherwise."""
    try:
        return CoreParams(mapped)
    except ValueError as exc:
        chip = mapped.chip
        raise ValueError(f"the core cannot implement this model on {chip.rows}x{chip.columns} "
                         f"arrays: {exc}") from None


def synthesize_core(params: CoreParams):
    """Yosys synthesis (:func:`periphery.synth.synthesize`) of the core of ``params``:
    a :class:`periphery.synth.Synthesis`."""
    from periphery.pipeline import core_component
    from periphery.synth import synthesize
    return synthesize(core_component(params), "bnn_core")


@dataclass(frozen=True)
class LayerFigures:
    """The figures of one layer, per image."""

    layer: int
    kind: str
    arrays: int
    row_tiles: int
    column_tiles: int
    reads_per_image: int
    read_cycles_per_image: int
    adc_conversions_per_image: int
    crossbar_energy_per_image_nj: float
    adc_energy_per_image_nj: float
    cells: int
    array_area_um2: float

    @property
    def energy_per_image_nj(self) -> float:
        return self.crossbar_energy_per_image_nj + self.adc_energy_per_image_nj

    def as_dict(self) -> dict:
        return {"layer": self.layer, "kind": self.kind, "arrays": self.arrays,
                "row_tiles": self.row_tiles, "column_tiles": self.column_tiles,
                "reads_per_image": self.reads_per_image,
                "read_cycles_per_image": self.read_cycles_per_image,
                "adc_conversions_per_image": self.adc_conversions_per_image,
                "crossbar_energy_per_image_nj": self.crossbar_energy_per_image_nj,
                "adc_energy_per_image_nj": self.adc_energy_per_image_nj,
                "energy_per_image_nj": self.energy_per_image_nj,
                "cells": self.cells, "array_area_um2": self.array_area_um2}


@dataclass(frozen=True)
class ChipReport:
    """Every figure of one model on one chip (:func:`chip_report`).

    ``periphery`` is the core's :class:`periphery.synth.Synthesis`, or None when synthesis
    was skipped; ``images``: the MNIST test images the energy was averaged over."""

    chip: ChipConfig
    layers: tuple[LayerFigures, ...]
    images: int
    read_ports: int
    compute_cycles_per_image: int
    latency_cycles: int
    input_hidden: bool
    periphery: object | None = None

    def _sum(self, name):
        return sum(getattr(layer, name) for layer in self.layers)

    @property
    def arrays(self) -> int:
        return self._sum("arrays")

    @property
    def reads_per_image(self) -> int:
        return self._sum("reads_per_image")

    @property
    def read_cycles_per_image(self) -> int:
        return self._sum("read_cycles_per_image")

    @property
    def latency_us(self) -> float:
        return self.latency_cycles / self.chip.clock_mhz

    @property
    def throughput_images_per_s(self) -> float:
        return self.chip.clock_mhz * 1e6 / self.compute_cycles_per_image

    @property
    def energy_per_image_nj(self) -> float:
        """Crossbar reads and ADC conversions (the digital periphery is not included)."""
        return self._sum("crossbar_energy_per_image_nj") + self._sum("adc_energy_per_image_nj")

    @property
    def array_power_mw(self) -> float:
        """Power of the crossbar reads and ADCs at the throughput: nJ x images/s = nW."""
        return self.energy_per_image_nj * self.throughput_images_per_s * 1e-6

    def as_dict(self) -> dict:
        """Every figure, units in the key names (JSON)."""
        chip = self.chip
        total = {"arrays": self.arrays, "reads_per_image": self.reads_per_image,
                 "read_cycles_per_image": self.read_cycles_per_image,
                 "compute_cycles_per_image": self.compute_cycles_per_image,
                 "latency_cycles": self.latency_cycles, "latency_us": self.latency_us,
                 "throughput_images_per_s": self.throughput_images_per_s,
                 "input_hidden": self.input_hidden}
        for name in ("adc_conversions_per_image", "crossbar_energy_per_image_nj",
                     "adc_energy_per_image_nj", "cells", "array_area_um2"):
            total[name] = self._sum(name)
        total.update(energy_per_image_nj=self.energy_per_image_nj,
                     array_power_mw=self.array_power_mw,
                     array_area_mm2=total["array_area_um2"] * 1e-6)
        p = self.periphery
        return {
            "chip": {"rows": chip.rows, "columns": chip.columns, "mapping": chip.mapping,
                     "physical_columns": physical_columns(chip), "adc_bits": chip.adc_bits,
                     "arrays": chip.arrays, "parallel_reads": chip.parallel_reads,
                     "read_ports": self.read_ports, "pipeline": chip.pipeline,
                     "clock_mhz": chip.clock_mhz,
                     "read_pulse_ns": chip.read_pulse_s * 1e9,
                     "adc_energy_pj": chip.adc_energy_pj, "cell_area_um2": chip.cell_area_um2,
                     "device": chip.device.preset, "v_read_v": chip.device.v_read_v,
                     "g_on_s": chip.device.g_on_s, "g_off_s": chip.device.g_off_s},
            "images": self.images,
            "layers": [layer.as_dict() for layer in self.layers],
            "total": total,
            "periphery": None if p is None else {
                "cells": p.cells, "flip_flops": p.flip_flops,
                "longest_path_cells": p.longest_path_cells, "yosys_s": p.seconds},
        }


def chip_report(model: BnnModel, chip: ChipConfig, activity: list[LayerActivity], images: int,
                periphery=None) -> ChipReport:
    """The figures of ``model`` on ``chip`` from its :func:`array_activity` over ``images``
    images and the core's synthesis (``periphery``, optional). Raises ``ValueError`` for a
    model the core cannot implement, and ``RuntimeError`` if ``activity`` is not of this
    model's reads."""
    mapped = compile_model(model, chip)
    params = core_params(mapped)
    cols = physical_columns(chip)
    layers = []
    for layer, act in zip(mapped.layers, activity):
        conversions = layer.pixels * layer.row_tiles * layer.out_channels
        if act.reads != images * layer.reads or act.conversions != images * conversions:
            raise RuntimeError(f"layer {layer.index}: {act.reads} reads and {act.conversions} "
                               f"conversions recorded for {images} images; the mapping has "
                               f"{layer.reads} and {conversions} per image")
        cells = layer.tiles * chip.rows * cols
        layers.append(LayerFigures(
            layer=layer.index, kind=layer.kind, arrays=layer.tiles, row_tiles=layer.row_tiles,
            column_tiles=layer.column_tiles, reads_per_image=layer.reads,
            read_cycles_per_image=layer.read_cycles(chip.parallel_reads),
            adc_conversions_per_image=conversions,
            crossbar_energy_per_image_nj=act.crossbar_energy_j / images * 1e9,
            adc_energy_per_image_nj=conversions * chip.adc_energy_pj * 1e-3,
            cells=cells, array_area_um2=cells * chip.cell_area_um2))
    return ChipReport(chip=chip, layers=tuple(layers), images=images,
                      read_ports=params.crossbar_ports,
                      compute_cycles_per_image=params.compute_cycles_per_image,
                      latency_cycles=params.latency_cycles, input_hidden=params.input_hidden,
                      periphery=periphery)


def sweep_values(mapped: MappedModel) -> list[int]:
    """Parallel reads of the ``--plot`` sweep: 1, 2, 4, ... below the widest layer's row
    tiles, and that count itself (more read ports would never be used)."""
    widest = max(layer.row_tiles for layer in mapped.layers)
    out = [1 << k for k in range(widest.bit_length()) if 1 << k < widest]
    return out + [widest]


def sweep_chip(chip: ChipConfig, parallel_reads: int,
               mapped: MappedModel | None = None) -> ChipConfig:
    """``chip`` reading ``parallel_reads`` arrays per cycle (with at least that many
    arrays; a pipelined chip with the arrays every stage of ``mapped`` reads at once)."""
    arrays = max(chip.arrays, parallel_reads)
    if chip.pipeline and mapped is not None:
        arrays = max(arrays, sum(min(parallel_reads, layer.row_tiles) for layer in mapped.layers))
    return replace(chip, parallel_reads=parallel_reads, arrays=arrays)


def _grouped(n: float) -> str:
    return f"{n:,.0f}".replace(",", " ")


def format_report(report: ChipReport, model_name: str) -> str:
    """The report as a table (per layer and in total) and a few lines of totals."""
    chip = report.chip
    lines = [f"{model_name} on {chip.rows}x{chip.columns} arrays ({chip.mapping}, "
             f"{physical_columns(chip)} physical columns), {chip.adc_bits}-bit ADCs, "
             f"{chip.parallel_reads} parallel read{'s' if chip.parallel_reads > 1 else ''} "
             f"({report.read_ports} read port{'s' if report.read_ports > 1 else ''}), "
             f"{chip.clock_mhz:g} MHz;",
             f"device {chip.device.preset} (V_read "
             f"{chip.device.v_read_v:g} V, G_on {chip.device.g_on_s * 1e6:g} uS, G_off "
             f"{chip.device.g_off_s * 1e6:g} uS), read pulse {chip.read_pulse_s * 1e9:g} ns, "
             f"{chip.adc_energy_pj:.4g} pJ per conversion, {chip.cell_area_um2:g} um2 per cell; "
             f"energy averaged over {report.images} MNIST test images",
             ""]
    head = (f"{'layer':<6}{'kind':<6}{'arrays':>7}{'reads/img':>10}{'cycles/img':>11}"
            f"{'ADC conv/img':>13}{'xbar nJ/img':>12}{'ADC nJ/img':>11}{'cells':>12}"
            f"{'area um2':>11}")
    lines += [head, "-" * len(head)]

    def row(name, kind, f):
        return (f"{name:<6}{kind:<6}{f['arrays']:>7}{f['reads_per_image']:>10}"
                f"{f['read_cycles_per_image']:>11}{f['adc_conversions_per_image']:>13}"
                f"{f['crossbar_energy_per_image_nj']:>12.3f}{f['adc_energy_per_image_nj']:>11.3f}"
                f"{f['cells']:>12}{f['array_area_um2']:>11.1f}")
    d = report.as_dict()
    for layer in d["layers"]:
        lines.append(row(str(layer["layer"]), layer["kind"], layer))
    lines += ["-" * len(head), row("total", "", d["total"]), ""]
    t = d["total"]
    paced = "" if report.input_hidden else (
        " (an upper bound: this model's input loads slower than its later layers run, and "
        "the input stream sets the pace)")
    if chip.pipeline:
        slowest = max(layer["read_cycles_per_image"] for layer in d["layers"])
        lines.append(f"layers pipelined across images: a stage per layer, "
                     f"{report.read_ports} arrays read at once; the slowest stage reads in "
                     f"{slowest} cycles per image")
    lines.append(f"cycles per image: {t['read_cycles_per_image']} of array reads, "
                 f"{t['compute_cycles_per_image']} in the steady state -> "
                 f"{_grouped(t['throughput_images_per_s'])} images/s{paced}; latency "
                 f"{t['latency_cycles']} cycles = {t['latency_us']:.3f} us")
    lines.append(f"energy per image: crossbar reads {t['crossbar_energy_per_image_nj']:.3f} nJ + "
                 f"ADC {t['adc_energy_per_image_nj']:.3f} nJ = {t['energy_per_image_nj']:.3f} "
                 f"nJ; {t['array_power_mw']:.2f} mW at that throughput (digital periphery "
                 f"not included)")
    lines.append(f"array area: {_grouped(t['cells'])} cells x {chip.cell_area_um2:g} um2 = "
                 f"{t['array_area_mm2']:.4f} mm2")
    p = d["periphery"]
    if p is None:
        lines.append("periphery: not synthesised (--no-synth)")
    else:
        lines.append(f"periphery (the core, Yosys generic cells; crossbar and ADCs outside): "
                     f"{_grouped(p['cells'])} cells, {_grouped(p['flip_flops'])} flip-flops, "
                     f"logic depth {p['longest_path_cells']}; synthesis {p['yosys_s']:.1f} s")
    return "\n".join(lines)
