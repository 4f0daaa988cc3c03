"""The induction probe's protocols (DESIGN.md 3): the study's procedure draw for draw, and ``clean``."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from planted import FIRST_TOKEN, STUDY_THRESHOLDS, VOCAB, planted_model

from circuitsweep.errors import DataError
from circuitsweep.heads.attention_hook import register
from circuitsweep.heads.classify import head_classes
from circuitsweep.heads.measure import ProbeSettings, head_statistics
from circuitsweep.heads.probes import induction_probe
from circuitsweep.heads.scores import head_scores
from circuitsweep.io import contracts as C


def plain_study_probe(n, T, lo, hi, seed, baseline_seed=0, n_baseline=50):
    """DESIGN.md 3 read line by line: one sequence at a time, one draw at a time.

    Returns the token array, the valid mask, each sequence's B and the baseline positions.
    """
    rng = np.random.RandomState(seed)
    tokens, valid, targets = [], [], []
    for _ in range(n):
        seq = rng.randint(lo, hi, size=T)
        a, b = rng.choice(np.arange(lo, hi), size=2, replace=False)
        p = rng.randint(20, T // 2)
        seq[p] = a
        seq[p + 1] = b
        for k in range(T):
            if seq[k] == a and k != p:
                seq[k] = rng.randint(lo, hi)
        for k in range(T):
            if seq[k] == b and k != p + 1:
                seq[k] = rng.randint(lo, hi)
        seq[T - 1] = a
        tokens.append(list(seq))
        targets.append(int(b))
        valid.append(sum(1 for k in range(T - 1) if seq[k] == b) == 1)
    q = T - 1
    rng = np.random.RandomState(baseline_seed)
    kept = []
    while len(kept) < n_baseline:
        r = rng.randint(1, q)
        if r in (0, q, q - 1) or q - 5 <= r <= q - 2 or r in kept:
            continue
        kept.append(r)
    return np.array(tokens), np.array(valid), np.array(targets), np.array(kept)


@pytest.mark.parametrize(
    ("n", "T", "token_range", "seed"),
    [(40, 256, (100, 10000), 42), (60, 64, (2, 64), 0), (50, 48, (2, 8), 7), (30, 100, (5, 40), 123)],
)
def test_study_probe_equals_plain_reading_of_design(n, T, token_range, seed):
    """Tokens, valid mask and baseline equal a one-draw-at-a-time implementation of DESIGN.md 3."""
    tokens, valid, _, baseline = plain_study_probe(n, T, *token_range, seed, baseline_seed=seed + 1, n_baseline=30)
    probe = induction_probe(n, T, token_range, seed, 20, None, protocol="xu2026", n_baseline=30, baseline_seed=seed + 1)
    np.testing.assert_array_equal(probe.tokens.numpy(), tokens)
    np.testing.assert_array_equal(probe.valid.numpy(), valid)
    np.testing.assert_array_equal(probe.baseline.numpy(), baseline)
    np.testing.assert_array_equal(probe.baseline_rows(slice(3, 9)).numpy(), np.tile(baseline, (6, 1)))


def test_study_baseline_at_study_geometry():
    """At T = 256 the 50 fixed positions are the study's rejection sample from RandomState(0)."""
    *_, baseline = plain_study_probe(1, 256, 100, 10000, 42)
    probe = induction_probe(1, 256, (100, 10000), 42)
    assert probe.baseline.tolist() == baseline.tolist() and len(set(baseline.tolist())) == 50


def test_stray_a_is_kept_and_invalid_sequences_are_marked():
    """On a small vocabulary the study's probe keeps re-created A's; B seen twice marks a sequence invalid."""
    n, T = 200, 48
    probe = induction_probe(n, T, (2, 8), 3, protocol="xu2026", n_baseline=20)
    tokens, p = probe.tokens.numpy(), probe.first_a.numpy()
    a = tokens[:, -1]
    b = tokens[np.arange(n), p + 1]
    strays = (tokens[:, :-1] == a[:, None]).sum(1) - 1  # A's before q besides the one at p
    assert (strays > 0).sum() > 10
    assert (tokens[np.arange(n), p] == a).all()
    b_count = (tokens[:, :-1] == b[:, None]).sum(1)
    np.testing.assert_array_equal(probe.valid.numpy(), b_count == 1)
    assert 0 < probe.n_valid < n
    clean = induction_probe(n, T, (2, 8), 3, protocol="clean", n_baseline=20)
    ct = clean.tokens.numpy()
    assert ((ct[:, :-1] == ct[:, -1:]).sum(1) == 1).all() and clean.valid.all()


def test_clean_baseline_never_holds_p_or_p_plus_1():
    """Each clean sequence has exactly n_baseline distinct eligible positions, none of them p or p + 1."""
    probe = induction_probe(300, 64, (2, 64), 5, protocol="clean", n_baseline=50)
    rows, p = probe.baseline.numpy(), probe.first_a.numpy()
    assert rows.shape == (300, 50)
    assert not ((rows == p[:, None]) | (rows == p[:, None] + 1)).any()
    assert all(len(set(r)) == 50 for r in rows.tolist())
    assert set(rows.ravel()) <= set(probe.baseline_record.tolist())
    assert rows.max() <= 63 - 6 and rows.min() >= 1


def test_first_token_does_not_change_validity_rule():
    """Position 0 replaced by the first token: the tokens the model sees decide validity."""
    probe = induction_probe(100, 48, (2, 8), 11, first_token=1, n_baseline=20)
    tokens = probe.tokens.numpy()
    assert (tokens[:, 0] == 1).all()
    b = tokens[np.arange(100), probe.first_a.numpy() + 1]
    np.testing.assert_array_equal(probe.valid.numpy(), (tokens[:, :-1] == b[:, None]).sum(1) == 1)


def test_no_valid_sequence_is_an_error():
    """With every sequence invalid, induction selectivity is undefined: say so."""
    # 3 ids, T = 128: B is re-created almost surely in every sequence
    with pytest.raises(DataError, match="no sequence has B exactly once"):
        induction_probe(5, 128, (2, 5), 0, n_baseline=20)


THRESHOLDS = STUDY_THRESHOLDS


@pytest.mark.parametrize(
    ("tied", "winner"),
    [
        (("induction", "first"), "induction"),
        (("first", "previous"), "previous"),
        (("duplicate", "previous"), "previous"),
        (("duplicate", "first"), "duplicate"),
        (("self", "first"), "first"),
        (("local", "self"), "self"),
    ],
)
def test_ties_resolve_in_study_order(tied, winner):
    """Equal top selectivities go to the earlier class of induction, previous, duplicate, first, self, local."""
    values = {f"sel_{t}": 2.0 for t in C.TARGETS}
    values.update({f"sel_{t}": 40.0 for t in tied})
    frame = pl.DataFrame([{**values, "sink_alpha": 0.0}])
    assert head_classes(frame, THRESHOLDS)["class"].item() == winner


def test_circuit_membership_is_the_screen_whatever_the_class():
    """The study's all-head screen: induction selectivity over the circuit cut makes a member even when the
    head's best class is first (its BOS selectivity is larger); below the cut, class induction does not."""
    values = {f"sel_{t}": 1.0 for t in C.TARGETS} | {"sel_induction": 60.0, "sel_first": 70.0}
    frame = pl.DataFrame(
        [
            {**values, "sink_alpha": 0.5},
            {**values, "sel_first": 60.0, "sink_alpha": 0.0},
            {**values, "sel_induction": 40.0, "sel_first": 1.0, "sink_alpha": 0.0},
        ]
    )
    classified = head_classes(frame, THRESHOLDS)
    assert classified["class"].to_list() == ["first", "induction", "induction"]
    assert classified["induction_member"].to_list() == [True, True, False]
    assert classified["induction_selective"].to_list() == [True, True, True]


def planted_probes(protocol: str) -> ProbeSettings:
    return ProbeSettings.from_dict(
        {
            "kind": "random_tokens",
            "protocol": protocol,
            "token_range": [2, VOCAB],
            "batch_size": 16,
            "induction": {
                "n_sequences": 48,
                "seq_len": 256,
                "seed": 42,
                "min_first_position": 20,
                "n_baseline": 50,
                "baseline_seed": 0,
            },
            "repeated": {"n_sequences": 4, "seq_len": 16, "seed": 1},
            "random": {"n_sequences": 4, "seq_len": 16, "seed": 2},
        }
    )


def test_planted_selectivities_equal_hand_computation():
    """Every selectivity of the planted heads equals the study's ratio of means from eager patterns.

    The hand computation uses the plain implementation's tokens, B and baseline:
    induction and duplicate averaged over valid sequences only (p recovered from
    B's single position), the rest and the baseline over all sequences.
    """
    probes = planted_probes("xu2026")
    stats = head_statistics(planted_model(register()), probes, FIRST_TOKEN, torch.device("cpu"), progress=False)
    scores = head_scores(stats)
    tokens, valid, targets, baseline = plain_study_probe(48, 256, 2, VOCAB, 42)
    tokens[:, 0] = FIRST_TOKEN
    valid = np.array([(row[:-1] == b).sum() == 1 for row, b in zip(tokens, targets, strict=True)])
    assert 0 < valid.sum() < 48  # the planted vocabulary is small: some sequences see B twice
    assert stats[C.STAT_VALID_SEQUENCES].tolist() == [int(valid.sum()), 48]
    with torch.no_grad():
        attn = planted_model("eager")(torch.from_numpy(tokens), output_attentions=True).attentions
    rows = torch.stack(attn, 1)[:, :, :, -1, :].double().numpy()  # [N, L, H, T]
    q = 255
    ind, dup = [], []
    for i in np.nonzero(valid)[0]:
        p = int(np.nonzero(tokens[i, :-1] == targets[i])[0][0]) - 1
        ind.append(rows[i, :, :, p + 1])
        dup.append(rows[i, :, :, p])
    mean = {
        "induction": np.mean(ind, axis=0),
        "duplicate": np.mean(dup, axis=0),
        "previous": rows[..., q - 1].mean(0),
        "self": rows[..., q].mean(0),
        "first": rows[..., 0].mean(0),
        "local": rows[..., [q - 2, q - 3, q - 4, q - 5]].mean(axis=(0, -1)),
    }
    base = np.maximum(rows[..., baseline].mean(axis=(0, -1)), 1e-8)
    for target, value in mean.items():
        got = scores[f"sel_{target}"].to_numpy().reshape(2, 4)
        np.testing.assert_allclose(got, value / base, rtol=1e-4, err_msg=target)


def test_clean_protocol_lifts_the_induction_ceiling():
    """The planted induction head scores higher under clean: its p + 1 is never in its baseline."""
    measured = {}
    for protocol in ("xu2026", "clean"):
        stats = head_statistics(
            planted_model(register()), planted_probes(protocol), FIRST_TOKEN, torch.device("cpu"), progress=False
        )
        scores = head_scores(stats).filter((pl.col("layer") == 1) & (pl.col("head") == 1))
        measured[protocol] = scores["sel_induction"].item()
    assert measured["clean"] > 2 * measured["xu2026"]
