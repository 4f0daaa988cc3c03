"""The natural-text induction probe (docs/methods.md, natural-text variant).

Real text shows whether a head's synthetic class (above all "first", the BOS
class) is an artifact of random tokens. Per document of the user's corpus,
tokenized by the model's own tokenizer (or, for a batch shared across
tokenizers, ``tokenizer_model``'s, as the study did) with its default special
tokens unless ``special_tokens: none``, the first
``seq_len`` tokens form one example when they hold a repeated token pair:
scanning i = m, m+1, .. up to T-3-min_filler, with t = ids[i] and s = ids[i+1]
(both >= ``min_token_id``, t != s), the query k is the last occurrence of t at
or after i+1+min_filler; the first such i is taken. Targets as on the
synthetic probe with p = i and q = k; the baseline is 50 positions per example
from one ``RandomState(baseline_seed)``, drawn over the examples in order.

The batch depends only on the tokenizer and these settings, so it is built
once (:func:`build_natural_batch`, rule ``natural_batch``) and read by every
revision of every model that shares it (:func:`read_natural_batch` checks it
against the job's settings and the revision's tokenizer files first).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from circuitsweep.config.probes import LOCAL_OFFSETS, NaturalTextSettings
from circuitsweep.errors import CacheError, DataError, SnapshotError
from circuitsweep.io import contracts as C
from circuitsweep.io.corpus import corpus_files, corpus_sha256

#: Corpus file types: one document per .txt file, per .jsonl line, per .parquet row.
#: Files that define a tokenizer's vocabulary and rules: their hashes identify it.
TOKENIZER_FILES: tuple[str, ...] = (
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
    "spiece.model",
)
#: Documents tokenized per call of the (fast) tokenizer.
TOKENIZE_CHUNK = 64


# --- Corpus ------------------------------------------------------------------


def _field(row: Any, field: str, where: str) -> str:
    if not isinstance(row, dict) or field not in row:
        raise DataError(f"{where}: no {field!r} field (set probes.natural_text.text_field)")
    value = row[field]
    if not isinstance(value, str):
        raise DataError(f"{where}: field {field!r} is {type(value).__name__}, not text")
    return value


def _text(path: Path, data: bytes, number: int | None = None) -> str:
    """``data`` decoded as UTF-8; :class:`DataError` naming the file for anything else (no replacement characters)."""
    where = f"{path}:{number}" if number is not None else str(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{where}: not UTF-8 text (byte {error.start} is {data[error.start]:#04x}); "
            "convert it to UTF-8 or remove it from the corpus"
        ) from None
    if "\x00" in text:
        raise DataError(f"{where}: holds NUL bytes, a binary file rather than text; remove it from the corpus")
    return text


def _file_documents(path: Path, text_field: str) -> Iterator[str]:
    if path.suffix == ".txt":
        yield _text(path, path.read_bytes())
    elif path.suffix == ".jsonl":
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                line = _text(path, raw, number)
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise DataError(f"{path}:{number}: not a JSON line ({error})") from error
                    yield _field(row, text_field, f"{path}:{number}")
    else:
        try:
            frame = pl.read_parquet(path, columns=[text_field])
        except Exception as error:  # noqa: BLE001 - polars raises several types for a bad file or column
            raise DataError(f"{path}: cannot read column {text_field!r} ({error})") from error
        yield from (text for text in frame[text_field].to_list() if isinstance(text, str))


def _dataset_documents(name: str, split: str, text_field: str) -> Iterator[str]:
    try:
        import datasets
    except ImportError as error:
        raise DataError(
            f"corpus hf:{name} needs the datasets package (pip install -e '.[natural]', or pip install datasets)"
        ) from error
    try:
        if Path(name).is_dir():
            loaded = datasets.load_from_disk(name)
            rows = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        else:  # the HF cache, else streamed from the Hub where it is reachable
            rows = datasets.load_dataset(name, split=split, streaming=True)
        for index, row in enumerate(rows):
            yield _field(row, text_field, f"hf:{name} row {index}")
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001 - datasets raises many types for a missing dataset or split
        raise DataError(f"corpus hf:{name} (split {split}): {error}") from error


def iter_documents(corpus: str, text_field: str = "text", split: str = "train") -> Iterator[str]:
    """The documents of ``corpus`` in a fixed order (files sorted by path).

    corpus: a file or folder of ``corpus.CORPUS_SUFFIXES`` files, or ``hf:<name or path>``.
    """
    if corpus.startswith("hf:"):
        yield from _dataset_documents(corpus[3:], split, text_field)
        return
    for path in corpus_files(corpus):
        yield from _file_documents(path, text_field)


# --- Examples ------------------------------------------------------------------


def find_repeat(ids: Sequence[int], settings: NaturalTextSettings) -> tuple[int, int] | None:
    """The example's first occurrence i and query k (docs/methods.md), or None if the text has no such pair.

    ``ids``: the example's ``seq_len`` token ids. k is at least 1 + max(LOCAL_OFFSETS),
    so every local target is a real position after 0.
    """
    length = len(ids)
    for i in range(settings.min_first_position, length - 3 - settings.min_filler + 1):
        t, s = ids[i], ids[i + 1]
        if t < settings.min_token_id or s < settings.min_token_id or t == s:
            continue
        earliest = max(i + 1 + settings.min_filler, 1 + max(LOCAL_OFFSETS))
        for k in range(length - 1, earliest - 1, -1):
            if ids[k] == t:
                return i, k
    return None


def natural_baselines(
    first: Sequence[int], query: Sequence[int], n_baseline: int, seed: int, max_draws: int
) -> np.ndarray:
    """Baseline key positions per example, ``[N, n_baseline]`` int64 (docs/methods.md).

    One ``RandomState(seed)`` over the examples in order; per example at most
    ``max_draws`` draws of ``randint(1, k)``, keeping those outside
    {0, k, k-1, i, i+1, k-5..k-2} and not yet kept, until ``n_baseline``; an
    example left short is padded with its last kept position (1 if none).
    """
    rng = np.random.RandomState(seed)
    out = np.empty((len(query), n_baseline), dtype=np.int64)
    for row, (i, k) in enumerate(zip(first, query, strict=True)):
        avoid = {0, k, k - 1, i, i + 1, *(k - d for d in LOCAL_OFFSETS)}
        kept: list[int] = []
        for _ in range(max_draws):
            r = int(rng.randint(1, k))
            if r not in avoid and r not in kept:
                kept.append(r)
            if len(kept) >= n_baseline:
                break
        kept += [kept[-1] if kept else 1] * (n_baseline - len(kept))
        out[row] = kept
    return out


@dataclass(frozen=True)
class NaturalBatch:
    """A tokenized natural-text batch: tokens ``[N, T]``; first (i), query (k) ``[N]``; baseline ``[N, n_baseline]``."""

    tokens: torch.Tensor
    first: torch.Tensor
    query: torch.Tensor
    baseline: torch.Tensor

    def target_positions(self) -> torch.Tensor:
        """Key positions of each example's targets, ``[N, len(TARGETS), len(LOCAL_OFFSETS)]``.

        Single-position targets repeat their position, so the mean over the last
        axis is the target's attention for every target, local included.
        """
        i, k = self.first, self.query
        single = {"first": torch.zeros_like(k), "induction": i + 1, "duplicate": i, "previous": k - 1, "self": k}
        local = torch.stack([k - d for d in LOCAL_OFFSETS], dim=-1)
        width = len(LOCAL_OFFSETS)
        parts = [local if t == "local" else single[t][:, None].expand(-1, width) for t in C.TARGETS]
        return torch.stack(parts, dim=1)

    def next_tokens(self) -> torch.Tensor:
        """The token each query should predict: the one after the first occurrence, ``tokens[i + 1]``, ``[N]``."""
        return self.tokens.gather(1, (self.first + 1)[:, None])[:, 0]


def build_natural_batch(
    documents: Iterator[str], tokenizer: Any, settings: NaturalTextSettings, corpus_name: str
) -> tuple[NaturalBatch, dict[str, int]]:
    """The first ``n_examples`` usable documents as a batch, and counts of what was scanned.

    Raises :class:`DataError` naming how many examples the corpus yielded when too few.
    """
    n, length = settings.n_examples, settings.seq_len
    rows: list[list[int]] = []
    first: list[int] = []
    query: list[int] = []
    counts = {"documents": 0, "too_short": 0, "no_repeat": 0}

    def take(texts: list[str]) -> None:
        special = settings.special_tokens == "default"
        encoded = tokenizer(texts, add_special_tokens=special, truncation=True, max_length=length)["input_ids"]
        for ids in encoded:
            counts["documents"] += 1
            if len(rows) >= n:
                return
            if len(ids) < length:
                counts["too_short"] += 1
                continue
            found = find_repeat(ids, settings)
            if found is None:
                counts["no_repeat"] += 1
                continue
            rows.append(list(ids))
            first.append(found[0])
            query.append(found[1])

    chunk: list[str] = []
    for text in documents:
        chunk.append(text)
        if len(chunk) == TOKENIZE_CHUNK:
            take(chunk)
            chunk = []
            if len(rows) >= n:
                break
    if chunk and len(rows) < n:
        take(chunk)
    if len(rows) < n:
        raise DataError(
            f"natural-text corpus {corpus_name}: found {len(rows)} usable examples, {n} asked "
            f"(probes.natural_text.n_examples); of {counts['documents']} documents {counts['too_short']} have fewer "
            f"than {length} tokens and {counts['no_repeat']} no repeated token pair; add text or ask for fewer"
        )
    baseline = natural_baselines(first, query, settings.n_baseline, settings.baseline_seed, settings.max_draws)
    batch = NaturalBatch(
        tokens=torch.tensor(rows, dtype=torch.int64),
        first=torch.tensor(first, dtype=torch.int64),
        query=torch.tensor(query, dtype=torch.int64),
        baseline=torch.from_numpy(baseline),
    )
    counts["examples"] = n
    return batch, counts


# --- Tokenizer and batch files --------------------------------------------------


def tokenizer_fingerprint(snapshot: Path) -> str:
    """sha256 over the snapshot's tokenizer files (names and bytes); they identify its tokenizer."""
    digest = hashlib.sha256()
    found = False
    for name in TOKENIZER_FILES:
        path = Path(snapshot) / name
        if path.is_file():
            found = True
            digest.update(name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    if not found:
        raise SnapshotError(
            f"{snapshot} ships no tokenizer ({', '.join(TOKENIZER_FILES)}); the natural-text probe needs the "
            "model's own tokenizer"
        )
    return digest.hexdigest()


def load_tokenizer(snapshot: Path) -> Any:
    """The snapshot's tokenizer (never with remote code)."""
    from transformers import AutoTokenizer

    tokenizer_fingerprint(snapshot)  # a clear error when there is none
    try:
        return AutoTokenizer.from_pretrained(str(snapshot))
    except (OSError, ValueError) as error:
        raise SnapshotError(f"{snapshot}: cannot load its tokenizer ({error})") from error


def write_natural_batch(path: Path, batch: NaturalBatch, metadata: dict[str, Any]) -> None:
    from circuitsweep.io.stats import write_stats

    tensors = {
        C.NATURAL_TOKENS: batch.tokens,
        C.NATURAL_FIRST: batch.first,
        C.NATURAL_QUERY: batch.query,
        C.NATURAL_BASELINE: batch.baseline,
    }
    write_stats(path, tensors, metadata)


def read_natural_batch(path: Path, settings: NaturalTextSettings, fingerprint: str, model: str) -> NaturalBatch:
    """Read a batch and check that it is the one these settings and this tokenizer make.

    ``fingerprint``: :func:`tokenizer_fingerprint` of the reading revision; ``model``: the
    reading model. A batch shared across tokenizers (``tokenizer_model`` set, read by
    another model) is checked to come from ``tokenizer_model`` instead of this tokenizer.
    The corpus location is not compared (the rule rebuilds the batch when it changes).
    """
    from circuitsweep.io.stats import read_stats

    tensors, metadata = read_stats(path)
    built = {k: v for k, v in (metadata.get("settings") or {}).items() if k != "corpus"}
    wanted = {k: v for k, v in settings.batch_dict().items() if k != "corpus"}
    if built != wanted:
        changed = sorted(k for k in set(built) | set(wanted) if built.get(k) != wanted.get(k))
        raise CacheError(
            f"{path} was built with other natural_text settings ({', '.join(changed)}); delete it and rerun"
        )
    builder = settings.tokenizer_model
    if builder is not None and model != builder:
        if str(metadata.get("source", "")).split(" ")[0] != builder:
            raise CacheError(f"{path} was tokenized by {metadata.get('source')}, not by {builder}; delete it and rerun")
    elif metadata.get("tokenizer_sha256") != fingerprint:
        raise CacheError(
            f"{path} was tokenized by {metadata.get('source')}, whose tokenizer files differ from this revision's; "
            "give this model its own probes.natural_text.tokenizer name"
        )
    try:
        batch = NaturalBatch(
            tokens=tensors[C.NATURAL_TOKENS],
            first=tensors[C.NATURAL_FIRST],
            query=tensors[C.NATURAL_QUERY],
            baseline=tensors[C.NATURAL_BASELINE],
        )
    except KeyError as error:
        raise CacheError(f"{path} lacks tensor {error}; delete it and rerun") from error
    if batch.tokens.shape != (settings.n_examples, settings.seq_len):
        raise CacheError(f"{path} holds a batch of shape {tuple(batch.tokens.shape)}, not the configured one")
    return batch


def revision_natural_batch(
    path: Path | None, settings: NaturalTextSettings, snapshot: Path, model: str, revision: str, model_config: Any
) -> NaturalBatch:
    """The natural batch that revision ``revision`` of ``model`` reads, checked before any forward pass.

    :func:`read_natural_batch` against the settings and this snapshot's tokenizer (or, for a batch
    shared across tokenizers, its builder), then every token id against the ``vocab_size`` of the loaded
    model's (text) config, ``model_config``.
    The measurement and the final-revision ablation both read their batch through here, so a shared
    batch is accepted (or refused) by both alike.
    """
    if path is None:
        raise DataError(f"{model} {revision}: probes.natural_text is set but no natural batch was given")
    batch = read_natural_batch(path, settings, tokenizer_fingerprint(snapshot), model)
    vocab_size = getattr(model_config.get_text_config(), "vocab_size", None)
    if vocab_size is not None and int(batch.tokens.max()) >= vocab_size:
        raise DataError(
            f"{model} {revision}: the natural batch {settings.tokenizer!r} holds token id "
            f"{int(batch.tokens.max())}, beyond this model's vocabulary of {vocab_size}"
        )
    return batch


def natural_batch(snapshot_dir: Path, settings: dict[str, Any], output: Path) -> None:
    """Stage of rule ``natural_batch``: tokenize the corpus with one snapshot's tokenizer and write the batch."""
    from circuitsweep.checkpoints.snapshots import read_snapshot
    from circuitsweep.io.stats import software_versions

    snapshot = read_snapshot(snapshot_dir)
    values = {k: v for k, v in settings.items() if k not in ("batch", "model", "corpus_sha256")}
    natural = NaturalTextSettings(tokenizer=settings["batch"], **values)
    digest = corpus_sha256(natural.corpus)
    if "corpus_sha256" in settings and settings["corpus_sha256"] != digest:
        raise DataError(f"natural-text corpus {natural.corpus} changed since the run was planned; run it again")
    tokenizer = load_tokenizer(snapshot.path)
    documents = iter_documents(natural.corpus, natural.text_field, natural.split)
    batch, counts = build_natural_batch(documents, tokenizer, natural, natural.corpus)
    metadata = {
        "batch": settings["batch"],
        "source": f"{settings['model']} {snapshot.revision}",
        "settings": natural.batch_dict(),
        "corpus_sha256": digest,
        "tokenizer_sha256": tokenizer_fingerprint(snapshot.path),
        "counts": counts,
        "versions": software_versions(),
    }
    write_natural_batch(output, batch, metadata)


# --- Measurement ------------------------------------------------------------------


def natural_statistics(
    model: Any, batch: NaturalBatch, batch_size: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """Per-head mean attention of each example's query to its targets and baseline (names in contracts).

    ``model`` is loaded with the observed attention; no first-token policy is
    applied (the text is measured as tokenized).
    """
    from circuitsweep.heads.attention_hook import observing, run_until_stop
    from circuitsweep.heads.mlp_chunks import chunked_mlps
    from circuitsweep.heads.observers import PerSequenceObserver

    n_layers = model.config.num_hidden_layers
    if int(batch.tokens.max()) >= model.config.vocab_size:
        raise DataError(
            f"natural-text batch holds token id {int(batch.tokens.max())}, beyond the vocabulary of "
            f"{model.config.vocab_size} tokens"
        )
    observer = PerSequenceObserver(n_layers, C.STAT_NATURAL_TARGET_MEAN, C.STAT_NATURAL_BASELINE_MEAN)
    targets = batch.target_positions()
    base = model.base_model
    with torch.inference_mode(), chunked_mlps(model), observing(observer, stop_after=n_layers - 1):
        for start in range(0, len(batch.tokens), batch_size):
            part = slice(start, start + batch_size)
            observer.start_batch(batch.query[part], targets[part], batch.baseline[part])
            tokens = batch.tokens[part].to(device)
            run_until_stop(lambda tokens=tokens: base(input_ids=tokens, use_cache=False))
    return observer.result()


def natural_scores(stats: dict[str, torch.Tensor]) -> pl.DataFrame:
    """One row per head: ``NATURAL_SCORE_COLUMNS`` (selectivity = ratio of means, baseline floored at 1e-8)."""
    from circuitsweep.heads.scores import BASELINE_FLOOR

    baseline = stats[C.STAT_NATURAL_BASELINE_MEAN].double()
    sel = stats[C.STAT_NATURAL_TARGET_MEAN].double() / baseline.clamp_min(BASELINE_FLOOR)[..., None]
    n_layers, n_heads, _ = sel.shape
    layer, head = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    frame: dict[str, Any] = {"layer": layer.ravel().astype(np.int32), "head": head.ravel().astype(np.int32)}
    for index, target in enumerate(C.TARGETS):
        frame[f"sel_{target}"] = sel[..., index].numpy().ravel()
    frame["baseline_attention"] = baseline.numpy().ravel()
    return pl.DataFrame(frame).select(C.NATURAL_SCORE_COLUMNS)
