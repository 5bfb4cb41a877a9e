"""ProgrammingController: write-verify programming of the crossbar cells, one cell at a time.

Behaviour -- read before write, pulses towards the target with a stepped amplitude, a verify
read after every pulse, at most ``max_pulses`` pulses, failures reported -- is specified by
:func:`golden.programming.program_cells`; this module only implements it, and its command
stream equals :meth:`golden.programming.ProgrammingResult.commands` (tested, cocotb on Icarus
and Verilator).

Ports
-----
``start``   pulse high for a cycle to program every cell (from cell 0); ignored while busy.
``cmd``     stream of commands to the array's programming port:
            ``{op, cell, set, step}`` -- ``op`` 0 is a verify read of ``cell``, 1 a pulse of
            polarity ``set`` (1 SET, 0 RESET) at amplitude step ``step``.
``res``     stream of verify-read results ``{code}``, one per read command, in order.
``report``  stream of failed cells ``{cell, code}`` (the cell's last verify code), in cell
            order; a cell is reported once, after its ``max_pulses``-th pulse left it outside
            its window.
``busy``    programming in progress; ``done`` high from the end of a run until the next start.
``pulses``, ``failures``  counts of the last run (reset by ``start``).

The targets are a memory generated from the model (a level per cell, as the threshold tables
are), or -- for a whole model's millions of cells, which a generated memory initialiser cannot
carry -- an external weight memory read through ``target_addr`` -> ``target_level``
(combinational; in :class:`periphery.core.BnnSystem` a memory loaded from a file). The
level-to-code table is a constant.

Timing: a cell that needs no pulse takes 2 cycles when the array answers a read in the cycle
after it is taken (the read command; the result, decided on as it arrives, with the next
cell's target read from the memory in the same cycle): 0.5 cells per cycle. Each pulse adds 3
(the pulse command, the read command, the result) and a failure report 1.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.programming import PULSE, READ, WriteVerifyPolicy, level_codes
from golden.widths import index_bits

__all__ = ["ProgrammingController", "command_layout", "result_layout", "report_layout"]


def _bits(n: int) -> int:
    """Unsigned width holding 0..n (at least 1)."""
    return index_bits(int(n) + 1)


def command_layout(policy: WriteVerifyPolicy, cells: int) -> data.StructLayout:
    return data.StructLayout({"op": unsigned(1), "cell": unsigned(_bits(cells - 1)),
                              "set": unsigned(1), "step": unsigned(_bits(policy.max_step))})


def result_layout(policy: WriteVerifyPolicy) -> data.StructLayout:
    return data.StructLayout({"code": unsigned(policy.verify_bits)})


def report_layout(policy: WriteVerifyPolicy, cells: int) -> data.StructLayout:
    return data.StructLayout({"cell": unsigned(_bits(cells - 1)),
                              "code": unsigned(policy.verify_bits)})


class ProgrammingController(wiring.Component):
    """Parameters
    ----------
    policy : WriteVerifyPolicy
        Levels, verify resolution, window, maximum pulses and amplitude steps.
    targets : sequence of int, or int
        Target level of every cell, ``0 .. policy.levels - 1`` (a memory inside the
        controller); or the number of cells, whose targets are read from an external memory
        through the ports ``target_addr`` (out) and ``target_level`` (in, combinational).
    """

    def __init__(self, policy: WriteVerifyPolicy, targets):
        if isinstance(targets, int):
            if targets < 1:
                raise ValueError(f"cells {targets}: expected at least one")
            cells, self.targets = targets, None
        else:
            targets = [int(t) for t in targets]
            if not targets:
                raise ValueError("targets must hold at least one cell")
            bad = [t for t in targets if not 0 <= t < policy.levels]
            if bad:
                raise ValueError(f"target level {bad[0]} is outside 0..{policy.levels - 1}")
            cells, self.targets = len(targets), targets
        self.policy, self.cells = policy, cells
        external = {} if self.targets is not None else {
            "target_addr": Out(_bits(cells - 1)), "target_level": In(_bits(policy.levels - 1))}
        super().__init__({
            **external,
            "start": In(1),
            "cmd": Out(stream.Signature(command_layout(policy, cells))),
            "res": In(stream.Signature(result_layout(policy))),
            "report": Out(stream.Signature(report_layout(policy, cells))),
            "busy": Out(1),
            "done": Out(1),
            "pulses": Out(_bits(cells * policy.max_pulses)),
            "failures": Out(_bits(cells)),
        })

    def elaborate(self, platform):
        m = Module()
        pol, cells = self.policy, self.cells
        code_w = pol.verify_bits

        # the cell being programmed is the target memory's read address itself (a separate
        # register would be an alias Yosys leaves unread in the Verilog)
        if self.targets is not None:
            level_w = _bits(pol.levels - 1)
            m.submodules.targets = mem = Memory(shape=unsigned(level_w), depth=max(2, cells),
                                                init=self.targets)
            rd = mem.read_port(domain="comb")
            cell, level = rd.addr, rd.data
        else:
            cell, level = self.target_addr, self.target_level
        code = Signal(code_w)             # the cell's last verify code (for its report)
        tried = Signal(_bits(pol.max_pulses))
        last_set = Signal()
        step = Signal(_bits(pol.max_step))

        codes = level_codes(pol.levels, code_w)
        table = Const(sum(c << (k * code_w) for k, c in enumerate(codes)), code_w * len(codes))
        # The decision is taken on the verify result as it arrives: in the window when
        # |result - target| <= window, in signed arithmetic one bit wider.
        target = Signal(code_w)
        diff = Signal(signed(code_w + 1))
        m.d.comb += [target.eq(table.word_select(level, code_w)),
                     diff.eq(self.res.payload.code - target)]
        inside = (diff >= -pol.window_codes) & (diff <= pol.window_codes)
        below = diff < 0

        m.d.comb += [self.cmd.payload.cell.eq(cell), self.report.payload.cell.eq(cell),
                     self.report.payload.code.eq(code)]

        def next_cell():
            with m.If(cell == cells - 1):
                m.d.sync += self.done.eq(1)
                m.next = "IDLE"
            with m.Else():
                m.d.sync += [cell.eq(cell + 1), tried.eq(0), step.eq(0)]
                m.next = "READ"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [cell.eq(0), tried.eq(0), step.eq(0), self.pulses.eq(0),
                                 self.failures.eq(0), self.done.eq(0)]
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += [self.busy.eq(1), self.cmd.valid.eq(1),
                             self.cmd.payload.op.eq(READ)]
                with m.If(self.cmd.ready):
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += [self.busy.eq(1), self.res.ready.eq(1)]
                with m.If(self.res.valid):
                    m.d.sync += code.eq(self.res.payload.code)
                    with m.If(inside):
                        next_cell()
                    with m.Elif(tried == pol.max_pulses):
                        m.next = "REPORT"
                    with m.Else():
                        # step 0 on a cell's first pulse and after a change of polarity, else
                        # one more, up to the largest
                        same = (tried != 0) & (last_set == below)
                        m.d.sync += [last_set.eq(below),
                                     step.eq(Mux(same & (step != pol.max_step), step + 1,
                                                 Mux(same, step, 0)))]
                        m.next = "PULSE"
            with m.State("PULSE"):
                m.d.comb += [self.busy.eq(1), self.cmd.valid.eq(1),
                             self.cmd.payload.op.eq(PULSE), self.cmd.payload.set.eq(last_set),
                             self.cmd.payload.step.eq(step)]
                with m.If(self.cmd.ready):
                    m.d.sync += [tried.eq(tried + 1), self.pulses.eq(self.pulses + 1)]
                    m.next = "READ"
            with m.State("REPORT"):
                m.d.comb += [self.busy.eq(1), self.report.valid.eq(1)]
                with m.If(self.report.ready):
                    m.d.sync += self.failures.eq(self.failures + 1)
                    next_cell()
        return m
