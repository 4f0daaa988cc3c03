"""The order revisions are fetched in, the disk bound on snapshots, and the job blocks.

Every swept (model, revision) gets a position in one global order (models in
config order, revisions in training order). With a bound of ``k`` snapshots on
disk, fetching position ``i`` waits for every cache of position ``i - k``: a
snapshot is deleted as soon as its caches exist (``temp()``), so at any moment
at most ``k`` snapshots exist, whatever the executor, the number of parallel
jobs or the queue. A measurement that fails stops only its own lane (positions
``i, i + k, i + 2k, ...``); the other ``k - 1`` lanes go on.

On a cluster the measurement jobs of ``per_job`` consecutive positions of one
model form one block, submitted as one job group. A block must never wait for
one of its own snapshots, so its size is at most ``k // 2`` (half the bound:
the next block downloads while this one measures), and at least 1.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitsweep.errors import CacheError
from circuitsweep.io.atomic import atomic_write_text


@dataclass(frozen=True)
class Slot:
    """One revision's place in the fetch order: its position and its block's name."""

    position: int
    block: str


def block_size(snapshots_on_disk: int, revisions_per_job: int) -> int:
    """Revisions per job block: ``revisions_per_job`` capped at half the snapshot bound (at least 1)."""
    if snapshots_on_disk < 1 or revisions_per_job < 1:
        raise ValueError("snapshots_on_disk and revisions_per_job must be at least 1")
    return max(1, min(revisions_per_job, snapshots_on_disk // 2))


def fetch_order(revisions: dict[str, list[str]], snapshots_on_disk: int, revisions_per_job: int) -> dict:
    """(model, revision) -> Slot, for ``revisions`` (model -> revision names in order).

    Blocks never span two models; a block is named ``<model>.<its first revision>``,
    so that with one revision per block, adding a revision renames no other block.
    """
    size = block_size(snapshots_on_disk, revisions_per_job)
    slots: dict[tuple[str, str], Slot] = {}
    position = 0
    for model, names in revisions.items():
        for index, name in enumerate(names):
            slots[(model, name)] = Slot(position=position, block=f"{model}.{names[index - index % size]}")
            position += 1
    return slots


def fetch_after(slots: dict, model: str, revision: str, snapshots_on_disk: int) -> tuple[str, str] | None:
    """The (model, revision) whose caches must exist before ``revision`` of ``model`` is fetched.

    None for the first ``snapshots_on_disk`` positions.
    """
    target = slots[(model, revision)].position - snapshots_on_disk
    return None if target < 0 else in_order(slots)[target]


def in_order(slots: dict) -> list[tuple[str, str]]:
    """The (model, revision) pairs by position (cached per ``slots`` mapping)."""
    key = id(slots)
    if _ORDER_CACHE.get(key, (None,))[0] is not slots:
        _ORDER_CACHE[key] = (slots, sorted(slots, key=lambda pair: slots[pair].position))
    return _ORDER_CACHE[key][1]


_ORDER_CACHE: dict[int, tuple[dict, list[tuple[str, str]]]] = {}


def blocks(slots: dict) -> dict[str, list[tuple[str, str]]]:
    """Block name -> its (model, revision) pairs, in fetch order."""
    out: dict[str, list[tuple[str, str]]] = {}
    for key in in_order(slots):
        out.setdefault(slots[key].block, []).append(key)
    return out


def write_block_record(
    block: str, files: list[Path], output: Path, head_caches: Sequence[Mapping[str, Any]] = ()
) -> None:
    """Record that every cache of ``block`` exists and is the planned one: JSON {block, files: {path: bytes}}.

    ``head_caches``: per revision of the block, ``{"scores": path, "stats": path, "expected": metadata}``;
    each head cache is verified as classification verifies it (a cache replaced on disk fails
    the run that sees it). Written atomically.
    """
    missing = [str(path) for path in files if not Path(path).exists()]
    if missing:
        raise CacheError(f"block {block}: caches missing: {', '.join(missing)}")
    from circuitsweep.io.cache_check import verify_head_cache
    from circuitsweep.io.tables import read_table

    for cache in head_caches:
        scores = Path(cache["scores"])
        _, metadata = read_table(scores)
        verify_head_cache(scores, metadata, cache["expected"], Path(cache["stats"]))
    record = {"block": block, "files": {str(path): Path(path).stat().st_size for path in files}}
    atomic_write_text(output, json.dumps(record, indent=1, sort_keys=True) + "\n")


def drop_unmeasured_snapshots(revisions: Sequence[tuple[Path, Sequence[Path]]]) -> list[Path]:
    """Delete each snapshot folder whose caches are not all there; the folders deleted.

    ``revisions``: (snapshot folder, the caches made from it) per revision. Run when
    the workflow fails: Snakemake keeps the ``temp()`` input of a failed job (its retry
    needs it), so without this a failed measurement's snapshot would hold disk until
    the workflow is run again.
    """
    dropped = []
    for snapshot, caches in revisions:
        if Path(snapshot).exists() and not all(Path(cache).exists() for cache in caches):
            shutil.rmtree(snapshot)
            dropped.append(Path(snapshot))
    return dropped


def input_set_triggers_reruns(rerun_triggers: Collection[Any]) -> bool:
    """Whether Snakemake reruns a job because the set of its input files changed (its ``input`` trigger)."""
    return any(getattr(trigger, "name", str(trigger)).lower() == "input" for trigger in rerun_triggers)


def cluster_submissions(
    blocks_by_name: dict[str, list[tuple[str, str]]],
    models: int,
    toy_models: int,
    primitive_models: int,
    downloads: str,
    ablation: bool = False,
    groups: bool = False,
    refine: bool = False,
    bootstrap: bool = False,
    natural_batches: int = 0,
) -> dict[str, int]:
    """How many jobs a cluster executor submits for the default target, by kind.

    ``groups``: one per block (its measurements and primitive scoring); per model:
    classify_heads, plot_heatmap, plot_trajectories, spectral_model and plot_spectral,
    with ``ablation`` also final_ablation, with ``bootstrap`` bootstrap_heads; toy models add
    train_toy_model; each natural-text batch one; then the final tables and plots (head_tables,
    plot_emergence, sweep_overhead, spectral_table, findings, table_pages, final_ablation_table
    with ``ablation``, the three primitive ones with primitive models, group_milestones with
    ``groups``, milestone_brackets with ``refine``);
    ``fetch``: the downloads when they are jobs (``downloads: job``), else 0 (they
    run in the Snakemake process).
    """
    revisions = sum(len(pairs) for pairs in blocks_by_name.values())
    counts = {
        "groups": len(blocks_by_name),
        "per_model": (5 + ablation + bootstrap) * models + toy_models + natural_batches,
        "final": 6 + ablation + (3 if primitive_models else 0) + groups + refine,
        "fetch": revisions + (models if ablation else 0) if downloads == "job" else 0,
    }
    counts["total"] = sum(counts.values())
    counts["revisions"] = revisions
    return counts


def describe_submissions(counts: dict[str, int], snapshots_on_disk: int, per_block: int) -> str:
    """One line for a dry run: submissions, revisions per submission and the disk bound."""
    ratio = counts["revisions"] / max(counts["total"], 1)
    return (
        f"circuitsweep: on a cluster this run submits {counts['total']} jobs for {counts['revisions']} revisions"
        f" ({ratio:.1f} revisions per submission): {counts['groups']} measurement groups of up to {per_block}"
        f" revision{'s' if per_block > 1 else ''}, {counts['per_model'] + counts['final']} per-model and final jobs"
        + (f", {counts['fetch']} downloads" if counts["fetch"] else "")
        + f"; at most {snapshots_on_disk} snapshots on disk"
    )
