"""The notebook API: measure a model in memory, or read a sweep's results.

``import circuitsweep as cs`` exposes these functions lazily (the package's
``__getattr__``), so importing the package, planning a sweep or reading
results imports no torch; only :func:`measure_heads` does.

Measuring runs the workflow's own engine: :func:`heads.measure.head_statistics`,
then :func:`heads.scores.head_scores`, then :func:`heads.classify.head_classes`.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from circuitsweep.config.load import _check_probes, _deep_merge, schema, schema_problems, study_defaults
from circuitsweep.config.probes import ProbeSettings
from circuitsweep.errors import ConfigError, DataError
from circuitsweep.heads.classify import Thresholds, head_classes
from circuitsweep.io import contracts as C
from circuitsweep.io.run_folder import IDENTITY_FILE
from circuitsweep.io.tables import read_table

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from transformers import PreTrainedModel

    from circuitsweep.milestones.findings import Findings


#: The model name the config's checks are given; their messages name keys under ``models.notebook.``.
NOTEBOOK = "notebook"


def _checked(name: str, values: Any, node: dict[str, Any]) -> Any:
    """``values``, after the config's own schema check of ``node`` (NaN and infinity refused); errors name ``name``."""
    problems = schema_problems(values, node)
    if problems:
        raise ConfigError(f"{name}: " + "; ".join(problems))
    return values


def _section(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The study's defaults of schema section ``name`` with ``overrides`` merged in, checked as a config's are."""
    return _checked(name, _deep_merge(study_defaults(name), overrides), schema()["$defs"][name])


def _refuse(problems: list[str]) -> None:
    """Raise the config checks' ``problems`` as one :class:`ConfigError`, keys named as the notebook passes them."""
    if problems:
        raise ConfigError("; ".join(problem.removeprefix(f"models.{NOTEBOOK}.") for problem in problems))


def _probes(overrides: dict[str, Any], first_token: dict[str, Any]) -> ProbeSettings:
    """The study's probes with ``overrides``, refused as a sweep's config would be with this ``first_token``."""
    probes = ProbeSettings.from_dict(_section("probes", copy.deepcopy(overrides)))
    _refuse(_check_probes(NOTEBOOK, probes, first_token))
    return probes


def study_probes(**overrides: Any) -> ProbeSettings:
    """The study's probe settings, with keyword ``overrides`` of the config's ``probes`` keys.

    For example ``study_probes(token_range=[2, 64], induction={"n_sequences": 64, "seq_len": 64})``;
    nested sections merge. Invalid values raise :class:`ConfigError` naming the key, as in a config.
    """
    return _probes(overrides, {"policy": "none"})


def study_thresholds(**overrides: Any) -> Thresholds:
    """The study's classification thresholds, with keyword ``overrides`` (e.g. ``class_selectivity=8``).

    Values a config would refuse (out of range, NaN, infinite, unknown keys) raise :class:`ConfigError`.
    """
    return Thresholds.from_dict(_section("thresholds", overrides))


def _thresholds(thresholds: Thresholds | None) -> Thresholds:
    """``thresholds`` (default: the study's), checked as :func:`study_thresholds` checks them: one may be built
    by hand."""
    return study_thresholds(**asdict(thresholds)) if thresholds is not None else study_thresholds()


def _first_token(first_token: int | str | None) -> dict[str, Any]:
    """The config's ``first_token`` block of the :func:`measure_heads` argument, checked against its schema."""
    if first_token is None:
        policy: dict[str, Any] = {"policy": "none"}
    elif isinstance(first_token, str):
        policy = {"policy": first_token}
    else:
        policy = {"policy": "fixed", "token_id": first_token}
    return _checked("first_token", policy, schema()["$defs"]["model"]["properties"]["first_token"])


def classify_heads(scores: pl.DataFrame, thresholds: Thresholds | None = None) -> pl.DataFrame:
    """Classify heads from their selectivities, without a model (e.g. a study's published per-head numbers).

    scores: one row per head with ``layer``, ``head`` and some or all of the
    ``sel_<target>`` columns of ``contracts.SELECTIVITY_COLUMNS`` (ratios of mean
    attention, dimensionless); other columns (``sink_alpha``, keys) are kept.
    thresholds: :func:`study_thresholds` (default: the study's). Returns ``scores``
    with ``contracts.CLASS_COLUMNS``: ``class`` (best target at >= the class
    threshold, else ``none``), ``induction_selective``, the screens
    ``induction_member`` and ``previous_member`` (whatever the class),
    ``in_circuit`` and ``sink`` (null without ``sink_alpha``).

    With only some ``sel_*`` columns, the class is the best of the targets
    present (a head whose best target is absent may be classified otherwise),
    a screen whose column is absent is null (``in_circuit`` then null unless the
    other screen holds), a :class:`UserWarning` names the missing columns, and a
    column ``class_among`` lists the targets compared.
    """
    import warnings

    if "layer" not in scores.columns or "head" not in scores.columns:
        missing = [c for c in ("layer", "head") if c not in scores.columns]
        raise ConfigError(f"classify_heads: the scores frame lacks the columns {missing}")
    present = [c for c in C.SELECTIVITY_COLUMNS if c in scores.columns]
    if not present:
        raise ConfigError(f"classify_heads: the scores frame has none of the columns {list(C.SELECTIVITY_COLUMNS)}")
    absent = [c for c in C.SELECTIVITY_COLUMNS if c not in present]
    thresholds = _thresholds(thresholds)
    if not absent:
        return head_classes(scores, thresholds)
    warnings.warn(
        f"classify_heads: no {', '.join(absent)}; classified among {', '.join(present)} only "
        "(their screens are null; see the class_among column)",
        UserWarning,
        stacklevel=2,
    )
    # an absent target never wins (-inf), and its screens are unknown (null), not false
    filled = scores.with_columns(pl.lit(float("-inf")).alias(column) for column in absent)
    classified = head_classes(filled, thresholds).drop(absent)
    unknown = {
        "sel_induction": ("induction_selective", "induction_member"),
        "sel_previous": ("previous_member",),
    }
    nulls = [name for column in absent for name in unknown.get(column, ())]
    classified = classified.with_columns(pl.lit(None, pl.Boolean).alias(name) for name in nulls)
    if nulls:
        circuit = pl.col("induction_member") | pl.col("previous_member")  # Kleene: null | true is true
        classified = classified.with_columns(circuit.alias("in_circuit"))
    among = ", ".join(column.removeprefix("sel_") for column in present)
    return classified.with_columns(pl.lit(among).alias("class_among"))


def measure_heads(
    model: PreTrainedModel,
    probes: ProbeSettings | None = None,
    first_token: int | str | None = None,
    thresholds: Thresholds | None = None,
    progress: bool = False,
) -> pl.DataFrame:
    """Score and classify every attention head of an in-memory transformers ``model``.

    probes: :func:`study_probes` (default: the study's); first_token: the token id
    placed at position 0, ``"bos"`` for the model's BOS (else CLS, else EOS) token,
    or None to keep the random probe token; thresholds: :func:`study_thresholds`
    (default: the study's). The model runs on the device it is on, in eval mode (no
    dropout, so a call gives what a sweep's job gives, every time) with the observed
    attention; its training flags and attention implementation are restored afterwards.

    Settings a sweep would refuse are refused here, by the same checks, before the
    model runs: a :class:`ConfigError` names the argument (e.g. a probe longer than
    the model's ``max_position_embeddings`` or than a layer's sliding window, a
    first token inside the probe token range, a NaN threshold), so a notebook
    measures only what a sweep's job would.

    Returns one row per head (``layer``, ``head``), with the columns of
    ``contracts.HEAD_SCORE_COLUMNS`` and ``contracts.CLASS_COLUMNS``.
    """
    from transformers import PreTrainedModel

    from circuitsweep.config.model_config import attention_windows, standard_config
    from circuitsweep.heads.attention_hook import register
    from circuitsweep.heads.measure import head_statistics
    from circuitsweep.heads.scores import check_finite, head_scores
    from circuitsweep.heads.stage import first_token_id
    from circuitsweep.plan.sizing import length_problem, vocabulary_problem

    if not isinstance(model, PreTrainedModel):
        given = f"str {model[:60]!r}" if isinstance(model, str) else type(model).__name__
        raise TypeError(
            "measure_heads needs a loaded transformers model (e.g. from AutoModelForCausalLM.from_pretrained(...)), "
            f"not {given}"
        )
    policy = _first_token(first_token)
    probes = _probes(probes.to_dict() if probes is not None else {}, policy)
    thresholds = _thresholds(thresholds)
    token_id = first_token_id(policy, model.config)
    where = f"models.{NOTEBOOK}"
    vocabulary = vocabulary_problem(probes.token_range, token_id, model.config.vocab_size, where, type(model).__name__)
    _refuse([vocabulary] if vocabulary else [])
    config = standard_config(model.config.to_dict())
    length = length_problem(probes.to_dict(), config, where, attention_windows(model.config))
    _refuse([length] if length else [])
    device = next(model.parameters()).device
    previous = model.config._attn_implementation
    training = [(module, module.training) for module in model.modules()]
    model.set_attn_implementation(register())
    try:
        model.eval()
        stats = head_statistics(model, probes, token_id, device, progress=progress)
    finally:
        model.set_attn_implementation(previous)
        for module, mode in training:
            module.training = mode
    check_finite(stats, type(model).__name__)
    return head_classes(head_scores(stats), thresholds)


def spectral_ranking(frame: pl.DataFrame) -> pl.DataFrame:
    """Rank heads by the integral of their participation-ratio trajectory (docs/methods.md, the study's Phase 1).

    frame: rows of ``layer``, ``head``, ``tokens`` and ``pr`` (one per head and
    revision; ``step`` optional, to order revisions with equal tokens), e.g. the
    heads table of a sweep (``read_results(...).heads``; drop a model's
    ``spectral_leave_out`` revisions first, as ``tables/spectral.csv`` does). With a
    ``model`` column, each model is ranked on its own revisions. Returns one row per head, in rank
    order (per model, in the frame's model order): ``model`` (when given),
    ``layer``, ``head``, ``integral`` (trapezoid of max(PR - 1, 0) over
    ln(tokens)), ``final_pr``, ``max_pr``, ``min_pr``, ``spread``, ``rank`` (1 =
    largest integral), ``n_revisions`` and ``n_left_out`` (revisions with 0
    tokens, left out of the integral).
    """
    from circuitsweep.heads.spectral import spectral_ranking as rank

    if "model" not in frame.columns:
        return rank(frame).sort("rank")
    ranked = []
    for model in frame["model"].unique(maintain_order=True).to_list():
        rows = frame.filter(pl.col("model") == model).drop("model")
        try:
            ranked.append(rank(rows).sort("rank").select(pl.lit(model).alias("model"), pl.all()))
        except DataError as error:
            raise DataError(f"{model}: {error}") from None
    return pl.concat(ranked)


@dataclass(frozen=True)
class Results:
    """The final tables of a sweep, and the settings that made them (per model).

    ``spectral`` (the spectral ranking) and ``final_ablation`` (the final-revision ablation table, with
    ``final_ablation_settings`` per model: its ``spectral_top_k`` and the resolved K) are None where the
    run made none.
    """

    heads: pl.DataFrame
    emergence: pl.DataFrame
    milestones: pl.DataFrame
    settings: dict[str, Any]
    spectral: pl.DataFrame | None = None
    final_ablation: pl.DataFrame | None = None
    final_ablation_settings: dict[str, Any] = field(default_factory=dict)


#: The run folder the notebook helpers read when given none: the default toy run's.
DEFAULT_RESULTS = "results/toy"


def read_results(results: str | Path = DEFAULT_RESULTS) -> Results:
    """Read the heads, emergence and milestone tables of a finished run's folder (``results/<run>``).

    A folder whose last run started and did not finish, or failed, may hold an earlier run's tables: the
    note the report opens with (``run_unfinished.txt``) is then issued as a :class:`UserWarning`.
    """
    import warnings

    from circuitsweep.io.run_folder import unfinished_note

    if Path(results).is_file():
        raise ConfigError(f"{results} is a file; read_results wants a run folder such as {DEFAULT_RESULTS}")
    if not Path(results).exists():
        raise ConfigError(
            f"{results} does not exist (relative to {Path.cwd()}); read_results wants a run folder such as "
            f"{DEFAULT_RESULTS}, relative to where the workflow ran, or an absolute path"
        )
    run_folder = Path(results).parent
    if Path(results).name == "tables" and C.Paths(run_folder).heads_table().is_file():
        raise ConfigError(f"{results} is a run's tables folder; read_results wants the run folder, {run_folder}")
    if (note := unfinished_note(results)) is not None:
        warnings.warn(f"{results}: {note}", UserWarning, stacklevel=2)
    paths = C.Paths(Path(results))
    files = {
        "heads": paths.heads_table(),
        "emergence": paths.emergence_table("parquet"),
        "milestones": paths.milestones_table("parquet"),
    }
    missing = [str(path) for path in files.values() if not path.is_file()]
    runs = sorted(p.parent.name for p in Path(results).glob(f"*/{IDENTITY_FILE}"))
    if missing and runs:
        raise ConfigError(f"{results} holds runs, not tables: read one of {', '.join(f'{results}/{r}' for r in runs)}")
    if missing:
        raise ConfigError(f"{results}: no final tables ({', '.join(missing)} missing); run the workflow first")
    tables = {name: read_table(path) for name, path in files.items()}
    optional = {"spectral": paths.spectral_table("parquet"), "final_ablation": paths.final_ablation_table("parquet")}
    extra = {name: read_table(path) if path.is_file() else (None, {}) for name, path in optional.items()}
    return Results(
        heads=tables["heads"][0],
        emergence=tables["emergence"][0],
        milestones=tables["milestones"][0],
        settings=tables["heads"][1].get("models", {}),
        spectral=extra["spectral"][0],
        final_ablation=extra["final_ablation"][0],
        final_ablation_settings=extra["final_ablation"][1].get("models", {}),
    )


def _results(results: Results | str | Path) -> Results:
    return results if isinstance(results, Results) else read_results(results)


def plot_emergence(results: Results | str | Path = DEFAULT_RESULTS) -> Figure:
    """The emergence figure of a sweep: BOS-head fraction and induction heads against tokens, milestones marked.

    ``results``: :func:`read_results`' tables or a results folder. Returns the
    matplotlib figure (shown inline in a notebook; ``figure.savefig(path)`` writes it).
    """
    from circuitsweep.outputs.plots import emergence_figure

    tables = _results(results)
    levels = {(s.get("milestones") or {}).get("bos_fraction_milestone") for s in tables.settings.values()}
    level = levels.pop() if len(levels) == 1 and None not in levels else 0.5
    return emergence_figure(tables.emergence, tables.milestones, bos_level=level)


def plot_trajectories(results: Results | str | Path = DEFAULT_RESULTS, model: str | None = None) -> Figure:
    """Every head's best selectivity across training for ``model`` (default: the only model), by its final class.

    The class threshold of the run is drawn as a dashed line. Returns the matplotlib figure.
    """
    from circuitsweep.outputs.plots import trajectory_figure

    tables = _results(results)
    models = tables.heads["model"].unique(maintain_order=True).to_list()
    if model is None:
        if len(models) != 1:
            raise ConfigError(f"plot_trajectories: name one model of {models}")
        model = models[0]
    if model not in models:
        raise ConfigError(f"plot_trajectories: no model {model!r} in the results (models: {models})")
    thresholds = (tables.settings.get(model) or {}).get("thresholds") or {}
    return trajectory_figure(tables.heads, model, thresholds.get("class_selectivity"))


def findings(
    results: Results | str | Path = DEFAULT_RESULTS, spectral_top_k: list[int | float | str] | None = None
) -> Findings:
    """The study's findings of a sweep, as ``tables/findings.*`` hold them (no model is loaded).

    ``results``: :func:`read_results`' tables or a results folder; ``spectral_top_k``: the K of the top-K
    findings (counts, shares of the heads, ``"elbow"``; default: the run's, as its final-ablation table
    records it, else the study's 45 and 6). Returns a :class:`milestones.findings.Findings`: ``rows``
    (one per finding: section, item, value, text and the tables it comes from), ``across_models`` (one
    row per model: BOS fractions, BOS heads per layer, the layer floor, screen size, onset, t50) and
    ``paragraphs`` (one per model); ``.section(model, "precision at K")`` picks one section.
    """
    from circuitsweep.milestones.findings import findings as compute

    tables = _results(results)
    if tables.spectral is None:
        raise ConfigError("findings: the results have no spectral table (tables/spectral.parquet); rerun the workflow")
    if spectral_top_k is None:
        recorded = [(s or {}).get("spectral_top_k") for s in tables.final_ablation_settings.values()]
        spectral_top_k = (
            next((k for k in recorded if k is not None), None) or study_defaults("ablation")["spectral_top_k"]
        )
    thresholds = {model: (run or {}).get("thresholds") or {} for model, run in tables.settings.items()}
    return compute(
        tables.spectral, tables.heads, tables.milestones, tables.final_ablation, list(spectral_top_k), thresholds
    )
