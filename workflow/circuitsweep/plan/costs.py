"""The one cost model of a sweep: what each job runs through its model, and what that costs; no torch.

Every figure of time a run states comes from here, so they cannot disagree:
the line every dry run and ``circuitsweep check-config`` print (:func:`describe_cost`),
the SLURM runtime the measuring rules request (:func:`runtime_minutes`: this
estimate times :data:`RUNTIME_MARGIN`), and the estimate ``tables/overhead.md``
puts beside the measured seconds (:func:`job_estimates`).

What a job runs, in tokens through the model (:class:`Work`), by pass:

- *head probes*: the induction, repeated and random probes of every revision
  (the participation ratio's rows are captured in the induction pass, and its
  SVDs are counted as their own small part, *spectral*);
- *natural text*: the natural-text probe of every revision, when set;
- *ablation*: per revision, every condition over each ablation probe (the
  synthetic one and the natural one when measured): none, the circuit, the
  ``random_draws`` matched-random sets and up to ``max_single_heads`` heads alone;
- *final ablation*: one job per model (:func:`final_ablation_tokens`);
- *primitives*: the revisions selected for primitives: the stimulus texts, the
  next-word prompts and the behaviour's sampled tokens (models with a tokenizer);
- *natural batch*: the job that tokenizes the natural-text corpus (no model; CPU).

Seconds of one job (:func:`job_seconds`)::

    start-up (START_UP_S) + published weight bytes / READ_MB_PER_S
      + 2 x active parameters x tokens / throughput (GPU_FLOPS or CPU_FLOPS)
      + forward batches x layers x a fixed cost per layer and batch (LAYER_BATCH_S)
      + sampling steps x SAMPLING_STEP_S

Attention's own T x T products are left out (under 2% of a 1B model's FLOPs at
the study's T = 256); a mixture of experts counts its routed experts only
(``num_experts_per_tok``). The shape of each model comes from its
``config.json`` wherever it is on disk before a download (:func:`model_shape`),
else the config's ``models.<name>.shape``, a toy's own, or
:data:`sizing.DEFAULT_MODEL_CONFIG`. Only what Snakemake would still run is
counted: the caller says which revisions, final ablations and natural batches
that is (:class:`Pending`, from ``circuitsweep.revision_stage.pending``).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitsweep.plan import sizing
from circuitsweep.plan.passes import (
    NATURAL_SCAN_FACTOR,
    Work,
    final_ablation_job_work,
    primitive_work,
    revision_work,
    stimuli_counts,
)

if TYPE_CHECKING:
    from circuitsweep.plan.sweep import PartialManifest, Plan

GB = 1e9
#: How a model without a declared shape or a config.json on disk is sized (:data:`sizing.DEFAULT_MODEL_CONFIG`).
SIZED_BY_STAND_IN = "sized as OLMoE 1B-7B"
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

#: A fresh job's python start, imports and CUDA initialisation.
START_UP_S = 30.0
#: The same for a job forked from a local run's warm worker (``circuitsweep.warm_worker``: CPU jobs only),
#: with building the model (a toy's whole measurement job took 1.7 s on the quiet 2-core machine, docs/costs.md).
WARM_START_UP_S = 1.0
#: Weights read from a shared filesystem (MB/s).
READ_MB_PER_S = 200
#: Sustained FLOP/s of one GPU: a tenth of a datacentre GPU's 16-bit peak.
GPU_FLOPS = 2e13
#: Sustained FLOP/s of a CPU job's few cores.
CPU_FLOPS = 2e10
#: The fixed cost of one sampling step (kernel launches, the sampler), whatever the model's size.
SAMPLING_STEP_S = 0.01
#: The fixed cost of one forward batch beside its FLOPs, per layer (Python, the observers' hooks, kernel
#: launches; the head measurement of 2 to 8 layers measured 0.02 to 0.8 ms per layer and batch on one CPU core,
#: ``benchmarks/cost_model.py``). It matters for small models only: a 1B model's batch costs seconds of FLOPs.
LAYER_BATCH_S = 0.001
#: Tokens per second a natural batch's job tokenizes and scans.
TOKENIZE_TOKENS_PER_S = 1e5
#: A SLURM job's runtime request: the estimate of its job times this margin, in minutes ...
RUNTIME_MARGIN = 3.0
#: ... and at least this many minutes.
MIN_RUNTIME_MIN = 10
#: The parts of a job's seconds, in the order a cost line names them.
PARTS = ("load", "head probes", "spectral", "natural text", "ablation", "final ablation", "primitives", "natural batch")


def active_params(shape: Mapping[str, Any]) -> int:
    """Parameters a token runs through: all of them, but only the routed experts of a mixture of experts."""
    experts = int(shape.get("num_experts") or shape.get("num_local_experts") or 1)
    routed = int(shape.get("num_experts_per_tok") or experts)
    if routed >= experts:
        return sizing.model_params(shape)
    return sizing.model_params({**shape, "num_experts": routed, "num_local_experts": routed})


def published_bytes(shape: Mapping[str, Any], dtype: str) -> int:
    """Bytes of one revision's weights as published: parameters x bytes of ``torch_dtype`` (else ``dtype``)."""
    return sizing.model_params(shape) * DTYPE_BYTES.get(shape.get("torch_dtype") or dtype, 4)


def job_seconds(
    shape: Mapping[str, Any], dtype: str, work: Work, device: str, start_up_s: float = START_UP_S
) -> dict[str, float]:
    """Seconds of one job by part (:data:`PARTS`), no margin; ``device``: ``cpu`` or a GPU (``cuda``, ``auto``).

    ``load``: the start-up (``start_up_s``) and reading the published weights; each pass: its
    forward FLOPs at the device's throughput; a natural batch: its start-up and the
    corpus it scans, on the CPU whatever the device.
    """
    if not work.loads_model:
        return {"natural batch": start_up_s + work.scanned / TOKENIZE_TOKENS_PER_S}
    throughput = CPU_FLOPS if device == "cpu" else GPU_FLOPS
    per_token = 2.0 * active_params(shape) / throughput
    batch_s = int(shape["num_hidden_layers"]) * LAYER_BATCH_S
    head_dim = int(shape.get("head_dim") or int(shape["hidden_size"]) // int(shape["num_attention_heads"]))

    def forward(tokens: int, batches: int) -> float:
        return tokens * per_token + batches * batch_s

    sampling = work.sampled * per_token + work.sampling_steps * SAMPLING_STEP_S
    seconds = {
        "load": start_up_s + published_bytes(shape, dtype) / 1e6 / READ_MB_PER_S,
        "head probes": forward(work.head_probes, work.head_batches),
        "spectral": 2.0 * work.spectral_rows * head_dim * head_dim / throughput,
        "natural text": forward(work.natural_text, work.natural_batches),
        "ablation": forward(work.ablation, work.ablation_batches),
        "final ablation": forward(work.final_ablation, work.final_batches),
        "primitives": forward(work.primitives, work.primitive_batches) + sampling,
    }
    return {part: value for part, value in seconds.items() if value > 0}


def runtime_minutes(seconds: float) -> int:
    """A job's runtime request (minutes): ``seconds`` (its estimate) x :data:`RUNTIME_MARGIN`, at least
    :data:`MIN_RUNTIME_MIN`."""
    return max(MIN_RUNTIME_MIN, math.ceil(seconds * RUNTIME_MARGIN / 60))


def planning_model_config(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """The model shape (``config.json`` keys) declared for a model before its snapshot exists.

    ``model_config``: the model's entry of the workflow config. Its ``shape``;
    a toy model's own shape (from its ``toy`` settings); else
    :data:`sizing.DEFAULT_MODEL_CONFIG`. (:func:`model_shape` first looks for a
    ``config.json`` on disk.)
    """
    if model_config.get("shape"):
        return dict(model_config["shape"])
    if model_config.get("source", {}).get("type") == "toy":
        from circuitsweep.plan.checks import toy_model_config
        from circuitsweep.toy.spec import ToySpec

        spec = ToySpec.of_model(model_config["architecture"], model_config.get("toy"))
        return toy_model_config(spec)
    return dict(sizing.DEFAULT_MODEL_CONFIG)


@dataclass(frozen=True)
class Shape:
    """A model's shape (``config.json`` keys) and where it came from: ``config.json`` (a file on disk),
    ``shape`` (the config's ``models.<name>.shape``), ``toy`` (a toy's own) or ``default`` (OLMoE's)."""

    config: dict[str, Any]
    source: str
    path: Path | None = None


def _on_disk(plan: Plan, model: str) -> Path | None:
    """A ``config.json`` of ``model``'s checkpoints already on this machine, before any download, or None."""
    from circuitsweep.checkpoints import local_hub

    settings = plan.models[model]
    source = settings.source
    revisions = [r.name for r in plan.revisions.get(model, [])]
    candidates: list[Path] = []
    if source["type"] == "run_dir":
        candidates = [plan.root / source["path"] / name / "config.json" for name in revisions[-1:]]
    elif source["type"] in ("local", "toy"):
        root = plan.root / source["path"] if source["type"] == "local" else plan.paths.toy_hub()
        candidates = [local_hub.branch_file(root, source["repo_id"], name, "config.json") for name in revisions[-1:]]
    elif source["type"] == "package":
        from circuitsweep.checkpoints.snapshots import package_folder
        from circuitsweep.errors import CircuitsweepError

        try:
            candidates = [package_folder(source["package"]) / "config.json"]
        except CircuitsweepError:
            candidates = []
    elif source["type"] in ("hub", "hub_repos") and revisions:
        candidates = [_hub_cache_file(source, revisions[-1])]
    return next((path for path in candidates if path is not None and path.is_file()), None)


def _hub_cache_file(source: Mapping[str, Any], revision: str) -> Path | None:
    """The ``config.json`` of a Hub revision in the local Hub cache (``HF_HOME``), when a download left it there."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency
        return None
    if source["type"] == "hub_repos":
        repo = next((r["repo_id"] for r in source["repos"] if r["repo_id"].split("/")[1] == revision), None)
        repo, revision = repo, "main"
    else:
        repo = source["repo_id"]
    if repo is None:
        return None
    try:
        found = try_to_load_from_cache(repo, "config.json", revision=revision)
    except (ValueError, OSError):
        return None
    return Path(found) if isinstance(found, str) else None


def model_shape(plan: Plan, model: str) -> Shape:
    """The shape that sizes ``model``'s jobs before its snapshot is fetched: a ``config.json`` already on
    disk (a run_dir folder, a local or toy hub, a package's model, the Hub cache), else the config's
    ``shape``, a toy's own, else :data:`sizing.DEFAULT_MODEL_CONFIG` (OLMoE-1B-7B's)."""
    path = _on_disk(plan, model)
    if path is not None:
        found = sizing.read_model_config(path.parent)
        if found is not None:
            declared = plan.models[model].shape or {}
            if "torch_dtype" not in found and declared.get("torch_dtype"):
                found["torch_dtype"] = declared["torch_dtype"]
            return Shape(found, "config.json", path)
    settings = plan.models[model]
    config = planning_model_config({"shape": settings.shape, "source": settings.source,
                                    "architecture": settings.architecture, "toy": settings.toy})  # fmt: skip
    source = "shape" if settings.shape else "toy" if settings.source["type"] == "toy" else "default"
    return Shape(config, source)


@dataclass(frozen=True)
class Pending:
    """What Snakemake would still run (``circuitsweep.revision_stage.pending``): each model's revisions to
    measure (and of those, the ones with primitives), the models whose final-revision ablation runs, the
    natural batches to build, and the revisions fetched only for a final ablation or a batch."""

    revisions: dict[str, list[str]]
    primitives: dict[str, list[str]] = field(default_factory=dict)
    final_ablations: tuple[str, ...] = ()
    natural_batches: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class JobEstimate:
    """One job's estimated seconds by part: ``kind`` ``measure``, ``final_ablation`` or ``natural_batch``."""

    kind: str
    model: str
    revision: str
    seconds: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def _generates(plan: Plan, model: str) -> bool:
    """Whether a model's primitive job samples words: it ships a tokenizer (not a toy) and has an LM head."""
    settings = plan.models[model]
    lm = settings.architecture.endswith(("ForCausalLM", "LMHeadModel"))
    return settings.source["type"] != "toy" and lm


def revision_job_work(plan: Plan, model: str, revision: str, shape: Mapping[str, Any], primitives: bool) -> Work:
    """:func:`revision_work` of one planned revision (``primitives``: it is selected for primitives)."""
    from dataclasses import asdict

    settings = plan.models[model]
    extra = None
    if primitives:
        counts = stimuli_counts(plan.root / settings.primitives["stimuli"])
        extra = primitive_work(counts, settings.primitives, _generates(plan, model))
    ablation = asdict(plan.ablation) if plan.ablation is not None else None
    return revision_work(settings.probes.to_dict(), ablation, shape, extra)


def final_ablation_work(plan: Plan, model: str) -> Work:
    """What a model's final-revision ablation job runs (:func:`final_ablation_job_work`; its tokens are
    :meth:`Plan.final_ablation_tokens`)."""
    from dataclasses import asdict

    from circuitsweep.config.probes import AblationSettings

    ablation = asdict(plan.ablation or AblationSettings())
    return final_ablation_job_work(plan.models[model].probes.to_dict(), ablation, plan.spectral_top_k)


def natural_batch_work(plan: Plan, batch_model: str) -> Work:
    """What the natural batch built with ``batch_model``'s tokenizer reads: its corpus, until it holds the batch."""
    natural = plan.models[batch_model].probes.natural_text
    return Work(scanned=NATURAL_SCAN_FACTOR * natural.n_examples * natural.seq_len)


def job_estimates(
    plan: Plan,
    pending: Pending,
    device: str,
    shapes: Mapping[str, Shape] | None = None,
    start_up_s: float = START_UP_S,
) -> list[JobEstimate]:
    """The estimate of every job ``pending`` says will run, on ``device`` (``cpu`` or a GPU), each starting
    up in ``start_up_s``."""
    shapes = shapes or {model: model_shape(plan, model) for model in plan.models}
    jobs = []
    for model, revisions in pending.revisions.items():
        shape = shapes[model].config
        dtype = plan.models[model].dtype
        with_primitives = set(pending.primitives.get(model, ()))
        for revision in revisions:
            work = revision_job_work(plan, model, revision, shape, revision in with_primitives)
            seconds = job_seconds(shape, dtype, work, device, start_up_s)
            jobs.append(JobEstimate("measure", model, revision, seconds))
    for model in pending.final_ablations:
        work = final_ablation_work(plan, model)
        seconds = job_seconds(shapes[model].config, plan.models[model].dtype, work, device, start_up_s)
        jobs.append(JobEstimate("final_ablation", model, plan.final_revision(model), seconds))
    for _batch, (model, revision) in pending.natural_batches.items():
        work = natural_batch_work(plan, model)
        seconds = job_seconds(shapes[model].config, plan.models[model].dtype, work, device, start_up_s)
        jobs.append(JobEstimate("natural_batch", model, revision, seconds))
    return jobs


def estimate_by_kind(
    plan: Plan, pending: Pending, device: str, start_up_s: float = START_UP_S
) -> dict[str, dict[str, float]]:
    """Per job kind (``measure``, ``final_ablation``, ``natural_batch``): its jobs and their estimated seconds
    (rounded to 0.1 s; no margin), as ``tables/overhead.md`` puts them beside the measured seconds."""
    out: dict[str, dict[str, float]] = {}
    for job in job_estimates(plan, pending, device, start_up_s=start_up_s):
        entry = out.setdefault(job.kind, {"jobs": 0, "seconds": 0.0})
        entry["jobs"] += 1
        entry["seconds"] += job.total
    return {kind: {"jobs": v["jobs"], "seconds": round(v["seconds"], 1)} for kind, v in out.items()}


@dataclass(frozen=True)
class SweepCost:
    """What the pending work of a sweep costs: bytes, and hours by part on ``device`` (``GPU`` or ``CPU``).

    ``hours``: every job that loads a model, on the run's device; ``cpu_hours``: the
    natural batch (a CPU job wherever it runs). ``here_hours``: on a machine
    without a GPU where the config says ``device: auto``, the model jobs' hours on
    this machine's CPU (``hours`` are then a GPU's).
    """

    revisions: int
    download_bytes: int
    peak_disk_bytes: int
    snapshots_on_disk: int
    device: str
    hours: dict[str, float]
    cpu_hours: dict[str, float] = field(default_factory=dict)
    here_hours: float | None = None
    #: models sized by the default shape (no ``shape`` in their config entry, no config.json on disk)
    unsized: tuple[str, ...] = ()
    #: revisions the plan sweeps, measured already or not (None: not known)
    planned: int | None = None

    @property
    def total_hours(self) -> float:
        return sum(self.hours.values())


def _by_part(jobs: Sequence[JobEstimate]) -> dict[str, float]:
    out: dict[str, float] = {}
    for job in jobs:
        for part, seconds in job.seconds.items():
            out[part] = out.get(part, 0.0) + seconds / 3600
    return {part: out[part] for part in PARTS if part in out}


def sweep_cost(
    plan: Plan, pending: Pending, snapshots_on_disk: int, gpu_present: bool, warm_worker: bool = False
) -> SweepCost:
    """The cost of the ``pending`` work of ``plan``: downloads, peak disk and hours (see the module docstring).

    Download: every Hub revision still to measure, and a second copy of each final
    revision whose final-revision ablation runs (that job fetches its own) and of a
    natural batch's tokenizer revision not measured in this run. Peak disk: the
    ``snapshots_on_disk`` largest revisions to measure (a final ablation's copy takes
    its revision's place in the disk-bound order). ``gpu_present``: whether this
    machine has a GPU (``device: auto`` measures on it only then); ``warm_worker``: whether jobs on this
    machine's CPU fork from a warm worker (a local run's default), starting in :data:`WARM_START_UP_S`.
    """
    device = plan.device
    shapes = {model: model_shape(plan, model) for model in plan.models}

    def size(model: str) -> int:
        hub = plan.models[model].source["type"] in ("hub", "hub_repos")
        return published_bytes(shapes[model].config, plan.models[model].dtype) if hub else 0

    sizes = [size(model) for model, revisions in pending.revisions.items() for _ in revisions]
    download = sum(sizes) + sum(size(model) for model in pending.final_ablations)
    measured_here = {(m, r) for m, revisions in pending.revisions.items() for r in revisions}
    download += sum(size(m) for m, r in pending.natural_batches.values() if (m, r) not in measured_here)
    warm = WARM_START_UP_S if warm_worker else START_UP_S
    if device == "cpu":
        jobs = job_estimates(plan, pending, "cpu", shapes, warm)
    else:
        jobs = job_estimates(plan, pending, "cuda", shapes)
    model_jobs = [job for job in jobs if job.kind != "natural_batch"]
    here = None
    if device == "auto" and not gpu_present:
        cpu_jobs = job_estimates(plan, pending, "cpu", shapes, warm)
        here = sum(job.total for job in cpu_jobs if job.kind != "natural_batch") / 3600
    touched = set(pending.revisions) | set(pending.final_ablations)
    return SweepCost(
        revisions=sum(len(r) for r in pending.revisions.values()),
        planned=sum(len(revisions) for revisions in plan.revisions.values()),
        download_bytes=download,
        peak_disk_bytes=sum(heapq.nlargest(snapshots_on_disk, sizes)),
        snapshots_on_disk=snapshots_on_disk,
        device="CPU" if device == "cpu" else "GPU",
        hours=_by_part(model_jobs),
        cpu_hours=_by_part([job for job in jobs if job.kind == "natural_batch"]),
        here_hours=here,
        unsized=tuple(m for m in plan.models if m in touched and shapes[m].source == "default"),
    )


def _gb(n_bytes: float) -> str:
    if not n_bytes:
        return "0 GB"
    return f"{n_bytes / GB:,.1f} GB" if n_bytes >= 0.05 * GB else f"{n_bytes / GB:.3f} GB"


def _hours(hours: float) -> str:
    if hours >= 0.1:
        return f"{hours:,.1f}"
    return f"{hours:.2f}" if hours >= 0.005 else "<0.01"


def describe_cost(cost: SweepCost) -> str:
    """Two lines: revisions to measure, download, peak disk and estimated hours; then the hours by pass.

    Parts under 0.005 hours are left out of the second line. On a machine without a GPU under
    ``device: auto`` the first line gives the CPU-hours here and the GPU-hours on a GPU (saying so where
    loading, mostly each GPU job's cold start-up, is most of them: small models); the second line the
    GPU-hours by pass.
    """
    if not cost.revisions and not cost.hours:
        line = "circuitsweep: every planned revision is measured already: nothing to download"
    else:
        revisions = f"{cost.revisions} revision{'s' if cost.revisions != 1 else ''}"
        if cost.planned is not None and cost.planned != cost.revisions:
            revisions = f"{cost.revisions} of {cost.planned} revisions"
        if cost.download_bytes:
            fetched = (
                f"download {_gb(cost.download_bytes)}, peak disk {_gb(cost.peak_disk_bytes)}"
                f" (at most {cost.snapshots_on_disk} snapshots at once)"
            )
        else:
            fetched = "nothing to download (local checkpoints)"
        hours = f"about {_hours(cost.total_hours)} {cost.device}-hours"
        if cost.here_hours is not None:
            start_ups = ", most of it the jobs' start-up" if cost.hours.get("load", 0.0) > cost.total_hours / 2 else ""
            hours = (
                f"about {_hours(cost.here_hours)} CPU-hours here (no GPU; on one: about {_hours(cost.total_hours)}"
                f" GPU-hours{start_ups})"
            )
        line = f"circuitsweep: {revisions} to measure: {fetched}, {hours}"
    if cost.unsized:
        line += f"; {SIZED_BY_STAND_IN} (no models.<name>.shape): {', '.join(cost.unsized)}"
    parts = [f"{part} {_hours(hours)}" for part, hours in cost.hours.items() if hours >= 0.005]
    details = [f"{cost.device}-hours by pass: {', '.join(parts)}"] if parts else []
    if cost.cpu_hours:
        details.append(f"natural batch {_hours(sum(cost.cpu_hours.values()))} CPU-hours")
    return line + ("\ncircuitsweep: " + "; ".join(details) if details else "")


def describe_partial(manifest: PartialManifest) -> str:
    """One line: how many branches the manifest lacks, and the command that lists them all."""
    lacks = (
        f"lacks about {manifest.published - manifest.listed:,} of about {manifest.published:,} branches"
        if manifest.published
        else "lacks branches the repository has"
    )
    return (
        f"circuitsweep: {manifest.model}: the manifest {manifest.path} lists {manifest.listed} branches and {lacks};"
        f" to sweep them all, first run: circuitsweep refresh-manifest {manifest.repo_id} {manifest.path}"
    )
