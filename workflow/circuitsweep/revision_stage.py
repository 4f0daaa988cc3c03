"""The per-revision measurement stage: load a revision's weights once, measure everything that needs them.

Rules ``measure_heads`` and ``measure_revision`` run :func:`measure_revision`.
It loads the snapshot a single time and writes each measurement to its own
file: the head cache (statistics and scores, with the natural-text scores and
ablation rows when the run asks for them) and, for a revision selected for
primitives, the primitive shard. Everything downstream (classification,
scoring, tables) reads only those files, so a threshold or scoring change
loads no model. At 1B scale loading costs seconds to minutes; loading once
per revision instead of once per method is the saving.

:func:`is_measured` and :func:`needs_snapshot` say, from the caches' headers,
which revisions this stage still has to measure; :func:`pending` gathers them
with the final ablations and natural batches still to run: the plan's
disk-bound fetch order, the targets that make Snakemake remake a missing cache,
and the cost of a dry run and of ``circuitsweep check-config`` count only those.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from circuitsweep.errors import ConfigError
from circuitsweep.heads import jobs as heads_jobs
from circuitsweep.heads.stage import ExtraMeasurements, RevisionJob
from circuitsweep.io.cache_check import cache_problem
from circuitsweep.io.progress import revision_line
from circuitsweep.plan.costs import Pending
from circuitsweep.plan.sweep import Plan
from circuitsweep.primitives import jobs as primitive_jobs


@dataclass(frozen=True)
class PrimitiveRequest:
    """The primitive measurement of a revision selected for primitives: its settings, stimuli and shard."""

    settings: dict[str, Any]
    stimuli: Path
    output: Path


def measure_revision(
    snapshot_dir: Path,
    job: RevisionJob,
    stats_path: Path,
    scores_path: Path,
    *,
    extra: ExtraMeasurements | None = None,
    primitives: PrimitiveRequest | None = None,
    mem_mb: int | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Load ``snapshot_dir`` once; write its head cache and, with ``primitives``, its primitive shard.

    Returns the seconds of each part (``load``, ``heads``, ``primitives``); the last line the job prints
    (:func:`progress.revision_line`) names them with the revision's strongest heads.
    """
    from circuitsweep.checkpoints.snapshots import read_snapshot
    from circuitsweep.heads.stage import load_revision, measure_loaded
    from circuitsweep.primitives.stage import PrimitiveJob, measure_loaded_primitives, word_encoding

    primitive_job = None if primitives is None else PrimitiveJob.from_dict(primitives.settings)
    if primitive_job is not None and (primitive_job.model, primitive_job.revision) != (job.model, job.revision):
        raise ConfigError(
            f"measure-revision: the primitive settings are for {primitive_job.model} {primitive_job.revision}, "
            f"the head settings for {job.model} {job.revision}"
        )
    if primitive_job is not None:
        word_encoding(primitive_job, read_snapshot(snapshot_dir).path)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    model, snapshot = load_revision(snapshot_dir, job, mem_mb)
    seconds["load"] = time.perf_counter() - started
    started = time.perf_counter()
    measure_loaded(model, snapshot, job, stats_path, scores_path, progress=progress, extra=extra or ExtraMeasurements())
    seconds["heads"] = time.perf_counter() - started
    if primitive_job is not None and primitives is not None:
        started = time.perf_counter()
        measure_loaded_primitives(model, snapshot, primitive_job, primitives.stimuli, primitives.output)
        seconds["primitives"] = time.perf_counter() - started
    scores = pl.read_parquet(scores_path, columns=["layer", "head", "sel_first", "sel_induction"])
    print(revision_line(job.model, job.revision, scores, seconds), flush=True)
    return seconds


def is_measured(plan: Plan, model: str, name: str) -> bool:
    """Whether every cache of revision ``name`` exists and was made with the settings planned now.

    Read from the caches' headers when the DAG is built. Only revisions not
    yet measured (or measured with other settings) are fetched, and only they
    take places in the disk-bound order, so adding or removing a revision
    never moves the fetch of one already measured (which would measure it again).
    """
    return heads_jobs.heads_measured(plan, model, name) and primitive_jobs.primitives_measured(plan, model, name)


def revision_cache_files(plan: Plan, model: str, name: str) -> list[Path]:
    """Every file revision ``name``'s measuring job writes: its head cache, the extra outputs the run asks for
    and, where primitives are measured, the primitive shard."""
    files = [plan.paths.head_stats(model, name), plan.paths.head_scores(model, name)]
    files += heads_jobs.measure_extra_outputs(plan, model, name).values()
    if primitive_jobs.measures_primitives(plan, model, name):
        files.append(plan.paths.primitive_stats(model, name))
    return files


def damaged_caches(plan: Plan) -> list[tuple[str, str, Path, str]]:
    """``(model, revision, file, why)`` for each cache file of a planned revision that cannot be read at all,
    or that records another revision (copied or moved from another revision's folder).

    Such a file is no measurement of this revision, so the revision is not measured (:func:`is_measured`);
    but Snakemake, seeing the file, would not remake it. The workflow deletes these files when a run starts
    (:func:`remove_damaged_caches`), so that it measures them again.
    """
    found = []
    for model, revisions in plan.revisions.items():
        for revision in revisions:
            for path in revision_cache_files(plan, model, revision.name):
                if (why := cache_problem(path, model, revision.name)) is not None:
                    found.append((model, revision.name, path, why))
    return found


def remove_damaged_caches(plan: Plan, dry_run: bool) -> list[str]:
    """Delete the files of :func:`damaged_caches` (not in a ``dry_run``); one line for each, to print."""
    lines = []
    for model, revision, path, why in damaged_caches(plan):
        if dry_run:
            lines.append(
                f"circuitsweep: {path} is damaged ({why}): a run deletes it and measures {model} {revision} again "
                "(the job list below leaves that out: Snakemake sees the file)"
            )
        else:
            path.unlink(missing_ok=True)
            lines.append(f"circuitsweep: deleted {path}, damaged ({why}): {model} {revision} is measured again")
    return lines


def needs_snapshot(plan: Plan, model: str, name: str) -> bool:
    """Whether revision ``name`` will be fetched in this run: not measured with the settings planned now
    (:func:`is_measured`), or the final revision of a run that ablates whose final-revision ablation is not
    current (the ablation exists with the settings planned now and every revision is measured, so its ranking
    will not change; that job fetches its own copy, in the same place of the order).

    These revisions take places in the disk-bound fetch order (``plan.scheduling.fetch_order``).
    """
    if not is_measured(plan, model, name):
        return True
    if plan.ablation is None or name != plan.final_revision(model):
        return False
    measured = all(is_measured(plan, model, revision.name) for revision in plan.revisions[model])
    return not (measured and heads_jobs.final_ablation_recorded(plan, model))


def final_ablation_runs(plan: Plan, model: str, measured: dict[str, bool] | None = None) -> bool:
    """Whether ``model``'s final-revision ablation runs: the run ablates, and a revision of the model is
    measured in this run (its classification changes) or the ablation is not recorded with the settings
    planned now. ``measured``: :func:`is_measured` of each of its revisions, when already read."""
    if plan.ablation is None:
        return False
    measured = measured or {r.name: is_measured(plan, model, r.name) for r in plan.revisions[model]}
    return not all(measured.values()) or not heads_jobs.final_ablation_recorded(plan, model)


def pending(plan: Plan) -> Pending:
    """What Snakemake would still run for ``plan`` (its paths: the run's folder): the revisions not measured
    with the settings planned now (:func:`is_measured`; the workflow adds their caches to its targets, so a
    cache deleted by hand is made again), their primitive jobs, the final-revision ablations that run
    (:func:`final_ablation_runs`) and the natural batches they need that are not built yet."""
    measured = {m: {r.name: is_measured(plan, m, r.name) for r in revisions} for m, revisions in plan.revisions.items()}
    revisions = {m: [r for r, done in flags.items() if not done] for m, flags in measured.items()}
    revisions = {m: names for m, names in revisions.items() if names}
    primitives = {
        m: [r for r in names if primitive_jobs.measures_primitives(plan, m, r)] for m, names in revisions.items()
    }
    finals = tuple(m for m in plan.revisions if final_ablation_runs(plan, m, measured[m]))
    batches = {}
    if heads_jobs.natural_text(plan):
        readers = set(revisions) | set(finals)
        for batch, builder in heads_jobs.natural_batches(plan).items():
            users = {m for m in plan.models if heads_jobs.natural_batch_of(plan, m) == batch}
            if users & readers and not plan.paths.natural_batch(batch).exists():
                batches[batch] = builder
    return Pending(revisions, {m: r for m, r in primitives.items() if r}, finals, batches)
