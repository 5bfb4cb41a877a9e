"""Parameters of the inference core derived from a compiled model: table contents, widths and
latencies shared by the Amaranth core (``periphery.core``), the generator and testbenches."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .accumulator import AccumulatorParams, signed_bits
from .bn_binarize import BNBinarizeParams
from .mapping import MappedModel
from .schedule import buffer_shapes, check_hardware_mappable, command_shape, entry_base

__all__ = ["CoreParams", "WRITEBACK_LATENCY", "IMAGE_TURNAROUND"]

# Cycles from a command entering the core to its write-back being visible to a later command's
# gather: crossbar port register, crossbar read, accumulator, the BN-binarize block's two
# stages (table read, compare), buffer write. The sequencer idles this many cycles minus one
# between layers (periphery.core documents the stages).
WRITEBACK_LATENCY = 6

# Cycles from the last array read of one image to the first of the next, when the result is
# taken in the cycle after it appears and the next image is already loaded: 4 until the result
# register is valid, 1 for the result handshake, 1 for the sequencer to load its first command.
IMAGE_TURNAROUND = 6


@dataclass(frozen=True, eq=False)
class CoreParams:
    """Everything the core is built from.

    Parameters
    ----------
    mapped : MappedModel
        Compiled model; must be implementable (see
        :func:`golden.schedule.check_hardware_mappable`) and have at most ``columns`` classes.
    """

    mapped: MappedModel

    def __post_init__(self):
        check_hardware_mappable(self.mapped)
        depth, words = self.buffers[0].depth, self.chip.input_words
        if depth % words:
            raise ValueError(f"[chip] input_words = {words} does not divide the image: the "
                             f"first buffer holds {depth} words of "
                             f"{self.buffers[0].word_bits} bits (a divisor of {depth} "
                             f"loads it in whole beats)")
        if self.pipelined and self.crossbar_ports > self.chip.arrays:
            raise ValueError(
                f"[chip] pipeline = true: the layers read up to {self.crossbar_ports} arrays "
                f"in one cycle (min(parallel_reads, row tiles) per layer: "
                f"{', '.join(map(str, self.stage_ports))}) but the chip has arrays = "
                f"{self.chip.arrays}; raise [chip] arrays or lower parallel_reads")
        if self.output_layer.column_tiles != 1:
            raise ValueError(f"the core's argmax needs all {self.output_layer.out_channels} "
                             f"classes in one array ({self.mapped.chip.columns} columns)")

    @property
    def chip(self):
        return self.mapped.chip

    @property
    def output_layer(self):
        return self.mapped.layers[-1]

    @property
    def classes(self) -> int:
        return self.output_layer.out_channels

    @property
    def layer_gap(self) -> int:
        return WRITEBACK_LATENCY - 1

    @cached_property
    def buffers(self):
        return buffer_shapes(self.mapped)

    @cached_property
    def command_shape(self):
        return command_shape(self.mapped)

    @cached_property
    def entries(self) -> list[tuple[int, int]]:
        """(layer, column tile) of every correction/threshold table entry."""
        return [(l.index, ct) for l in self.mapped.layers for ct in range(l.column_tiles)]

    @property
    def read_ports(self) -> int:
        """Arrays read per cycle at most (:attr:`golden.mapping.MappedModel.read_ports`)."""
        return self.mapped.read_ports

    @property
    def pipelined(self) -> bool:
        """A datapath per layer, layers pipelined across images (``chip.pipeline``)."""
        return self.chip.pipeline

    @property
    def stage_ports(self) -> list[int]:
        """Read ports of every layer's stage in a pipelined core: ``parallel_reads``, or
        fewer when the layer has fewer row tiles."""
        return [min(self.chip.parallel_reads, layer.row_tiles) for layer in self.mapped.layers]

    @property
    def crossbar_ports(self) -> int:
        """Array reads per cycle at most, the crossbar port's width: every stage's ports
        when pipelined, :attr:`read_ports` otherwise."""
        return sum(self.stage_ports) if self.pipelined else self.read_ports

    @cached_property
    def pipeline(self):
        """The pipelined core's stages, banks and result queue
        (:class:`golden.pipeline.PipelinePlan`; also defined when not pipelined)."""
        from .pipeline import plan      # (golden.pipeline's rules use this module's latencies)
        p = self.chip.parallel_reads
        return plan([layer.read_cycles(p) for layer in self.mapped.layers], self.input_beats)

    @property
    def read_sum_bits(self) -> int:
        """Signed width of a cycle's codes summed over the read ports (the adder tree's
        output, the accumulator's input): the ADC's width when one array is read."""
        chip = self.chip
        return signed_bits(self.read_ports * chip.adc_min, self.read_ports * chip.adc_max)

    @cached_property
    def accumulator(self) -> AccumulatorParams:
        bias_max = max(int(np.abs(l.correction_bias).max(initial=0)) for l in self.mapped.layers)
        groups = max(-(-l.row_tiles // self.read_ports) for l in self.mapped.layers)
        return AccumulatorParams(lanes=self.chip.columns, code_bits=self.read_sum_bits,
                                 max_terms=groups, bias_max=bias_max, entries=len(self.entries))

    def _lanes(self, ct, values):
        """Column tile ``ct`` of per-channel ``values`` as one value per lane, 0 past the
        layer's channels."""
        cols = self.chip.columns
        out = np.zeros(cols, np.int64)
        part = values[ct * cols:(ct + 1) * cols]
        out[:len(part)] = part
        return out

    @cached_property
    def bias_table(self) -> tuple[list, list]:
        """(bias[entry][lane], double[entry]) for the accumulator."""
        bias, double = [], []
        for li, ct in self.entries:
            layer = self.mapped.layers[li]
            bias.append(self._lanes(ct, layer.correction_bias).tolist())
            double.append(layer.correction_scale == 2)
        return bias, double

    @property
    def threshold_bits(self) -> int:
        """Signed width of a stored threshold: the accumulator's range plus one above it."""
        lo, hi = self.accumulator.value_range
        return signed_bits(lo, hi + 1)

    @cached_property
    def threshold_table(self) -> list[dict]:
        """Per entry: threshold and invert per lane. A lane past the layer's channels, and
        every lane of the output layer's entries (it has no thresholds), holds ``hi + 1`` with
        invert 0: no value the accumulator produces reaches it, so its bit is 0."""
        lo, hi = self.accumulator.value_range
        rows = []
        for li, ct in self.entries:
            layer = self.mapped.layers[li]
            never = np.full(self.chip.columns, hi + 1, np.int64)
            if layer.is_output:
                rows.append({"threshold": never.tolist(), "invert": [0] * self.chip.columns})
                continue
            t = layer.threshold
            # Every `a` the accumulator can produce lies in [lo, hi] (narrower than the model's
            # range when ADCs saturate), where `a >= T` equals `a >= clip(T, lo, hi + 1)`.
            th = never.copy()
            real = self._lanes(ct, np.ones(layer.out_channels, np.int64)).astype(bool)
            th[real] = np.clip(self._lanes(ct, t.threshold), lo, hi + 1)[real]
            rows.append({"threshold": th.tolist(),
                         "invert": self._lanes(ct, t.invert.astype(np.int64)).tolist()})
        return rows

    @property
    def bn_params(self) -> BNBinarizeParams:
        """The core's BN-binarize block: a lane per column, a channel per table entry,
        values as wide as a stored threshold."""
        return BNBinarizeParams(channels=len(self.entries), acc_width=self.threshold_bits,
                                lanes=self.chip.columns)

    @property
    def entry_base(self) -> list[int]:
        return entry_base(self.mapped)

    @property
    def analytical_cycles_per_image(self) -> int:
        """Cycles of array reads per image (``parallel_reads`` row tiles per cycle at most):
        no schedule of these read ports can use fewer cycles. Pipelined: the slowest layer's
        (the array-bound limit of the steady state)."""
        if self.pipelined:
            return max(self.pipeline.stage_cycles)
        return self.mapped.read_cycles_per_image

    @property
    def compute_cycles_per_image(self) -> int:
        """Steady-state cycles per image while loading the input is hidden behind layers >= 1
        (true for the shipped models): cycles of array reads, a layer gap at each layer
        boundary, and the image turnaround. With a tiny model whose input takes longer to load than its
        layers >= 1 take to run, the input stream sets the pace instead.

        Pipelined: the slowest stage's cycles of reads, or the input beats
        (:attr:`golden.pipeline.PipelinePlan.interval`)."""
        if self.pipelined:
            return self.pipeline.interval
        layers = len(self.mapped.layers)
        return (self.analytical_cycles_per_image + (layers - 1) * self.layer_gap
                + IMAGE_TURNAROUND)

    @property
    def latency_cycles(self) -> int:
        """Cycles from the core starting an image (``active`` rising) to its result
        (``o.valid`` rising), the same for every image whatever the stream handshakes: the
        steady-state cycles less the two between a result and the next start when the result
        is taken at once (the handshake cycle, and the cycle ``active`` takes to rise).

        Pipelined: cycles from an image's first input beat to its result with the pipeline
        empty (:attr:`golden.pipeline.PipelineTiming.latency`)."""
        if self.pipelined:
            from .pipeline import timing
            return timing(self.pipeline, 1).latency
        return self.compute_cycles_per_image - 2

    @property
    def input_beat_bits(self) -> int:
        """Width of the input stream: ``chip.input_words`` words of the first buffer."""
        return self.chip.input_words * self.buffers[0].word_bits

    @property
    def input_beats(self) -> int:
        """Input stream beats per image (cycles to load one at one beat per cycle)."""
        return self.buffers[0].depth // self.chip.input_words

    @property
    def input_hidden(self) -> bool:
        """Whether the next image's input beats load while the current image runs layers
        >= 1 (one beat per cycle); pipelined: whether the input stream is faster than the
        slowest stage."""
        if self.pipelined:
            return self.pipeline.bottleneck != "input"
        mapped = self.mapped
        later = mapped.read_cycles_per_image - mapped.layers[0].read_cycles(
            mapped.chip.parallel_reads)
        return self.input_beats < later

    def describe(self) -> dict:
        """JSON-able summary (manifest, generated-file header)."""
        chip = self.chip
        return {"rows": chip.rows, "columns": chip.columns, "mapping": chip.mapping,
                "adc_bits": chip.adc_bits, "tiles": self.mapped.tiles,
                "layers": len(self.mapped.layers), "reads_per_image": self.mapped.reads_per_image,
                "parallel_reads": chip.parallel_reads, "read_ports": self.read_ports,
                "input_words": chip.input_words, "input_beats": self.input_beats,
                "pipeline": chip.pipeline,
                **({"stage_cycles": list(self.pipeline.stage_cycles),
                    "banks": list(self.pipeline.banks),
                    "result_depth": self.pipeline.result_depth,
                    "crossbar_ports": self.crossbar_ports} if chip.pipeline else {}),
                "read_cycles_per_image": self.mapped.read_cycles_per_image,
                "acc_bits": self.accumulator.acc_bits, "layer_gap": self.layer_gap,
                "compute_cycles_per_image": self.compute_cycles_per_image,
                "buffers": [[b.word_bits, b.depth] for b in self.buffers]}
