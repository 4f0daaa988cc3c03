"""The study's ablation at the final revision (docs/methods.md): every condition of its scripts, once per model.

Conditions, each scored on every probe (loss, top-1, top-5 and mean logit of B
at the query, :func:`heads.ablation.score_targets`):

- ``none``;
- per K of ``spectral_top_k`` (a count, a share of the heads or ``elbow``:
  :func:`heads.spectral.resolve_top_k`; the ``k`` column holds the count):
  ``spectral_top`` (the K heads of largest
  participation-ratio integral), ``spectral_random`` (matched random heads:
  per layer of the picks, as many of its other heads, layers in the picks' rank
  order, as the study's synthetic script) and ``spectral_layers`` (every head
  of the picks' layers, the upper bound);
- ``screen`` (the all-head induction screen: induction selectivity >=
  ``induction_circuit`` at the final revision, whatever the class),
  ``screen_random`` (matched, layers ascending, as the natural-text script) and
  ``screen_layers``;
- ``induction_head``: per K, each head of class induction (the run's class
  threshold) among the top K spectral picks alone, the study's singles (OLMoE
  at K = 45: L7H0 and L9H8); ``screen_head``: each screen head alone.

Matched draws: ``random_draws`` in sequence from one ``RandomState(random_seed)``
per condition family (each of the study's scripts made its own), so draw 0 is the
study's. A layer with fewer other heads than picks gives what it has and the
row records the shortfall; a condition left with no head is recorded unscored.

Every scored row keeps its per-sequence outcomes (``ABLATION_SEQUENCE_COLUMNS``);
the table gives each row its paired tests (:mod:`heads.ablation_stats`): its drop
against ``none`` and, for ``spectral_top`` and ``screen``, its excess drop over
the per-sequence mean of its matched-random draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from circuitsweep.errors import CacheError, DataError
from circuitsweep.heads.ablation_stats import SEQUENCE_SCHEMA
from circuitsweep.heads.classify import induction_member
from circuitsweep.heads.matched import Head, by_layer, draw_note, heads_label, matched_draws
from circuitsweep.heads.spectral import ELBOW, TopK, elbow_k, final_revision, resolve_top_k, unranked_note
from circuitsweep.io import contracts as C
from circuitsweep.io.tables import read_table, write_csv, write_markdown, write_table

#: The metrics of a scored condition.
METRICS: tuple[str, ...] = ("loss", "top1", "top5", "mean_logit")


@dataclass(frozen=True)
class Condition:
    """One ablated head set: its condition name, heads (in the condition's order) and what was asked for."""

    name: str
    heads: tuple[Head, ...]
    n_requested: int
    k: int | None = None
    draw: int | None = None
    note: str | None = None

    @property
    def shortfall(self) -> int:
        return self.n_requested - len(self.heads)


def full_layers(groups: Sequence[tuple[int, Sequence[int]]], n_heads: int) -> list[Head]:
    return [(layer, head) for layer, _ in groups for head in range(n_heads)]


def _controls(
    prefix: str, heads: list[Head], groups: list, n_heads: int, draws: int, seed: int, k: int | None
) -> list[Condition]:
    """The matched-random draws (each with :func:`heads.matched.draw_note`) and the full layers of one head set."""
    out = [
        Condition(f"{prefix}_random", tuple(drawn), len(heads), k=k, draw=draw, note=draw_note(groups, n_heads, drawn))
        for draw, drawn in enumerate(matched_draws(groups, n_heads, draws, seed))
    ]
    out.append(Condition(f"{prefix}_layers", tuple(full_layers(groups, n_heads)), n_heads * len(groups), k=k))
    return out


def ranking_top_k(ranking: pl.DataFrame, spectral_top_k: Sequence[int | float | str]) -> list[TopK]:
    """The K of each ``spectral_top_k`` entry for the model of ``ranking`` (one row per head; ``integral``
    needed for ``elbow``)."""
    if "integral" in ranking.columns:
        integrals = ranking["integral"].to_list()
    elif ELBOW in spectral_top_k:
        raise DataError("spectral_top_k: elbow needs the ranking's integral column")
    else:
        integrals = [0.0] * ranking.height
    return resolve_top_k(spectral_top_k, integrals)


def final_conditions(
    ranking: pl.DataFrame,
    final: pl.DataFrame,
    induction_circuit: float,
    n_heads: int,
    spectral_top_k: Sequence[int | float | str],
    draws: int,
    seed: int,
) -> list[Condition]:
    """Every condition of the final-revision ablation (module docstring), in the order they are reported.

    ``ranking``: the model's spectral ranking (``layer``, ``head``, ``rank``, and ``integral`` for an
    ``elbow`` K); ``final``: its final revision's classified heads (``layer``, ``head``, ``class``,
    ``sel_induction``); ``n_heads``: heads per layer.
    """
    ranked = ranking.sort("rank")
    ranked_heads = list(zip(ranked["layer"].to_list(), ranked["head"].to_list(), strict=True))
    conditions = [Condition("none", (), 0)]
    final = final.sort("layer", "head")
    induction = set(final.filter(pl.col("class") == C.INDUCTION_CLASS).select("layer", "head").rows())
    singles = []
    unranked = unranked_note(ranking)
    if unranked is not None:  # no integral, so no top K: said in the rows, never picked by head order
        counts = resolve_top_k([v for v in spectral_top_k if v != ELBOW], [0.0] * ranking.height)
        conditions += [Condition("spectral_top", (), top.k, k=top.k, note=unranked) for top in counts]
        if ELBOW in spectral_top_k:
            conditions.append(Condition("spectral_top", (), 0, note=f"{unranked} (K = the elbow)"))
    for top in [] if unranked is not None else ranking_top_k(ranked, spectral_top_k):
        k = top.k
        picks = ranked_heads[:k]
        notes = [top.describe(len(ranked_heads))]
        if len(picks) != k:
            notes.append(f"K = {k} exceeds the model's {len(ranked_heads)} heads: all of them")
        note = "; ".join(n for n in notes if n) or None
        conditions.append(Condition("spectral_top", tuple(picks), k, k=k, note=note))
        conditions += _controls("spectral", picks, by_layer(picks), n_heads, draws, seed, k)
        # the study's singles: the induction-class heads among the picks, in rank order
        singles += [Condition("induction_head", (head,), 1, k=k) for head in picks if head in induction]
    members = final.filter(induction_member(induction_circuit))
    screen = list(zip(members["layer"].to_list(), members["head"].to_list(), strict=True))
    if not screen:
        note = f"empty screen: no head has induction selectivity >= {induction_circuit:g}"
        conditions.append(Condition("screen", (), 0, note=note))
    else:
        conditions.append(Condition("screen", tuple(screen), len(screen)))
        conditions += _controls("screen", screen, by_layer(screen), n_heads, draws, seed, None)
    conditions += singles
    conditions += [Condition("screen_head", (head,), 1) for head in screen]
    return conditions


def final_ablation_rows(
    model: Any, conditions: Sequence[Condition], probes: Sequence[Any], batch_size: int, device: Any
) -> list[dict[str, Any]]:
    """Score every condition on every probe (``heads.ablation.AblationProbe``): rows of ``FINAL_ABLATION_COLUMNS``
    without the revision's identity. A condition other than ``none`` left with no head is not scored."""
    from circuitsweep.heads.ablation import ablated, mean_scores, score_sequences, sequence_columns

    rows = []
    for probe in probes:
        for condition in conditions:
            metrics, sequences = dict.fromkeys(METRICS), None
            note = condition.note
            if condition.heads or condition.name == "none":
                with ablated(model, condition.heads):
                    sequences = score_sequences(
                        model, probe, batch_size, device, f"{condition.name} {heads_label(condition.heads)}".rstrip()
                    )
                metrics = mean_scores(sequences)
            elif note is None:
                note = "no head left to ablate: not scored"
            rows.append(
                {
                    "probe": probe.name,
                    "condition": condition.name,
                    "k": condition.k,
                    "draw": condition.draw,
                    "heads": heads_label(condition.heads),
                    "n_ablated": len(condition.heads),
                    "n_requested": condition.n_requested,
                    "shortfall": condition.shortfall,
                    "n_sequences": len(probe.tokens),
                    **metrics,
                    "note": note,
                    **sequence_columns(sequences),
                }
            )
    return rows


_SCHEMA: dict[str, Any] = {
    "model": pl.String,
    "revision": pl.String,
    "step": pl.Int64,
    "tokens": pl.Int64,
    "probe": pl.String,
    "condition": pl.String,
    "k": pl.Int64,
    "draw": pl.Int64,
    "heads": pl.String,
    "n_ablated": pl.Int64,
    "n_requested": pl.Int64,
    "shortfall": pl.Int64,
    "n_sequences": pl.Int64,
    "loss": pl.Float64,
    "top1": pl.Float64,
    "top5": pl.Float64,
    "mean_logit": pl.Float64,
    "note": pl.String,
    **SEQUENCE_SCHEMA,
}


def rows_frame(rows: Sequence[dict[str, Any]], identity: dict[str, Any]) -> pl.DataFrame:
    """The rows with the revision's identity (model, revision, step, tokens), in ``FINAL_ABLATION_COLUMNS`` order."""
    return pl.DataFrame([{**identity, **row} for row in rows], schema=_SCHEMA).select(C.FINAL_ABLATION_COLUMNS)


def read_inputs(heads_path: Path, spectral_path: Path, model: str, revision: str) -> tuple:
    """The final revision's classified heads, the spectral ranking and the screen cut, checked to be ``model``'s
    and to end at ``revision``."""
    heads, metadata = read_table(heads_path)
    ranking, ranking_metadata = read_table(spectral_path)
    for path, found in ((heads_path, metadata), (spectral_path, ranking_metadata)):
        if found.get("model") != model:
            raise CacheError(f"{path} belongs to model {found.get('model')!r}, not {model!r}; delete it and rerun")
    final = final_revision(heads)
    if final["revision"][0] != revision:
        raise CacheError(f"{heads_path} ends at revision {final['revision'][0]!r}, the plan at {revision!r}; rerun")
    if set(ranking["final_revision"]) != {revision}:
        raise CacheError(f"{spectral_path} was ranked up to another revision than {revision!r}; delete it and rerun")
    cut = (metadata.get("thresholds") or {}).get("induction_circuit")
    if cut is None:
        raise CacheError(f"{heads_path} records no thresholds.induction_circuit; delete it and rerun")
    return final, ranking, float(cut)


def run_final_ablation(
    settings: dict[str, Any],
    snapshot_dir: Path,
    heads_path: Path,
    spectral_path: Path,
    output: Path,
    *,
    natural_batch: Path | None = None,
    mem_mb: int | None = None,
) -> None:
    """Load the final revision once and write every condition's rows (``heads.jobs.final_ablation_settings``)."""
    from circuitsweep.checkpoints.loading import resolve_device
    from circuitsweep.config.probes import AblationSettings
    from circuitsweep.heads.ablation import AblationProbe, synthetic_probe
    from circuitsweep.heads.stage import RevisionJob, first_token_id, load_revision
    from circuitsweep.io.cache_check import SETTINGS_KEY, settings_digest

    job = RevisionJob.from_dict(settings["job"])
    if job.ablation is None:
        raise DataError(f"{job.model}: the final-revision ablation needs ablation settings")
    ablation = AblationSettings(**job.ablation)
    final, ranking, cut = read_inputs(heads_path, spectral_path, job.model, job.revision)
    if cut != float(settings["thresholds"]["induction_circuit"]):
        raise CacheError(f"{heads_path} was classified with induction_circuit {cut:g}, not the planned one; rerun")
    model, snapshot = load_revision(snapshot_dir, job, mem_mb)
    device = resolve_device(job.device)
    n_heads = model.config.get_text_config().num_attention_heads
    conditions = final_conditions(
        ranking, final, cut, n_heads, settings["spectral_top_k"], ablation.random_draws, ablation.random_seed
    )
    token_id = first_token_id(job.first_token, model.config, snapshot.path, model=job.model, revision=job.revision)
    probes = [synthetic_probe(job.probes, token_id)]
    if job.probes.natural_text is not None:
        from circuitsweep.heads.natural_text import revision_natural_batch

        batch = revision_natural_batch(
            natural_batch, job.probes.natural_text, snapshot.path, job.model, job.revision, model.config
        )
        probes.append(AblationProbe("natural", batch.tokens, batch.query, batch.next_tokens()))
    if ablation.n_sequences is not None:
        keep = slice(0, ablation.n_sequences)
        probes = [AblationProbe(p.name, p.tokens[keep], p.query[keep], p.target[keep]) for p in probes]
    rows = final_ablation_rows(model, conditions, probes, ablation.batch_size, device)
    identity = {"model": job.model, "revision": job.revision, "step": job.step, "tokens": job.tokens}
    metadata = {
        **identity,
        "dtype": job.dtype,
        "device": str(device),
        "commit": snapshot.commit,
        "weights_sha256": snapshot.fingerprint,
        "induction_circuit": cut,
        "spectral_top_k": list(settings["spectral_top_k"]),
        "spectral_k": [top.k for top in ranking_top_k(ranking, settings["spectral_top_k"])],
        "elbow_k": elbow_k(ranking["integral"].to_list()),
        "ablation": job.ablation,
        "ablation_schema": job.ablation_schema,
        SETTINGS_KEY: settings_digest(settings),
    }
    write_table(output, rows_frame(rows, identity), metadata)
    print(f"{job.model} {job.revision}: {len(conditions)} conditions on {len(probes)} probes")


#: The conditions whose excess drop is measured, and the family of their matched-random draws.
CONTROLLED: dict[str, str] = {"spectral_top": "spectral_random", "screen": "screen_random"}


def summary(rows: pl.DataFrame) -> pl.DataFrame:
    """The study-like table (``FINAL_ABLATION_TABLE_COLUMNS``), conditions in the order they were run: each
    condition's value; matched-random draws as draw 0 (the study's), then their mean and SD (ddof 1).

    Each row carries its paired tests (``ABLATION_TEST_COLUMNS``, :mod:`heads.ablation_stats`): the drop
    against ``none`` (for "mean of n", of the draws' per-sequence mean) and, for ``spectral_top`` and
    ``screen``, the excess drop over their draws' per-sequence mean; "sd of n" rows have none.
    """
    from circuitsweep.heads import ablation_stats as S

    resampling = S.Resampling()
    rows = rows.with_row_index("_row")
    # per row (several rows share a condition and K: the singles)
    outcomes = [S.row_outcomes(row) for row in rows.iter_rows(named=True)]
    nones = {
        (r["model"], r["probe"]): outcomes[r["_row"]] for r in rows.iter_rows(named=True) if r["condition"] == "none"
    }

    def scored_draws(model: str, probe: str, family: str, k: int | None) -> list[dict[str, Any]]:
        drawn = rows.filter(
            (pl.col("model") == model) & (pl.col("probe") == probe) & (pl.col("condition") == family),
            pl.col("k").is_null() if k is None else pl.col("k") == k,
            pl.col("draw").is_not_null(),
        )
        return [outcomes[i] for i in drawn["_row"] if outcomes[i] is not None]

    def comparison(first: dict[str, Any], treated: dict[str, Any] | None, controls: list) -> S.Comparison:
        return (
            None if first["condition"] == "none" else nones.get((first["model"], first["probe"])),
            treated,
            controls,
        )

    out, comparisons = [], []  # comparisons[i]: what out[i] is tested on (None: nothing)
    for _, group in rows.group_by("model", "probe", "condition", "k", maintain_order=True):
        first = group.row(0, named=True)
        model, probe, condition, k = first["model"], first["probe"], first["condition"], first["k"]
        if first["draw"] is None:
            family = CONTROLLED.get(condition)
            controls = scored_draws(model, probe, family, k) if family else []
            for row in group.iter_rows(named=True):
                out.append({**row, "statistic": "value"})
                comparisons.append(comparison(row, outcomes[row["_row"]], controls))
            continue
        n = group.height
        out.append({**first, "statistic": "draw 0"})
        comparisons.append(comparison(first, outcomes[first["_row"]], []))
        draws = scored_draws(model, probe, condition, k)
        notes = sorted({note for note in group["note"] if note})
        for statistic, reduce in ((f"mean of {n}", "mean"), (f"sd of {n}", "std")):
            values = {m: getattr(group[m], reduce)() for m in METRICS}
            out.append(
                {
                    **first,
                    "statistic": statistic,
                    "heads": "",
                    "n_ablated": float(group["n_ablated"].mean()),
                    "shortfall": int(group["shortfall"].max()),
                    **values,
                    "note": "; ".join(notes) or None,
                }
            )
            mean = reduce == "mean" and draws
            comparisons.append(comparison(first, S.mean_outcomes(draws), []) if mean else None)
    # every row scored on the same sequences (a model's probe) is resampled together
    by_sequences: dict[tuple, list[int]] = {}
    for i, row in enumerate(out):
        if comparisons[i] is not None:
            by_sequences.setdefault((row["model"], row["probe"], row["n_sequences"]), []).append(i)
    for (_, _, n), indices in by_sequences.items():
        tested = S.group_tests([comparisons[i] for i in indices], *resampling(int(n or 0)))
        for i, result in zip(indices, tested, strict=True):
            out[i].update(result)
    schema = {**_SCHEMA, "statistic": pl.String, "n_ablated": pl.Float64}
    schema |= {name: pl.Float64 for name in C.ABLATION_TEST_COLUMNS} | {"n_controls": pl.Int64}
    columns = {c: schema[c] for c in C.FINAL_ABLATION_TABLE_COLUMNS}
    return pl.DataFrame([{c: row.get(c) for c in columns} for row in out], schema=columns)


def final_ablation_table(row_paths: Sequence[Path], parquet: Path, csv: Path, markdown: Path) -> None:
    """Stack the models' final-revision rows and write the study-like summary as Parquet, CSV and Markdown."""
    frames, models = [], {}
    for path in row_paths:
        frame, metadata = read_table(path)
        if set(C.FINAL_ABLATION_COLUMNS) - set(frame.columns) or (
            metadata.get("ablation_schema") != C.ABLATION_SCHEMA_VERSION
        ):
            raise CacheError(f"{path} predates the per-sequence ablation outcomes; delete it and rerun")
        frames.append(frame.select(C.FINAL_ABLATION_COLUMNS))
        models[metadata.get("model")] = {
            key: metadata.get(key)
            for key in ("revision", "dtype", "induction_circuit", "spectral_top_k", "spectral_k", "elbow_k", "ablation")
        }
    table = summary(pl.concat(frames))
    write_table(parquet, table, {"models": models})
    write_csv(table, csv)
    write_markdown(
        markdown_view(table), markdown, title="Ablation at the final revision (docs/methods.md)", intro=TESTS
    )


#: What the test cells of ``final_ablation.md`` hold (docs/methods.md, "paired tests").
TESTS = (
    "Each test cell: the mean paired difference over the probe sequences, its 95% paired bootstrap interval, and a "
    "one-sided p (top-1: the exact sign test on the sequences that differ; loss: a sign-flip permutation test). "
    "Excess: against the per-sequence mean of the matched-random draws. The interval rests on the mean difference "
    "and the sign test on how many sequences move each way, so on few sequences that differ they can disagree "
    "(an interval clear of 0 beside p above 0.05)."
)

#: The paired tests the Markdown table shows, one cell each (the CSV and Parquet hold every column).
MARKDOWN_TESTS: dict[str, str] = {
    "top1_drop": "top-1 drop [95% CI], p",
    "top1_excess_drop": "excess top-1 drop [95% CI], p",
    "loss_increase": "loss increase [95% CI], p",
    "loss_excess_increase": "excess loss increase [95% CI], p",
}


def markdown_view(table: pl.DataFrame) -> pl.DataFrame:
    """The summary as ``final_ablation.md`` shows it: each paired test in one cell (estimate [interval], p)."""
    from circuitsweep.heads.ablation_stats import format_paired

    cells = {
        title: [
            format_paired(row[prefix], row[f"{prefix}_ci_low"], row[f"{prefix}_ci_high"], row[f"{prefix}_p"])
            for row in table.iter_rows(named=True)
        ]
        for prefix, title in MARKDOWN_TESTS.items()
    }
    kept = [c for c in C.FINAL_ABLATION_TABLE_COLUMNS if c not in C.ABLATION_TEST_COLUMNS and c != "revision"]
    view = table.select(kept[:-1]).with_columns(pl.Series(title, values, pl.String) for title, values in cells.items())
    return view.with_columns(table["note"])
