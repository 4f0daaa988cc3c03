"""The run's head tables across revisions: heads, emergence curves, milestones and the ablation table."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from circuitsweep.config.thresholds import MilestoneThresholds
from circuitsweep.errors import CacheError, DataError
from circuitsweep.io import contracts as C
from circuitsweep.io.cache_check import verify_metadata
from circuitsweep.io.tables import read_table, write_csv, write_table
from circuitsweep.milestones.ablation_tables import ablation_summary, ablation_table, causal_milestones, holm_adjusted
from circuitsweep.milestones.emergence import emergence_curves, milestones
from circuitsweep.milestones.text import write_milestones_markdown
from circuitsweep.milestones.uncertainty import add_brackets, bootstrap_summary
from circuitsweep.plan.sweep import Plan


def milestone_thresholds(plan: Plan, model: str) -> dict[str, Any]:
    """The milestone thresholds (``head_tables``'s params): changing one reclassifies nothing."""
    return asdict(plan.models[model].milestones)


def _with_bootstrap_heads(heads: pl.DataFrame, paths: Sequence[Path]) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``heads`` with the bootstrap's interval and stability columns; every head must have them."""
    frames, settings = [], {}
    for path in paths:
        frame, metadata = read_table(path)
        frames.append(frame)
        settings[metadata.get("model")] = metadata.get("bootstrap")
    keys = ["model", "revision", "layer", "head"]
    boot = pl.concat(frames).with_columns(pl.col(k).cast(heads.schema[k]) for k in keys)
    joined = heads.join(boot, on=keys, how="left", maintain_order="left")
    missing = joined.filter(pl.col("class_stability").is_null())
    if missing.height:
        first = missing.row(0, named=True)
        raise DataError(
            f"{missing.height} heads have no bootstrap interval (first: {first['model']} {first['revision']} "
            f"L{first['layer']}H{first['head']}); the bootstrap and the classification are not of one run"
        )
    return joined, settings


@dataclass(frozen=True)
class HeadTableOutputs:
    """The files :func:`head_tables` writes (the rule's outputs)."""

    heads: Path
    emergence_parquet: Path
    emergence_csv: Path
    milestones_parquet: Path
    milestones_csv: Path
    milestones_md: Path
    ablation_parquet: Path | None = None
    ablation_csv: Path | None = None


def head_tables(
    heads_paths: Sequence[Path],
    revisions_paths: Sequence[Path],
    thresholds: Mapping[str, MilestoneThresholds],
    out: HeadTableOutputs,
    skip_duplicates: Collection[str] = (),
    ablation_paths: Sequence[Path] = (),
    causal_factor: float = 2.0,
    causal_alpha: float = 0.01,
    bootstrap_heads: Sequence[Path] = (),
    bootstrap_curves: Sequence[Path] = (),
) -> None:
    """Concatenate the models' classified heads and write heads, emergence and milestone tables.

    Every milestone gets its checkpoint bracket (``MILESTONE_BRACKET_COLUMNS``). With
    the bootstrap's outputs (one heads and one curves file per model,
    :mod:`circuitsweep.milestones.bootstrap`), the heads gain ``BOOTSTRAP_HEAD_COLUMNS``
    and the milestones ``MILESTONE_BOOTSTRAP_COLUMNS``.

    The Parquet tables record, per model, the probe settings, protocol, first-token
    policy, dtype and thresholds (classification and milestone) that made them, under
    ``models`` in their metadata (read with :func:`table_io.read_table`).

    Models in ``skip_duplicates`` lose their duplicate revisions (``duplicate_of``
    set) from the emergence curves and milestones; the heads table keeps them.
    Revisions with natural-text counts add ``NATURAL_EMERGENCE_COLUMNS`` to the
    emergence table; ``ablation_paths`` (per-revision ablation rows) add the
    ablation table, ``ABLATION_EMERGENCE_COLUMNS`` and ``CAUSAL_MILESTONE_COLUMNS`` (the factor rule with
    ``causal_factor`` and the paired test at ``causal_alpha``, Holm-adjusted over each model's tested revisions).
    """
    classified, revision_frames = [], []
    for heads_path, revisions_path in zip(heads_paths, revisions_paths, strict=True):
        frame, metadata = read_table(heads_path)
        model = metadata.get("model")
        if model not in thresholds:
            raise CacheError(f"{heads_path} belongs to model {model!r}, which is not planned; delete it and rerun")
        revision_frame, revision_metadata = read_table(revisions_path)
        # the two tables of one classification
        expected = {"model": model, "thresholds": metadata.get("thresholds")}
        verify_metadata(revisions_path, revision_metadata, expected)
        classified.append((frame, metadata))
        revision_frames.append(revision_frame)
    heads = pl.concat([frame for frame, _ in classified], how="diagonal_relaxed")
    boot_settings = {}
    if bootstrap_heads:
        heads, boot_settings = _with_bootstrap_heads(heads, bootstrap_heads)
    revisions = pl.concat(revision_frames, how="diagonal_relaxed")
    curves = emergence_curves(heads, revisions, skip_duplicates)
    natural = [name for name in C.NATURAL_EMERGENCE_COLUMNS if name in revisions.columns]
    if natural:
        curves = curves.join(
            revisions.select("model", "revision", *natural), on=["model", "revision"], how="left", maintain_order="left"
        )
    ablation = ablation_table(ablation_paths) if ablation_paths else None
    if ablation is not None:
        curves = curves.join(ablation_summary(ablation), on=["model", "revision"], how="left", maintain_order="left")
        curves = holm_adjusted(curves)
    table = milestones(curves, heads, thresholds)
    provenance = {"models": {}}
    for _, run in classified:
        model = run.get("model")
        provenance["models"][model] = {
            **{key: run.get(key) for key in C.MEASUREMENT_KEYS},
            "protocol": (run.get("probes") or {}).get("protocol") or run.get("probe"),
            "thresholds": run.get("thresholds"),
            "milestones": asdict(thresholds[model]) if model in thresholds else None,
            "skip_duplicates": model in skip_duplicates,
        }
    if ablation is not None:
        table = table.join(
            causal_milestones(curves, causal_factor, causal_alpha), on="model", how="left", maintain_order="left"
        )
        if out.ablation_parquet is None or out.ablation_csv is None:
            raise DataError("head_tables: ablation rows were given but no ablation table paths")
        write_table(out.ablation_parquet, ablation, provenance)
        write_csv(ablation, out.ablation_csv)
    table = add_brackets(table, curves)
    if bootstrap_curves:
        frames = []
        for path in bootstrap_curves:
            frame, metadata = read_table(path)
            model = metadata.get("model")
            if model not in thresholds:
                raise CacheError(f"{path} belongs to model {model!r}, which is not planned; delete it and rerun")
            verify_metadata(path, metadata, {"induction_onset_heads": thresholds[model].induction_onset_heads})
            frames.append(frame)
        summary = bootstrap_summary(pl.concat(frames), table, thresholds)
        table = table.join(summary, on="model", how="left", maintain_order="left")
    for model, settings in boot_settings.items():
        if model in provenance["models"]:
            provenance["models"][model]["bootstrap"] = settings
    write_table(out.heads, heads, provenance)
    write_table(out.emergence_parquet, curves, provenance)
    write_table(out.milestones_parquet, table, provenance)
    write_csv(curves, out.emergence_csv)
    write_csv(table, out.milestones_csv)
    write_milestones_markdown(table, out.milestones_md)
