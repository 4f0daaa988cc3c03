"""Writing final tables as Parquet, CSV and Markdown, atomically.

CSV and Markdown cannot hold list columns; lists are written as
``;``-separated values (``0;0;3;5`` = counts of layers 0..3).
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl

from circuitsweep.atomic import atomic_path, atomic_write_text


def flatten_lists(frame: pl.DataFrame) -> pl.DataFrame:
    """Turn every list column into a ``;``-separated string column."""
    lists = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.List)]
    return frame.with_columns(pl.col(name).cast(pl.List(pl.String)).list.join(";") for name in lists)


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        flatten_lists(frame).write_csv(tmp)


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}"
    if isinstance(value, int) and abs(value) >= 10**6:
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(frame: pl.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (floats to 4 significant digits)."""
    flat = flatten_lists(frame)
    header = "| " + " | ".join(flat.columns) + " |"
    rule = "|" + "|".join("---" for _ in flat.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in flat.iter_rows()]
    return "\n".join([header, rule, *body]) + "\n"


def write_markdown(frame: pl.DataFrame, path: Path, title: str | None = None) -> None:
    text = markdown_table(frame)
    atomic_write_text(path, f"# {title}\n\n{text}" if title else text)
