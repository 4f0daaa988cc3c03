"""Every table the workflow writes or reads: Parquet with metadata, CSV and Markdown, atomically.

Cache and intermediate tables carry the run's metadata as JSON under
:data:`contracts.META_KEY` in the Parquet schema metadata. CSV and Markdown
cannot hold list columns; lists are written as ``;``-separated values
(``0;0;3;5`` = counts of layers 0..3). No torch here: table-only jobs stay light.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from circuitsweep.errors import CacheError, InputError
from circuitsweep.io import contracts as C
from circuitsweep.io.atomic import atomic_path, atomic_write_text


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


_UNITS = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def human_count(value: float) -> str:
    """``1228800`` -> ``1.23M``, ``3e11`` -> ``300B``, ``614400`` -> ``614K``; three significant digits."""
    for size, unit in _UNITS:
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def _cell(value: object, human: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.4g}"
    if human and isinstance(value, int) and not isinstance(value, bool):
        return human_count(value)
    return str(value).replace("|", "\\|")


def _human_column(name: str, series: pl.Series) -> bool:
    """Whether a Markdown table writes integer column ``name`` in human units: token counts (as milestones.md
    writes them) and any column holding a count of a million or more, every cell alike."""
    if not series.dtype.is_integer():
        return False
    return name.endswith("tokens") or (series.abs().max() or 0) >= 10**6


def markdown_table(frame: pl.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (floats to 4 significant digits; token counts and
    integer columns reaching a million in human units, ``1.23M``, ``819K``)."""
    flat = flatten_lists(frame)
    human = [_human_column(name, flat[name]) for name in flat.columns]
    header = "| " + " | ".join(flat.columns) + " |"
    rule = "|" + "|".join("---" for _ in flat.columns) + "|"
    body = ["| " + " | ".join(_cell(v, h) for v, h in zip(row, human, strict=True)) + " |" for row in flat.iter_rows()]
    return "\n".join([header, rule, *body]) + "\n"


def write_markdown(frame: pl.DataFrame, path: Path, title: str | None = None, intro: str | None = None) -> None:
    """``frame`` as a Markdown table, under ``# title`` and an ``intro`` paragraph when given."""
    text = markdown_table(frame)
    if intro:
        text = f"{intro}\n\n{text}"
    atomic_write_text(path, f"# {title}\n\n{text}" if title else text)


def write_table(path: Path, frame: pl.DataFrame, metadata: dict[str, Any]) -> None:
    """Write ``frame`` as Parquet with ``metadata`` (JSON) in the schema metadata."""
    table = frame.to_arrow()
    table = table.replace_schema_metadata({C.META_KEY: json.dumps(metadata, sort_keys=True)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Read a Parquet table written by :func:`write_table` and its metadata."""
    try:
        table = pq.read_table(path)
        raw = (table.schema.metadata or {}).get(C.META_KEY.encode())
        metadata = json.loads(raw) if raw else {}
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError, json.JSONDecodeError) as error:
        raise CacheError(f"{path} is not a readable Parquet table ({error}); delete it and rerun") from error
    return pl.from_arrow(table), metadata


def read_frame(path: Path) -> pl.DataFrame:
    """A table given to a command: Parquet, or CSV for a ``.csv`` file; one line naming the file otherwise."""
    try:
        return pl.read_csv(path) if Path(path).suffix == ".csv" else pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError, pa.ArrowException) as error:
        kind = "CSV" if Path(path).suffix == ".csv" else "Parquet"
        detail = " ".join(str(error).split())[:200]
        raise InputError(f"{path} is not a readable {kind} table ({detail})") from None
