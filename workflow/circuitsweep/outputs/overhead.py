"""Sweep overhead: what the per-revision jobs cost against the forward passes they need, and against the estimate.

Each measurement job records the seconds its forward passes took
(``forward_seconds`` in the metadata of the head cache, and of the primitive
shard when the job measured primitives too); Snakemake's ``benchmark:``
files record each job's wall time. Their ratio says how much of a sweep is
start-up, loading and bookkeeping rather than the model's own work.
:func:`estimate_comparison` puts the cost model's estimate of each job kind
(:mod:`circuitsweep.plan.costs`, the estimate a dry run sums) beside the
seconds its jobs took.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from circuitsweep.errors import CacheError
from circuitsweep.io.cache_check import safetensors_metadata
from circuitsweep.io.tables import read_table

OVERHEAD_COLUMNS: tuple[str, ...] = (
    "model",
    "n_revisions",
    "forward_seconds",
    "fetch_job_seconds",
    "measure_job_seconds",
    "job_seconds_per_forward_second",
)


#: Columns of the estimate table (``overhead_estimate.csv``), one row per job kind the cost model estimates.
ESTIMATE_COLUMNS: tuple[str, ...] = (
    "job_kind",
    "jobs",
    "estimated_seconds",
    "measured_seconds",
    "measured_per_estimated",
)


def benchmark_seconds(path: Path) -> float:
    """Wall seconds of one job from its Snakemake benchmark TSV (column ``s``)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if not rows or "s" not in rows[0]:
            raise ValueError("no column 's'")
        return float(rows[0]["s"])
    except (UnicodeDecodeError, csv.Error, ValueError, TypeError) as error:
        reason = "not UTF-8 text" if isinstance(error, UnicodeDecodeError) else " ".join(str(error).split())[:100]
        raise CacheError(f"{path} is not a Snakemake benchmark file ({reason})") from None


def _forward_seconds(path: Path, metadata: dict) -> float:
    if "forward_seconds" not in metadata:
        raise CacheError(f"{path} records no forward_seconds; it predates the overhead report, rerun it")
    return float(metadata["forward_seconds"])


def _by_model(benchmarks: Sequence[Path]) -> dict[str, float]:
    """Summed wall seconds per model of benchmark files laid out as ``<rule>/<model>/<revision>.tsv``."""
    totals: dict[str, float] = {}
    for path in benchmarks:
        totals[Path(path).parent.name] = totals.get(Path(path).parent.name, 0.0) + benchmark_seconds(Path(path))
    return totals


def sweep_overhead(
    scores: Sequence[Path],
    fetch_benchmarks: Sequence[Path],
    measure_benchmarks: Sequence[Path],
    primitive_shards: Sequence[Path] = (),
) -> pl.DataFrame:
    """One row per model (and ``all``): forward seconds against fetch and measure job wall seconds.

    ``scores``: head-score Parquet files and ``primitive_shards`` the primitive
    safetensors shards (the metadata of each holds ``forward_seconds``); the
    benchmarks: Snakemake benchmark TSVs at ``<rule>/<model>/<revision>.tsv``.
    """
    fetch_benchmarks, measure_benchmarks = _by_model(fetch_benchmarks), _by_model(measure_benchmarks)
    heads: dict[str, list[float]] = {}
    for path in scores:
        metadata = read_table(path)[1]
        heads.setdefault(metadata["model"], []).append(_forward_seconds(path, metadata))
    primitives: dict[str, float] = {}
    for path in primitive_shards:
        metadata = safetensors_metadata(path)
        primitives[metadata["model"]] = primitives.get(metadata["model"], 0.0) + _forward_seconds(path, metadata)
    rows = []
    for model, seconds in heads.items():
        forward = sum(seconds) + primitives.get(model, 0.0)
        fetch = fetch_benchmarks.get(model, 0.0)
        measure = measure_benchmarks.get(model, 0.0)
        rows.append({"model": model, "n_revisions": len(seconds), "forward_seconds": forward,
                     "fetch_job_seconds": fetch, "measure_job_seconds": measure})  # fmt: skip
    table = pl.DataFrame(rows)
    total = table.select(pl.lit("all").alias("model"), pl.exclude("model").sum())
    table = pl.concat([table, total])
    ratio = (pl.col("fetch_job_seconds") + pl.col("measure_job_seconds")) / pl.col("forward_seconds")
    return table.with_columns(ratio.alias("job_seconds_per_forward_second")).select(OVERHEAD_COLUMNS)


def estimate_comparison(
    estimates: Mapping[str, Mapping[str, float]], measured: Mapping[str, Sequence[Path]]
) -> pl.DataFrame:
    """One row per job kind (``ESTIMATE_COLUMNS``): its jobs, their estimated seconds (``estimates``:
    ``plan.costs.estimate_by_kind``) and the wall seconds their benchmarks (``measured``: kind -> TSVs) record."""
    rows = []
    for kind, estimate in estimates.items():
        seconds = sum(benchmark_seconds(Path(path)) for path in measured.get(kind, ()))
        rows.append({"job_kind": kind, "jobs": int(estimate["jobs"]), "estimated_seconds": float(estimate["seconds"]),
                     "measured_seconds": seconds})  # fmt: skip
    table = pl.DataFrame(rows, schema={"job_kind": pl.String, "jobs": pl.Int64, "estimated_seconds": pl.Float64,
                                       "measured_seconds": pl.Float64})  # fmt: skip
    ratio = pl.col("measured_seconds") / pl.col("estimated_seconds")
    return table.with_columns(ratio.alias("measured_per_estimated")).select(ESTIMATE_COLUMNS)


def overhead_markdown(overhead: pl.DataFrame, estimate: pl.DataFrame, device: str, start_up_s: float) -> str:
    """``overhead.md``: job wall time against forward-pass time per model, then the estimate beside the measured
    seconds per job kind."""
    from circuitsweep.io.tables import markdown_table

    lines = ["# Sweep overhead: job wall time against forward-pass time", "", markdown_table(overhead)]
    if estimate.height:
        lines += [
            "## The estimate beside the measured seconds, per job kind",
            "",
            f"Estimated by circuitsweep.plan.costs (the estimate a dry run sums, without the SLURM margin) on {device},"
            f" each job starting in {start_up_s:g} s; measured: the jobs' Snakemake benchmarks (wall seconds).",
            "",
            markdown_table(estimate),
        ]
    return "\n".join(lines)
