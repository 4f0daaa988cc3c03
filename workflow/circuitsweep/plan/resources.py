"""Job sizes (memory, runtime, GPUs) for every rule, estimated from the plan; no torch.

The rules declare these as their ``resources:``, so a profile or a command line
(``--set-resources rule:key=value``) overrides one key and keeps the others. Memory
and runtime grow with Snakemake's ``attempt`` (1 on the first try), so a job that
SLURM killed for OUT_OF_MEMORY or TIMEOUT is resubmitted larger; a job whose
previous attempt failed for a deterministic reason is not (:mod:`circuitsweep.plan.retry`).

A measurement job's memory is :mod:`circuitsweep.plan.sizing`'s estimate, the one the
job checks its ``--mem-mb`` against before loading: ``mem_mb = estimate (MB) x
attempt``. Both read the same model config: the snapshot's ``config.json`` once
it is fetched (Snakemake re-evaluates resources when a job's inputs exist, before
it submits it), before that (dry runs) the shape declared in the config
(``models.<name>.shape``), a toy model's own shape, or else
:data:`sizing.DEFAULT_MODEL_CONFIG` (the study's largest model). Runtime:

    runtime = start-up + read time of the weights in float32 + forward FLOPs of
              the probe tokens (and of the ablation's passes) at a conservative
              throughput, times a margin
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from circuitsweep.plan import sizing

START_UP_S = 120  # python start, imports, CUDA initialisation: the bound a job's runtime request allows
TYPICAL_START_UP_S = 15  # the same, as a job usually spends it: what a cost estimate counts
READ_MB_PER_S = 200  # weights read from a shared filesystem
GPU_FLOPS = 2e13  # sustained; a tenth of a datacentre GPU's 16-bit peak
CPU_FLOPS = 2e10  # a few cores
RUNTIME_MARGIN = 2.0
MIN_RUNTIME_MIN = 10

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


def planning_model_config(model_config: dict[str, Any]) -> dict[str, Any]:
    """The model shape (``config.json`` keys) that sizes a model's jobs before its snapshot exists.

    ``model_config``: the model's entry of the workflow config. Its ``shape``;
    a toy model's own shape (from its ``toy`` settings); else
    :data:`sizing.DEFAULT_MODEL_CONFIG`.
    """
    if model_config.get("shape"):
        return dict(model_config["shape"])
    if model_config.get("source", {}).get("type") == "toy":
        from circuitsweep.plan.checks import toy_model_config
        from circuitsweep.toy.spec import ToySpec

        spec = ToySpec.from_dict({"architecture": model_config["architecture"], **(model_config.get("toy") or {})})
        return toy_model_config(spec)
    return dict(sizing.DEFAULT_MODEL_CONFIG)


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


def probe_tokens(probes: dict[str, Any]) -> int:
    """Tokens one revision's head probes run through the model (n_sequences x seq_len, summed)."""
    total = 0
    for kind in ("induction", "repeated", "random"):
        entry = probes.get(kind) or {}
        total += int(entry.get("n_sequences", 0)) * int(entry.get("seq_len", 0))
    return total


def ablation_tokens(probes: dict[str, Any], ablation: dict[str, Any] | None) -> int:
    """Tokens one revision's ablation runs through the model: every condition over the ablation probe.

    Conditions: none, the circuit, ``random_draws`` matched-random sets and at
    most ``max_single_heads`` single heads; each over the induction probe's
    sequences (the first ``n_sequences`` when set). ``ablation``: the
    ``AblationSettings`` as a dict, None when the ablation is off.
    """
    if not ablation:
        return 0
    induction = probes.get("induction") or {}
    sequences = int(induction.get("n_sequences", 0))
    if ablation.get("n_sequences") is not None:
        sequences = min(sequences, int(ablation["n_sequences"]))
    conditions = 2 + int(ablation.get("random_draws", 0)) + int(ablation.get("max_single_heads", 0))
    return conditions * sequences * int(induction.get("seq_len", 0))


def measure_size(
    model_config: dict[str, Any],
    dtype: str,
    probes: dict[str, Any],
    device: str,
    snapshot_config: dict[str, Any] | None = None,
    ablation: dict[str, Any] | None = None,
    tokens: int | None = None,
) -> JobSize:
    """Size of one revision's measurement job (heads, primitives, or both from one load) at attempt 1.

    ``model_config``: the model's config entry; ``probes``: ``ProbeSettings.to_dict()``;
    ``device``: the config's ``device`` (``cpu`` asks for no GPU and a CPU
    throughput); ``snapshot_config``: the fetched snapshot's ``config.json``,
    which when given is what the job itself will check (see module docstring);
    ``ablation``: the run's ablation settings (its passes count in the runtime).
    ``tokens``: the tokens the job runs through the model, when not the probes'
    (the final-revision ablation: ``Plan.final_ablation_tokens``).
    """
    shape = snapshot_config if snapshot_config is not None else planning_model_config(model_config)
    estimate = sizing.estimate_heads_memory(probes, shape, dtype)
    seconds = measure_seconds(shape, probes, device, tokens=tokens, ablation=ablation)
    runtime = max(MIN_RUNTIME_MIN, math.ceil(seconds * RUNTIME_MARGIN / 60))
    return JobSize(mem_mb=sizing.request_mem_mb(estimate), runtime=runtime, gpu=0 if device == "cpu" else 1)


def measure_seconds(
    shape: dict[str, Any],
    probes: dict[str, Any],
    device: str,
    start_up_s: float = START_UP_S,
    tokens: int | None = None,
    ablation: dict[str, Any] | None = None,
) -> float:
    """Seconds of one revision's measurement job (no margin): ``start_up_s``, reading the weights in
    float32, and the forward FLOPs at :data:`CPU_FLOPS` (``device`` cpu) or :data:`GPU_FLOPS` of
    ``tokens``, else of the probes plus the ``ablation`` passes."""
    params = sizing.model_params(shape)
    job_tokens = tokens if tokens is not None else probe_tokens(probes) + ablation_tokens(probes, ablation)
    flops = 2.0 * params * max(job_tokens, 1)
    return start_up_s + params * 4 / 1e6 / READ_MB_PER_S + flops / (CPU_FLOPS if device == "cpu" else GPU_FLOPS)


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
