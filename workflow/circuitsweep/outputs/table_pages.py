"""Each final CSV table as an HTML page a person reads in the report (or in a browser), not only a download.

Snakemake's report shows images, PDFs and HTML in its viewer and offers any
other file (a CSV) as a download; the rules register these pages in the report's
``Tables`` category, one per final table, each labelled with its table's name.
A page is self-contained: the table with its header row, numbers to four
significant digits, wide tables scrolling sideways, and at most
:data:`MAX_ROWS` rows (the page says how many the CSV holds).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from circuitsweep.errors import InputError
from circuitsweep.io.atomic import atomic_write_text

#: Rows a page shows at most; the CSV beside it holds them all.
MAX_ROWS = 2000

_STYLE = (
    "body{font-family:system-ui,sans-serif;font-size:13px;margin:1em}"
    "div.table{overflow-x:auto}table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}"
    "th{background:#f0f0f0;position:sticky;top:0;text-align:left}td.text{text-align:left}"
)


def _cell(value: object) -> tuple[str, bool]:
    """A cell's text and whether it is text (left-aligned) rather than a number."""
    if value is None:
        return "", False
    if isinstance(value, bool):
        return str(value).lower(), True
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN", False
        return f"{value:.4g}", False
    if isinstance(value, int):
        return f"{value}", False
    return str(value), True


def table_page(frame: pl.DataFrame, title: str, source: str) -> str:
    """The HTML page of ``frame``: ``title``, the table (at most :data:`MAX_ROWS` rows) and where its CSV is."""
    shown = frame.head(MAX_ROWS)
    header = "".join(f"<th>{html.escape(column)}</th>" for column in frame.columns)
    rows = []
    for row in shown.iter_rows():
        cells = []
        for value in row:
            text, is_text = _cell(value)
            cells.append(f'<td class="text">{html.escape(text)}</td>' if is_text else f"<td>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    count = f"{frame.height:,} rows" if frame.height <= MAX_ROWS else f"the first {MAX_ROWS:,} of {frame.height:,} rows"
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h3>{html.escape(title)}</h3>"
        f"<p>{count} of {html.escape(source)}</p>"
        f'<div class="table"><table><thead><tr>{header}</tr></thead><tbody>'
        + "\n".join(rows)
        + "</tbody></table></div></body></html>\n"
    )


def write_table_pages(tables: Sequence[Path], pages: Sequence[Path]) -> None:
    """Write the page of each CSV of ``tables`` to the path of ``pages`` at the same position."""
    if len(tables) != len(pages):
        raise InputError(f"table-pages: {len(tables)} tables but {len(pages)} pages")
    for table, page in zip(tables, pages, strict=True):
        try:
            frame = pl.read_csv(table, infer_schema_length=None)
        except (pl.exceptions.PolarsError, OSError) as error:
            raise InputError(f"{table}: not a readable CSV table ({error})") from None
        atomic_write_text(Path(page), table_page(frame, Path(table).stem.replace("_", " "), Path(table).name))
