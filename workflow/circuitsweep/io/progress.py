"""What a run prints while it works: one line per measured revision and periodic progress lines.

Job output goes to the job's log; the rules show the few lines meant for the
console (a revision's line is the last of its log). Progress written to a log
or a pipe is one line per update, at most every ``interval`` seconds, never a
``\\r``-joined bar.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TextIO

import polars as pl


def _strongest(scores: pl.DataFrame, column: str) -> str:
    """``64.2 (L1H3)``: the largest value of ``column`` and its head, or ``-`` when every value is missing."""
    rows = scores.filter(pl.col(column).is_not_null() & pl.col(column).is_finite()).sort(column, descending=True)
    if rows.height == 0:
        return "-"
    best = rows.row(0, named=True)
    return f"{best[column]:.3g} (L{best['layer']}H{best['head']})"


def revision_line(model: str, revision: str, scores: pl.DataFrame, seconds: Mapping[str, float]) -> str:
    """One line on a measured revision: heads measured, the strongest BOS and induction head, seconds per part.

    ``scores``: the revision's head scores, one row per head (``layer``, ``head``,
    ``contracts.SELECTIVITY_COLUMNS``); ``seconds``: wall seconds of each part of the job.
    """
    parts = ", ".join(f"{part} {value:.1f} s" for part, value in seconds.items())
    return (
        f"measured {model} {revision}: {scores.height} heads, strongest BOS {_strongest(scores, 'sel_first')}, "
        f"induction {_strongest(scores, 'sel_induction')} (selectivity); {sum(seconds.values()):.1f} s ({parts})"
    )


class LineProgress:
    """Progress of a counted task: a tqdm bar on a terminal, elsewhere one plain line every ``interval`` seconds,
    or with ``steps`` one line each time the count reaches a further ``1 / steps`` of the total (so a long task
    prints ``steps`` lines however slow the machine).

    Use as a context manager; :meth:`update` advances by ``n``, :meth:`note`
    sets the values shown after the count (``loss=4.01``); ``enabled=False`` shows nothing.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        interval: float = 5.0,
        stream: TextIO | None = None,
        enabled: bool = True,
        steps: int | None = None,
    ) -> None:
        self.total, self.desc, self.unit, self.interval, self.enabled = total, desc, unit, interval, enabled
        self.steps = steps
        self._printed_step = 0
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.notes: dict[str, str] = {}
        self._bar = None
        self._printed_done = -1
        self._started = self._printed = time.monotonic()

    def __enter__(self) -> LineProgress:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close(printing=exc[0] is None)

    def start(self) -> LineProgress:
        """Open the bar (on a terminal); returns ``self``. ``with`` calls it."""
        if self.enabled and self.stream.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, mininterval=2.0, file=self.stream)
        return self

    def close(self, printing: bool = True) -> None:
        """Close the bar, or print the final count once (``printing``: the task finished)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and printing and self.done and self._printed_done != self.done:
            self._print()
        self._printed_done = self.done

    def note(self, **values: object) -> None:
        self.notes.update({key: str(value) for key, value in values.items()})
        if self._bar is not None:
            self._bar.set_postfix(self.notes)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and self.steps and self.total:
            step = self.done * self.steps // self.total
            if step > self._printed_step:
                self._printed_step = step
                self._print()
        elif self.enabled and not self.steps and time.monotonic() - self._printed >= self.interval:
            self._print()

    def line(self) -> str:
        """``train toy/gptneox: 150/400 step (38%), 31 s, loss=4.01``."""
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        notes = "".join(f", {key}={value}" for key, value in self.notes.items())
        elapsed = time.monotonic() - self._started
        return f"{self.desc}: {self.done}/{self.total} {self.unit}{share}, {elapsed:.0f} s{notes}"

    def _print(self) -> None:
        print(self.line(), file=self.stream, flush=True)
        self._printed = time.monotonic()
        self._printed_done = self.done
