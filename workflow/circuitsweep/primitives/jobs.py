"""The primitive stage's jobs, built from the plan: which revisions get a primitive
measurement, and the settings of the jobs that measure and score them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from circuitsweep.checkpoints.revisions import Revision
from circuitsweep.io.cache_check import records_settings, safetensors_metadata
from circuitsweep.plan.sweep import Plan, stable_selection


def primitive_models(plan: Plan) -> list[str]:
    """Models whose primitive gaps are measured (``primitives.enabled``)."""
    return [name for name, model in plan.models.items() if model.primitives["enabled"]]


def demonstration_models(plan: Plan) -> list[str]:
    """Measured models whose primitive gaps are a demonstration without meaning: toy sources, which have no
    tokenizer (their words are hashed to token ids), so the figures say so on the image. They are the only
    models whose words may be hashed; any other model's primitive job needs its tokenizer."""
    return [name for name in primitive_models(plan) if plan.models[name].source["type"] == "toy"]


def primitive_revisions(plan: Plan, model: str) -> list[Revision]:
    """The swept revisions of ``model`` that get primitive measurements (``primitives.revisions``)."""
    return stable_selection(
        plan.revisions[model],
        plan.available.get(model, plan.revisions[model]),
        plan.models[model].primitives.get("revisions", "all"),
        model=model,
    )


def measures_primitives(plan: Plan, model: str, name: str) -> bool:
    """Whether revision ``name`` of ``model`` gets a primitive measurement (from the same weight load)."""
    if not plan.models[model].primitives["enabled"]:
        return False
    return any(revision.name == name for revision in primitive_revisions(plan, model))


def stimuli_file(plan: Plan, model: str) -> Path:
    """The stimuli file ``model``'s primitives are measured with."""
    return plan.root / plan.models[model].primitives["stimuli"]


def primitive_settings(plan: Plan, model: str, name: str) -> dict[str, Any]:
    """The primitive measurement job of one revision (``PrimitiveJob``).

    Only a toy's job says ``hash_words`` (its words are hashed, :func:`demonstration_models`), so the recorded
    settings of every other model are those it was measured with before the key existed.
    """
    settings = plan.models[model]
    primitives = settings.primitives
    behaviour = {k: v for k, v in primitives["behaviour"].items() if k != "enabled"}
    hashed = {"hash_words": True} if model in demonstration_models(plan) else {}
    return {
        **plan.revision_job(model, name),
        "token_range": list(settings.probes.token_range),
        "batch_size": primitives["batch_size"],
        "behaviour": behaviour if primitives["behaviour"]["enabled"] else None,
        **plan.weights(model, name),
        **hashed,
    }


def primitive_scoring(plan: Plan, model: str) -> dict[str, Any]:
    """The scoring settings (``score_primitives``'s params): changing one rescores from the shards."""
    return dict(plan.models[model].primitives["scoring"])


def primitive_cache_expectation(plan: Plan, model: str, name: str) -> dict[str, Any]:
    """What a revision's primitive shard must say it is (the stimuli fingerprint is added by the reader)."""
    job = primitive_settings(plan, model, name)
    expected = {k: v for k, v in plan.cache_identity(model, name).items() if not k.startswith("first_token")}
    return {**expected, **{k: job[k] for k in ("first_token", "token_range", "batch_size", "behaviour")}}


def primitives_measured(plan: Plan, model: str, name: str) -> bool:
    """Whether revision ``name`` needs no primitive measurement, or its shard records the settings and stimuli
    planned now."""
    if not measures_primitives(plan, model, name):
        return True
    shard = plan.paths.primitive_stats(model, name)
    if not records_settings(shard, primitive_settings(plan, model, name)):
        return False
    return safetensors_metadata(shard).get("stimuli_sha256") == plan.stimuli_sha256[model]
