"""Figures of ``mbnn evaluate --plot`` (accuracy against a swept non-ideality, or the accuracy
of every chip of one configuration) and ``mbnn report --plot`` (throughput, energy and
periphery size against the parallel reads).

Figures are drawn on matplotlib's non-interactive Agg canvas directly (no pyplot): no display
is needed, no global list of open figures grows, and nothing depends on the backend a user's
``matplotlibrc`` selects. Each figure is drawn and rendered under matplotlib's default style,
so a user's rc file does not change it either; with the PNG's ``Software`` entry dropped, the
same data give the same bytes on the same matplotlib and fonts (the pins in
``constraints.txt``).

This is the only module that imports matplotlib, and the command line imports it only when
``--plot`` is given: the import (about half a second) is not paid by every ``mbnn`` call.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib.style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from golden.fileio import atomic_write_bytes

__all__ = ["DPI", "FIGSIZE_IN", "parallel_reads_figure", "SweepSeries", "AccuracySweep", "ChipSeries", "ChipSpread",
           "x_scale", "sweep_figure", "chips_figure", "TrainingCurve", "in_situ_figure",
           "write_png"]

DPI = 150                       # dots per inch of the written PNG
FIGSIZE_IN = (6.4, 4.4)         # figure size in inches: 960 x 660 pixels at DPI
REPORT_FIGSIZE_IN = (6.4, 7.2)  # mbnn report's three stacked panels


def _finite(name: str, values) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    bad = [v for v in out if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{name} must be finite numbers, not {bad[0]!r}")
    return out


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class SweepSeries:
    """One curve of a sweep: accuracy over the chips at each swept value.

    Parameters
    ----------
    label : str
        Legend name of the curve, e.g. ``"device rram"`` or ``"corrected"``.
    mean_pct, std_pct, min_pct, max_pct : sequence of float
        Mean, standard deviation over the chips, minimum and maximum chip accuracy at each
        value of :attr:`AccuracySweep.values` (same order), in percent.
    """

    label: str
    mean_pct: tuple[float, ...]
    std_pct: tuple[float, ...]
    min_pct: tuple[float, ...]
    max_pct: tuple[float, ...]

    def __post_init__(self):
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"a series label must be a non-empty string, not {self.label!r}")
        for name in ("mean_pct", "std_pct", "min_pct", "max_pct"):
            object.__setattr__(self, name, _finite(f"{self.label}: {name}", getattr(self, name)))
        lengths = {len(getattr(self, n)) for n in ("mean_pct", "std_pct", "min_pct", "max_pct")}
        if len(lengths) != 1:
            raise ValueError(f"{self.label}: mean_pct, std_pct, min_pct and max_pct must have "
                             f"one entry per value, not {sorted(lengths)} entries")

    @classmethod
    def from_accuracy_rows(cls, label: str, rows) -> SweepSeries:
        """The series of ``rows``, one per swept value, each a dict with the fractions
        ``mean``, ``std``, ``min`` and ``max`` (as :meth:`ChipAccuracy.as_dict` and the JSON
        of ``mbnn evaluate`` give them)."""
        return cls(label, *([100.0 * row[k] for row in rows] for k in ("mean", "std", "min",
                                                                           "max")))


@dataclass(frozen=True)
class AccuracySweep:
    """Accuracy against one non-ideality parameter, for one or more named series.

    Parameters
    ----------
    parameter : str
        x-axis label: the quantity and its unit, e.g. ``"wire resistance per cell segment
        (ohm)"``.
    values : sequence of float
        The swept values, distinct, in any order (drawn in ascending order).
    series : sequence of SweepSeries
        The curves, with distinct labels; each has one entry per value.
    ideal_pct : sequence of float
        Accuracy of the ideal chip at each value, in percent. Constant unless the parameter
        changes the ideal chip too (ADC resolution): then it is drawn as a dashed curve.
    model : str
        Model name for the title.
    chips, images : int
        Chips per value and test images per chip, for the title.
    """

    parameter: str
    values: tuple[float, ...]
    series: tuple[SweepSeries, ...]
    ideal_pct: tuple[float, ...]
    model: str
    chips: int
    images: int

    def __post_init__(self):
        values = _finite("values", self.values)
        if not values:
            raise ValueError("a sweep needs at least one value, not none")
        if len(set(values)) != len(values):
            twice = next(v for v in values if values.count(v) > 1)
            raise ValueError(f"values must be distinct, not {twice!r} twice")
        object.__setattr__(self, "values", values)
        series = tuple(self.series)
        if not series:
            raise ValueError("a sweep needs at least one series, not none")
        labels = [s.label for s in series]
        if len(set(labels)) != len(labels):
            raise ValueError(f"series labels must be distinct, not {labels}")
        for s in series:
            if len(s.mean_pct) != len(values):
                raise ValueError(f"series {s.label!r} has {len(s.mean_pct)} entries for "
                                 f"{len(values)} values")
        object.__setattr__(self, "series", series)
        ideal = _finite("ideal_pct", self.ideal_pct)
        if len(ideal) != len(values):
            raise ValueError(f"ideal_pct has {len(ideal)} entries for {len(values)} values")
        object.__setattr__(self, "ideal_pct", ideal)
        _positive_int("chips", self.chips)
        _positive_int("images", self.images)


@dataclass(frozen=True)
class ChipSeries:
    """The accuracy of each chip of one configuration (one named series).

    Parameters
    ----------
    label : str
        Legend name, e.g. ``"device rram"``.
    accuracies_pct : sequence of float
        Accuracy of each chip, in percent, in the order of :attr:`ChipSpread.seeds`.
    mean_pct, std_pct : float
        Mean and standard deviation over the chips, in percent, as the evaluation reported
        them (drawn as given, not recomputed: the figure shows the reported numbers).
    """

    label: str
    accuracies_pct: tuple[float, ...]
    mean_pct: float
    std_pct: float

    def __post_init__(self):
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"a series label must be a non-empty string, not {self.label!r}")
        object.__setattr__(self, "accuracies_pct",
                           _finite(f"{self.label}: accuracies_pct", self.accuracies_pct))
        _finite(f"{self.label}: mean_pct and std_pct", (self.mean_pct, self.std_pct))


@dataclass(frozen=True)
class ChipSpread:
    """Accuracy of every chip of one configuration: the figure of an evaluation without a
    sweep.

    Parameters
    ----------
    seeds : sequence of int
        Programming seed of each chip (the x axis: a chip can be rebuilt from its seed).
    series : sequence of ChipSeries
        One or more named series, each with one accuracy per seed.
    ideal_pct : float
        Accuracy of the ideal chip, in percent.
    model : str
        Model name for the title.
    images : int
        Test images per chip, for the title.
    """

    seeds: tuple[int, ...]
    series: tuple[ChipSeries, ...]
    ideal_pct: float
    model: str
    images: int

    def __post_init__(self):
        seeds = tuple(self.seeds)
        if not seeds:
            raise ValueError("a chip spread needs at least one chip, not none")
        object.__setattr__(self, "seeds", seeds)
        series = tuple(self.series)
        if not series:
            raise ValueError("a chip spread needs at least one series, not none")
        labels = [s.label for s in series]
        if len(set(labels)) != len(labels):
            raise ValueError(f"series labels must be distinct, not {labels}")
        for s in series:
            if len(s.accuracies_pct) != len(seeds):
                raise ValueError(f"series {s.label!r} has {len(s.accuracies_pct)} accuracies "
                                 f"for {len(seeds)} chips")
        object.__setattr__(self, "series", series)
        _finite("ideal_pct", (self.ideal_pct,))
        _positive_int("images", self.images)


def x_scale(values) -> tuple[str, dict]:
    """The x-axis scale for swept ``values``: ``("log", {})`` when the positive values span
    two decades or more, ``("symlog", {"linthresh": smallest positive value})`` when they do
    and 0 is among the values (a log axis cannot show 0: it gets a linear stretch up to the
    smallest positive value), ``("linear", {})`` otherwise (and whenever a value is negative).

    Two decades already count: on a linear axis the stuck rates 0.001, 0.01, 0.1 would put
    two of three points in the first tenth of the axis.
    """
    values = [float(v) for v in values]
    positive = sorted(v for v in values if v > 0)
    if min(values) < 0 or len(positive) < 2 or positive[-1] < 100 * positive[0]:
        return "linear", {}
    if len(positive) < len(values):
        return "symlog", {"linthresh": positive[0]}
    return "log", {}


def _new_axes():
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)        # Agg, whatever backend the environment selects
    return fig, fig.add_subplot()


def sweep_figure(sweep: AccuracySweep) -> Figure:
    """Draw accuracy against the swept parameter.

    Each series is its mean accuracy joined in value order, with error bars of +-1 standard
    deviation over the chips (capped) and, behind them, a light bar from the worst to the best
    chip (min-max). The ideal chip is a dashed black line: horizontal when it is the same at
    every value. The x axis is logarithmic or symmetric-logarithmic when the values span two
    decades or more (:func:`x_scale`). Artists carry ``gid`` ``"<label>:mean"`` (the mean
    curve, in an error-bar container labelled ``<label>``), ``"<label>:range"`` and
    ``"ideal"``, so a test can read back what was drawn.

    Returns
    -------
    matplotlib.figure.Figure
        On an Agg canvas; write it with :func:`write_png`.
    """
    order = sorted(range(len(sweep.values)), key=sweep.values.__getitem__)
    x = [sweep.values[i] for i in order]
    with matplotlib.style.context("default"):
        fig, ax = _new_axes()
        scale, kwargs = x_scale(x)
        ax.set_xscale(scale, **kwargs)
        for k, s in enumerate(sweep.series):
            color = f"C{k}"
            rng = ax.vlines(x, [s.min_pct[i] for i in order], [s.max_pct[i] for i in order],
                            colors=color, alpha=0.25, linewidth=8, label=f"{s.label}: min–max")
            rng.set_gid(f"{s.label}:range")
            ax.errorbar(x, [s.mean_pct[i] for i in order], yerr=[s.std_pct[i] for i in order],
                        fmt="-o", color=color, capsize=4, markersize=4, gid=f"{s.label}:mean",
                        label=s.label)
        ideal = [sweep.ideal_pct[i] for i in order]
        if len(set(ideal)) == 1:
            ax.axhline(ideal[0], color="k", linestyle="--", linewidth=1, gid="ideal",
                       label=f"ideal chip ({ideal[0]:.2f} %)")
        else:
            ax.plot(x, ideal, color="k", linestyle="--", linewidth=1, gid="ideal",
                    label="ideal chip")
        if all(v == int(v) for v in x) and scale == "linear":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(sweep.parameter)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{sweep.model}: {sweep.chips} chips per point, {sweep.images} images, "
                     f"mean ±1 std", fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def chips_figure(spread: ChipSpread) -> Figure:
    """Draw the accuracy of each chip against its programming seed (a strip plot).

    Each series is a dot per chip, a solid line at the reported mean and a light band of +-1
    reported standard deviation; the ideal chip is a dashed black line. Artists carry ``gid``
    ``"<label>:chips"`` (the dots), ``"<label>:mean"`` and ``"ideal"``.

    Returns
    -------
    matplotlib.figure.Figure
        On an Agg canvas; write it with :func:`write_png`.
    """
    with matplotlib.style.context("default"):
        fig, ax = _new_axes()
        for k, s in enumerate(spread.series):
            color = f"C{k}"
            ax.axhspan(s.mean_pct - s.std_pct, s.mean_pct + s.std_pct, color=color, alpha=0.15,
                       linewidth=0)
            ax.axhline(s.mean_pct, color=color, linewidth=1.5, gid=f"{s.label}:mean",
                       label=f"{s.label}: mean {s.mean_pct:.2f} % ± {s.std_pct:.2f}")
            ax.plot(spread.seeds, s.accuracies_pct, "o", color=color, markersize=4,
                    gid=f"{s.label}:chips", label=f"{s.label}: one chip")
        ax.axhline(spread.ideal_pct, color="k", linestyle="--", linewidth=1, gid="ideal",
                   label=f"ideal chip ({spread.ideal_pct:.2f} %)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("chip (programming seed)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{spread.model}: {len(spread.seeds)} chips, {spread.images} images",
                     fontsize="medium")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return fig


def parallel_reads_figure(points, model_name: str) -> Figure:
    """Throughput, energy per image and periphery cells (when synthesised) against the
    parallel reads of ``points`` (one :class:`sim.report.ChipReport` per value,
    :func:`sim.report.sweep_chip`; ``mbnn report --plot``). Lines carry
    ``gid`` ``throughput`` (and ``throughput:input_paced``: hollow markers on the points
    whose input loads slower than the later layers run), ``energy:crossbar``,
    ``energy:adc``, ``energy:total``, ``periphery:cells`` and ``periphery:flip_flops``, so a
    test can read back what was drawn. Write it with :func:`write_png`."""
    synth = all(p.periphery is not None for p in points)
    x = [p.chip.parallel_reads for p in points]
    with matplotlib.style.context("default"):
        fig = Figure(figsize=REPORT_FIGSIZE_IN, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(3 if synth else 2, 1, sharex=True)
        ax = axes[0]
        ax.plot(x, [p.throughput_images_per_s for p in points], "-o", gid="throughput",
                label="steady state")
        paced = [p for p in points if not p.input_hidden]
        if paced:
            ax.plot([p.chip.parallel_reads for p in paced],
                    [p.throughput_images_per_s for p in paced], "o", color="w",
                    markeredgecolor="C0", gid="throughput:input_paced",
                    label="upper bound: the input stream paces the core")
        ax.set_ylabel("images/s")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{model_name} on {points[0].chip.rows}x{points[0].chip.columns} arrays, "
                     f"{points[0].chip.clock_mhz:g} MHz"
                     + (", layers pipelined" if points[0].chip.pipeline else ""),
                     fontsize="medium")
        ax = axes[1]
        for key, label in (("crossbar", "crossbar reads"), ("adc", "ADC conversions")):
            ax.plot(x, [p._sum(f"{key}_energy_per_image_nj") for p in points], "-o",
                    gid=f"energy:{key}", label=label)
        ax.plot(x, [p.energy_per_image_nj for p in points], "-o", color="k",
                gid="energy:total", label="total")
        ax.set_ylabel("energy/image (nJ)")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="small", loc="lower right")     # below the lines (constant in P)
        if synth:
            ax = axes[2]
            ax.plot(x, [p.periphery.cells for p in points], "-o", gid="periphery:cells",
                    label="cells")
            ax.plot(x, [p.periphery.flip_flops for p in points], "-o",
                    gid="periphery:flip_flops", label="flip-flops")
            ax.set_ylabel("periphery (Yosys cells)")
            ax.set_ylim(bottom=0)
        axes[-1].set_xscale("log", base=2)
        axes[-1].set_xticks(x, [str(v) for v in x])
        axes[-1].minorticks_off()
        axes[-1].set_xlabel("parallel reads P (arrays read per cycle)")
        for ax in axes:
            ax.grid(alpha=0.3)
            if ax.get_legend() is None:
                ax.legend(fontsize="small")
    return fig


@dataclass(frozen=True)
class TrainingCurve:
    """One training run of :func:`in_situ_figure`.

    Parameters
    ----------
    label : str
        Legend name, e.g. ``"in situ, rram"``.
    accuracy_pct : sequence of float
        Test accuracy after each epoch, percent (epochs 1, 2, ...).
    pulses : sequence of int, optional
        Programming pulses of each epoch (None: a software run, which programs nothing).
    """

    label: str
    accuracy_pct: tuple
    pulses: tuple | None = None

    def __post_init__(self):
        object.__setattr__(self, "accuracy_pct", _finite("accuracy_pct", self.accuracy_pct))
        if not self.accuracy_pct:
            raise ValueError(f"curve {self.label!r} has no epochs")
        if self.pulses is not None:
            object.__setattr__(self, "pulses", _finite("pulses", self.pulses))
            if len(self.pulses) != len(self.accuracy_pct):
                raise ValueError(f"curve {self.label!r}: {len(self.pulses)} pulse counts for "
                                 f"{len(self.accuracy_pct)} epochs")


def in_situ_figure(curves, title: str) -> Figure:
    """Test accuracy (top) and programming pulses (bottom, log scale) against the epoch for
    software and in-situ training runs (:mod:`golden.analog.in_situ`). Lines carry ``gid``
    ``accuracy:<label>`` and ``pulses:<label>``. Write it with :func:`write_png`."""
    with matplotlib.style.context("default"):
        fig = Figure(figsize=REPORT_FIGSIZE_IN, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
        for k, c in enumerate(curves):
            epochs = range(1, len(c.accuracy_pct) + 1)
            top.plot(epochs, c.accuracy_pct, "-o", ms=3, color=f"C{k}",
                     gid=f"accuracy:{c.label}", label=c.label)
            if c.pulses is not None:
                bottom.plot(epochs, [max(p, 1) for p in c.pulses], "-o", ms=3, color=f"C{k}",
                            gid=f"pulses:{c.label}", label=c.label)
        top.set_ylabel("test accuracy (%)")
        top.set_title(title, fontsize="medium")
        top.legend(fontsize="small", loc="lower right")
        bottom.set_yscale("log")
        bottom.set_ylabel("programming pulses per epoch")
        bottom.set_xlabel("epoch")
        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    return fig


def write_png(fig: Figure, path: str | Path) -> Path:
    """Render ``fig`` as a PNG of :data:`FIGSIZE_IN` at :data:`DPI` and write it to ``path``
    atomically (rendered in memory, then :func:`golden.fileio.atomic_write_bytes`: an error
    or an interrupt leaves the old file or none, never a part).

    The PNG holds no ``Software`` entry (matplotlib's version) and no date, so equal figures
    give equal files.
    """
    buf = io.BytesIO()
    with matplotlib.style.context("default"):
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return atomic_write_bytes(path, buf.getvalue())
