"""Job sizes (memory, runtime, GPUs) for every rule, estimated from the plan; no torch.

The rules declare these as their ``resources:``, so a profile or a command line
(``--set-resources rule:key=value``) overrides one key and keeps the others. Memory
and runtime grow with Snakemake's ``attempt`` (1 on the first try), so a job that
SLURM killed for OUT_OF_MEMORY or TIMEOUT is resubmitted larger; a job whose
previous attempt failed for a deterministic reason is not (:mod:`circuitsweep.plan.retry`).

A measurement job's memory is :mod:`circuitsweep.plan.sizing`'s estimate, the one the
job checks its ``--mem-mb`` against before loading: ``mem_mb = estimate (MB) x
attempt``. Its runtime is the sweep's cost model's estimate of that job
(:mod:`circuitsweep.plan.costs`, the one the dry run sums) times
:data:`costs.RUNTIME_MARGIN`, at least :data:`costs.MIN_RUNTIME_MIN` minutes. Both read
the same model config: the snapshot's ``config.json`` once it is fetched
(Snakemake re-evaluates resources when a job's inputs exist, before it submits
it), before that (dry runs) :func:`costs.model_shape`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitsweep.plan import costs, sizing
from circuitsweep.plan.passes import Work

# Rules that read only caches or tables: fixed sizes (MB, minutes) at attempt 1.
SMALL_JOBS: dict[str, tuple[int, int]] = {
    "classify_heads": (4000, 30),
    "head_tables": (4000, 30),
    "bootstrap_heads": (4000, 30),
    "milestone_brackets": (2000, 15),
    "group_milestones": (2000, 15),
    "sweep_overhead": (2000, 15),
    "plot_emergence": (2000, 15),
    "plot_heatmap": (2000, 15),
    "plot_trajectories": (2000, 15),
    "spectral_model": (2000, 15),
    "spectral_table": (2000, 15),
    "plot_spectral": (2000, 15),
    "final_ablation_table": (2000, 15),
    "table_pages": (2000, 15),
    "findings": (2000, 15),
    "score_primitives": (4000, 30),
    "primitive_tables": (4000, 30),
    "plot_primitive_gap": (2000, 15),
    "plot_primitive_scaling": (2000, 15),
    "revision_block": (1000, 5),
    "fetch_snapshot": (4000, 120),
    "train_toy_model": (8000, 120),
    "natural_batch": (8000, 60),
}


@dataclass(frozen=True)
class JobSize:
    """One job's request: ``mem_mb`` (MB of host memory), ``runtime`` (minutes), ``gpu`` (count)."""

    mem_mb: int
    runtime: int
    gpu: int

    def scaled(self, attempt: int) -> JobSize:
        """Memory and runtime times ``attempt`` (Snakemake counts attempts from 1)."""
        factor = max(1, int(attempt))
        return JobSize(self.mem_mb * factor, self.runtime * factor, self.gpu)

    def as_resources(self) -> dict[str, int]:
        out = {"mem_mb": self.mem_mb, "runtime": self.runtime}
        if self.gpu:
            out["gpu"] = self.gpu
        return out


#: The shape declared for a model before its snapshot exists (:func:`costs.planning_model_config`).
planning_model_config = costs.planning_model_config


def snapshot_model_config(snapshot_dir: Path | str) -> dict[str, Any] | None:
    """The ``config.json`` of a fetched snapshot folder (the one the job reads), or None before the fetch."""
    from circuitsweep.checkpoints.snapshots import read_snapshot
    from circuitsweep.errors import CircuitsweepError

    if not Path(snapshot_dir).is_dir():
        return None
    try:
        return sizing.read_model_config(read_snapshot(Path(snapshot_dir)).path)
    except (CircuitsweepError, OSError, ValueError, KeyError, TypeError):
        return None


def measure_size(shape: dict[str, Any], dtype: str, probes: dict[str, Any], device: str, work: Work) -> JobSize:
    """Size of one job that loads a model (a revision's measurement, a final ablation) at attempt 1.

    ``shape``: the model config the job will check (the fetched snapshot's ``config.json``,
    else :func:`costs.model_shape`); ``probes``: ``ProbeSettings.to_dict()``; ``device``: the
    config's ``device`` (``cpu`` asks for no GPU and a CPU throughput); ``work``: what
    the job runs through the model (:func:`costs.revision_job_work`, :func:`costs.final_ablation_work`).
    """
    estimate = sizing.estimate_heads_memory(probes, shape, dtype)
    seconds = sum(costs.job_seconds(shape, dtype, work, device).values())
    return JobSize(
        mem_mb=sizing.request_mem_mb(estimate), runtime=costs.runtime_minutes(seconds), gpu=0 if device == "cpu" else 1
    )


def natural_batch_size(seconds: float) -> JobSize:
    """Size of a natural batch's job: its fixed memory (SMALL_JOBS) and :func:`costs.runtime_minutes` of ``seconds``."""
    return JobSize(mem_mb=SMALL_JOBS["natural_batch"][0], runtime=costs.runtime_minutes(seconds), gpu=0)


def small_size(rule: str) -> JobSize:
    """Size of a job that loads no model (see SMALL_JOBS)."""
    mem_mb, runtime = SMALL_JOBS[rule]
    return JobSize(mem_mb=mem_mb, runtime=runtime, gpu=0)


def suits(device: str, dev: Path = Path("/dev")) -> bool:
    """Whether jobs of ``device`` (the config's ``device``) may fork from a warm worker: CPU jobs only.

    ``auto`` counts as CPU only where no GPU device node exists (NVIDIA ``nvidia<N>``, AMD ``kfd``).
    """
    if device == "cpu":
        return True
    if device != "auto":
        return False
    return not any(dev.glob("nvidia[0-9]*")) and not (dev / "kfd").exists()
