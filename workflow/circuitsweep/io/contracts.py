"""Data contracts: file names, tensor names and table columns, in one place.

Every reader and writer of the workflow's files refers to the names defined
here; the Snakemake rules build their paths with :class:`Paths`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# --- Head classes (docs/methods.md) ---------------------------------------------

#: Selectivity targets, in the order of tensor columns (cached: never reorder).
TARGETS: tuple[str, ...] = ("first", "induction", "duplicate", "previous", "self", "local")
#: The order in which classes compete (the study's): on equal selectivity the earlier wins.
CLASS_ORDER: tuple[str, ...] = ("induction", "previous", "duplicate", "first", "self", "local")
NO_CLASS = "none"
CLASSES: tuple[str, ...] = (*TARGETS, NO_CLASS)
#: The class of a BOS (attention-sink) head: "attends to position 0".
BOS_CLASS = "first"
INDUCTION_CLASS = "induction"

# --- Reduced attention statistics (safetensors shard) ----------------------
# Means over probe sequences (and, where stated, over query positions);
# L = layers, H = heads, T = probe length.

#: [L, H, len(TARGETS)] mean attention of the last query to each target
#: (induction and duplicate over valid sequences only, the others over all).
STAT_TARGET_MEAN = "induction.target_mean"
#: [L, H] mean attention of the last query to the baseline positions (all sequences).
STAT_BASELINE_MEAN = "induction.baseline_mean"
#: [L, H, T] mean last-query attention row of the induction probe.
STAT_LAST_ROW_MEAN = "induction.last_row_mean"
#: int64 baseline record: protocol xu2026, the n_baseline fixed key positions in
#: draw order; protocol clean, n_baseline + 2 candidates in order, of which each
#: sequence uses the first n_baseline that are neither its p nor p + 1.
STAT_BASELINE_POSITIONS = "induction.baseline_positions"
#: [2] int64: valid induction-probe sequences (B exactly once before q), all sequences.
STAT_VALID_SEQUENCES = "induction.valid_sequences"
#: [L, H] repeated batch, second-half queries: attention to the token after
#: the earlier occurrence, to the previous token, to the earlier occurrence.
STAT_PREFIX_MATCHING = "repeated.prefix_matching"
STAT_PREVIOUS_TOKEN = "repeated.previous_token"
STAT_DUPLICATE_TOKEN = "repeated.duplicate_token"
#: [T_r - 1] mean next-token loss (nats) per target position 1..T_r-1.
STAT_LOSS_PER_POSITION = "repeated.loss_per_position"
#: [L, H, T_s] random batch: mean attention to position 0 from each query.
STAT_FIRST_ATTENTION = "random.first_attention"
#: [n, L, H, len(TARGETS) + 1] float32 per induction-probe sequence: the last query's attention to each
#: target (TARGETS order; induction and duplicate as observed, valid or not) and, last, its mean attention
#: to the baseline positions. The sufficient statistics of the selectivities: the means above are these
#: averaged (induction and duplicate over valid sequences only), so a bootstrap over sequences needs no
#: model (docs/methods.md, Uncertainty). Values lie on the grid of ``heads.sequence_stats.grid_bits``.
STAT_PER_SEQUENCE = "induction.per_sequence"
#: [n] bool: whether each induction-probe sequence is valid (B exactly once before q).
STAT_SEQUENCE_VALID = "induction.sequence_valid"
#: [L, H] participation ratio of each head's slice of its output-projection input at the
#: induction probe's last position, over the first ``probes.spectral_sequences`` sequences.
STAT_SPECTRAL_PR = "induction.spectral_pr"

# --- Per-head score columns --------------------------------------------------

KEY_COLUMNS: tuple[str, ...] = ("model", "revision", "step", "tokens", "layer", "head")
#: Polars dtypes of the key columns: step and token counts pass 2**31 (Pythia step512 = 1,073,741,824 x 2).
KEY_DTYPES: dict[str, str] = {
    "model": "String",
    "revision": "String",
    "step": "Int64",
    "tokens": "Int64",
    "layer": "Int64",
    "head": "Int64",
}
SELECTIVITY_COLUMNS: tuple[str, ...] = tuple(f"sel_{t}" for t in TARGETS)
HEAD_SCORE_COLUMNS: tuple[str, ...] = (
    *SELECTIVITY_COLUMNS,
    "baseline_attention",
    "sink_alpha",
    "prefix_matching",
    "previous_token",
    "duplicate_token",
    "pr",  # participation ratio (docs/methods.md); null where the output projection is not found
)
#: Columns that classification adds to the head scores: the best class; ``induction_selective``
#: (induction selectivity >= the class threshold, any class); the screens ``induction_member``
#: (induction selectivity >= the circuit threshold, any class) and ``previous_member``; their
#: union ``in_circuit``; ``sink`` (null without a ``sink_alpha`` score).
CLASS_COLUMNS: tuple[str, ...] = (
    "class",
    "induction_selective",
    "induction_member",
    "previous_member",
    "in_circuit",
    "sink",
)

#: Columns the bootstrap over probe sequences adds to the heads table (docs/methods.md, Uncertainty): the
#: 95% percentile interval of each selectivity and the share of resamples in which the head keeps its class.
BOOTSTRAP_HEAD_COLUMNS: tuple[str, ...] = (
    *(f"sel_{t}_{end}" for t in TARGETS for end in ("low", "high")),
    "class_stability",
)
#: One model's bootstrap curves (``classes/<model>/bootstrap_curves.parquet``): per resample (0 = every
#: sequence once, the point estimate) and kept revision, the counts the milestones are computed from.
BOOTSTRAP_CURVE_COLUMNS: tuple[str, ...] = (
    "model",
    "resample",
    "revision",
    "step",
    "tokens",
    "n_heads",
    "induction_selective_heads",
    "bos_heads",
    "late_bos_heads",  # BOS heads of class first at no swept revision before this resample's onset (0 before it)
    "screen_heads",
    "early_screen_recovered",
    "final_circuit_size",
)

# --- Per-revision columns --------------------------------------------------

REVISION_COLUMNS: tuple[str, ...] = (
    "model",
    "revision",
    "step",
    "tokens",
    "n_layers",
    "n_heads",
    "loss_first_half",
    "loss_second_half",
    "in_context_loss_drop",
    "first_token_policy",
    "probe",
    "dtype",
    "probe_protocol",
    "valid_sequences",
)
EMERGENCE_COLUMNS: tuple[str, ...] = (
    "model",
    "revision",
    "step",
    "tokens",
    "n_heads_total",
    "bos_fraction",
    "sink_ratio",
    "n_induction_heads",  # class induction (the study's class breakdown)
    "induction_selective_heads",  # induction selectivity >= the class threshold, any class (the onset counts these)
    "screen_heads",  # the all-head induction screen: induction selectivity >= the circuit threshold
    "n_circuit_heads",  # in_circuit: the induction screen's heads and the previous-token screen's (not the screen)
    "in_context_loss_drop",
    "early_screen_recall",
    "bos_per_layer",
    "induction_per_layer",
    "duplicate_of",
    "early_screen_recovered",
    "probe_protocol",
    "valid_sequences",
)
MILESTONE_COLUMNS: tuple[str, ...] = (
    "model",
    "n_revisions",
    "final_tokens",
    "induction_onset_revision",
    "induction_onset_tokens",
    "bos_t50_revision",
    "bos_t50_tokens",
    "bos_t50_level",  # the BOS fraction BOS t50 asks for (thresholds.bos_fraction_milestone; 0.5 by default)
    "bos_to_induction_ratio",
    "first_bos_head_revision",
    "first_bos_head_tokens",
    "bos_peak_fraction",
    "bos_peak_revision",
    "bos_peak_tokens",
    "bos_shape",  # phase transition | gradual ramp | rise and fall | flat | unresolved | single revision
    "bos_shape_ratio",  # tokens at the end over the start of the narrowest window holding 80% of the rise
    "bos_shape_from",  # the window's two revisions
    "bos_shape_to",
    "induction_shape",
    "induction_shape_ratio",
    "induction_shape_from",
    "induction_shape_to",
    "final_circuit_size",
    "early_screen_revision",
    "early_screen_tokens",
    "early_screen_token_share",
    "layers_without_bos",
    "final_bos_fraction",
    "final_induction_heads",
    "final_revision",
    "induction_onset_sustained",
    "first_bos_head_sustained",  # a BOS head at every revision from the first BOS head on
    "bos_t50_sustained",  # the BOS fraction at the level at every revision from BOS t50 on
    "first_late_bos_head_revision",  # first revision with a BOS head of class first at no revision before the onset
    "first_late_bos_head_tokens",
    "final_late_bos_heads",  # the final revision's BOS heads of class first at no revision before the onset
    "first_late_bos_head_sustained",  # a new BOS head at every revision from the first new one on
    "probe_protocol",
)

#: The checkpoint bracket of each milestone (docs/methods.md, Uncertainty): the swept revision before the one
#: that reached it, and its tokens (null when not reached or reached at the first revision). The causal
#: milestone's pair (``causal_previous_revision``, ``causal_previous_tokens``) follows its own columns.
MILESTONE_BRACKET_COLUMNS: tuple[str, ...] = tuple(
    f"{milestone}_previous_{what}"
    for milestone in ("induction_onset", "first_bos_head", "first_late_bos_head", "bos_t50", "early_screen")
    for what in ("revision", "tokens")
)
#: With the bootstrap over probe sequences, per milestone: the earliest and latest revision it lands on across
#: resamples, the share landing on the point estimate's revision, the share not reaching it, and fragile
#: (more than 5% land elsewhere).
MILESTONE_BOOTSTRAP_COLUMNS: tuple[str, ...] = tuple(
    f"{milestone}_boot_{what}"
    for milestone in ("induction_onset", "first_bos_head", "first_late_bos_head", "bos_t50", "early_screen")
    for what in ("earliest", "latest", "agreement", "not_reached", "fragile")
)

# --- Natural-text probe (docs/methods.md, natural-text variant) ----------------

#: Batch tensors (safetensors, one file per tokenizer): tokens [N, T] int64; per example the
#: first occurrence i ("first"), the query k ("query") and the baseline positions [N, n_baseline].
NATURAL_TOKENS = "natural.tokens"
NATURAL_FIRST = "natural.first"
NATURAL_QUERY = "natural.query"
NATURAL_BASELINE = "natural.baseline"
#: [L, H, len(TARGETS)] mean attention of each example's query k to its targets; [L, H] to its baseline.
STAT_NATURAL_TARGET_MEAN = "natural.target_mean"
STAT_NATURAL_BASELINE_MEAN = "natural.baseline_mean"
#: Per-head natural-text scores (same selectivity names as the synthetic ones).
NATURAL_SCORE_COLUMNS: tuple[str, ...] = ("layer", "head", *SELECTIVITY_COLUMNS, "baseline_attention")
#: Columns the natural-text classes add to the heads table.
NATURAL_HEAD_COLUMNS: tuple[str, ...] = ("natural_class", "natural_sel_induction", "natural_sel_first")

# --- Causal ablation (docs/methods.md) ----------------------------------

#: Conditions: no ablation, the circuit, one matched-random draw, one circuit head alone.
ABLATION_CONDITIONS: tuple[str, ...] = ("none", "circuit", "matched_random", "single_head")
#: Version of the ablation rows' layout (per-sequence outcomes since 1), part of the measurement's settings:
#: rows of another version are measured again once, and refused by the tables.
ABLATION_SCHEMA_VERSION = 1
#: Per-sequence outcomes of a scored condition, in probe order (lists, null when not scored): the loss of B
#: (nats) and whether B was the top-1 and in the top-5 prediction. Kept in the rows files (the caches),
#: not in the tables: the paired tests read them.
ABLATION_SEQUENCE_COLUMNS: tuple[str, ...] = ("seq_loss", "seq_top1", "seq_top5")
_ABLATION_MEASURED: tuple[str, ...] = (
    "model",
    "revision",
    "step",
    "tokens",
    "probe",  # synthetic | natural
    "condition",
    "draw",  # matched_random draw index, else null
    "heads",  # "L1H2,L3H0" (empty for none)
    "n_ablated",
    "circuit_size",
    "n_sequences",
    "loss",  # mean cross-entropy of B at the query position (nats)
    "top1",
    "top5",
    "mean_logit",
)
#: One revision's ablation rows file (the cache a measurement job writes).
ABLATION_ROW_COLUMNS: tuple[str, ...] = (*_ABLATION_MEASURED, "note", *ABLATION_SEQUENCE_COLUMNS)
#: Paired tests of a condition over the probe sequences (heads.ablation_stats, docs/methods.md): its drop
#: against no ablation and, where it has matched-random controls, its excess drop over their per-sequence
#: mean; each with the mean difference, a 95% paired bootstrap interval and a one-sided p (top-1: exact
#: sign test, McNemar's with one draw; loss: sign-flip permutation). Null where there is nothing to compare.
ABLATION_TEST_COLUMNS: tuple[str, ...] = (
    "top1_drop",  # mean over sequences of top-1 without ablation minus with it
    "top1_drop_ci_low",
    "top1_drop_ci_high",
    "top1_drop_p",
    "loss_increase",  # mean loss with ablation minus without (nats)
    "loss_increase_ci_low",
    "loss_increase_ci_high",
    "loss_increase_p",
    "n_controls",  # matched-random draws the excess is measured against (null: no control)
    "top1_excess_drop",  # top-1 drop minus the draws' mean top-1 drop, per sequence
    "top1_excess_drop_ci_low",
    "top1_excess_drop_ci_high",
    "top1_excess_drop_p",
    "loss_excess_increase",  # loss increase minus the draws' mean loss increase, per sequence
    "loss_excess_increase_ci_low",
    "loss_excess_increase_ci_high",
    "loss_excess_increase_p",
)
#: The ablation table (tables/ablation.*): every row with its paired tests.
ABLATION_COLUMNS: tuple[str, ...] = (*_ABLATION_MEASURED, *ABLATION_TEST_COLUMNS, "note")
#: Per-revision summaries that the ablation adds to the emergence table (synthetic probe, top-1 of B).
#: ablation_tested: the circuit had a matched-random control; the excess columns are the circuit row's
#: top-1 excess drop, its interval and p, and that p after Holm's adjustment over the model's tested revisions.
ABLATION_EMERGENCE_COLUMNS: tuple[str, ...] = (
    "ablation_circuit_size",
    "ablation_control_size",  # heads in each matched-random draw (fewer than the circuit: its layers ran short)
    "ablation_top1",
    "ablation_circuit_drop",
    "ablation_random_drop",
    "ablation_random_drop_sd",
    "ablation_drop_ratio",
    "ablation_tested",
    "ablation_excess_drop",
    "ablation_excess_ci_low",
    "ablation_excess_ci_high",
    "ablation_excess_p",
    "ablation_excess_p_holm",
    "natural_ablation_circuit_drop",
    "natural_ablation_random_drop",
)
#: Per-revision natural-text class counts (revisions and emergence tables).
NATURAL_EMERGENCE_COLUMNS: tuple[str, ...] = ("natural_bos_fraction", "natural_induction_heads")
#: The three states of the causal milestone (docs/methods.md): reached, tested and not reached, untestable.
CAUSAL_STATES: tuple[str, ...] = ("causal", "not reached", "untestable")
#: Milestone columns of the ablation: the first revision where the circuit is causal (the factor rule and
#: Holm-adjusted p < causal_alpha), or why not. causal_evidence_*: the causal revision, or when not reached
#: the tested revision with the largest excess top-1 drop (null when untestable).
CAUSAL_MILESTONE_COLUMNS: tuple[str, ...] = (
    "causal_state",  # causal | not reached | untestable
    "causal_revision",
    "causal_tokens",
    "causal_factor",
    "causal_alpha",
    "causal_tested_revisions",  # revisions whose circuit had a matched-random control
    "causal_evidence_revision",
    "causal_excess_drop",  # top-1 excess drop of the circuit over matched random at the evidence revision
    "causal_excess_ci_low",
    "causal_excess_ci_high",
    "causal_p",  # its one-sided p
    "causal_p_holm",  # after Holm's adjustment over the tested revisions
    "causal_circuit_drop",  # the circuit's top-1 drop at the evidence revision (the factor rule's numerator)
    "causal_random_drop",  # the matched-random draws' mean top-1 drop there
    "causal_circuit_size",  # circuit heads at the evidence revision
    "causal_control_size",  # heads per matched-random draw there (fewer: the study's draw took what was left)
    "causal_full_control_revision",  # the first revision passing the same test with a control as large as the circuit
    "causal_full_control_tokens",
    "causal_note",  # why untestable: no circuit, or no matched control (the circuit fills its layers)
)

# --- Adaptive refinement (circuitsweep.milestones.refine) --------------------------------

#: The milestones a refinement can pin down, each with the milestones-table column naming its revision.
REFINE_MILESTONES: dict[str, str] = {
    "induction_onset": "induction_onset_revision",
    "bos_t50": "bos_t50_revision",
    "causal": "causal_revision",
    "early_screen": "early_screen_revision",
}
#: One row per model and milestone: the two swept revisions that bracket it and how refinement got there.
#: status: adjacent (no available revision between them), open (rounds spent first), not reached,
#: first (reached at the first available revision), or untestable (the causal milestone with no matched
#: control at any revision: no bracket, never "not reached").
BRACKET_COLUMNS: tuple[str, ...] = (
    "model",
    "milestone",
    "status",
    "lower_revision",
    "lower_tokens",
    "upper_revision",
    "upper_tokens",
    "available_between",
    "next_revision",
    "rounds_used",
    "revisions_added",
    "added_revisions",
)

# --- Seed groups (circuitsweep.milestones.groups) ----------------------------------------

#: The milestones a group summarises, each with the milestones-table column of its tokens.
GROUP_MILESTONES: dict[str, str] = {
    "induction_onset": "induction_onset_tokens",
    "bos_t50": "bos_t50_tokens",
    "early_screen": "early_screen_tokens",
    "causal": "causal_tokens",
}
#: One row per group and milestone: token statistics over the group's models. A model that never reached
#: it is censored (beyond its last revision): mean, sd (sample, null below two) and max only when every
#: model reached it; reached = "k of n"; min = the earliest; median where the middle model(s) reached it.
GROUP_MILESTONE_COLUMNS: tuple[str, ...] = (
    "group",
    "milestone",
    "n_models",
    "n_reached",
    "reached",
    "mean_tokens",
    "sd_tokens",
    "median_tokens",
    "min_tokens",
    "max_tokens",
    "models",
)

# --- Spectral phase (docs/methods.md) -------------------------------------

#: One row per head and model: the integral of max(PR - 1, 0) over ln(tokens) and its trajectory's summary.
SPECTRAL_COLUMNS: tuple[str, ...] = (
    "model",
    "layer",
    "head",
    "integral",
    "final_pr",
    "max_pr",
    "min_pr",
    "spread",  # max_pr - min_pr
    "rank",  # 1 = largest integral
    "n_revisions",  # revisions with a PR (final, max, min and spread are over these)
    "n_left_out",  # of them, revisions with 0 tokens: no logarithm, left out of the integral
    "left_out_revisions",  # swept revisions the config leaves out of the ranking (spectral_leave_out), else null
    "final_revision",
    "final_class",
    "screen",  # final induction selectivity >= thresholds.induction_circuit, whatever the class
    "note",  # why no head is ranked (fewer than 2 revisions with tokens > 0: integral and rank null), else null
)

# --- The study's ablation at the final revision (docs/methods.md) ---------

#: Every ablated head set of the final revision, one row per probe, condition and draw (the rows file).
_FINAL_ABLATION_MEASURED: tuple[str, ...] = (
    "model",
    "revision",
    "step",
    "tokens",
    "probe",  # synthetic | natural
    "condition",  # none, spectral_top, spectral_random, spectral_layers, screen, screen_random, ...
    "k",  # spectral_top_k of the spectral conditions and their induction-class singles (as asked), else null
    "draw",  # matched-random draw (0 = the study's), else null
    "heads",  # "L1H2,L3H0", in the condition's order
    "n_ablated",
    "n_requested",  # heads the condition asked for (K, the screen's size, a draw's matched count)
    "shortfall",  # n_requested - n_ablated: K above the head count, or a layer without enough other heads
    "n_sequences",
    "loss",
    "top1",
    "top5",
    "mean_logit",
    "note",
)
FINAL_ABLATION_COLUMNS: tuple[str, ...] = (*_FINAL_ABLATION_MEASURED, *ABLATION_SEQUENCE_COLUMNS)
#: The study-like summary of the final ablation: matched-random draws as draw 0, their mean and their SD,
#: each row with its paired tests (the "sd of n" rows have none).
FINAL_ABLATION_TABLE_COLUMNS: tuple[str, ...] = (
    "model",
    "revision",
    "probe",
    "condition",
    "k",
    "statistic",  # value | draw 0 | mean of n | sd of n
    "heads",
    "n_ablated",
    "shortfall",
    "loss",
    "top1",
    "top5",
    "mean_logit",
    *ABLATION_TEST_COLUMNS,
    "note",
)

# --- The study's findings per model and across models (circuitsweep.milestones.findings) ----

#: Sections of tables/findings.*, in the order they are written: per model, then across models.
FINDINGS_SECTIONS: tuple[str, ...] = (
    "precision at K",
    "non-BOS precision at K",
    "K selection",
    "class breakdown",
    "induction selectivity",
    "screen heads and the top K",
    "ablation claims",
    "across models",
)
#: One row per finding: what it measures, its number and the tables it comes from.
FINDINGS_COLUMNS: tuple[str, ...] = (
    "model",
    "section",  # one of FINDINGS_SECTIONS
    "item",  # what the row measures: "K = 45", "first", ">= 50", "1. spectral picks vs matched random, K = 45"
    "k",  # the K of a top-K row, else null
    "value",  # its number (a share, a count, tokens, a ratio, a drop); null where it cannot be measured
    "count",  # numerator of a share (heads), else null
    "total",  # denominator of a share (heads), else null
    "text",  # the finding in words, with its number, as the report states it
    "ci_low",  # paired 95% interval and p of an ablation claim, where the ablation tables carry them
    "ci_high",
    "p",
    "source",  # the tables it comes from ("spectral.csv; final_ablation.csv")
)
#: The cross-model table (one row per model, at its final revision).
ACROSS_MODELS_COLUMNS: tuple[str, ...] = (
    "model",
    "final_revision",
    "n_heads",
    "bos_fraction",  # whole-model share of class first, synthetic probe
    "natural_bos_fraction",  # the same on natural text (null: not measured)
    "bos_per_layer",  # heads of class first per layer, layer 0 first
    "first_bos_layer",  # the first layer holding a BOS head (null: none)
    "layers_without_bos",  # layers with no BOS head at any swept revision (the study's layer-0/1 floor)
    "screen_size",  # the final circuit: induction selectivity >= the circuit threshold, any class
    "induction_onset_tokens",
    "bos_t50_tokens",
    "bos_to_induction_ratio",  # t50 tokens / onset tokens
)

# --- Metadata keys stored with every cache file ----------------------------

META_KEY = "circuitsweep"


@dataclass(frozen=True)
class Paths:
    """Every file the workflow reads or writes, relative to the results root."""

    root: Path = Path("results")

    def toy_hub(self) -> Path:
        return self.root / "toyhub"

    def toy_published(self, model: str) -> Path:
        return self.root / "toyhub" / "published" / f"{model}.json"

    def package_hub(self) -> Path:
        """Hub-cache-layout folder where package sources are published before fetching."""
        return self.root / "packagehub"

    def run_dir_hashes(self) -> Path:
        """sha256 of run_dir checkpoint files, by path, size and modification time (a cache, rebuilt if lost)."""
        return self.root / "cache" / "run_dir_sha256.json"

    def snapshot(self, model: str, revision: str) -> Path:
        return self.root / "snapshots" / model / revision

    def model_cache(self, model: str) -> Path:
        """The folder of one model's revision caches."""
        return self.root / "cache" / model

    def revision_cache(self, model: str, revision: str) -> Path:
        """The folder of every cache of one revision (head, natural-text, ablation, primitive)."""
        return self.model_cache(model) / revision

    def head_stats(self, model: str, revision: str) -> Path:
        return self.root / "cache" / model / revision / "heads.safetensors"

    def head_scores(self, model: str, revision: str) -> Path:
        return self.root / "cache" / model / revision / "heads.parquet"

    def natural_batch(self, batch: str) -> Path:
        """The tokenized natural-text batch ``batch`` (one per tokenizer), shared by its models' revisions."""
        return self.root / "natural" / f"{batch}.safetensors"

    def natural_scores(self, model: str, revision: str) -> Path:
        return self.root / "cache" / model / revision / "natural.parquet"

    def ablation_rows(self, model: str, revision: str) -> Path:
        return self.root / "cache" / model / revision / "ablation.parquet"

    def ablation_table(self, suffix: str = "parquet") -> Path:
        return self.root / "tables" / f"ablation.{suffix}"

    def model_spectral(self, model: str) -> Path:
        """One model's spectral ranking (``SPECTRAL_COLUMNS``), from its classified heads alone."""
        return self.root / "classes" / model / "spectral.parquet"

    def spectral_table(self, suffix: str = "parquet") -> Path:
        return self.root / "tables" / f"spectral.{suffix}"

    def spectral_plot(self, model: str) -> Path:
        """Every head's participation ratio across training, coloured by its final class."""
        return self.root / "plots" / f"spectral_{model}.png"

    def final_ablation_rows(self, model: str) -> Path:
        """One model's ablation at its final revision (``FINAL_ABLATION_COLUMNS``): every condition and draw."""
        return self.root / "final_ablation" / f"{model}.parquet"

    def final_snapshot(self, model: str) -> Path:
        """The final revision's snapshot fetched for the final-revision ablation alone (temporary)."""
        return self.root / "final_ablation" / "snapshot" / model

    def final_ablation_table(self, suffix: str = "csv") -> Path:
        return self.root / "tables" / f"final_ablation.{suffix}"

    def findings(self, suffix: str = "csv") -> Path:
        """The study's summaries per model and across models (``FINDINGS_COLUMNS``): csv, md, and html for the
        report's Findings page."""
        return self.root / "tables" / f"findings.{suffix}"

    def primitive_stats(self, model: str, revision: str) -> Path:
        return self.root / "cache" / model / revision / "primitives.safetensors"

    def primitive_revision_tables(self, model: str, revision: str) -> Path:
        """Folder of one revision's scored primitive tables (``primitives.contract.REVISION_TABLES``)."""
        return self.root / "primitives" / model / revision

    def primitive_table(self, name: str) -> Path:
        """A final primitive table; ``name`` is one of the file names in ``primitives.contract``."""
        return self.root / "tables" / name

    def primitive_gap_plot(self) -> Path:
        return self.root / "plots" / "primitive_gap.png"

    def primitive_scaling_plot(self) -> Path:
        return self.root / "plots" / "primitive_scaling.png"

    def model_heads(self, model: str) -> Path:
        return self.root / "classes" / model / "heads.parquet"

    def model_revisions(self, model: str) -> Path:
        return self.root / "classes" / model / "revisions.parquet"

    def model_bootstrap_heads(self, model: str) -> Path:
        """One model's bootstrap intervals and class stability per revision and head (``BOOTSTRAP_HEAD_COLUMNS``)."""
        return self.root / "classes" / model / "bootstrap_heads.parquet"

    def model_bootstrap_curves(self, model: str) -> Path:
        """One model's counts per bootstrap resample and revision (``BOOTSTRAP_CURVE_COLUMNS``)."""
        return self.root / "classes" / model / "bootstrap_curves.parquet"

    def heads_table(self) -> Path:
        return self.root / "tables" / "heads.parquet"

    def emergence_table(self, suffix: str = "parquet") -> Path:
        return self.root / "tables" / f"emergence.{suffix}"

    def milestones_table(self, suffix: str = "csv") -> Path:
        return self.root / "tables" / f"milestones.{suffix}"

    def milestone_brackets(self, suffix: str = "csv") -> Path:
        """Per model and milestone, the two swept revisions that bracket it (``BRACKET_COLUMNS``)."""
        return self.root / "tables" / f"milestone_brackets.{suffix}"

    def group_milestones(self, suffix: str = "csv") -> Path:
        """Per group of models (``group:``) and milestone, the spread of its tokens (``GROUP_MILESTONE_COLUMNS``)."""
        return self.root / "tables" / f"group_milestones.{suffix}"

    def block_record(self, block: str) -> Path:
        """A cluster job block's record of the caches it made (``plan.scheduling.blocks``; cluster executors only)."""
        return self.root / "blocks" / f"{block}.json"

    def refine_rounds(self) -> Path:
        """The revisions each refinement round added (``circuitsweep.milestones.refine``); the plan sweeps them too."""
        return self.root / "refine" / "rounds.json"

    def overhead_table(self, suffix: str = "csv") -> Path:
        """Job wall time against forward-pass time per model (``OVERHEAD_COLUMNS``); the .md also holds the estimate."""
        return self.root / "tables" / f"overhead.{suffix}"

    def table_page(self, name: str) -> Path:
        """The HTML page of final table ``name`` (``tables/<name>.csv``), as the report shows it."""
        return self.root / "tables" / f"{name}.html"

    def overhead_estimate_table(self) -> Path:
        """Per job kind, the cost model's estimate beside the measured seconds (``ESTIMATE_COLUMNS``, CSV)."""
        return self.root / "tables" / "overhead_estimate.csv"

    def emergence_plot(self, suffix: str = "png") -> Path:
        """The emergence figure: PNG for papers, SVG inlined on the report's landing page."""
        return self.root / "plots" / f"emergence.{suffix}"

    def heatmap_plot(self, model: str) -> Path:
        return self.root / "plots" / f"heatmap_{model}.png"

    def trajectory_plot(self, model: str) -> Path:
        """Every head's best selectivity across training, coloured by its final class."""
        return self.root / "plots" / f"trajectories_{model}.png"

    def settings_file(self, name: str) -> Path:
        """A job's settings too long for its command line, written when the run is planned (``@PATH`` in the CLI)."""
        return self.root / "settings" / f"{name}.json"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def benchmark(self, name: str) -> Path:
        return self.root / "benchmarks" / f"{name}.tsv"


#: Score-cache metadata that made a model's measurements, carried into its classes and the final tables.
MEASUREMENT_KEYS: tuple[str, ...] = ("probe", "probes", "first_token_policy", "dtype")
