"""What ``circuitsweep check-config`` prints about a planned sweep: its revisions, jobs and their sizes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circuitsweep.plan.sweep import Plan


def describe_plan(plan: Plan, jobs: dict[str, str] | None = None) -> list[str]:
    """What a sweep plans, one line per model and then the run's notes (``circuitsweep check-config``).

    Per model: its revisions (first .. last, in training order, with the last one's tokens), the
    natural-text batch and the tokenizer that builds it, its primitive jobs and ``jobs[model]`` (its
    measurement job's size, :func:`measurement_job`).
    """
    from circuitsweep.heads.jobs import natural_batches
    from circuitsweep.primitives.jobs import primitive_models, primitive_revisions

    batches = natural_batches(plan)
    lines = []
    for model in plan.revisions:
        parts = [_revisions_part(plan, model)]
        natural = plan.models[model].probes.natural_text
        if natural is not None:
            builder = batches[natural.tokenizer][0]
            special = natural.special_tokens
            parts.append(f"natural text: batch {natural.tokenizer} (tokenizer of {builder}, special tokens {special})")
        primitives = len(primitive_revisions(plan, model)) if model in primitive_models(plan) else 0
        parts.append(
            f"{primitives} primitive job{'s' if primitives != 1 else ''}" if primitives else "no primitive jobs"
        )
        settings = plan.models[model]
        if settings.source["type"] == "toy":
            from circuitsweep.toy.spec import ToySpec

            spec = ToySpec.of_model(settings.architecture, settings.toy)
            parts.append(
                f"a toy trained here ({spec.schedule[-1]:,} steps of {spec.tokens_per_step:,} tokens on one thread;"
                " the estimate below leaves its training out)"
            )
        lines.append(f"{model}: " + "; ".join(parts))
        if jobs and model in jobs:
            lines.append(f"  {jobs[model]}")
    lines.append(f"ablation: {'every revision' if plan.ablation is not None else 'off'}")
    return lines + [f"note: {note}" for note in plan.notes]


def _revisions_part(plan: Plan, model: str) -> str:
    """``N revisions (first .. last; the last at T tokens)``; a released model swept alone (``main`` without a
    step or tokens stated, as a primitives config sweeps it) is named as such, not as a model at 0 tokens."""
    from circuitsweep.plan.sweep import RELEASED_REVISION

    revisions = plan.revisions[model]
    last = revisions[-1]
    stated = RELEASED_REVISION in plan.models[model].tokens.get("branches", {})
    if len(revisions) == 1 and (last.name, last.step, last.tokens) == (RELEASED_REVISION, 0, 0) and not stated:
        return f"1 revision ({last.name}, the released model; no step or tokens stated)"
    span = f"{revisions[0].name} .. {last.name}; the last at" if len(revisions) > 1 else f"{last.name}; at"
    return f"{len(revisions)} revision{'s' if len(revisions) != 1 else ''} ({span} {last.tokens:,} tokens)"


def measurement_job(plan: Plan, model: str, gpu_present: bool = True) -> str:
    """What one revision of ``model`` costs, as the rules size its job before the fetch: the download (Hub
    sources), the memory the job requests and the cost model's minutes of its largest revision job (on a GPU
    unless the run says ``device: cpu``) with the runtime it requests. Under ``device: auto`` on a machine
    without a GPU (``gpu_present`` false) it says there is none here, as the cost line does."""
    from circuitsweep.plan import costs
    from circuitsweep.plan.resources import measure_size
    from circuitsweep.primitives.jobs import measures_primitives

    settings = plan.models[model]
    device = "cpu" if plan.device == "cpu" else "cuda"
    found = costs.model_shape(plan, model)
    shape = found.config
    sizes = []
    for revision in plan.revisions[model]:
        work = costs.revision_job_work(
            plan, model, revision.name, shape, measures_primitives(plan, model, revision.name)
        )
        seconds = sum(costs.job_seconds(shape, settings.dtype, work, device).values())
        sizes.append((seconds, measure_size(shape, settings.dtype, settings.probes.to_dict(), device, work)))
    seconds, size = max(sizes, key=lambda pair: pair[0])
    where = "on the CPU" if device == "cpu" else "on a GPU"
    request = f"runtime request {size.runtime:,} min"
    if plan.device == "auto" and not gpu_present:
        request = f"no GPU here; {request}"
    download = ""
    if settings.source["type"] in ("hub", "hub_repos"):
        download = f"{costs.published_bytes(shape, settings.dtype) / costs.GB:,.2f} GB to download, "
    stand_in = (
        f"; {costs.SIZED_BY_STAND_IN}: give models.{model}.shape to size it by its own"
        if found.source == "default"
        else ""
    )
    return (
        f"per revision: {download}a job of {size.mem_mb:,} MB and at most about {seconds / 60:,.1f} min {where}"
        f" ({request}{stand_in})"
    )
