"""A run's findings as files: ``findings.csv``, ``findings.md`` and the report's ``findings.html``."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from circuitsweep.io import contracts as C
from circuitsweep.io.atomic import atomic_write_text
from circuitsweep.io.tables import read_table, write_csv
from circuitsweep.milestones.findings.assemble import findings
from circuitsweep.milestones.findings.rows import HEADS, MILESTONES, Findings
from circuitsweep.milestones.text import human_tokens


def _across_cells(across: pl.DataFrame) -> list[dict[str, str]]:
    cells = []
    for row in across.iter_rows(named=True):
        natural = row["natural_bos_fraction"]
        ratio = row["bos_to_induction_ratio"]
        cells.append(
            {
                "model": row["model"],
                "final revision": row["final_revision"],
                "heads": str(row["n_heads"]),
                "BOS (synthetic)": f"{row['bos_fraction']:.1%}",
                "BOS (natural text)": "not measured" if natural is None else f"{natural:.1%}",
                "BOS heads per layer": " ".join(map(str, row["bos_per_layer"])),
                "first BOS layer": "none" if row["first_bos_layer"] is None else f"L{row['first_bos_layer']}",
                "layers never BOS": " ".join(map(str, row["layers_without_bos"] or [])) or "none",
                "screen": str(row["screen_size"]),
                "induction onset": human_tokens(row["induction_onset_tokens"])
                if row["induction_onset_tokens"] is not None
                else "not reached",
                "BOS t50": human_tokens(row["bos_t50_tokens"]) if row["bos_t50_tokens"] is not None else "not reached",
                "t50 / onset": "–" if ratio is None else f"{ratio:.3g}x",
            }
        )
    return cells


TITLE = "Findings: the study's summaries, per model and across models"
INTRO = (
    "Every number here is computed from this run's tables, named beside it (findings.csv holds each with its "
    "value); docs/methods.md says how. A claim the run cannot test says why."
)


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def findings_markdown(result: Findings, spectral_top_k: Sequence[int | float | str]) -> str:
    """``findings.md``: the cross-model table (more than one model), then per model its paragraph and sections."""
    lines = [f"# {TITLE}", "", INTRO, "", f"Spectral top K (ablation.spectral_top_k): {list(spectral_top_k)}.", ""]
    models = list(result.paragraphs)
    if len(models) > 1:
        cells = _across_cells(result.across_models)
        header = list(cells[0])
        lines += ["## Across models", "", f"From {HEADS} and {MILESTONES}.", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_md_cell(cell[h]) for h in header) + " |" for cell in cells]
        lines.append("")
    for model in models:
        lines += [f"## {model}", "", result.paragraphs[model], ""]
        own = result.rows.filter(pl.col("model") == model)
        for section in C.FINDINGS_SECTIONS[:-1]:
            part = own.filter(pl.col("section") == section)
            if part.height == 0:
                continue
            lines += [f"### {section}", "", "| item | finding | from |", "|---|---|---|"]
            lines += [
                f"| {_md_cell(item)} | {_md_cell(text)} | {_md_cell(source)} |"
                for item, text, source in part.select("item", "text", "source").rows()
            ]
            lines.append("")
    return "\n".join(lines)


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px; line-height: 1.45;
       margin: 0; padding: 1rem 1.5rem; color: #1f2937; max-width: 72rem; box-sizing: border-box; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.2rem; margin-top: 2rem; } h3 { font-size: 1rem; }
p { max-width: 60rem; overflow-wrap: anywhere; }
.table { width: 100%; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.8rem; max-width: 100%; }
th, td { border: 1px solid #d1d5db; padding: 0.2rem 0.45rem; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
th { background: #f3f4f6; }
details { margin: 0.5rem 0 1rem; } summary { cursor: pointer; color: #374151; }
"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], css_class: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    table = f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="table">{table}</div>'


def findings_html(result: Findings, spectral_top_k: Sequence[int | float | str]) -> str:
    """The report's Findings page: the cross-model table, one paragraph per model, then each model's sections."""
    parts = [f"<h1>{html.escape(TITLE)}</h1>", f"<p>{html.escape(INTRO)}</p>"]
    models = list(result.paragraphs)
    if len(models) > 1:
        cells = _across_cells(result.across_models)
        header = list(cells[0])
        parts += [
            "<h2>Across models</h2>",
            f"<p>From {HEADS} and {MILESTONES}.</p>",
            _html_table(header, [[cell[h] for h in header] for cell in cells], "across"),
        ]
    parts.append("<h2>Per model</h2>")
    parts += [f'<p class="paragraph">{html.escape(result.paragraphs[model])}</p>' for model in models]
    parts.append(f"<p>Spectral top K (ablation.spectral_top_k): {html.escape(str(list(spectral_top_k)))}.</p>")
    for model in models:
        parts.append(f"<h2>{html.escape(model)}: every finding</h2>")
        own = result.rows.filter(pl.col("model") == model)
        for section in C.FINDINGS_SECTIONS[:-1]:
            part = own.filter(pl.col("section") == section)
            if part.height:
                parts.append(f"<h3>{html.escape(section)}</h3>")
                parts.append(
                    _html_table(["item", "finding", "from"], part.select("item", "text", "source").rows(), "findings")
                )
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Findings</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def read_findings(
    spectral_path: Path,
    heads_path: Path,
    milestones_path: Path,
    final_ablation_path: Path | None,
    spectral_top_k: Sequence[int | float | str],
) -> Findings:
    """:func:`findings` of a run's table files (thresholds from the heads table's metadata)."""
    spectral, _ = read_table(spectral_path)
    heads, metadata = read_table(heads_path)
    milestones, _ = read_table(milestones_path)
    final_ablation = read_table(final_ablation_path)[0] if final_ablation_path is not None else None
    thresholds = {model: (run or {}).get("thresholds") or {} for model, run in (metadata.get("models") or {}).items()}
    return findings(spectral, heads, milestones, final_ablation, spectral_top_k, thresholds)


def write_findings(
    result: Findings, spectral_top_k: Sequence[int | float | str], csv: Path, markdown: Path, page: Path
) -> None:
    """Write ``findings.csv``, ``findings.md`` and the report's ``findings.html`` atomically."""
    write_csv(result.rows, csv)
    atomic_write_text(markdown, findings_markdown(result, spectral_top_k))
    atomic_write_text(page, findings_html(result, spectral_top_k))
