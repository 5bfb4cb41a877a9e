"""The layer-pipelined core (``[chip] pipeline = true``): its stages, buffer banks and cycle
timing -- the golden twin of ``periphery.pipeline``.

Every layer is a **stage** with its own sequencer (the layer's commands of
:func:`golden.schedule.commands`, ``parallel_reads`` row tiles per command), read ports,
accumulator and BN-binarize (the output layer: argmax). Layer ``l``'s input buffer has
``banks[l]`` banks; image ``n`` lives in bank ``n % banks[l]``. A bank is *full* from the cycle
its producer (the input stream for layer 0, stage ``l - 1`` otherwise) has written the image's
last word until its consumer (stage ``l``) has issued the image's last read. Results leave
through a queue of ``result_depth`` entries.

Cycle rules (cycle ``c`` = the clock period in which a signal is stable; every rule below is
what the RTL does, and :func:`timing` applies them image by image):

* the input stream's beats of image ``n`` are accepted while bank ``n % banks[0]`` of the
  first buffer is free; the bank is full from the cycle after its last beat;
* stage ``l`` may start image ``n`` in cycle ``c`` when its input bank is full in ``c``, the
  bank it writes (``n % banks[l + 1]``) is free in ``c``, and -- for the output layer -- fewer
  than ``result_depth`` results are claimed (started and not yet taken) in ``c``;
* the sequencer samples the start in every cycle in which it has no command left to load
  (from the cycle its previous image's last command is issued) and issues the first command
  of the image ``START_LATENCY`` cycle later: with the next image ready in time, a stage's
  images follow each other without a gap;
* a stage issues one command per cycle, ``C[l] = layer.read_cycles(parallel_reads)`` per
  image, the last in cycle ``E``; its input bank is free from ``E + 1``; the bank it wrote is
  full from ``E + FULL_LATENCY`` (the write-back of the last command is visible then, the
  core's ``WRITEBACK_LATENCY``); the output layer's result is valid from ``E +
  RESULT_LATENCY`` (later if the queue holds earlier results: one result leaves per cycle).

The steady-state interval is therefore ``max(input beats, max C[l])`` -- the slowest stage's
reads at ``parallel_reads`` per cycle, or the input stream -- provided the banks cover the
round trip of a bank: :func:`plan` chooses the fewest banks (and queue entries) that do, and
the tests run :func:`timing` to show the interval is reached.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PipelinePlan", "PipelineTiming", "plan", "timing",
           "START_LATENCY", "FULL_LATENCY", "RESULT_LATENCY"]

# Cycles from a start sampled by the sequencer to its first command (the command register).
START_LATENCY = 1
# Cycles from the last command of an image (cycle E) to the next layer's bank being full: its
# write-back is in cycle E + 5 (golden.core.WRITEBACK_LATENCY - 1), the flag set with it.
FULL_LATENCY = 6
# Cycles from the output layer's last command to its result at the queue's head: crossbar port
# register, crossbar read, accumulator, queue write.
RESULT_LATENCY = 4


@dataclass(frozen=True)
class PipelinePlan:
    """Stages and storage of a pipelined core.

    Attributes
    ----------
    stage_cycles : tuple of int
        ``C[l]``: commands (cycles of reads) of layer ``l`` per image.
    input_beats : int
        Input stream beats per image.
    banks : tuple of int
        Banks of layer ``l``'s input buffer.
    result_depth : int
        Entries of the result queue.
    """

    stage_cycles: tuple
    input_beats: int
    banks: tuple
    result_depth: int

    @property
    def interval(self) -> int:
        """Steady-state cycles per image: the slowest stage, or the input stream."""
        return max(self.input_beats, *self.stage_cycles)

    @property
    def stages(self) -> int:
        return len(self.stage_cycles)

    @property
    def bottleneck(self) -> str:
        """What sets :attr:`interval`: ``"input"`` or ``"layer L"``."""
        slowest = max(self.stage_cycles)
        if self.input_beats > slowest:
            return "input"
        return f"layer {self.stage_cycles.index(slowest)}"


def plan(stage_cycles, input_beats: int) -> PipelinePlan:
    """The fewest banks and queue entries that sustain the interval ``T = max(input_beats,
    max stage_cycles)``.

    With the producer of a buffer starting an image every ``T`` cycles, ``k`` banks give a
    bank ``(k - 1) T`` cycles from one image's last write to the next image's first: the
    consumer must have read it by then. Stage ``l`` issues image ``n``'s first command
    ``FULL_LATENCY + START_LATENCY`` cycles after stage ``l - 1``'s last at the earliest and
    frees the bank ``C[l]`` cycles later: ``(k - 1) T >= C[l] + FULL_LATENCY +
    START_LATENCY``. The first buffer's bank is busy from the image's first beat to stage 0's
    last command: ``k T >= beats + START_LATENCY + C[0]`` (and two banks at least, so that an
    image loads while the previous one computes). The queue: an entry is claimed when the output
    stage starts an image and freed the cycle after its result leaves, ``RESULT_LATENCY``
    cycles after the image's last command: ``(depth - 1) T >= RESULT_LATENCY + 1``. :func:`timing` reaches ``T`` with these counts (tested on the
    shipped models and on random stage lists).
    """
    cycles = tuple(int(c) for c in stage_cycles)
    beats = int(input_beats)
    if not cycles or min(cycles) < 1 or beats < 1:
        raise ValueError(f"stage cycles {cycles} and input beats {beats} must be positive")
    t = max(beats, *cycles)
    ceil = lambda a, b: -(-a // b)                                # noqa: E731
    banks = [max(2, ceil(beats + START_LATENCY + cycles[0], t))]
    for c in cycles[1:]:
        banks.append(1 + ceil(c + FULL_LATENCY + START_LATENCY, t))
    depth = 1 + ceil(RESULT_LATENCY + 1, t)
    return PipelinePlan(cycles, beats, tuple(banks), depth)


@dataclass(frozen=True)
class PipelineTiming:
    """Cycles of a run of images (cycle 0: the first beat of image 0 is accepted).

    ``beats[n]``: cycle of image ``n``'s first input beat; ``first[l][n]``, ``last[l][n]``:
    cycles of stage ``l``'s first and last command of image ``n``; ``results[n]``: first cycle
    image ``n``'s result is valid (and taken: the consumer is always ready).
    """

    beats: tuple
    first: tuple
    last: tuple
    results: tuple

    @property
    def intervals(self) -> tuple:
        """Cycles between consecutive results."""
        r = self.results
        return tuple(b - a for a, b in zip(r, r[1:]))

    @property
    def latency(self) -> int:
        """Cycles from image 0's first input beat to its result (an empty pipeline)."""
        return self.results[0] - self.beats[0]


def timing(p: PipelinePlan, images: int) -> PipelineTiming:
    """Apply the cycle rules of this module to ``images`` images offered back to back (the
    input stream has a beat whenever the core is ready; results are taken at once)."""
    stages, b = p.stages, p.input_beats
    beats: list[int] = []
    first = [[] for _ in range(stages)]
    last = [[] for _ in range(stages)]
    results: list[int] = []
    for n in range(images):
        start = beats[-1] + b if beats else 0
        if n >= p.banks[0]:
            start = max(start, last[0][n - p.banks[0]] + 1)
        beats.append(start)
        for s in range(stages):
            ready = beats[n] + b if s == 0 else last[s - 1][n] + FULL_LATENCY
            if s + 1 < stages:
                k = p.banks[s + 1]
                if n >= k:      # the bank it writes: freed by stage s + 1 after image n - k
                    ready = max(ready, last[s + 1][n - k] + 1)
            elif n >= p.result_depth:
                ready = max(ready, results[n - p.result_depth] + 1)
            # sampled from the cycle the previous image's last command is issued
            f = max(ready, last[s][n - 1] if n else 0) + START_LATENCY
            first[s].append(f)
            last[s].append(f + p.stage_cycles[s] - 1)
        r = last[-1][n] + RESULT_LATENCY
        results.append(max(r, results[-1] + 1) if results else r)
    return PipelineTiming(tuple(beats), tuple(map(tuple, first)), tuple(map(tuple, last)),
                          tuple(results))
