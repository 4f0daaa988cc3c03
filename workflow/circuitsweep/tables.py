"""The final head tables: heads, emergence curves and milestones of every model."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import polars as pl

from circuitsweep import contracts as C
from circuitsweep.cache import read_table
from circuitsweep.classify import Thresholds
from circuitsweep.emergence import emergence_curves, milestones
from circuitsweep.table_io import write_csv, write_markdown, write_parquet


def build_tables(
    heads_paths: Sequence[Path],
    revisions_paths: Sequence[Path],
    thresholds: Mapping[str, Thresholds],
    paths: C.Paths,
    skip_duplicates: Collection[str] = (),
) -> None:
    """Concatenate the models' classified heads and write heads, emergence and milestone tables.

    Models in ``skip_duplicates`` lose their duplicate revisions (``duplicate_of``
    set) from the emergence curves and milestones; the heads table keeps them.
    """
    heads = pl.concat([read_table(p)[0] for p in heads_paths], how="vertical")
    revisions = pl.concat([read_table(p)[0] for p in revisions_paths], how="diagonal_relaxed")
    curves = emergence_curves(heads, revisions)
    curves = curves.filter(~(pl.col("model").is_in(list(skip_duplicates)) & pl.col("duplicate_of").is_not_null()))
    table = milestones(curves, heads, thresholds)
    write_parquet(heads, paths.heads_table())
    write_parquet(curves, paths.emergence_table("parquet"))
    write_csv(curves, paths.emergence_table("csv"))
    write_csv(table, paths.milestones_table("csv"))
    write_markdown(table, paths.milestones_table("md"), title="Milestones")
