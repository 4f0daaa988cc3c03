"""The head stages of the sweep: what the head rules run.

- :func:`load_revision` and :func:`measure_loaded`: load one revision, run the
  probes, write its head cache; the measuring rules call both through
  :mod:`circuitsweep.revision_stage` (one load for heads and primitives), and
  :func:`measure_heads` chains them for a caller that wants heads alone;
- :func:`classify_heads`: classify every head of one model from its caches alone
  (the tables across models are :mod:`circuitsweep.milestones.tables`).

Each reads its inputs, does one stage of docs/methods.md, and writes the
output paths it is given, atomically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from circuitsweep.checkpoints import run_dir
from circuitsweep.checkpoints.snapshots import read_snapshot
from circuitsweep.checkpoints.special_tokens import bos_policy_token_id
from circuitsweep.config.probes import ProbeSettings
from circuitsweep.errors import CacheError, ConfigError, DataError, SnapshotError
from circuitsweep.heads.classify import Thresholds, head_classes, natural_counts
from circuitsweep.io import contracts as C
from circuitsweep.io.cache_check import (
    CACHE_SCHEMA_VERSION,
    SCHEMA_KEY,
    SETTINGS_KEY,
    settings_digest,
    verify_head_cache,
)
from circuitsweep.io.tables import read_table, write_table
from circuitsweep.plan import sizing


@dataclass(frozen=True)
class RevisionJob:
    """What one measurement job needs to know besides its snapshot."""

    model: str
    revision: str
    step: int
    tokens: int
    architecture: str
    dtype: str
    first_token: dict[str, Any]
    probes: ProbeSettings
    device: str
    #: ``AblationSettings`` fields and the circuit's selectivity cut (``ablation.circuit_cut``), when the run ablates
    ablation: dict[str, Any] | None = None
    circuit_selectivity: float | None = None
    #: The ablation rows' layout planned (``contracts.ABLATION_SCHEMA_VERSION``): a setting, so that rows of
    #: an older layout are measured again, and recorded in the rows file, which the tables check
    ablation_schema: int | None = None
    #: The planned weights fingerprint of a run_dir checkpoint (None for other sources).
    weights_sha256: str | None = None
    #: ``cache_check.settings_digest`` of the settings as planned, recorded in the caches (``is_measured``)
    settings_sha256: str | None = None
    #: The cache layout the plan asked for (``cache_check.CACHE_SCHEMA_VERSION``): part of the settings, so a
    #: new layout reruns the job; the caches record the version of the code that writes them.
    cache_schema: int | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RevisionJob:
        """The job of the settings the plan gave (``heads.jobs.measure_settings``)."""
        digest = settings_digest(values)
        values = dict(values)
        values["probes"] = ProbeSettings.from_dict(values["probes"])
        return cls(**values, settings_sha256=digest)


def first_token_id(
    policy: dict[str, Any],
    model_config: Any,
    snapshot: Path | None = None,
    *,
    model: str | None = None,
    revision: str | None = None,
) -> int | None:
    """The token id placed at position 0: None (keep the random token), fixed, or BOS.

    Policy ``bos`` (docs/methods.md: the tokenizer's BOS, else its CLS, else EOS) reads
    the ``bos_token``, ``cls_token`` and ``eos_token`` of the tokenizer files in
    ``snapshot``, in that order; only where those files give none of them (a
    snapshot without tokenizer files, as the toys' and many run folders') the
    model config's ``bos_token_id``, ``cls_token_id`` and ``eos_token_id``. A
    model with none of them is refused naming the key ``models.<model>.first_token``
    and the revision (a job's ``model`` and ``revision``; without them, the key
    ``first_token``).
    """
    if policy["policy"] == "none":
        return None
    if policy["policy"] == "fixed":
        return int(policy["token_id"])
    value = bos_policy_token_id(model_config, snapshot)
    if value is None:
        key = f"models.{model}.first_token" if model else "first_token"
        of = f" of {model} {revision}" if model and revision else ""
        raise SnapshotError(
            f"{key}: policy bos, but neither the model config nor the tokenizer files{of} give a "
            "bos_token_id, a CLS token or an eos_token_id; use policy none, or fixed with a token_id"
        )
    return value


def check_job_size(
    job: RevisionJob,
    model_config: Mapping[str, Any] | None,
    device: Any,
    mem_mb: int | None,
    windows: Sequence[int | None] | None = None,
) -> None:
    """Refuse, before allocating, a probe longer than the model's context or a sliding window, or a job that cannot fit.

    ``windows``: the per-layer sliding windows (``loading.snapshot_windows``;
    default: those ``model_config`` gives). Limits: the job's ``mem_mb`` when
    given, this machine's available RAM, and on CUDA the GPU's free memory for
    the model's part of the estimate.
    """
    where = f"{job.model} {job.revision}"
    probes = job.probes.to_dict()
    if model_config is not None:
        problem = sizing.length_problem(probes, model_config, f"models.{job.model}", windows)
        if problem:
            raise ConfigError(problem)
    estimate = sizing.estimate_heads_memory(probes, model_config, job.dtype)
    if mem_mb is not None:
        sizing.check_fits(estimate, mem_mb * 10**6, where, f"the job's mem_mb of {mem_mb}")
    on_gpu = getattr(device, "type", "cpu") == "cuda"
    host_need = estimate.on_host() if on_gpu else estimate
    sizing.check_fits(host_need, sizing.machine_memory_bytes(), where, "this machine's free RAM")
    if on_gpu:
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        sizing.check_fits(estimate.on_device(), free, where, f"the free memory of {device}")


@dataclass(frozen=True)
class ExtraMeasurements:
    """Optional files of a measurement job: the natural-text batch it reads and what it writes."""

    natural_batch: Path | None = None
    natural_scores: Path | None = None
    ablation: Path | None = None


def measure_heads(
    snapshot_dir: Path,
    job: RevisionJob,
    stats_path: Path,
    scores_path: Path,
    progress: bool = True,
    *,
    mem_mb: int | None = None,
    extra: ExtraMeasurements = ExtraMeasurements(),
) -> None:
    """Load one revision, run the probes and write its head cache (statistics + scores).

    ``mem_mb``: the job's memory limit (Snakemake's ``mem_mb``), checked against
    the estimate of :mod:`circuitsweep.plan.sizing` before the model is loaded.
    With ``probes.natural_text`` it also measures the natural-text probe (batch
    ``extra.natural_batch``, scores to ``extra.natural_scores``); with
    ``job.ablation`` it ablates this revision's circuit (rows to ``extra.ablation``).
    """
    model, snapshot = load_revision(snapshot_dir, job, mem_mb)
    measure_loaded(model, snapshot, job, stats_path, scores_path, progress=progress, extra=extra)


def load_revision(snapshot_dir: Path, job: RevisionJob, mem_mb: int | None = None) -> tuple[Any, Any]:
    """The model of one revision's snapshot, loaded once with the observed attention, and its ``Snapshot``.

    Refuses a snapshot whose weights are not the planned ones (run_dir
    sources) and a job that cannot fit (``mem_mb``, the RAM, the GPU) before
    any weight is read, and a run_dir folder whose files changed between its
    fetch and the end of the load (:func:`run_dir.check_unchanged`).
    """
    from circuitsweep.checkpoints.loading import load_model, resolve_device, snapshot_windows
    from circuitsweep.heads.attention_hook import register

    snapshot = read_snapshot(snapshot_dir)
    if job.weights_sha256 is not None and snapshot.fingerprint != job.weights_sha256:
        raise SnapshotError(
            f"{job.model} {job.revision}: the snapshot's weights (sha256 {str(snapshot.fingerprint)[:12]}) are not "
            f"those planned ({job.weights_sha256[:12]}); run the workflow again"
        )
    device = resolve_device(job.device)
    check_job_size(job, sizing.load_model_config(snapshot.path), device, mem_mb, snapshot_windows(snapshot.path))
    model = load_model(snapshot.path, job.architecture, job.dtype, device, register())
    if snapshot.source == run_dir.SOURCE:  # read in place: the folder may have changed since its fetch
        run_dir.check_unchanged(snapshot.path, snapshot.file_hashes)
    return model, snapshot


def measure_loaded(
    model: Any,
    snapshot: Any,
    job: RevisionJob,
    stats_path: Path,
    scores_path: Path,
    progress: bool = True,
    *,
    extra: ExtraMeasurements = ExtraMeasurements(),
) -> None:
    """Run the probes on an already loaded ``model`` of ``snapshot`` and write its head cache (and extras).

    ``model`` must have been loaded with the observed attention
    (``attn_implementation=heads.attention_hook.register()``) on ``job.device``;
    ``snapshot`` is the ``Snapshot`` record it came from (its commit and weights
    fingerprint go into the metadata). Lets a job that loads the weights once
    measure heads and other things.
    """
    import torch

    from circuitsweep.checkpoints.loading import resolve_device
    from circuitsweep.heads.measure import head_statistics
    from circuitsweep.heads.scores import check_finite, head_scores, loss_halves
    from circuitsweep.io.stats import software_versions, write_stats

    device = resolve_device(job.device)
    token_id = first_token_id(job.first_token, model.config, snapshot.path, model=job.model, revision=job.revision)
    where, revision = f"models.{job.model}", f"{job.model} {job.revision}"
    problem = sizing.vocabulary_problem(job.probes.token_range, token_id, model.config.vocab_size, where, revision)
    if problem:
        raise DataError(problem)
    started = time.perf_counter()
    stats = head_statistics(model, job.probes, token_id, device, progress=progress)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    forward_seconds = time.perf_counter() - started
    where = f"{job.model} {job.revision}"
    natural = _natural_measurement(model, job, snapshot.path, extra, device) if job.probes.natural_text else None
    if natural is not None:
        stats.update(natural[1])
    check_finite(stats, where)
    # a model without an LM head (an encoder) has no in-context loss: recorded as None (null)
    first_half, second_half = loss_halves(stats) or (None, None)
    loss_drop = None if first_half is None else second_half - first_half
    metadata = {
        "model": job.model,
        "revision": job.revision,
        "step": job.step,
        "tokens": job.tokens,
        "architecture": job.architecture,
        "n_layers": model.config.num_hidden_layers,
        "n_heads": model.config.num_attention_heads,
        "probe": job.probes.kind,
        "probes": job.probes.to_dict(),
        "first_token_policy": job.first_token["policy"],
        "first_token_id": token_id,
        "dtype": job.dtype,
        "device": str(device),
        "commit": snapshot.commit,
        "weights_sha256": snapshot.fingerprint,
        "loss_first_half": first_half,
        "loss_second_half": second_half,
        "in_context_loss_drop": loss_drop,
        "forward_seconds": forward_seconds,
        "versions": software_versions(),
        SCHEMA_KEY: CACHE_SCHEMA_VERSION,
        SETTINGS_KEY: job.settings_sha256,
    }
    valid, total = (int(v) for v in stats[C.STAT_VALID_SEQUENCES])
    metadata["probe_protocol"] = job.probes.protocol
    metadata["valid_sequences"] = valid
    # sequences of the participation ratio (docs/methods.md); None: the model's output projection was not found
    metadata["spectral_sequences"] = job.probes.spectral_sequences if C.STAT_SPECTRAL_PR in stats else None
    scores = head_scores(stats)
    print(f"{where}: induction probe {job.probes.protocol}, {valid} of {total} sequences valid")
    ablation = None
    if job.ablation is not None:
        ablation = _ablation_measurement(model, job, scores, natural[0] if natural else None, token_id, device)
    write_stats(stats_path, stats, metadata)
    write_table(scores_path, scores, metadata)
    if natural is not None:
        from circuitsweep.heads.natural_text import natural_scores

        write_table(extra.natural_scores, natural_scores(natural[1]), {**metadata, "natural_text": natural[2]})
    if ablation is not None:
        from circuitsweep.heads.ablation import ablation_frame

        identity = {name: metadata[name] for name in ("model", "revision", "step", "tokens")}
        ablation_metadata = {
            **metadata,
            "ablation": job.ablation,
            "circuit_selectivity": job.circuit_selectivity,
            "ablation_schema": job.ablation_schema,
        }
        write_table(extra.ablation, ablation_frame(ablation, identity), ablation_metadata)


def _natural_measurement(model: Any, job: RevisionJob, snapshot: Path, extra: ExtraMeasurements, device: Any) -> tuple:
    """The natural batch, its statistics and a description of it, for one loaded revision."""
    from circuitsweep.heads.natural_text import natural_statistics, revision_natural_batch

    if extra.natural_scores is None:
        raise DataError(f"{job.model} {job.revision}: probes.natural_text is set but no natural scores path was given")
    settings = job.probes.natural_text
    batch = revision_natural_batch(extra.natural_batch, settings, snapshot, job.model, job.revision, model.config)
    stats = natural_statistics(model, batch, job.probes.batch_size, device)
    return batch, stats, {"batch": settings.tokenizer, **settings.batch_dict()}


def _ablation_measurement(
    model: Any, job: RevisionJob, scores: pl.DataFrame, natural: Any, first_token: int | None, device: Any
) -> list[dict[str, Any]]:
    """Ablation rows of one loaded revision on the synthetic probe (and the natural one when measured)."""
    from circuitsweep.config.probes import AblationSettings
    from circuitsweep.heads.ablation import AblationProbe, ablation_rows, synthetic_probe

    if job.circuit_selectivity is None:
        raise DataError(f"{job.model} {job.revision}: ablation settings lack circuit_selectivity")
    probes = [synthetic_probe(job.probes, first_token)]
    if natural is not None:
        probes.append(AblationProbe("natural", natural.tokens, natural.query, natural.next_tokens()))
    settings = AblationSettings(**job.ablation)
    return ablation_rows(model, scores, job.circuit_selectivity, settings, probes, device)


def _revision_row(metadata: dict[str, Any]) -> dict[str, Any]:
    row = {name: metadata[name] for name in C.REVISION_COLUMNS if name not in ("first_token_policy",)}
    token_id = metadata.get("first_token_id")
    row["first_token_policy"] = metadata["first_token_policy"] + ("" if token_id is None else f":{token_id}")
    row["weights_sha256"] = metadata.get("weights_sha256")
    return row


def _natural_classes(
    model: str, natural_paths: Sequence[Path], thresholds: Thresholds
) -> tuple[pl.DataFrame, dict[str, dict[str, Any]]]:
    """Natural-text classes of every head (``NATURAL_HEAD_COLUMNS`` keyed by revision, layer, head) and counts."""

    frames, counts = [], {}
    for path in natural_paths:
        scores, metadata = read_table(path)
        if metadata.get("model") != model:
            raise CacheError(f"{path} belongs to model {metadata.get('model')!r}, not {model!r}")
        classified = head_classes(scores.with_columns(pl.lit(None, pl.Float64).alias("sink_alpha")), thresholds)
        counts[metadata["revision"]] = natural_counts(classified)
        frames.append(
            classified.select(
                pl.lit(metadata["revision"]).alias("revision"),
                "layer",
                "head",
                pl.col("class").alias("natural_class"),
                pl.col("sel_induction").alias("natural_sel_induction"),
                pl.col("sel_first").alias("natural_sel_first"),
            )
        )
    return pl.concat(frames), counts


def classify_heads(
    model: str,
    score_paths: Sequence[Path],
    thresholds: Thresholds,
    heads_out: Path,
    revisions_out: Path,
    *,
    stats_paths: Sequence[Path] | None = None,
    expected: Sequence[Mapping[str, Any]] | None = None,
    natural_paths: Sequence[Path] = (),
) -> None:
    """Classify every head of every revision of ``model`` from its cached scores alone.

    ``expected``: per score file (same order), the metadata the plan expects
    of it; ``stats_paths``: the matching statistics shards, verified complete
    and from the same job. A cache that does not match is a :class:`CacheError`.
    With ``natural_paths`` (natural-text scores per revision) the heads gain
    ``NATURAL_HEAD_COLUMNS`` and the revisions ``NATURAL_EMERGENCE_COLUMNS``.
    """
    if expected is not None and len(expected) != len(score_paths):
        raise CacheError(f"{model}: {len(score_paths)} score files but {len(expected)} planned revisions")
    if stats_paths is not None and len(stats_paths) != len(score_paths):
        raise CacheError(f"{model}: {len(score_paths)} score files but {len(stats_paths)} statistics shards")
    frames, rows, seen, settings = [], [], {}, {}
    protocols: dict[str, Path] = {}
    for i, path in enumerate(score_paths):
        scores, metadata = read_table(path)
        if metadata.get("model") != model:
            raise CacheError(f"{path} belongs to model {metadata.get('model')!r}, not {model!r}; delete it and rerun")
        verify_head_cache(
            path, metadata, expected[i] if expected is not None else {}, stats_paths[i] if stats_paths else None
        )
        if metadata.get("revision") in seen:
            raise CacheError(
                f"{path} and {seen[metadata['revision']]} both hold revision {metadata['revision']!r}; "
                "one was copied from the other: delete it and rerun"
            )
        seen[metadata.get("revision")] = path
        if "probe_protocol" not in metadata:
            raise CacheError(f"{path} predates probe protocols (no probe_protocol); delete it and rerun")
        protocols.setdefault(metadata["probe_protocol"], path)
        if len(protocols) > 1:
            (a, first), (b, second) = protocols.items()
            raise CacheError(f"model {model}: {first} was measured with probe protocol {a}, {second} with {b}")
        measured = {key: metadata.get(key) for key in C.MEASUREMENT_KEYS}
        if settings and measured != settings:
            raise CacheError(f"{path} was measured with other settings than {score_paths[0]}; delete it and rerun")
        settings = measured
        # explicit dtypes: a bare pl.lit(int) is Int32 below 2**31 and Int64 above, and
        # revisions on both sides of 2**31 tokens would not concatenate
        keys = {
            name: (metadata[name], getattr(pl, C.KEY_DTYPES[name])) for name in ("model", "revision", "step", "tokens")
        }
        frames.append(scores.with_columns(*[pl.lit(v, dtype=t).alias(k) for k, (v, t) in keys.items()]))
        rows.append(_revision_row(metadata))
    heads = pl.concat(frames).select(*C.KEY_COLUMNS, *C.HEAD_SCORE_COLUMNS).sort("tokens", "step", "layer", "head")
    classified = head_classes(heads, thresholds)
    if natural_paths:
        natural, counts = _natural_classes(model, natural_paths, thresholds)
        missing = sorted({row["revision"] for row in rows} - set(counts))
        if missing:
            raise CacheError(f"model {model}: no natural-text scores for revisions {missing}")
        classified = classified.join(natural, on=["revision", "layer", "head"], how="left", maintain_order="left")
        rows = [{**row, **counts[row["revision"]]} for row in rows]
    run = {
        "model": model,
        **settings,
        "thresholds": json.loads(json.dumps(thresholds.__dict__)),
        "probe_protocol": next(iter(protocols), None),
    }
    write_table(heads_out, classified, run)
    losses = {name: pl.Float64 for name in ("loss_first_half", "loss_second_half", "in_context_loss_drop")}
    ints = {name: pl.Int64 for name in ("step", "tokens", "n_layers", "n_heads")}
    write_table(revisions_out, pl.DataFrame(rows, schema_overrides={**losses, **ints}).sort("tokens", "step"), run)
