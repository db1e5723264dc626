"""End a HiGHS solve at its deadline or on Ctrl-C, keep its incumbent, and report its progress.

HiGHS's own `time_limit` is not checked everywhere: with a MIP start, HiGHS 1.16's root cut loop
overran a 60 s limit by 284 s on the large benchmark instance. HiGHS does call its interrupt
callbacks (simplex, IPM and MIP) throughout, so the guard subscribes to them and asks HiGHS to stop
(`data_in.user_interrupt`) once the stage's deadline has passed or Ctrl-C was pressed. A stopped
MIP keeps its incumbent, which is what a time-limited or interrupted run must return.

Ctrl-C: while a solve runs, SIGINT only sets a flag (Python runs the handler at the next callback,
which comes within milliseconds); a second Ctrl-C raises KeyboardInterrupt as usual.

Progress: Pyomo redirects file descriptors 1 and 2 while HiGHS runs (to capture its log), so the
progress printer writes to a duplicate of stderr taken before any solve.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass
class Progress:
    """One progress report: what the solve knows now (objective units of the stage)."""

    stage: str
    elapsed_s: float  # since the run's first solve
    incumbent: float | None
    bound: float | None

    @property
    def gap(self) -> float | None:
        if self.incumbent is None or self.bound is None:
            return None
        if not (math.isfinite(self.incumbent) and math.isfinite(self.bound)):
            return None
        return abs(self.incumbent - self.bound) / max(1e-9, abs(self.incumbent))


ProgressHook = Callable[[Progress], None]


class SolveGuard:
    """Deadline, Ctrl-C flag and progress state shared by every stage of one run."""

    def __init__(self, progress: ProgressHook | None = None, every_s: float = 5.0) -> None:
        self.progress = progress
        self.every_s = every_s
        self.interrupted = False
        self.stage = ""
        self.deadline = math.inf
        self.started: float | None = None  # the first solve's start
        self.incumbent: float | None = None
        self.bound: float | None = None
        self.scale = 1.0  # the solver's objective is the reported one divided by this
        self._last_report = -math.inf
        self._attached: set[int] = set()
        self._offer: Any = None  # a plan (column values) to hand HiGHS after its root node

    # --- stage bookkeeping ---------------------------------------------------------------------
    def begin(self, stage: str, time_limit: float, scale: float = 1.0) -> None:
        self.stage = stage
        now = time.monotonic()
        self.started = now if self.started is None else self.started
        self.deadline = now + time_limit
        self.incumbent = self.bound = None
        self.scale = scale
        self._last_report = -math.inf

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def should_stop(self) -> bool:
        return self.interrupted or self.expired()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    # --- HiGHS callbacks -----------------------------------------------------------------------
    def attach(self, highs: Any) -> None:
        """Subscribe to a `highspy.Highs` object's callbacks (once per object)."""
        if id(highs) in self._attached:
            return
        self._attached.add(id(highs))
        highs.cbSimplexInterrupt += self._on_interrupt
        highs.cbIpmInterrupt += self._on_interrupt
        highs.cbMipInterrupt += self._on_mip
        highs.cbMipImprovingSolution += self._on_mip
        highs.cbMipUserSolution += self._on_user_solution

    def offer(self, col_value: Any) -> None:
        """Hand this plan to the next MIP solve once it is past its root node (None: nothing)."""
        self._offer = col_value

    def _on_user_solution(self, event: Any) -> None:
        if self._offer is None or event.data_out.mip_node_count < 1:
            return
        event.data_in.setSolution(self._offer)
        self._offer = None

    def _on_interrupt(self, event: Any) -> None:
        # HiGHS keeps the flag between runs: write it every time, so a stop does not carry over
        event.interrupt(self.should_stop())

    def _on_mip(self, event: Any) -> None:
        out = event.data_out
        primal, dual = float(out.mip_primal_bound), float(out.mip_dual_bound)
        if math.isfinite(primal) and abs(primal) < 1e30:
            self.incumbent = primal * self.scale
        if math.isfinite(dual) and abs(dual) < 1e30:
            self.bound = dual * self.scale
        self.report()
        event.interrupt(self.should_stop())

    def report(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_report < self.every_s:
            return
        self._last_report = now
        elapsed = now - (self.started or now)
        self.progress(Progress(self.stage, elapsed, self.incumbent, self.bound))

    # --- Ctrl-C ----------------------------------------------------------------------------------
    @contextmanager
    def catch_sigint(self) -> Iterator[None]:
        """While solving, the first Ctrl-C asks the solver to stop; the second one aborts."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread (e.g. Dagster workers)
            return

        def handler(signum: int, frame: Any) -> None:
            if self.interrupted:
                raise KeyboardInterrupt
            self.interrupted = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


class StderrProgress:
    """Prints progress lines on the real stderr (a single updating line on a terminal)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        if stream is None:
            stream = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", closefd=True)
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, p: Progress) -> None:
        inc = "-" if p.incumbent is None else f"{p.incumbent:,.6g}"
        bound = "-" if p.bound is None else f"{p.bound:,.6g}"
        gap = "-" if p.gap is None else f"{100 * p.gap:.4f} %"
        line = f"{p.stage:<18} {p.elapsed_s:7.1f} s  incumbent {inc}  bound {bound}  gap {gap}"
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        self.stream.close()
