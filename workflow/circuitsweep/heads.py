"""The head stages of the sweep: measure one revision, classify one model.

Each function is what one Snakemake rule runs: it reads its inputs, does one
stage of DESIGN.md section 2, and writes its outputs atomically.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from circuitsweep import __version__
from circuitsweep import contracts as C
from circuitsweep.cache import read_table, write_stats, write_table
from circuitsweep.classify import Thresholds, classify_heads
from circuitsweep.errors import CacheError, DataError, SnapshotError
from circuitsweep.measure import ProbeSettings
from circuitsweep.snapshots import read_snapshot


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

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RevisionJob:
        values = dict(values)
        values["probes"] = ProbeSettings.from_dict(values["probes"])
        return cls(**values)


def first_token_id(policy: dict[str, Any], model_config: Any) -> int | None:
    """The token id placed at position 0: None (keep the random token), fixed, or BOS (else EOS)."""
    if policy["policy"] == "none":
        return None
    if policy["policy"] == "fixed":
        return int(policy["token_id"])
    for attribute in ("bos_token_id", "eos_token_id"):
        value = getattr(model_config, attribute, None)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            return int(value)
    raise SnapshotError("first_token policy bos: the model config has neither bos_token_id nor eos_token_id")


def measure_revision(
    snapshot_dir: Path, job: RevisionJob, stats_path: Path, scores_path: Path, progress: bool = True
) -> None:
    """Load one revision, run the probes and write its head cache (statistics + scores)."""
    import torch
    import transformers

    from circuitsweep.attention_hook import register
    from circuitsweep.loading import load_model, resolve_device
    from circuitsweep.measure import measure_heads
    from circuitsweep.scores import check_finite, head_scores, loss_halves

    snapshot = read_snapshot(snapshot_dir)
    device = resolve_device(job.device)
    model = load_model(snapshot.path, job.architecture, job.dtype, device, register())
    token_id = first_token_id(job.first_token, model.config)
    vocab = model.config.vocab_size
    if job.probes.token_range[1] > vocab or (token_id is not None and token_id >= vocab):
        raise DataError(
            f"{job.model} {job.revision}: probe token range {list(job.probes.token_range)} or first token {token_id} "
            f"exceeds the vocabulary of {vocab} tokens"
        )
    stats = measure_heads(model, job.probes, token_id, device, progress=progress)
    where = f"{job.model} {job.revision}"
    check_finite(stats, where)
    first_half, second_half = loss_halves(stats)
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
        "in_context_loss_drop": second_half - first_half,
        "versions": {
            "circuitsweep": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
    }
    scores = head_scores(stats)
    write_stats(stats_path, stats, metadata)
    write_table(scores_path, scores, metadata)


def _revision_row(metadata: dict[str, Any]) -> dict[str, Any]:
    row = {name: metadata[name] for name in C.REVISION_COLUMNS if name not in ("first_token_policy",)}
    token_id = metadata.get("first_token_id")
    row["first_token_policy"] = metadata["first_token_policy"] + ("" if token_id is None else f":{token_id}")
    row["weights_sha256"] = metadata.get("weights_sha256")
    return row


def classify_model(
    model: str, score_paths: Sequence[Path], thresholds: Thresholds, heads_out: Path, revisions_out: Path
) -> None:
    """Classify every head of every revision of ``model`` from its cached scores alone."""
    frames, rows = [], []
    for path in score_paths:
        scores, metadata = read_table(path)
        if metadata.get("model") != model:
            raise CacheError(f"{path} belongs to model {metadata.get('model')!r}, not {model!r}")
        keys = {name: metadata[name] for name in ("model", "revision", "step", "tokens")}
        frames.append(scores.with_columns(*[pl.lit(v).alias(k) for k, v in keys.items()]))
        rows.append(_revision_row(metadata))
    heads = pl.concat(frames).select(*C.KEY_COLUMNS, *C.HEAD_SCORE_COLUMNS).sort("tokens", "step", "layer", "head")
    classified = classify_heads(heads, thresholds)
    run = {"model": model, "thresholds": json.loads(json.dumps(thresholds.__dict__))}
    write_table(heads_out, classified, run)
    write_table(revisions_out, pl.DataFrame(rows).sort("tokens", "step"), run)
