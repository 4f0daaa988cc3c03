"""The primitive stages of the sweep (docs/primitives.md): what each Snakemake rule runs.

- :func:`measure_loaded_primitives` (needs the loaded model, see
  :mod:`circuitsweep.revision_stage`): hidden-state
  summaries, plus the next-word masses and behavioural word counts for
  generative models that ship a tokenizer, into one safetensors shard with the
  run's metadata (including the model's parameter count).
- :func:`score_revision_primitives` (cache only): the revision's tables.
- :func:`primitive_tables`: all revisions' tables stacked into the final ones.

Toy models, which ship no tokenizer, are read through :class:`HashWordEncoder`;
their gaps exercise the pipeline but carry no semantics (docs/primitives.md).
Any other model needs its tokenizer: without one, :func:`word_encoding` refuses
the job rather than hash its words into gaps without meaning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from circuitsweep.checkpoints.run_dir import has_tokenizer, no_tokenizer
from circuitsweep.config.stimuli import load_stimuli
from circuitsweep.errors import CacheError, SnapshotError
from circuitsweep.io.cache_check import CACHE_SCHEMA_VERSION, SCHEMA_KEY, settings_digest, verify_shard
from circuitsweep.io.tables import write_table
from circuitsweep.primitives import contract as K
from circuitsweep.primitives.tables import PrimitiveTables, RevisionIdentity, concat_tables, write_tables


@dataclass(frozen=True)
class PrimitiveJob:
    """What one primitive measurement needs besides its snapshot and stimuli."""

    model: str
    revision: str
    step: int
    tokens: int
    architecture: str
    dtype: str
    device: str
    token_range: tuple[int, int]
    first_token: dict[str, Any]
    batch_size: int
    behaviour: dict[str, Any] | None
    #: The planned weights fingerprint of a run_dir checkpoint (None for other sources); in the rule's
    #: params so that an overwritten checkpoint is measured again.
    weights_sha256: str | None = None
    #: ``cache_check.settings_digest`` of the settings as planned, recorded in the shard (``is_measured``)
    settings_sha256: str | None = None
    #: Toy sources only (``primitives.jobs.primitive_settings``): without a tokenizer, words are hashed to token
    #: ids, a demonstration without meaning; any other model without a tokenizer is refused (:func:`word_encoding`).
    hash_words: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PrimitiveJob:
        """The job of the settings the plan gave (``primitives.jobs.primitive_settings``)."""
        digest = settings_digest(values)
        values = dict(values)
        values["token_range"] = tuple(values["token_range"])
        return cls(**values, settings_sha256=digest)


def word_encoding(job: PrimitiveJob, snapshot: Path) -> str:
    """How ``job`` reads its stimulus words from ``snapshot``: ``"tokenizer"`` (the snapshot's own), or ``"hash"``
    (a toy without one, ``job.hash_words``).

    Any other snapshot without a tokenizer is a :class:`SnapshotError` naming the model and the folder, raised
    before the revision is loaded: hashed words would give gaps, CIs and p-values that mean nothing.
    """
    if has_tokenizer(snapshot):
        return "tokenizer"
    if job.hash_words:
        return "hash"
    raise SnapshotError(no_tokenizer(job.model, snapshot))


def build_tokenizer(snapshot: Path) -> Any:
    """The snapshot's tokenizer (no remote code); one that cannot be built is a :class:`SnapshotError`."""
    import transformers

    try:
        return transformers.AutoTokenizer.from_pretrained(snapshot, trust_remote_code=False)
    except Exception as error:  # transformers raises many types (OSError, ValueError, KeyError, ...)
        detail = " ".join(str(error).split())[:300]
        raise SnapshotError(
            f"{snapshot}: the tokenizer files cannot be built ({type(error).__name__}: {detail}); "
            "check the snapshot's tokenizer files, or delete the snapshot and rerun"
        ) from error


def measure_loaded_primitives(model: Any, snapshot: Any, job: PrimitiveJob, stimuli_path: Path, out: Path) -> None:
    """Measure the primitive representations (and behaviour) of an already loaded revision; write the shard.

    ``model``: the revision's model on ``job.device`` (its attention plain SDPA
    outside an observing block, so the head job's model serves as it is);
    ``snapshot``: the ``Snapshot`` record it was loaded from (commit, tokenizer files).
    """
    import time

    import torch

    from circuitsweep.checkpoints.loading import resolve_device
    from circuitsweep.heads.stage import first_token_id
    from circuitsweep.io.stats import software_versions, write_stats
    from circuitsweep.primitives.behaviour import SamplingSettings, measure_behaviour
    from circuitsweep.primitives.encoders import HashWordEncoder, TokenizerEncoder
    from circuitsweep.primitives.measure import measure_primitives
    from circuitsweep.primitives.nextword import measure_next_word

    stimuli = load_stimuli(stimuli_path)
    device = resolve_device(job.device)
    started = time.perf_counter()
    tokenizer = None
    if word_encoding(job, snapshot.path) == "tokenizer":
        tokenizer = build_tokenizer(snapshot.path)
        encoder: Any = TokenizerEncoder(tokenizer)
        encoding = "tokenizer"
    else:
        low, high = job.token_range
        encoder = HashWordEncoder(
            low,
            high,
            first_token_id=first_token_id(
                job.first_token, model.config, snapshot.path, model=job.model, revision=job.revision
            ),
        )
        encoding = f"hash[{low},{high})"
    tensors = measure_primitives(model, encoder, stimuli, batch_size=job.batch_size, device=device)
    if tokenizer is not None and model.can_generate():
        tensors.update(measure_next_word(model, tokenizer, stimuli, device=device))
    if job.behaviour is not None and tokenizer is not None and model.can_generate():
        settings = SamplingSettings(**job.behaviour)
        tensors.update(measure_behaviour(model, tokenizer, stimuli, settings, device=device).tensors)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    forward_seconds = time.perf_counter() - started
    metadata = {
        **{k: v for k, v in asdict(job).items() if k not in ("token_range",)},
        "token_range": list(job.token_range),
        "encoding": encoding,
        "behaviour_measured": K.BEHAVIOUR_PHENOMENOLOGICAL in tensors,
        "next_word_measured": K.NEXTWORD_PHENOMENOLOGICAL in tensors,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "stimuli_sha256": stimuli.fingerprint(),
        "forward_seconds": forward_seconds,
        "commit": snapshot.commit,
        "versions": software_versions(),
        SCHEMA_KEY: CACHE_SCHEMA_VERSION,
    }
    write_stats(out, tensors, metadata)


def score_revision_primitives(
    shard: Path,
    stimuli_path: Path,
    scoring: dict[str, Any],
    out_dir: Path,
    expected: dict[str, Any] | None = None,
) -> None:
    """Score one revision's primitive shard (no model) into the per-revision tables.

    ``expected``: the metadata the plan expects of the shard (its stimuli
    fingerprint is added here); a shard that differs is a :class:`CacheError`.
    """
    from circuitsweep.io.stats import read_stat_arrays
    from circuitsweep.primitives.scoring import ScoringSettings, score_primitives

    stimuli = load_stimuli(stimuli_path)
    if expected is not None:
        verify_shard(shard, {**expected, "stimuli_sha256": stimuli.fingerprint()})
    cached, metadata = read_stat_arrays(shard)
    for key in ("model", "revision", "tokens"):
        if key not in metadata:
            raise CacheError(f"{shard}: metadata lacks {key!r}; delete it and rerun")
    identity = RevisionIdentity(metadata["model"], metadata["revision"], metadata["tokens"], metadata.get("parameters"))
    tables = score_primitives(cached, stimuli, identity, ScoringSettings(**scoring))
    run = {"model": identity.model, "revision": identity.revision, "scoring": scoring}
    for field, name in K.REVISION_TABLES.items():
        write_table(Path(out_dir) / name, getattr(tables, field), run)


def read_revision_tables(folder: Path) -> PrimitiveTables:
    """The tables :func:`score_revision_primitives` wrote into ``folder``."""
    from circuitsweep.errors import InputError
    from circuitsweep.io.tables import read_table

    missing = [name for name in K.REVISION_TABLES.values() if not (Path(folder) / name).is_file()]
    if missing:
        raise InputError(f"{folder} holds no {', '.join(missing)}: not a folder that score-primitives wrote")
    return PrimitiveTables(**{field: read_table(Path(folder) / name)[0] for field, name in K.REVISION_TABLES.items()})


def primitive_tables(folders: Sequence[Path], out_dir: Path) -> None:
    """Stack every revision's tables (sorted by model and tokens) into the final primitive tables.

    Also writes the across-model tables of :mod:`circuitsweep.primitives.scaling`.
    """
    from circuitsweep.io import tables as table_io
    from circuitsweep.primitives.scaling import composition_agreement, scaling_table

    stacked = concat_tables([read_revision_tables(folder) for folder in folders])
    order = ["model", "tokens", "revision"]
    ordered = {field: getattr(stacked, field).sort(order, maintain_order=True) for field in K.REVISION_TABLES}
    tables = PrimitiveTables(**ordered)
    write_tables(tables, out_dir)
    out_dir = Path(out_dir)
    scaling = scaling_table(tables.gaps)
    table_io.write_csv(scaling, out_dir / K.SCALING_CSV)
    table_io.write_markdown(scaling, out_dir / K.SCALING_MD, title="Primitive gap of each model's last revision")
    agreement = composition_agreement(tables.composition_detail)
    table_io.write_csv(agreement, out_dir / K.AGREEMENT_CSV)
    table_io.write_markdown(
        agreement, out_dir / K.AGREEMENT_MD, title="Compositions matched in at least 3 of every 4 models"
    )


def gap_summary(gaps: pl.DataFrame) -> pl.DataFrame:
    """The summary rows of the gap table, one per model, revision and score kind, in token order."""
    return gaps.filter(pl.col("layer") == K.SUMMARY).sort("model", "score_kind", "tokens")
