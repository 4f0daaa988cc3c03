"""Primitive scoring on constructed hidden states: gap, interval, null, axis hygiene, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest
import torch

from circuitsweep.config.stimuli import Stimuli, load_stimuli
from circuitsweep.errors import CacheError
from circuitsweep.primitives import contract as K
from circuitsweep.primitives.axis import fit_axes
from circuitsweep.primitives.compositions import behavioural_ranks, composition_nulls
from circuitsweep.primitives.gaps import gap_with_uncertainty, summary_layers, t_quantile
from circuitsweep.primitives.scoring import ScoringSettings, score_primitives
from circuitsweep.primitives.shares import lexicon_share
from circuitsweep.primitives.tables import RevisionIdentity, write_tables

IDENTITY = RevisionIdentity("planted", "step100", 1000)
FAST = ScoringSettings(n_folds=5, n_perm=2000, lexicon_resamples=20, seed=3)
LAYERS, HIDDEN = 3, 24


@pytest.fixture(scope="module")
def stimuli() -> Stimuli:
    return load_stimuli()


def planted_cache(
    stimuli: Stimuli,
    phen_side: np.ndarray,
    seed: int = 0,
    strength: float = 0.6,
    control_side: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """Hidden states where the lexicons sit at +-1 on dimension 0 and primitive i at +-strength per ``phen_side[i]``.

    Every other dimension is noise; layer 0 carries no signal for the primitives.
    In the carriers, each primitive's word sits where it does in context and its
    control words at +-strength per ``control_side`` (default: on no side).
    """
    rng = np.random.default_rng(seed)

    def noise(n: int) -> np.ndarray:
        return rng.normal(0.0, 0.3, size=(n, LAYERS, HIDDEN))

    axis = np.zeros(HIDDEN)
    axis[0] = 1.0
    phen = noise(len(stimuli.phenomenological)) + axis
    abst = noise(len(stimuli.abstract)) - axis
    signs = np.where(phen_side, 1.0, -1.0)
    primitives = noise(len(stimuli.primitives)) + strength * signs[:, None, None] * axis
    primitives[:, 0] = noise(len(stimuli.primitives))[:, 0]
    clusters = noise(len(stimuli.cluster_words))
    carried = noise(len(stimuli.primitives)) + strength * signs[:, None, None] * axis
    controls = noise(len(stimuli.control_words))
    if control_side is not None:
        owner = np.repeat(np.arange(len(stimuli.primitives)), [len(p.controls) for p in stimuli.primitives])
        controls += strength * np.where(control_side, 1.0, -1.0)[owner, None, None] * axis
    as_tensor = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return {
        K.STATES_PRIMITIVES: as_tensor(primitives),
        K.STATES_PHENOMENOLOGICAL: as_tensor(phen),
        K.STATES_ABSTRACT: as_tensor(abst),
        K.STATES_CLUSTERS: as_tensor(clusters),
        K.STATES_CONTROLS: as_tensor(controls),
        K.STATES_PRIMITIVES_CARRIED: as_tensor(carried),
        K.LAYERS: torch.arange(LAYERS),
        K.STIMULI_SHA256: torch.tensor(list(bytes.fromhex(stimuli.fingerprint())), dtype=torch.uint8),
    }


def relabel(stimuli: Stimuli, sets: list[str]) -> Stimuli:
    primitives = tuple(dataclasses.replace(p, set=s) for p, s in zip(stimuli.primitives, sets, strict=True))
    return dataclasses.replace(stimuli, primitives=primitives)


def row(frame, layer: str) -> dict:
    return frame.filter(frame["layer"] == layer).to_dicts()[0]


def test_planted_gap_is_positive_with_an_interval_excluding_zero(stimuli):
    """0a planted on the phenomenological side: positive gap, CI above 0, small p, at every signal layer."""
    in_a = np.array([p.set == "0a" for p in stimuli.primitives])
    tables = score_primitives(planted_cache(stimuli, in_a), stimuli, IDENTITY, FAST)
    gaps = tables.gaps.filter(tables.gaps["score_kind"] == K.REPRESENTATIONAL)
    for layer in ("1", "2", "summary"):
        r = row(gaps, layer)
        assert r["gap"] > 0.3 and r["ci_low"] > 0 and r["ci_low"] <= r["gap"] <= r["ci_high"], r
        assert r["p_value"] < 0.01, r
    assert not row(gaps, "0")["ci_low"] > 0  # layer 0 carries no planted signal
    assert tables.scores["score_display"].is_between(0.0, 1.0).all()
    assert row(gaps, "summary")["primary"] and not row(gaps, "1")["primary"]


def test_shuffled_labels_give_no_gap(stimuli):
    """With the 0a/0b labels shuffled across the planted sides, the interval covers 0 and p is not small."""
    in_a = np.array([p.set == "0a" for p in stimuli.primitives])
    cache_truth = in_a.copy()
    # half of each planted side goes to each label: the labels no longer follow the planting
    shuffled = []
    seen = {True: 0, False: 0}
    for side in cache_truth:
        shuffled.append("0a" if seen[bool(side)] % 2 == 0 else "0b")
        seen[bool(side)] += 1
    relabelled = relabel(stimuli, shuffled)
    tables = score_primitives(planted_cache(relabelled, cache_truth), relabelled, IDENTITY, FAST)
    for layer in ("1", "2", "summary"):
        r = row(tables.gaps, layer)
        assert r["ci_low"] < 0 < r["ci_high"], r
        assert r["p_value"] > 0.2, r


LABELS_8_8 = np.array([True] * 8 + [False] * 8)


def test_permutation_null_is_calibrated():
    """Without any signal, p < 0.05 happens in about 5% of data sets (the +1-corrected null is valid).

    Each row is an independent data set; ``family`` = none, so rows are not adjusted against each other.
    """
    rng = np.random.default_rng(0)
    result = gap_with_uncertainty(
        rng.normal(size=(400, 16)), LABELS_8_8, n_perm=499, seed=1, family=np.zeros(400, bool)
    )
    rate = np.mean(result.p_value < 0.05)
    assert 0.025 < rate < 0.08, rate
    assert result.p_value.min() >= 1 / 500
    np.testing.assert_array_equal(result.p_adjusted, result.p_value)


@pytest.mark.parametrize(
    ("name", "draw"),
    [
        ("normal", lambda rng, shape: rng.normal(0.0, 0.15, size=shape)),
        ("uniform", lambda rng, shape: rng.uniform(-0.3, 0.3, size=shape)),
    ],
)
def test_welch_interval_covers_a_planted_gap_95_percent_of_the_time(name, draw):
    """8 + 8 items, planted gap 0.2 (or -0.3): the nominal 95% interval covers it 93-97% of 4000 data sets.

    (The percentile bootstrap it replaced covered 88-91%.)
    """
    rng = np.random.default_rng(7)
    for planted in (0.2, -0.3):
        scores = draw(rng, (4000, 16)) + np.where(LABELS_8_8, planted, 0.0) + 0.5
        result = gap_with_uncertainty(scores, LABELS_8_8, n_perm=1, seed=0)
        coverage = np.mean((result.ci_low <= planted) & (planted <= result.ci_high))
        assert 0.93 <= coverage <= 0.97, (name, planted, coverage)
        assert abs(result.gap.mean() - planted) < 0.01  # unbiased


def test_layer_p_values_are_adjusted_by_max_t():
    """Ten null layers: raw p < 0.05 somewhere in most data sets, adjusted p < 0.05 in about 5% (FWER)."""
    rng = np.random.default_rng(3)
    raw_hits, adjusted_hits = [], []
    for i in range(100):
        layers = rng.normal(size=(10, 16))
        result = gap_with_uncertainty(layers, LABELS_8_8, n_perm=199, seed=i)
        assert (result.p_adjusted >= result.p_value).all()
        raw_hits.append((result.p_value < 0.05).any())
        adjusted_hits.append((result.p_adjusted < 0.05).any())
    assert np.mean(raw_hits) > 0.25
    assert np.mean(adjusted_hits) < 0.12


def test_gap_interval_and_p_value_definitions():
    """Gap = mean(0a) - mean(0b); identical scores give p = 1 and a zero-width interval."""
    scores = np.array([[1.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
    result = gap_with_uncertainty(scores, np.array([True, True, False, False]), n_perm=200, seed=0)
    assert result.gap.tolist() == [1.0, 0.0]
    assert result.p_value[1] == 1.0 and result.ci_low[1] == result.ci_high[1] == 0.0
    assert result.ci_low[0] == result.ci_high[0] == 1.0
    assert result.t_stat[0] == np.inf and result.t_stat[1] == 0.0


def test_welch_interval_matches_the_textbook_formula():
    """ci = gap +- t(0.975, df) * sqrt(s_a^2/n_a + s_b^2/n_b) with the Welch-Satterthwaite df."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.6, 0.1, 8), rng.normal(0.4, 0.3, 6)
    result = gap_with_uncertainty(np.concatenate([a, b])[None], np.arange(14) < 8, n_perm=10, seed=0)
    qa, qb = a.var(ddof=1) / 8, b.var(ddof=1) / 6
    df = (qa + qb) ** 2 / (qa**2 / 7 + qb**2 / 5)
    assert result.df[0] == pytest.approx(df)
    assert t_quantile(0.975, np.array([7.0]))[0] == pytest.approx(2.3646243, abs=1e-6)
    half = t_quantile(0.975, np.array([df]))[0] * np.sqrt(qa + qb)
    assert result.ci_high[0] - result.gap[0] == pytest.approx(half)
    assert result.gap[0] == pytest.approx(a.mean() - b.mean())


def test_scores_beyond_the_poles_are_not_clipped_in_the_gap(stimuli):
    """Primitives planted beyond the lexicon poles: the gap uses their full positions, the display clips them."""
    in_a = np.array([p.set == "0a" for p in stimuli.primitives])
    tables = score_primitives(planted_cache(stimuli, in_a, strength=1.6), stimuli, IDENTITY, FAST)
    summary = row(tables.gaps, "summary")
    assert summary["gap"] > 1.2, summary  # clipped scores could give at most 1
    scores = tables.scores
    assert (scores["score"] > 1).any() and (scores["score"] < 0).any()
    assert scores["score_display"].is_between(0.0, 1.0).all()


def test_axis_never_uses_the_words_it_is_scored_on(stimuli):
    """Each fold's direction is built without its held-out words, which alone calibrate it; each held out once."""
    cache = planted_cache(stimuli, np.array([p.set == "0a" for p in stimuli.primitives]))
    phen = cache[K.STATES_PHENOMENOLOGICAL].double().numpy()
    abst = cache[K.STATES_ABSTRACT].double().numpy()
    axes = fit_axes(phen, abst, n_folds=5, seed=1)
    for n, train, held in (
        (len(phen), "train_phenomenological", "heldout_phenomenological"),
        (len(abst), "train_abstract", "heldout_abstract"),
    ):
        heldout = np.concatenate([getattr(a, held) for a in axes.folds])
        assert sorted(heldout.tolist()) == list(range(n))  # every word held out exactly once
        for a in axes.folds:
            assert not set(getattr(a, train).tolist()) & set(getattr(a, held).tolist())
            assert sorted([*getattr(a, train).tolist(), *getattr(a, held).tolist()]) == list(range(n))

    # Moving the held-out words of fold 0 leaves its direction unchanged (they never built it) ...
    fold = axes.folds[0]
    phen2, abst2 = phen.copy(), abst.copy()
    phen2[fold.heldout_phenomenological] += 50.0
    abst2[fold.heldout_abstract] -= 50.0
    moved = fit_axes(phen2, abst2, n_folds=5, seed=1).folds[0]
    np.testing.assert_array_equal(moved.direction, fold.direction)
    # ... but moves its calibration (they alone calibrate it) ...
    assert not np.allclose(moved.phenomenological_mean, fold.phenomenological_mean)
    # ... and moving its training words leaves the calibration words' identity untouched.
    np.testing.assert_array_equal(moved.heldout_phenomenological, fold.heldout_phenomenological)


def test_primitive_states_never_reach_the_axis(stimuli):
    """Changing the primitives' own states changes their scores but not the axis or its held-out quality."""
    in_a = np.array([p.set == "0a" for p in stimuli.primitives])
    cache = planted_cache(stimuli, in_a)
    shifted = dict(cache)
    shifted[K.STATES_PRIMITIVES] = cache[K.STATES_PRIMITIVES] + 3.0
    a = score_primitives(cache, stimuli, IDENTITY, FAST)
    b = score_primitives(shifted, stimuli, IDENTITY, FAST)
    assert a.axis.equals(b.axis)
    assert not a.scores.equals(b.scores)


def test_fixed_seeds_give_identical_tables(stimuli, tmp_path):
    """The same cache and seed give identical tables and files; another seed changes the bootstrap."""
    in_a = np.array([p.set == "0a" for p in stimuli.primitives])
    cache = planted_cache(stimuli, in_a)
    first = score_primitives(cache, stimuli, IDENTITY, FAST)
    second = score_primitives(planted_cache(stimuli, in_a), stimuli, IDENTITY, FAST)
    for name in ("scores", "gaps", "compositions", "composition_detail", "axis"):
        assert getattr(first, name).equals(getattr(second, name)), name
    paths_1 = write_tables(first, tmp_path / "a")
    paths_2 = write_tables(second, tmp_path / "b")
    for name, path in paths_1.items():
        if path.suffix in (".csv", ".md"):
            assert path.read_bytes() == paths_2[name].read_bytes(), name
    other = score_primitives(cache, stimuli, IDENTITY, dataclasses.replace(FAST, seed=4))
    assert not other.gaps.equals(first.gaps)


def test_tables_have_the_contract_columns(stimuli):
    """Every table has exactly the columns of the contract, and one row per layer plus the summary."""
    in_a = np.array([p.set == "0a" for p in stimuli.primitives])
    tables = score_primitives(planted_cache(stimuli, in_a), stimuli, IDENTITY, FAST)
    assert tuple(tables.scores.columns) == K.PRIMITIVE_COLUMNS
    assert tuple(tables.gaps.columns) == K.GAP_COLUMNS
    assert tuple(tables.compositions.columns) == K.COMPOSITION_COLUMNS
    assert tuple(tables.composition_detail.columns) == K.COMPOSITION_DETAIL_COLUMNS
    representational = [k for k in K.SCORE_KINDS if k.startswith(K.REPRESENTATIONAL)]
    assert tables.gaps["score_kind"].unique(maintain_order=True).to_list() == representational
    for kind in representational:
        rows = tables.gaps.filter(tables.gaps["score_kind"] == kind)
        assert rows["layer"].to_list() == ["0", "1", "2", "summary"], kind
        assert rows["primary"].to_list() == [False, False, False, True]
    assert tables.scores.height == 4 * len(stimuli.primitives) * len(representational)
    assert tables.axis["score_kind"].unique().len() == len(representational)
    assert set(tables.gaps["tokens"].to_list()) == {1000}


def test_cache_from_other_stimuli_is_refused(stimuli):
    """A cache measured with different stimuli is an error, not silently rescored."""
    cache = planted_cache(stimuli, np.array([p.set == "0a" for p in stimuli.primitives]))
    edited = dataclasses.replace(stimuli, carriers=stimuli.carriers[:-1])
    with pytest.raises(CacheError, match="other stimuli"):
        score_primitives(cache, edited, IDENTITY, FAST)


def test_summary_leaves_out_the_embedding_layer():
    """The summary averages the blocks (layer >= 1); the embedding layer only when it is all there is."""
    assert summary_layers(np.array([0, 1, 2])).tolist() == [False, True, True]
    assert summary_layers(np.array([0])).tolist() == [True]


def test_lexicon_share_has_no_score_without_lexicon_words():
    """The behavioural score is phen / (phen + abstract) over all continuations, NaN (not 0.5) when none occur."""
    share = lexicon_share(np.array([[1, 2], [0, 0], [0, 0]]), np.array([[1, 0], [0, 0], [2, 1]]))
    np.testing.assert_allclose(share, [0.75, np.nan, 0.0])


def test_behavioural_hits_and_ranks():
    """A composition hits when a continuation holds a target-cluster word; its rank orders clusters by counts."""
    counts = np.zeros((3, 2, 3), dtype=np.int64)
    counts[0, 0, 0] = 2  # target 0 found: rank 1, one of two continuations
    counts[1, :, 0] = 1  # only another cluster found: target 1 absent, rank last
    counts[2, 0, 2] = 1
    counts[2, 1, 0] = 1  # tie with another cluster counts against the target: rank 2
    ranks = behavioural_ranks(counts, np.zeros_like(counts))
    assert ranks.rank[:, 0].tolist() == [1, 3, 2]
    assert ranks.hit_rate[:, 0].tolist() == [0.5, 0.0, 0.5]
    assert ranks.baseline_rank[:, 0].tolist() == [3, 3, 3]


def test_cache_survives_a_safetensors_round_trip(stimuli, tmp_path):
    """A cache saved as a safetensors shard and read back scores exactly as the in-memory one."""
    from safetensors.torch import load_file, save_file

    cache = planted_cache(stimuli, np.array([p.set == "0a" for p in stimuli.primitives]))
    save_file(cache, str(tmp_path / "primitives.safetensors"))
    loaded = load_file(str(tmp_path / "primitives.safetensors"))
    a = score_primitives(cache, stimuli, IDENTITY, FAST)
    b = score_primitives(loaded, stimuli, IDENTITY, FAST)
    assert a.gaps.equals(b.gaps) and a.scores.equals(b.scores)


def gap_of(tables, kind: str, layer: str = "summary") -> dict:
    rows = tables.gaps.filter((tables.gaps["score_kind"] == kind) & (tables.gaps["layer"] == layer))
    return rows.to_dicts()[0]


def test_word_class_controls_remove_a_word_class_gap(stimuli):
    """0b words on the phenomenological side *like their controls* (a word-class effect): the plain gap is
    strongly negative, the controlled gap is not; with controls on no side the controlled gap keeps it."""
    in_a = np.array([p.set == "0a" for p in stimuli.primitives])
    word_class = planted_cache(stimuli, ~in_a, control_side=~in_a)
    tables = score_primitives(word_class, stimuli, IDENTITY, FAST)
    plain, controlled = gap_of(tables, K.REPRESENTATIONAL), gap_of(tables, K.REPRESENTATIONAL_CONTROLLED)
    assert plain["gap"] < -0.3 and plain["ci_high"] < 0, plain
    assert controlled["ci_low"] < 0 < controlled["ci_high"] and abs(controlled["gap"]) < 0.15, controlled

    specific = score_primitives(planted_cache(stimuli, ~in_a), stimuli, IDENTITY, FAST)
    controlled = gap_of(specific, K.REPRESENTATIONAL_CONTROLLED)
    assert controlled["gap"] < -0.3 and controlled["ci_high"] < 0, controlled


def test_affect_direction_is_partialled_out(stimuli):
    """Primitives planted only along the affect direction (affective vs sensory words) score as phenomenological
    on the full axis and the affective axis, but not once the affect direction is removed."""
    rng = np.random.default_rng(5)
    in_a = np.array([p.set == "0a" for p in stimuli.primitives])
    cache = planted_cache(stimuli, in_a, strength=0.0)
    affective = np.array([w in set(stimuli.affective) for w in stimuli.phenomenological])
    phen = cache[K.STATES_PHENOMENOLOGICAL].double().numpy()
    phen[affective, :, 1] += 1.5  # dimension 1: affect, on top of the phenomenological dimension 0
    phen[~affective, :, 1] -= 1.5
    primitives = rng.normal(0.0, 0.3, size=cache[K.STATES_PRIMITIVES].shape)
    primitives[~in_a, :, 1] += 1.5  # 0b: affect-laden, nothing else
    cache = cache | {
        K.STATES_PHENOMENOLOGICAL: torch.tensor(phen, dtype=torch.float32),
        K.STATES_PRIMITIVES: torch.tensor(primitives, dtype=torch.float32),
    }
    tables = score_primitives(cache, stimuli, IDENTITY, FAST)
    assert gap_of(tables, K.REPRESENTATIONAL_AFFECTIVE)["gap"] < -0.3
    assert gap_of(tables, K.REPRESENTATIONAL_SENSORY)["gap"] > gap_of(tables, K.REPRESENTATIONAL_AFFECTIVE)["gap"]
    no_affect = gap_of(tables, K.REPRESENTATIONAL_NO_AFFECT)
    assert abs(no_affect["gap"]) < 0.1 and no_affect["ci_low"] < 0 < no_affect["ci_high"], no_affect


def test_composition_nulls_separate_operator_use_from_seed_use(stimuli):
    """Targets found through operator and seed: operator-shuffled null far below, p small. Targets found
    through the seed alone (the first operator's target for every operator): the operator null matches."""
    n = len(stimuli.compositions)
    seeds = np.array([c.seed for c in stimuli.compositions])
    both = np.full((n, n, 1), 2)
    both[np.arange(n), np.arange(n)] = 1
    null = composition_nulls(both, stimuli, n_perm=999, seed=0)
    assert null.operator_p[0] == pytest.approx(1 / 1000) and null.seed_p[0] == pytest.approx(1 / 1000)
    assert 5 < null.operator_null_hits[0] < 7  # one fixed point per seed group of 5, on average

    seed_only = np.full((n, n, 1), 2)
    first = {s: int(np.flatnonzero(seeds == s)[0]) for s in set(seeds)}
    seed_only[np.arange(n), [first[s] for s in seeds]] = 1
    null = composition_nulls(seed_only, stimuli, n_perm=999, seed=0)
    observed = int((np.diagonal(seed_only[..., 0]) <= 1).sum())
    assert observed == 6
    assert null.operator_p[0] > 0.3 and abs(null.operator_null_hits[0] - observed) < 1


def test_composition_table_reports_baselines_nulls_and_near_synonyms(stimuli):
    """The composition table has the operator-only baseline, both nulls and hits without near-synonym targets."""
    in_a = np.array([p.set == "0a" for p in stimuli.primitives])
    tables = score_primitives(planted_cache(stimuli, in_a), stimuli, IDENTITY, FAST)
    comp = row(tables.compositions, "summary")
    assert comp["n_near_synonym"] == sum(c.near_synonym for c in stimuli.compositions) == 6
    assert 0 <= comp["operator_hits_at_1"] <= len({c.operator for c in stimuli.compositions})
    assert 0 < comp["p_operator_shuffled"] <= 1 and 0 < comp["p_seed_shuffled"] <= 1
    detail = tables.composition_detail.filter(tables.composition_detail["layer"] == "summary")
    kept = detail.filter(~detail["near_synonym"])
    assert comp["hits_at_1_without_near_synonyms"] == int((kept["rank"] <= 1).sum())


def test_scaling_and_agreement_tables_span_models(stimuli, tmp_path):
    """Across four models: one scaling row per model and kind (last revision, with its size), agreement counts
    the compositions matched in 3 of 4 models, and the stage writes every final file."""
    from circuitsweep.io.tables import write_table
    from circuitsweep.primitives.scaling import composition_agreement, scaling_table
    from circuitsweep.primitives.stage import primitive_tables

    in_a = np.array([p.set == "0a" for p in stimuli.primitives])
    folders = []
    parts = []
    for i, size in enumerate((360, 500, 1000, 1200)):
        for step, tokens in ((0, 0), (1, 1000)):
            identity = RevisionIdentity(f"m{size}", f"step{step}", tokens, size * 10**6)
            tables = score_primitives(planted_cache(stimuli, in_a, seed=10 * i + step), stimuli, identity, FAST)
            parts.append(tables)
            folder = tmp_path / identity.model / identity.revision
            for field, name in K.REVISION_TABLES.items():
                write_table(folder / name, getattr(tables, field), {})
            folders.append(folder)
    stacked = pl.concat([t.gaps for t in parts])
    scaling = scaling_table(stacked)
    plain = scaling.filter(pl.col("score_kind") == K.REPRESENTATIONAL)
    assert plain["parameters"].to_list() == [360 * 10**6, 500 * 10**6, 10**9, 1200 * 10**6]
    assert set(plain["revision"]) == {"step1"}
    assert tuple(scaling.columns) == K.SCALING_COLUMNS

    detail = pl.concat([t.composition_detail for t in parts])
    agreement = composition_agreement(detail).filter(pl.col("score_kind") == K.REPRESENTATIONAL).to_dicts()[0]
    last = detail.filter((pl.col("revision") == "step1") & (pl.col("layer") == K.SUMMARY))
    per = last.group_by("operator", "seed").agg(pl.col("rank").le(1).sum().alias("models"))
    assert agreement["n_models"] == 4 and agreement["models_needed"] == 3
    assert agreement["matched"] == per.filter(pl.col("models") >= 3).height

    primitive_tables(folders, tmp_path / "tables")
    for name in K.FINAL_FILES:
        assert (tmp_path / "tables" / name).is_file(), name


def test_each_scoring_draw_reads_its_own_stream(stimuli, monkeypatch):
    """Scoring one revision, the fold deals, the lexicon bootstrap, the gaps' permutation null and the two
    composition nulls each ask the run's seed for a stream of their own: the gap null once read the stream
    that deals the abstract lexicon's folds, and the composition nulls the two fold streams."""
    from circuitsweep.primitives import axis, compositions, gaps, representational, streams

    asked: dict[str, set[tuple[int, int]]] = {}
    for module in (axis, compositions, gaps, representational):

        def recording(seed: int, key: int, name: str = module.__name__.rsplit(".", 1)[1]) -> np.random.Generator:
            asked.setdefault(name, set()).add((seed, key))
            return streams.stream(seed, key)

        monkeypatch.setattr(module, "stream", recording)
    in_a = np.array([p.set == "0a" for p in stimuli.primitives])
    score_primitives(planted_cache(stimuli, in_a), stimuli, IDENTITY, FAST)
    keys = {name: {key for seed, key in pairs if seed == FAST.seed} for name, pairs in asked.items()}
    assert keys == {
        "axis": {streams.FOLDS_PHENOMENOLOGICAL, streams.FOLDS_ABSTRACT},
        "representational": {streams.LEXICON_BOOTSTRAP},
        "gaps": {streams.GAP_PERMUTATIONS},
        "compositions": {streams.COMPOSITIONS_OPERATOR_SHUFFLED, streams.COMPOSITIONS_SEED_SHUFFLED},
    }, keys
    assert len(set().union(*keys.values())) == 6  # no two uses share a stream of the run's seed


def test_the_named_streams_are_distinct():
    """The permutation null, the two composition nulls, the fold deals and the lexicon bootstrap read distinct
    streams of one seed: none replays another's draws (the gap null once shared the abstract folds' stream)."""
    from circuitsweep.primitives import streams

    keys = [value for name, value in vars(streams).items() if name.isupper()]
    assert len(keys) == len(set(keys)) == 6
    first_draws = {streams.stream(11, key).integers(2**63) for key in keys}
    assert len(first_draws) == len(keys)


def test_fold_and_bootstrap_streams_keep_their_original_draws():
    """The folds and the lexicon bootstrap draw as they did before streams were named (children 0-2 of the
    seed), so the gaps and lexicon intervals documented for MiniLM do not move."""
    from circuitsweep.primitives import streams

    children = np.random.SeedSequence(5).spawn(3)
    for key, child in zip(
        (streams.FOLDS_PHENOMENOLOGICAL, streams.FOLDS_ABSTRACT, streams.LEXICON_BOOTSTRAP), children, strict=True
    ):
        assert streams.stream(5, key).integers(2**63) == np.random.default_rng(child).integers(2**63)
