"""The study's summaries of one model's spectral ranking at its final revision: precision at K (with and without
BOS heads), the K selection (elbow, 17-19% heuristic, the run's K), the classes of each top K, the
induction-selectivity distribution and the screen heads each top K holds and misses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from circuitsweep.heads.spectral import TopK, elbow_k, heuristic_k
from circuitsweep.io import contracts as C
from circuitsweep.milestones.findings.rows import (
    HEADS,
    SECTION_CLASSES,
    SECTION_K,
    SECTION_NON_BOS,
    SECTION_PRECISION,
    SECTION_SCREEN,
    SECTION_SELECTIVITY,
    SPECTRAL,
    by_rank,
    finding_row,
    head_names,
    k_range,
    plural,
    share_text,
    the_screen,
)

#: The study's K for precision at K (its README, Phase 2), then all heads.
PRECISION_K: tuple[int, ...] = (5, 10, 15, 20, 30, 45, 60, 80, 100, 130, 160, 200)
#: The study's induction-selectivity levels (heads at or above each).
SELECTIVITY_LEVELS: tuple[float, ...] = (10, 30, 50, 100, 200)
#: A level's heads are named when there are at most this many.
NAMED_HEADS = 8


def precision_ks(n_heads: int) -> list[int]:
    """``PRECISION_K`` below ``n_heads``, then ``n_heads`` (all heads)."""
    return [k for k in PRECISION_K if k < n_heads] + ([n_heads] if n_heads else [])


def precision_at_k(classes: Sequence[str], ks: Sequence[int]) -> list[tuple[int, int]]:
    """(K, heads classified among the first K) for ``classes`` in rank order; any class but ``none`` counts."""
    return [(k, sum(c != C.NO_CLASS for c in classes[:k])) for k in ks]


def non_bos_classes(classes: Sequence[str]) -> list[str]:
    """The ranking without the heads of class first (the study's tier-1 script), in rank order."""
    return [c for c in classes if c != C.BOS_CLASS]


def precision_rows(model: str, spectral: pl.DataFrame) -> list[dict[str, Any]]:
    """Precision at K and non-BOS precision at K of one model's spectral ranking (rows)."""
    classes = by_rank(spectral)["final_class"].to_list()
    n = len(classes)
    rows = []
    for k, count in precision_at_k(classes, precision_ks(n)):
        item = f"all {n} heads" if k == n else f"K = {k}"
        rows.append(
            finding_row(
                model,
                SECTION_PRECISION,
                item,
                share_text(count, k),
                SPECTRAL,
                k=k,
                value=count / k,
                count=count,
                total=k,
            )
        )
    rest = non_bos_classes(classes)
    if not rest:
        text = "every head is of class first: no non-BOS head to rank"
        return [
            *rows,
            finding_row(model, SECTION_NON_BOS, "non-BOS heads", text, SPECTRAL, value=0.0, count=0, total=n),
        ]
    for k, count in precision_at_k(rest, precision_ks(len(rest))):
        item = f"all {len(rest)} non-BOS heads" if k == len(rest) else f"K = {k}"
        rows.append(
            finding_row(
                model, SECTION_NON_BOS, item, share_text(count, k), SPECTRAL, k=k, value=count / k, count=count, total=k
            )
        )
    classified = sum(c != C.NO_CLASS for c in rest)
    text = (
        f"{classified} of {len(rest)} non-BOS heads classified ({classified / len(rest):.3f}; "
        f"{classified / n:.1%} of all {n} heads)"
    )
    rows.append(
        finding_row(
            model,
            SECTION_NON_BOS,
            "non-BOS heads classified",
            text,
            SPECTRAL,
            value=classified / len(rest),
            count=classified,
            total=len(rest),
        )
    )
    return rows


def k_rows(model: str, spectral: pl.DataFrame, tops: Sequence[TopK]) -> list[dict[str, Any]]:
    """The elbow, the 17-19% heuristic and the run's K (``ablation.spectral_top_k``) of one model (rows)."""
    ranked = by_rank(spectral)
    n = ranked.height
    elbow = elbow_k(ranked["integral"].to_list())
    classes = ranked["final_class"].to_list()
    _, count = precision_at_k(classes, [elbow])[0]
    low, high = heuristic_k(n)
    rows = [
        finding_row(
            model,
            SECTION_K,
            "elbow",
            f"K = {elbow}: argmax of -diff(sorted integrals, 2) + 1; precision at it {share_text(count, elbow)}",
            SPECTRAL,
            k=elbow,
            value=float(elbow),
        ),
        finding_row(
            model,
            SECTION_K,
            "17-19% heuristic",
            f"K = {k_range(low, high)} of {n} heads",
            SPECTRAL,
            value=None,
            count=low,
            total=high,
        ),
    ]
    for top in tops:
        asked = ", ".join(top.asked)
        beyond = f", above the model's {n} heads: all of them" if top.k > n else ""
        how = top.how_chosen(n)
        text = f"K = {top.k}" + (f" ({how})" if how else "") + beyond
        rows.append(
            finding_row(model, SECTION_K, f"spectral_top_k {asked}", text, SPECTRAL, k=top.k, value=float(top.k))
        )
    return rows


def class_rows(model: str, spectral: pl.DataFrame, tops: Sequence[TopK]) -> list[dict[str, Any]]:
    """Heads of each class among each top K and among all heads (the classes all heads hold, in class order)."""
    classes = by_rank(spectral)["final_class"].to_list()
    n = len(classes)
    present = [c for c in (*C.TARGETS, C.NO_CLASS) if c in classes]
    rows = []
    sets = [(min(top.k, n), f"top {top.k}" if top.k <= n else f"top {top.k} (all {n})") for top in tops]
    for k, label in [*sets, (n, f"all {n}")]:
        subset = classes[:k]
        for cls in present:
            count = subset.count(cls)
            rows.append(
                finding_row(
                    model,
                    SECTION_CLASSES,
                    f"{label}: {cls}",
                    f"{count} ({count / k:.1%})",
                    SPECTRAL,
                    k=None if label.startswith("all") else k,
                    value=count / k,
                    count=count,
                    total=k,
                )
            )
    return rows


def selectivity_levels(thresholds: Mapping[str, Any] | None) -> list[tuple[float, str]]:
    """``SELECTIVITY_LEVELS`` and the run's class and circuit thresholds among them, each with its name."""
    names = {"class_selectivity": "the class threshold", "induction_circuit": "the circuit threshold"}
    levels = {float(level): "" for level in SELECTIVITY_LEVELS}
    for key, name in names.items():
        value = (thresholds or {}).get(key)
        if value is not None:
            levels[float(value)] = ", ".join(filter(None, [levels.get(float(value), ""), name]))
    return sorted(levels.items())


def selectivity_rows(model: str, final: pl.DataFrame, thresholds: Mapping[str, Any] | None = None) -> list[dict]:
    """Heads at each of ``SELECTIVITY_LEVELS`` (and the run's class and circuit thresholds) of induction
    selectivity at the final revision (synthetic; natural text too where measured)."""
    rows = []
    probes = [("sel_induction", "")]
    if "natural_sel_induction" in final.columns and final["natural_sel_induction"].null_count() < final.height:
        probes.append(("natural_sel_induction", " (natural text)"))
    for column, suffix in probes:
        for level, name in selectivity_levels(thresholds):
            at = final.filter(pl.col(column) >= level).sort(column, descending=True)
            named = f": {', '.join(head_names(at))}" if 0 < at.height <= NAMED_HEADS else ""
            text = plural(at.height, "head") + (f" ({name})" if name else "") + named
            rows.append(
                finding_row(
                    model,
                    SECTION_SELECTIVITY,
                    f">= {level:g}{suffix}",
                    text,
                    HEADS,
                    value=float(at.height),
                    count=at.height,
                    total=final.height,
                )
            )
    return rows


def screen_rows(model: str, spectral: pl.DataFrame, tops: Sequence[TopK], cut: float | None) -> list[dict[str, Any]]:
    """Per K, the screen heads (``spectral.csv`` screen) the top K holds and those it misses, with their ranks."""
    screen = by_rank(spectral).filter(pl.col("screen"))
    rows = []
    for top in tops:
        if screen.height == 0:
            at = f" >= {cut:g}" if cut is not None else " at the circuit threshold"
            text = f"no screen head: no head has induction selectivity{at}"
            rows.append(finding_row(model, SECTION_SCREEN, f"top {top.k}", text, SPECTRAL, k=top.k, count=0, total=0))
            continue
        inside = screen.filter(pl.col("rank") <= top.k)
        outside = screen.filter(pl.col("rank") > top.k)
        missed = ", ".join(
            f"{name} (rank {rank})" for name, rank in zip(head_names(outside), outside["rank"], strict=True)
        )
        text = f"holds {inside.height} of {the_screen(screen.height)}" + (
            f" ({', '.join(head_names(inside))})" if inside.height else ""
        )
        text += f"; misses {missed}" if outside.height else "; misses none"
        rows.append(
            finding_row(
                model,
                SECTION_SCREEN,
                f"top {top.k}",
                text,
                SPECTRAL,
                k=top.k,
                value=float(outside.height),
                count=inside.height,
                total=screen.height,
            )
        )
    return rows
