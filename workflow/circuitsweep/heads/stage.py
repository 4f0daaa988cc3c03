"""The head stages of the sweep, one function per Snakemake rule of the same name.

- :func:`measure_heads`: load one revision, run the probes, write its head cache;
- :func:`classify_heads`: classify every head of one model from its caches alone;
- :func:`head_tables`: the final heads, emergence and milestone tables of every model.

Each reads its inputs, does one stage of DESIGN.md section 2, and writes the
output paths it is given, atomically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from circuitsweep import contracts as C
from circuitsweep.checkpoints.snapshots import read_snapshot
from circuitsweep.errors import CacheError, DataError, SnapshotError
from circuitsweep.heads.classify import Thresholds, head_classes
from circuitsweep.heads.emergence import emergence_curves, milestones
from circuitsweep.heads.probe_settings import ProbeSettings
from circuitsweep.stats_io import software_versions, write_stats
from circuitsweep.table_io import read_table, write_csv, write_markdown, write_table


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


def _config_token_id(model_config: Any, attribute: str) -> int | None:
    value = getattr(model_config, attribute, None)
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else int(value)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def special_token_id(snapshot: Path, name: str) -> int | None:
    """The id of the tokenizer's special token ``name`` (e.g. ``cls_token``), read from a snapshot's files.

    The token's text comes from ``tokenizer_config.json`` or ``special_tokens_map.json``;
    its id from ``tokenizer_config.json``'s ``added_tokens_decoder``, ``tokenizer.json``
    (added tokens, then the model vocabulary) or ``vocab.txt`` (line number). None if
    the files do not say. No tokenizer code is run.
    """
    snapshot = Path(snapshot)
    tokenizer_config = _read_json(snapshot / "tokenizer_config.json")
    text = tokenizer_config.get(name) or _read_json(snapshot / "special_tokens_map.json").get(name)
    if isinstance(text, dict):
        text = text.get("content")
    if not isinstance(text, str) or not text:
        return None
    for token_id, token in (tokenizer_config.get("added_tokens_decoder") or {}).items():
        if isinstance(token, dict) and token.get("content") == text:
            return int(token_id)
    tokenizer = _read_json(snapshot / "tokenizer.json")
    for token in tokenizer.get("added_tokens") or []:
        if isinstance(token, dict) and token.get("content") == text and "id" in token:
            return int(token["id"])
    vocab = (tokenizer.get("model") or {}).get("vocab")
    if isinstance(vocab, dict) and text in vocab:
        return int(vocab[text])
    vocab_file = snapshot / "vocab.txt"
    if vocab_file.is_file():
        for index, line in enumerate(vocab_file.read_text(encoding="utf-8").splitlines()):
            if line == text:
                return index
    return None


def first_token_id(policy: dict[str, Any], model_config: Any, snapshot: Path | None = None) -> int | None:
    """The token id placed at position 0: None (keep the random token), fixed, or BOS.

    Policy ``bos`` resolves to the config's ``bos_token_id``; failing that to
    the CLS token (an encoder's position-0 token: the config's
    ``cls_token_id``, else the ``cls_token`` of the tokenizer files in
    ``snapshot``); failing that to ``eos_token_id``.
    """
    if policy["policy"] == "none":
        return None
    if policy["policy"] == "fixed":
        return int(policy["token_id"])
    value = _config_token_id(model_config, "bos_token_id")
    if value is None:
        value = _config_token_id(model_config, "cls_token_id")
    if value is None and snapshot is not None:
        value = special_token_id(snapshot, "cls_token")
    if value is None:
        value = _config_token_id(model_config, "eos_token_id")
    if value is None:
        raise SnapshotError(
            "first_token policy bos: neither the model config nor the tokenizer files give a "
            "bos_token_id, a CLS token or an eos_token_id"
        )
    return value


def measure_heads(
    snapshot_dir: Path, job: RevisionJob, stats_path: Path, scores_path: Path, progress: bool = True
) -> None:
    """Load one revision, run the probes and write its head cache (statistics + scores)."""
    import torch

    from circuitsweep.checkpoints.loading import load_model, resolve_device
    from circuitsweep.heads.attention_hook import register
    from circuitsweep.heads.measure import head_statistics
    from circuitsweep.heads.scores import check_finite, head_scores, loss_halves

    snapshot = read_snapshot(snapshot_dir)
    device = resolve_device(job.device)
    model = load_model(snapshot.path, job.architecture, job.dtype, device, register())
    token_id = first_token_id(job.first_token, model.config, snapshot.path)
    vocab = model.config.vocab_size
    if job.probes.token_range[1] > vocab or (token_id is not None and token_id >= vocab):
        raise DataError(
            f"{job.model} {job.revision}: probe token range {list(job.probes.token_range)} or first token {token_id} "
            f"exceeds the vocabulary of {vocab} tokens"
        )
    started = time.perf_counter()
    stats = head_statistics(model, job.probes, token_id, device, progress=progress)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    forward_seconds = time.perf_counter() - started
    where = f"{job.model} {job.revision}"
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
    }
    valid, total = (int(v) for v in stats[C.STAT_VALID_SEQUENCES])
    metadata["probe_protocol"] = job.probes.protocol
    metadata["valid_sequences"] = valid
    scores = head_scores(stats)
    print(f"{where}: induction probe {job.probes.protocol}, {valid} of {total} sequences valid")
    write_stats(stats_path, stats, metadata)
    write_table(scores_path, scores, metadata)


def _revision_row(metadata: dict[str, Any]) -> dict[str, Any]:
    row = {name: metadata[name] for name in C.REVISION_COLUMNS if name not in ("first_token_policy",)}
    token_id = metadata.get("first_token_id")
    row["first_token_policy"] = metadata["first_token_policy"] + ("" if token_id is None else f":{token_id}")
    row["weights_sha256"] = metadata.get("weights_sha256")
    return row


def classify_heads(
    model: str, score_paths: Sequence[Path], thresholds: Thresholds, heads_out: Path, revisions_out: Path
) -> None:
    """Classify every head of every revision of ``model`` from its cached scores alone."""
    frames, rows = [], []
    protocols: dict[str, Path] = {}
    for path in score_paths:
        scores, metadata = read_table(path)
        if metadata.get("model") != model:
            raise CacheError(f"{path} belongs to model {metadata.get('model')!r}, not {model!r}")
        if "probe_protocol" not in metadata:
            raise CacheError(f"{path} predates probe protocols (no probe_protocol in its metadata); delete it, rerun")
        protocols.setdefault(metadata["probe_protocol"], path)
        if len(protocols) > 1:
            (a, first), (b, second) = protocols.items()
            raise CacheError(f"model {model}: {first} was measured with probe protocol {a}, {second} with {b}")
        keys = {name: metadata[name] for name in ("model", "revision", "step", "tokens")}
        frames.append(scores.with_columns(*[pl.lit(v).alias(k) for k, v in keys.items()]))
        rows.append(_revision_row(metadata))
    heads = pl.concat(frames).select(*C.KEY_COLUMNS, *C.HEAD_SCORE_COLUMNS).sort("tokens", "step", "layer", "head")
    classified = head_classes(heads, thresholds)
    run = {
        "model": model,
        "thresholds": json.loads(json.dumps(thresholds.__dict__)),
        "probe_protocol": next(iter(protocols), None),
    }
    write_table(heads_out, classified, run)
    losses = {name: pl.Float64 for name in ("loss_first_half", "loss_second_half", "in_context_loss_drop")}
    write_table(revisions_out, pl.DataFrame(rows, schema_overrides=losses).sort("tokens", "step"), run)


@dataclass(frozen=True)
class HeadTableOutputs:
    """The files :func:`head_tables` writes (the rule's outputs)."""

    heads: Path
    emergence_parquet: Path
    emergence_csv: Path
    milestones_csv: Path
    milestones_md: Path


def head_tables(
    heads_paths: Sequence[Path],
    revisions_paths: Sequence[Path],
    thresholds: Mapping[str, Thresholds],
    out: HeadTableOutputs,
    skip_duplicates: Collection[str] = (),
) -> None:
    """Concatenate the models' classified heads and write heads, emergence and milestone tables.

    Models in ``skip_duplicates`` lose their duplicate revisions (``duplicate_of``
    set) from the emergence curves and milestones; the heads table keeps them.
    """
    per_model = [read_table(p) for p in heads_paths]
    heads = pl.concat([frame for frame, _ in per_model], how="vertical")
    revisions = pl.concat([read_table(p)[0] for p in revisions_paths], how="diagonal_relaxed")
    curves = emergence_curves(heads, revisions, skip_duplicates)
    table = milestones(curves, heads, thresholds)
    # the run behind the final tables: per model, its thresholds and induction-probe protocol
    run = {"models": {meta.get("model"): meta for _, meta in per_model}}
    write_table(out.heads, heads, run)
    write_table(out.emergence_parquet, curves, run)
    write_csv(curves, out.emergence_csv)
    write_csv(table, out.milestones_csv)
    write_markdown(table, out.milestones_md, title="Milestones")
