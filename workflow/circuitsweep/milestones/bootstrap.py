"""The bootstrap over probe sequences: how much each selectivity, class and milestone owes to the probe's draw.

Cache-only (no model, no torch): every revision's head shard holds, per
induction-probe sequence, the attention to each target and to the baseline
(:data:`contracts.STAT_PER_SEQUENCE`). One set of resamples (``resamples``
draws of n sequences with replacement, ``numpy.random.default_rng(seed)``)
is applied to every revision of a model, since all its revisions see the
same probe sequences. Each resample recomputes every selectivity exactly as
the point estimate does (:mod:`sequence_stats`: ratio of means, induction and
duplicate over valid sequences only, the floored baseline), the classes with
the run's thresholds, and the counts the milestones are computed from. Row 0
weighs every sequence once: it must reproduce the cached scores and classes
bit for bit, which is checked here, so the bootstrap can never drift from
the statistic it qualifies.

Outputs per model: the heads' 95% percentile intervals and class stability
(:data:`contracts.BOOTSTRAP_HEAD_COLUMNS`) and the curves per resample
(:data:`contracts.BOOTSTRAP_CURVE_COLUMNS`), from which
:mod:`circuitsweep.milestones.uncertainty` takes each milestone's range.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from circuitsweep.config.probes import BootstrapSettings
from circuitsweep.config.thresholds import Thresholds
from circuitsweep.errors import CacheError, ConfigError, DataError
from circuitsweep.heads.sequence_stats import resample_weights, selectivity, sequence_means
from circuitsweep.io import contracts as C
from circuitsweep.io.cache_check import verify_shard
from circuitsweep.io.tables import read_table, write_table
from circuitsweep.milestones.emergence import _kept_revisions, late_bos_counts
from circuitsweep.milestones.uncertainty import first_true_index
from circuitsweep.plan.sweep import Plan

#: Class codes of :func:`class_codes`: the index in ``CLASS_ORDER``, then this for none.
NO_CLASS_CODE = len(C.CLASS_ORDER)
_ORDER = [C.TARGETS.index(t) for t in C.CLASS_ORDER]
_INDUCTION = C.TARGETS.index("induction")
_FIRST_CODE = C.CLASS_ORDER.index(C.BOS_CLASS)
#: The percentiles of the 95% interval.
INTERVAL = (2.5, 97.5)


def bootstrap_settings(plan: Plan, model: str) -> dict[str, Any]:
    """The bootstrap job of ``model`` (``bootstrap_heads``'s params): resamples and seed, the classification
    thresholds, the induction onset's head count (late BOS heads count from each resample's onset) and whether
    duplicate revisions are left out of the curves."""
    if plan.bootstrap is None:
        raise KeyError("the bootstrap is off (bootstrap.resamples: 0)")
    return {
        "bootstrap": plan.bootstrap.to_dict(),
        "thresholds": asdict(plan.models[model].thresholds),
        "induction_onset_heads": plan.models[model].milestones.induction_onset_heads,
        "skip_duplicates": plan.models[model].duplicates == "skip",
    }


def class_codes(sel: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """Class of every head as an int8 code (``CLASS_ORDER`` index, :data:`NO_CLASS_CODE` for none).

    ``sel``: float64 selectivities ``[..., len(TARGETS)]``. The rule of
    :func:`classify.head_classes`: the most selective target in the study's
    order (a tie goes to the earlier) when it reaches ``class_selectivity``.
    """
    in_order = sel[..., _ORDER]
    best = in_order.argmax(axis=-1).astype(np.int8)
    return np.where(in_order.max(axis=-1) >= thresholds.class_selectivity, best, np.int8(NO_CLASS_CODE))


def read_sequence_stats(path: Path, expected: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A verified head shard's per-sequence statistics ``[n, L, H, 7]``, validity ``[n]`` and metadata."""
    from safetensors.numpy import load_file

    metadata = verify_shard(path, expected)
    tensors = load_file(str(path))
    if C.STAT_PER_SEQUENCE not in tensors or C.STAT_SEQUENCE_VALID not in tensors:
        raise CacheError(f"{path} has no per-sequence statistics (an older cache layout); delete it and rerun")
    return tensors[C.STAT_PER_SEQUENCE], tensors[C.STAT_SEQUENCE_VALID].astype(bool), metadata


@dataclass
class _Revision:
    """One revision's resampled classes and counts: row 0 is the point estimate."""

    name: str
    classes: np.ndarray  # [1 + B, L * H] int8
    members: np.ndarray  # [1 + B, L * H] bool: the induction screen
    selective: np.ndarray  # [1 + B] induction-selective heads


def _check_identity(name: str, sel: np.ndarray, codes: np.ndarray, point: pl.DataFrame) -> None:
    """Row 0 (every sequence once) must be the cached point estimate: same selectivities, same classes."""
    point = point.sort("layer", "head")
    n_layers, n_heads = sel.shape[1:3]
    if point.height != n_layers * n_heads:
        raise DataError(f"revision {name}: {point.height} classified heads, the statistics have {n_layers * n_heads}")
    for i, target in enumerate(C.TARGETS):
        cached = point[f"sel_{target}"].to_numpy()
        if not np.array_equal(sel[0, ..., i].ravel(), cached):
            worst = int(np.argmax(np.abs(sel[0, ..., i].ravel() - cached)))
            raise DataError(
                f"revision {name}: the bootstrap's point estimate of sel_{target} differs from the cached score "
                f"(layer {worst // n_heads} head {worst % n_heads}); the statistics and scores are not of one job"
            )
    names = [*C.CLASS_ORDER, C.NO_CLASS]
    if [names[c] for c in codes[0]] != point["class"].to_list():
        raise DataError(f"revision {name}: the bootstrap's point classes differ from the classified heads")


def resampled_late_bos(bos: np.ndarray, selective: np.ndarray, onset_heads: int) -> np.ndarray:
    """New BOS heads after the onset (:func:`emergence.late_bos_counts`) per revision and resample, each resample
    counted from its own induction onset: its first revision with ``onset_heads`` induction-selective heads.

    ``bos``: ``[R, 1 + B, H]`` bool (class first), ``selective``: ``[R, 1 + B]`` induction-selective heads, revisions
    in training order. Returns ``[R, 1 + B]`` counts.
    """
    return late_bos_counts(bos, first_true_index((selective >= onset_heads).T))


def bootstrap_model(
    model: str,
    stats_paths: Sequence[Path],
    heads: pl.DataFrame,
    revisions: pl.DataFrame,
    thresholds: Thresholds,
    settings: BootstrapSettings,
    *,
    onset_heads: int,
    expected: Sequence[Mapping[str, Any]] | None = None,
    skip_duplicates: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The bootstrap heads and curves frames of one model (see the module docstring).

    ``heads`` and ``revisions``: the model's classified heads and revision facts
    (``classify_heads``'s outputs); ``stats_paths``: its head shards, verified
    against ``expected`` (per shard, the plan's metadata). With
    ``skip_duplicates`` the curves leave out duplicate revisions as the
    emergence table does; the final circuit of each resample is that of the
    last kept revision under the same resample, and its late BOS heads count from its own induction onset (the
    first revision with ``onset_heads`` induction-selective heads).
    """
    if settings.resamples < 1:
        raise ConfigError("bootstrap.resamples: 0 turns the bootstrap off; there is nothing to compute")
    kept = [row["revision"] for row, _ in _kept_revisions(model, revisions, skip_duplicates)]
    facts = {row["revision"]: row for row in revisions.iter_rows(named=True)}
    weights = None
    head_rows, computed = [], {}
    for i, path in enumerate(stats_paths):
        per_sequence, valid, metadata = read_sequence_stats(path, expected[i] if expected is not None else {})
        name = metadata.get("revision")
        if metadata.get("model") != model or name not in facts:
            raise CacheError(f"{path} holds {metadata.get('model')} {name}, not a classified revision of {model}")
        n, n_layers, n_heads = per_sequence.shape[:3]
        if weights is None:
            weights = np.vstack(
                [np.ones((1, n), dtype=np.int32), resample_weights(n, settings.resamples, settings.seed)]
            )
        elif weights.shape[1] != n:
            raise DataError(f"{path}: {n} probe sequences, another revision of {model} has {weights.shape[1]}")
        sel = selectivity(*sequence_means(per_sequence, valid, weights)).astype(np.float64)  # [1 + B, L, H, 6]
        codes = class_codes(sel, thresholds).reshape(len(weights), -1)
        _check_identity(name, sel, codes, heads.filter(pl.col("revision") == name))
        low, high = np.percentile(sel[1:], INTERVAL, axis=0)  # [L, H, 6] each
        layer, head = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
        frame = {"model": model, "revision": name, "layer": layer.ravel(), "head": head.ravel()}
        for j, target in enumerate(C.TARGETS):
            frame[f"sel_{target}_low"] = low[..., j].ravel()
            frame[f"sel_{target}_high"] = high[..., j].ravel()
        frame["class_stability"] = (codes[1:] == codes[0]).mean(axis=0)
        head_rows.append(pl.DataFrame(frame))
        if name in kept:
            induction = sel[..., _INDUCTION].reshape(len(weights), -1)
            computed[name] = _Revision(
                name,
                codes,
                induction >= thresholds.induction_circuit,
                (induction >= thresholds.class_selectivity).sum(axis=1),
            )
    missing = [name for name in kept if name not in computed]
    if missing:
        raise CacheError(f"model {model}: no statistics shard for revisions {missing}")
    final = computed[kept[-1]].members
    late = resampled_late_bos(
        np.stack([computed[name].classes == _FIRST_CODE for name in kept]),
        np.stack([computed[name].selective for name in kept]),
        onset_heads,
    )
    rows = []
    for i, name in enumerate(kept):
        at = computed[name]
        rows.append(
            pl.DataFrame(
                {
                    "model": model,
                    "resample": np.arange(len(final), dtype=np.int64),
                    "revision": name,
                    "step": facts[name]["step"],
                    "tokens": facts[name]["tokens"],
                    "n_heads": at.classes.shape[1],
                    "induction_selective_heads": at.selective.astype(np.int64),
                    "bos_heads": (at.classes == _FIRST_CODE).sum(axis=1).astype(np.int64),
                    "late_bos_heads": late[i].astype(np.int64),
                    "screen_heads": at.members.sum(axis=1).astype(np.int64),
                    "early_screen_recovered": (at.members & final).sum(axis=1).astype(np.int64),
                    "final_circuit_size": final.sum(axis=1).astype(np.int64),
                },
                schema_overrides={"step": pl.Int64, "tokens": pl.Int64, "n_heads": pl.Int64},
            )
        )
    curves = pl.concat(rows).sort("resample", "tokens", "step").select(C.BOOTSTRAP_CURVE_COLUMNS)
    heads_frame = pl.concat(head_rows).with_columns(pl.col("layer", "head").cast(pl.Int64))
    return heads_frame.select("model", "revision", "layer", "head", *C.BOOTSTRAP_HEAD_COLUMNS), curves


def bootstrap_heads(
    model: str,
    stats_paths: Sequence[Path],
    heads_path: Path,
    revisions_path: Path,
    thresholds: Thresholds,
    settings: BootstrapSettings,
    heads_out: Path,
    curves_out: Path,
    *,
    onset_heads: int,
    expected: Sequence[Mapping[str, Any]] | None = None,
    skip_duplicates: bool = False,
) -> None:
    """The bootstrap job of one model: read its classified heads and shards, write the two bootstrap tables."""
    heads, run = read_table(heads_path)
    revisions, _ = read_table(revisions_path)
    if run.get("model") != model:
        raise CacheError(f"{heads_path} belongs to model {run.get('model')!r}, not {model!r}; delete it and rerun")
    if run.get("thresholds") != json.loads(json.dumps(asdict(thresholds))):
        raise CacheError(f"{heads_path} was classified with other thresholds; rerun the workflow")
    if expected is not None and len(expected) != len(stats_paths):
        raise CacheError(f"{model}: {len(stats_paths)} statistics shards but {len(expected)} planned revisions")
    frames = bootstrap_model(
        model,
        stats_paths,
        heads,
        revisions,
        thresholds,
        settings,
        expected=expected,
        skip_duplicates=skip_duplicates,
        onset_heads=onset_heads,
    )
    metadata = {"model": model, "bootstrap": settings.to_dict(), "thresholds": asdict(thresholds)}
    write_table(heads_out, frames[0], metadata)
    curves_metadata = {**metadata, "skip_duplicates": skip_duplicates, "induction_onset_heads": onset_heads}
    write_table(curves_out, frames[1], curves_metadata)
