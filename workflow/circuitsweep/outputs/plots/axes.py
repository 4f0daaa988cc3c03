"""What every figure shares: the class colours, the model colours, the token axis and an atomic save."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from circuitsweep.io import contracts as C
from circuitsweep.io.atomic import atomic_path
from circuitsweep.milestones.text import human_tokens

#: Colour of each head class in the trajectory figure (``none``: grey, drawn first).
CLASS_COLOURS: dict[str, str] = {
    "first": "tab:blue",
    "induction": "tab:red",
    "duplicate": "tab:purple",
    "previous": "tab:orange",
    "self": "tab:brown",
    "local": "tab:green",
    C.NO_CLASS: "0.75",
}


def save_figure(figure: plt.Figure, path: Path) -> None:
    """Write ``figure`` atomically; the format follows the suffix (``.png`` or ``.svg``)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=fmt, dpi=130, bbox_inches="tight")
    plt.close(figure)


def token_tick_label(value: float, _position: object = None) -> str:
    return "" if value < 0 else human_tokens(value)


#: Mantissas of the token ticks, densest first: the densest that gives at most ``_MAX_TICKS`` positive ticks is used.
_TICK_MANTISSAS: tuple[tuple[float, ...], ...] = ((1.0, 2.0, 5.0), (1.0, 3.0), (1.0,))
_MAX_TICKS = 6


def token_ticks(low: float, high: float, last: float | None = None) -> list[float]:
    """Readable tick positions for a token axis from ``low`` (> 0) to ``high``: 0, then 1-2-5 (or 1-3, or powers of
    ten, whichever gives at most six) times powers of ten inside the range; never fewer than two positive ticks.
    Where too few round values fall inside, ``low`` and ``last`` (the last swept revision; default ``high``) are
    ticked too, so that every tick but 0 names a swept count or a round one, never just the axis' end."""
    last = float(high if last is None else last)
    if high <= low:
        return [0.0, float(low)]
    ticks: list[float] = []
    for mantissas in _TICK_MANTISSAS:
        ticks = [
            m * 10.0**k
            for k in range(int(np.floor(np.log10(low))), int(np.ceil(np.log10(high))) + 1)
            for m in mantissas
            if low <= m * 10.0**k <= high
        ]
        if len(ticks) <= _MAX_TICKS:
            break
    if len(ticks) < 2:
        ticks = sorted({float(low), *ticks, last})
    return [0.0, *ticks]


def token_axis(axis: plt.Axes, tokens: pl.Series | np.ndarray, start: float = 0.0) -> None:
    """Log token axis fitted to the swept tokens that still shows step 0; ticks in human units.

    Below the smallest positive count the axis is linear and compressed (a quarter
    decade wide), so the swept revisions fill the axis; it ends just past the last
    revision. The axis starts at ``start`` tokens (0: no negative tick in the margin).
    """
    tokens = np.asarray(tokens, dtype=float)
    positive = tokens[tokens > 0]
    threshold = float(positive.min()) if positive.size else 1.0
    right = max(float(tokens.max(initial=0)) * 1.15, threshold * 1.15)
    axis.set_xscale("symlog", linthresh=threshold, linscale=0.25)
    axis.set_xlim(left=start, right=right)
    axis.xaxis.set_major_locator(FixedLocator(token_ticks(threshold, right, float(tokens.max(initial=0)))))
    axis.xaxis.set_minor_locator(NullLocator())
    axis.xaxis.set_major_formatter(FuncFormatter(token_tick_label))
    axis.set_xlabel("training tokens (log; step 0 at the left)")
    axis.grid(True, which="major", alpha=0.3)


def no_negative_ticks(axis: plt.Axes) -> None:
    """Keep the y ticks at or above 0: the strip below 0 holds the brackets, not values."""
    ticks = [tick for tick in axis.get_yticks() if 0 <= tick <= axis.get_ylim()[1]]
    axis.yaxis.set_major_locator(FixedLocator(ticks))


def model_colours(models: list[str]) -> dict[str, tuple]:
    """One colour per model, by its name's place among ``models`` sorted, so that the emergence, gap and scaling
    figures of one run give a model the same colour (tab10, then tab20 beyond ten models)."""
    palette = plt.get_cmap("tab10" if len(models) <= 10 else "tab20")
    return {model: palette(i % palette.N) for i, model in enumerate(sorted(models))}
