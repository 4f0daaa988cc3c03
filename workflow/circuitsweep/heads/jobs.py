"""The head stage's jobs, built from the plan: what each head rule is given.

The plan says what is swept (models, revisions, paths, device); this module
turns it into the settings of the jobs that measure, classify and ablate heads.
A job's settings are recorded (as a digest) in the caches it writes, so a
changed setting reruns exactly the jobs it belongs to (:func:`heads_measured`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from circuitsweep.io import contracts as C
from circuitsweep.io.cache_check import CACHE_SCHEMA_VERSION, SETTINGS_KEY, damage, records_settings, settings_digest
from circuitsweep.io.corpus import corpus_sha256
from circuitsweep.io.tables import read_table
from circuitsweep.plan.sweep import Plan, corpus_location


def natural_text(plan: Plan) -> bool:
    """Whether the run measures the natural-text probe (every model or none, see config)."""
    return any(m.probes.natural_text is not None for m in plan.models.values())


def natural_batches(plan: Plan) -> dict[str, tuple[str, str]]:
    """Each natural-text batch name and the (model, revision) whose tokenizer builds it.

    The model is ``tokenizer_model`` when set, else the batch's first user; the revision is its first.
    """
    out: dict[str, tuple[str, str]] = {}
    for name, model in plan.models.items():
        natural = model.probes.natural_text
        if natural is not None and natural.tokenizer not in out:
            builder = natural.tokenizer_model or name
            out[natural.tokenizer] = (builder, plan.revisions[builder][0].name)
    return out


def natural_batch_of(plan: Plan, model: str) -> str:
    """The natural-text batch ``model`` is measured on (its tokenizer's name)."""
    natural = plan.models[model].probes.natural_text
    if natural is None:
        raise KeyError(f"{model} measures no natural text")
    return natural.tokenizer


def natural_batch_settings(plan: Plan, batch: str) -> dict[str, Any]:
    """What builds natural batch ``batch``: its settings (corpus resolved against the workflow folder)
    and the corpus's content digest (an edit in place rebuilds the batch)."""
    model, _ = natural_batches(plan)[batch]
    settings = plan.models[model].probes.natural_text.batch_dict()
    settings["corpus"] = corpus_location(settings["corpus"], plan.root)
    return {"batch": batch, "model": model, **settings, "corpus_sha256": corpus_sha256(settings["corpus"])}


def measure_settings(plan: Plan, model: str, name: str) -> dict[str, Any]:
    """The head measurement job of one revision (``RevisionJob``): identity, probes and, with ablation on,
    the ablation settings and the circuit's cut."""
    settings = {
        **plan.revision_job(model, name),
        "probes": plan.models[model].probes.to_dict(),
        **plan.weights(model, name),
        # a new cache layout changes the job's settings: caches of an older one are measured again, once
        "cache_schema": CACHE_SCHEMA_VERSION,
    }
    if plan.ablation is not None:
        # the circuit is screened in the job, so its cut is a job setting (a change reruns it);
        # induction_circuit is all it depends on (heads.ablation.circuit_cut)
        settings["ablation"] = asdict(plan.ablation)
        settings["circuit_selectivity"] = plan.models[model].thresholds.induction_circuit
        # rows of an older layout (without per-sequence outcomes) are measured again once
        settings["ablation_schema"] = C.ABLATION_SCHEMA_VERSION
    return settings


def measure_extra_outputs(plan: Plan, model: str, name: str) -> dict[str, Path]:
    """A measurement job's outputs besides its head cache: natural-text scores and ablation rows, if asked for.

    Keys are the ``measure-revision`` options that take each path (``natural_scores`` -> ``--natural-scores``);
    ``model``/``name`` may be wildcard patterns (``"{model}"``).
    """
    outputs = {}
    if natural_text(plan):
        outputs["natural_scores"] = plan.paths.natural_scores(model, name)
    if plan.ablation is not None:
        outputs["ablation"] = plan.paths.ablation_rows(model, name)
    return outputs


def heads_measured(plan: Plan, model: str, name: str) -> bool:
    """Whether revision ``name``'s head cache and extra outputs exist, can be read and record the settings planned
    now."""
    paths = [plan.paths.head_scores(model, name), *measure_extra_outputs(plan, model, name).values()]
    if not all(path.exists() and damage(path) is None for path in paths):
        return False
    return records_settings(plan.paths.head_stats(model, name), measure_settings(plan, model, name))


def head_cache_expectation(plan: Plan, model: str, name: str) -> dict[str, Any]:
    """What a revision's head cache (statistics and scores) must say it is (see :mod:`circuitsweep.io.cache_check`)."""
    probes = plan.models[model].probes
    return {
        **plan.cache_identity(model, name),
        "probe": probes.kind,
        "probe_protocol": probes.protocol,
        "probes": probes.to_dict(),
    }


def classify_thresholds(plan: Plan, model: str) -> dict[str, Any]:
    """The classification thresholds (``classify_heads``'s params)."""
    return asdict(plan.models[model].thresholds)


def final_ablation_settings(plan: Plan, model: str) -> dict[str, Any]:
    """The final-revision ablation job (``final_ablation`` params): its revision's measurement settings
    (``RevisionJob``, with the run's ablation settings), the spectral K, the classification thresholds and the
    revisions the spectral ranking integrates over (removing one changes the ranking, so the ablation is not
    current any more, and check-config counts its fetch)."""
    return {
        "job": measure_settings(plan, model, plan.final_revision(model)),
        "ranked_revisions": [revision.name for revision in plan.revisions[model]],
        "spectral_top_k": list(plan.spectral_top_k),
        "thresholds": classify_thresholds(plan, model),
    }


def final_ablation_recorded(plan: Plan, model: str) -> bool:
    """Whether the model's final-revision ablation exists and was made with the settings planned now."""
    path = plan.paths.final_ablation_rows(model)
    if not path.exists():
        return False
    try:
        recorded = read_table(path)[1].get(SETTINGS_KEY)
    except (OSError, ValueError):
        return False
    return recorded == settings_digest(final_ablation_settings(plan, model))
