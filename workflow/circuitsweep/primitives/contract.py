"""Names shared by the primitive cache, scoring and tables, in one place.

Paths of these files are built by :class:`circuitsweep.io.contracts.Paths`.
"""

from __future__ import annotations

# --- Cached hidden-state summaries (safetensors shard) ----------------------
# P = primitives, W = words, L = kept layers (embedding output = layer 0), H = hidden size.

#: [P, L, H] each primitive's word states, mean over its contexts (and surface words).
STATES_PRIMITIVES = "primitives.states"
#: [W_phen, L, H] phenomenological lexicon words, mean over the carrier templates.
STATES_PHENOMENOLOGICAL = "lexicon.phenomenological"
#: [W_abs, L, H] abstract lexicon words, mean over the carrier templates.
STATES_ABSTRACT = "lexicon.abstract"
#: [W_cluster, L, H] cluster words (compositions in order, clusters in order), mean over carriers.
STATES_CLUSTERS = "clusters.states"
#: [W_control, L, H] word-class control words (primitives in order, controls in order), mean over carriers.
STATES_CONTROLS = "controls.states"
#: [P, L, H] each primitive's first surface word in the carrier templates (compared with its controls).
STATES_PRIMITIVES_CARRIED = "primitives.carried"
#: [L] int64: the layer index of each kept layer (0 = embedding output).
LAYERS = "layers"
#: [32] uint8: sha256 of the stimuli the shard was measured with.
STIMULI_SHA256 = "stimuli.sha256"

# Behavioural samples (only for generative models with a tokenizer); K = samples per prompt.
#: [P, K] int64: phenomenological lexicon words in each continuation of the bare primitive.
BEHAVIOUR_PHENOMENOLOGICAL = "behaviour.phenomenological"
#: [P, K] int64: abstract lexicon words in each continuation of the bare primitive.
BEHAVIOUR_ABSTRACT = "behaviour.abstract"
#: [C, K, n_clusters] int64: words of each cluster in each continuation of a composition prompt.
BEHAVIOUR_COMPOSITION_CLUSTERS = "behaviour.composition_clusters"
#: [C, K, n_clusters] int64: the same for the continuations of the composition's bare seed.
BEHAVIOUR_SEED_CLUSTERS = "behaviour.seed_clusters"

# Next-word distribution (generative models with a tokenizer), see primitives.nextword.
#: [P] float64: next-token probability mass on the phenomenological lexicon's first tokens.
NEXTWORD_PHENOMENOLOGICAL = "nextword.phenomenological"
#: [P] float64: the same for the abstract lexicon.
NEXTWORD_ABSTRACT = "nextword.abstract"
#: [2] int64: lexicon words that are a single token in some form, and all lexicon words.
NEXTWORD_WHOLE_WORDS = "nextword.whole_words"
#: [1] int64: 1 if the prompts (next word and sampled) went inside the tokenizer's chat template, 0 if bare.
PROMPT_CHAT_TEMPLATE = "prompts.chat_template"

# --- Score kinds, layer labels ------------------------------------------------

#: Where a word's own hidden state lies on the phenomenological-abstract axis (not the study's construct).
REPRESENTATIONAL = "representational"
#: The same on axes built from one part of the phenomenological lexicon against the abstract one.
REPRESENTATIONAL_SENSORY = "representational_sensory"
REPRESENTATIONAL_AFFECTIVE = "representational_affective"
#: The same after the affect direction (mean affective - mean sensory lexicon word) is projected out of every state.
REPRESENTATIONAL_NO_AFFECT = "representational_no_affect"
#: Word-class controlled: the primitive's position minus the mean position of its control words (both in carriers).
REPRESENTATIONAL_CONTROLLED = "representational_controlled"
#: The study's construct measured by sampling: phenomenological share of lexicon words in K replies.
BEHAVIOURAL = "behavioural"
#: The study's construct measured exactly: phenomenological share of the next-word distribution.
NEXT_WORD = "next_word"
SCORE_KINDS: tuple[str, ...] = (
    REPRESENTATIONAL,
    REPRESENTATIONAL_SENSORY,
    REPRESENTATIONAL_AFFECTIVE,
    REPRESENTATIONAL_NO_AFFECT,
    REPRESENTATIONAL_CONTROLLED,
    NEXT_WORD,
    BEHAVIOURAL,
)
#: The ``layer`` value of rows that are not one layer: the summary over layers
#: (representational) or the one behavioural value.
SUMMARY = "summary"

# --- Table columns -------------------------------------------------------------

IDENTITY_COLUMNS: tuple[str, ...] = ("model", "revision", "tokens")
#: primitives.parquet: one score per (layer, primitive, score kind). ``score`` is unclipped (the
#: representational position can leave [0, 1]; gaps use it as is) and null for a behavioural primitive
#: without lexicon hits; ``score_display`` is it clipped to [0, 1]; ``lexicon_hits`` (behavioural: lexicon
#: words in all K replies) and ``lexicon_mass`` (next word: probability on both lexicons' first tokens)
#: say how much evidence a score rests on (null for the other kinds).
PRIMITIVE_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS,
    "layer",
    "primitive",
    "set",
    "score_kind",
    "score",
    "score_display",
    "lexicon_hits",
    "lexicon_mass",
)
#: primitive_gaps.csv/.md: gap = mean(0a) - mean(0b) on unclipped scores, Welch interval over the items
#: (ci_low, ci_high); for the representational kinds also the lexicon's share of the uncertainty
#: (primitives.gaps.lexicon_spread): the gap's SD over lexicon resamples (lexicon_sd), their
#: percentile interval (ci_lexicon_low, ci_lexicon_high) and the interval with both item and lexicon
#: variance (ci_total_low, ci_total_high), all null for the other kinds or with lexicon_resamples 0;
#: Welch statistic (t_stat, df), studentised permutation p (p_value) and the max-|T| p adjusted
#: over the layer rows (p_adjusted; = p_value on the summary row, the one ``primary`` hypothesis);
#: n_0a, n_0b: primitives with a score (behavioural primitives without lexicon hits are left out);
#: parameters: the model's parameter count (null when the shard predates it).
GAP_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS,
    "layer",
    "score_kind",
    "primary",
    "gap",
    "ci_low",
    "ci_high",
    "lexicon_sd",
    "ci_lexicon_low",
    "ci_lexicon_high",
    "ci_total_low",
    "ci_total_high",
    "t_stat",
    "df",
    "p_value",
    "p_adjusted",
    "n_0a",
    "n_0b",
    "parameters",
)
#: primitive_scaling.csv/.md: the summary gap of each model's last revision per score kind, by size
#: (intervals as in GAP_COLUMNS).
SCALING_COLUMNS: tuple[str, ...] = (
    "model",
    "parameters",
    "revision",
    "tokens",
    "score_kind",
    "gap",
    "ci_low",
    "ci_high",
    "ci_total_low",
    "ci_total_high",
    "p_value",
    "n_0a",
    "n_0b",
)
#: composition_agreement.csv/.md: compositions matched in at least models_needed of n_models models.
AGREEMENT_COLUMNS: tuple[str, ...] = (
    "score_kind",
    "n_models",
    "models_needed",
    "n_compositions",
    "matched",
    "matched_without_near_synonyms",
    "comparison_with_study",
)
#: compositions.csv/.md: hits over all compositions, per layer and score kind, with the seed-only and
#: operator-only baselines (at most 6 and 5 distinct queries), the permutation nulls (mean hits@1 and
#: one-sided p with operators shuffled within seed, seeds within operator) and hits@1 without the
#: near-synonym compositions (of n_near_synonym).
COMPOSITION_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS,
    "layer",
    "score_kind",
    "n_compositions",
    "hits_at_1",
    "hits_at_3",
    "baseline_hits_at_1",
    "baseline_hits_at_3",
    "operator_hits_at_1",
    "null_operator_hits_at_1",
    "p_operator_shuffled",
    "null_seed_hits_at_1",
    "p_seed_shuffled",
    "n_near_synonym",
    "hits_at_1_without_near_synonyms",
    "mean_rank",
    "baseline_mean_rank",
    "hits_any",
    "baseline_hits_any",
)
#: composition detail (Parquet): one row per (layer, composition, score kind).
COMPOSITION_DETAIL_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS,
    "layer",
    "score_kind",
    "operator",
    "seed",
    "target",
    "near_synonym",
    "rank",
    "baseline_rank",
    "operator_rank",
    "hit_rate",
    "baseline_hit_rate",
)
#: axis quality (Parquet/CSV): held-out AUC of each representational kind's axis per layer.
AXIS_COLUMNS: tuple[str, ...] = (*IDENTITY_COLUMNS, "layer", "score_kind", "heldout_auc")

# --- File names -----------------------------------------------------------------

PRIMITIVES_FILE = "primitives.parquet"
GAPS_CSV = "primitive_gaps.csv"
GAPS_MD = "primitive_gaps.md"
COMPOSITIONS_CSV = "compositions.csv"
COMPOSITIONS_MD = "compositions.md"
COMPOSITION_DETAIL_FILE = "composition_detail.parquet"
AXIS_FILE = "primitive_axis.csv"
SCALING_CSV = "primitive_scaling.csv"
SCALING_MD = "primitive_scaling.md"
AGREEMENT_CSV = "composition_agreement.csv"
AGREEMENT_MD = "composition_agreement.md"
#: The final tables, in results/<run>/tables/.
FINAL_FILES: tuple[str, ...] = (
    PRIMITIVES_FILE,
    GAPS_CSV,
    GAPS_MD,
    COMPOSITIONS_CSV,
    COMPOSITIONS_MD,
    COMPOSITION_DETAIL_FILE,
    AXIS_FILE,
    SCALING_CSV,
    SCALING_MD,
    AGREEMENT_CSV,
    AGREEMENT_MD,
)
#: One revision's scored tables (Parquet, in results/<run>/primitives/<model>/<revision>/), by PrimitiveTables field.
REVISION_TABLES: dict[str, str] = {
    "scores": "scores.parquet",
    "gaps": "gaps.parquet",
    "compositions": "compositions.parquet",
    "composition_detail": "composition_detail.parquet",
    "axis": "axis.parquet",
}
