"""What each subcommand does: read its parsed arguments and call the package (the rules stay thin, and so do
these). Heavy libraries are imported inside each command, so a command that loads no model starts fast."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from circuitsweep.cli.plan_summary import describe_plan, measurement_job


def parsed(args: argparse.Namespace, option: str, parse: Callable[[Any], Any]) -> Any:
    """``parse(args.<option>)`` (a JSON argument into its settings object); a value of the wrong shape inside
    it (a missing key, a list for a number) is an :class:`InputError` naming the option."""
    from circuitsweep.errors import CircuitsweepError, InputError

    try:
        return parse(getattr(args, option))
    except CircuitsweepError as error:
        raise InputError(f"--{option.replace('_', '-')}: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        detail = f"no {error}" if isinstance(error, KeyError) else " ".join(str(error).split())[:200]
        raise InputError(f"--{option.replace('_', '-')}: not the settings this command takes ({detail})") from None


def cmd_check_config(args: argparse.Namespace) -> None:
    from circuitsweep import revision_stage
    from circuitsweep.config.load import load_config
    from circuitsweep.config.overrides import merge_config, parse_overrides
    from circuitsweep.io.contracts import Paths
    from circuitsweep.plan import costs
    from circuitsweep.plan.costs import describe_cost, describe_partial
    from circuitsweep.plan.resources import suits
    from circuitsweep.plan.sweep import plan_run, results_paths

    configfile, root = os.path.abspath(args.config), os.path.abspath(args.root)
    config = merge_config(load_config(configfile), parse_overrides(args.set))
    # the run's folder and its caches as Snakemake sees them, from its working directory (-d)
    paths = results_paths(config, [configfile])
    if Path(args.directory).is_dir():
        os.chdir(args.directory)
    else:  # Snakemake would create it: nothing is measured there yet
        paths = Paths(Path(args.directory) / paths.root)
    plan = plan_run(config, [configfile], Path(root), keep_hashes=False, paths=paths)
    gpu_present = not suits("auto")
    for line in describe_plan(plan, {model: measurement_job(plan, model, gpu_present) for model in plan.models}):
        print(line)
    warm = bool(config.get("warm_worker", True))
    cost = costs.sweep_cost(
        plan, revision_stage.pending(plan), int(config.get("snapshots_on_disk", 2)), gpu_present, warm
    )
    print(describe_cost(cost))
    for manifest in plan.partial_manifests():
        print(describe_partial(manifest))


def cmd_refresh_manifest(args: argparse.Namespace) -> None:
    from circuitsweep.checkpoints.hub import refresh_manifest
    from circuitsweep.checkpoints.revisions import same_point

    skipped: list[str] = []
    manifest = refresh_manifest(
        args.repo_id,
        Path(args.manifest),
        tokens_per_step=args.tokens_per_step,
        endpoint=args.endpoint,
        skipped=skipped,
        pattern=args.branch_pattern,
        force=args.force,
    )
    print(f"{args.manifest}: {len(manifest.revisions)} revisions of {args.repo_id}")
    for first, second in same_point(manifest.revisions):
        print(
            f"note: branches {first.name!r} and {second.name!r} are one checkpoint (step {first.step:,}, "
            f"{first.tokens:,} tokens): a sweep may select only one of them"
        )
    if skipped:
        print(f"skipped {len(skipped)} branches that are not usable checkpoint names: {', '.join(map(repr, skipped))}")


def cmd_train_toy(args: argparse.Namespace) -> None:
    from circuitsweep.toy.publish import train_toy_suite_model

    train_toy_suite_model(args.settings, Path(args.hub), Path(args.published), threads=args.threads)


def cmd_fetch_snapshot(args: argparse.Namespace) -> None:
    from circuitsweep.checkpoints.snapshots import fetch_snapshot

    fetch_snapshot(args.settings, Path(args.output))


def cmd_measure_revision(args: argparse.Namespace) -> None:
    import torch

    from circuitsweep.errors import ConfigError
    from circuitsweep.heads.stage import ExtraMeasurements, RevisionJob
    from circuitsweep.revision_stage import PrimitiveRequest, measure_revision

    job = parsed(args, "settings", RevisionJob.from_dict)
    torch.set_num_threads(args.threads)
    extra = ExtraMeasurements(
        natural_batch=Path(args.natural_batch) if args.natural_batch else None,
        natural_scores=Path(args.natural_scores) if args.natural_scores else None,
        ablation=Path(args.ablation) if args.ablation else None,
    )
    given = [args.primitive_settings is not None, args.stimuli is not None, args.primitives is not None]
    if any(given) and not all(given):
        raise ConfigError("measure-revision: give --primitive-settings, --stimuli and --primitives together")
    primitives = None
    if all(given):
        primitives = PrimitiveRequest(args.primitive_settings, Path(args.stimuli), Path(args.primitives))
    measure_revision(
        Path(args.snapshot),
        job,
        Path(args.stats),
        Path(args.scores),
        extra=extra,
        primitives=primitives,
        mem_mb=args.mem_mb,
    )


def cmd_natural_batch(args: argparse.Namespace) -> None:
    from circuitsweep.heads.natural_text import natural_batch

    natural_batch(Path(args.snapshot), args.settings, Path(args.output))


def cmd_classify_heads(args: argparse.Namespace) -> None:
    from circuitsweep.heads.classify import Thresholds
    from circuitsweep.heads.stage import classify_heads

    classify_heads(
        args.model,
        [Path(p) for p in args.scores],
        parsed(args, "thresholds", Thresholds.from_dict),
        Path(args.heads),
        Path(args.revisions),
        stats_paths=[Path(p) for p in args.stats] if args.stats else None,
        expected=args.expected,
        natural_paths=[Path(p) for p in args.natural if p],
    )


def cmd_bootstrap_heads(args: argparse.Namespace) -> None:
    from circuitsweep.config.probes import BootstrapSettings
    from circuitsweep.config.thresholds import Thresholds
    from circuitsweep.milestones.bootstrap import bootstrap_heads

    bootstrap_heads(
        args.model,
        [Path(p) for p in args.stats],
        Path(args.heads),
        Path(args.revisions),
        parsed(args, "settings", lambda settings: Thresholds.from_dict(settings["thresholds"])),
        parsed(args, "settings", lambda settings: BootstrapSettings.from_dict(settings["bootstrap"])),
        Path(args.heads_out),
        Path(args.curves_out),
        onset_heads=parsed(args, "settings", lambda settings: int(settings["induction_onset_heads"])),
        expected=args.expected,
        skip_duplicates=bool(args.settings.get("skip_duplicates")),
    )


def cmd_head_tables(args: argparse.Namespace) -> None:
    from circuitsweep.milestones.emergence import MilestoneThresholds
    from circuitsweep.milestones.tables import HeadTableOutputs, head_tables

    thresholds = parsed(
        args, "thresholds", lambda given: {model: MilestoneThresholds.from_dict(v) for model, v in given.items()}
    )
    out = HeadTableOutputs(
        heads=Path(args.heads_out),
        emergence_parquet=Path(args.emergence),
        emergence_csv=Path(args.emergence_csv),
        milestones_parquet=Path(args.milestones_parquet),
        milestones_csv=Path(args.milestones),
        milestones_md=Path(args.milestones_md),
        ablation_parquet=Path(args.ablation_out) if args.ablation_out else None,
        ablation_csv=Path(args.ablation_csv) if args.ablation_csv else None,
    )
    head_tables(
        [Path(p) for p in args.heads],
        [Path(p) for p in args.revisions],
        thresholds,
        out,
        skip_duplicates=args.skip_duplicates,
        ablation_paths=[Path(p) for p in args.ablation_rows if p],
        causal_factor=args.causal_factor,
        causal_alpha=args.causal_alpha,
        bootstrap_heads=[Path(p) for p in args.bootstrap_heads if p],
        bootstrap_curves=[Path(p) for p in args.bootstrap_curves if p],
    )


def cmd_milestone_brackets(args: argparse.Namespace) -> None:
    from circuitsweep.io.contracts import Paths
    from circuitsweep.io.tables import read_table
    from circuitsweep.milestones.refine import milestone_brackets, write_brackets
    from circuitsweep.plan.rounds import read_rounds
    from circuitsweep.plan.sweep import plan_sweep

    plan = plan_sweep(args.config, Path(args.root), Paths(Path(args.results)))
    if plan.refine is None:
        from circuitsweep.errors import ConfigError

        raise ConfigError("milestone-brackets: the config has no refine block")
    milestones, _ = read_table(Path(args.milestones))
    curves, _ = read_table(Path(args.emergence))
    added = read_rounds(plan.paths.refine_rounds())
    table = milestone_brackets(milestones, curves, plan.available, plan.revisions, plan.refine, added)
    write_brackets(table, Path(args.csv), Path(args.markdown))


def cmd_group_milestones(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_table, write_csv, write_markdown
    from circuitsweep.milestones.groups import group_milestones

    milestones, _ = read_table(Path(args.milestones))
    table = group_milestones(milestones, args.groups)
    write_csv(table, Path(args.csv))
    write_markdown(table, Path(args.markdown), title="Milestones per group: spread of the tokens over its models")


def cmd_refine(args: argparse.Namespace) -> None:
    from circuitsweep.config.load import load_configs
    from circuitsweep.errors import ConfigError
    from circuitsweep.io.run_folder import LOCK_ENV, lock_run_folder
    from circuitsweep.milestones.refine import (
        RefineFailed,
        RefineRun,
        dry_run,
        refine,
        refine_summary,
        snakemake_options_problem,
    )
    from circuitsweep.plan.sweep import plan_run

    root = Path(args.root)
    configfiles = tuple(Path(c) for c in args.configfile)
    configfiles_read = configfiles or (root / "config" / "config.yaml",)
    config = load_configs(configfiles_read)
    plan = plan_run(config, configfiles_read, root)
    if plan.refine is None:
        raise ConfigError(f"refine: {', '.join(map(str, configfiles)) or 'the config'} has no refine block")
    options = tuple(a for a in args.snakemake if a != "--")
    if problem := snakemake_options_problem(options):
        raise ConfigError(f"refine: the Snakemake options after --: {problem}")
    if not args.dry_run:  # the rounds' Snakemake runs take the lock this process holds (run_folder.LOCK_ENV)
        os.environ[LOCK_ENV] = str(lock_run_folder(plan.paths.root))
    run = RefineRun(root / "workflow" / "Snakefile", configfiles, options, tuple(args.targets))
    if args.dry_run:
        raise SystemExit(dry_run(run))
    try:
        added = refine(run, plan.refine, plan.paths.milestone_brackets("csv"), plan.paths.refine_rounds())
    except RefineFailed as failed:
        raise SystemExit(failed.code) from None
    final = plan_run(config, configfiles_read, root)
    for line in refine_summary(final.revisions, final.available, added):
        print(line)
    print(f"brackets: {final.paths.milestone_brackets('csv')}")


def cmd_plot_emergence(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_frame, read_table
    from circuitsweep.outputs.plots import emergence_plot

    curves = plotted_curves(read_frame(Path(args.emergence)), args.emergence)
    milestones, settings = read_table(Path(args.milestones)) if args.milestones else (None, {})
    models = settings.get("models", {}).values()
    levels = {((model or {}).get("milestones") or {}).get("bos_fraction_milestone") for model in models}
    level = levels.pop() if len(levels) == 1 and None not in levels else 0.5
    brackets = read_csv_frame(args.brackets[0]) if args.brackets else None
    for output in args.output:
        emergence_plot(curves, Path(output), milestones, bos_level=level, brackets=brackets, groups=args.groups)


def plotted_curves(curves: Any, path: str) -> Any:
    """The emergence table ``--emergence path`` as plotted: refused, naming it, when it holds no rows or a BOS
    fraction that is no number (NaN, infinite, empty), which no axis can show."""
    import polars as pl

    from circuitsweep.errors import InputError

    if curves.height == 0:
        raise InputError(f"--emergence {path}: no rows")
    fraction = pl.col("bos_fraction").cast(pl.Float64, strict=False)
    for what, bad in (("no value", fraction.is_null()), ("NaN", fraction.is_nan()), ("inf", fraction.is_infinite())):
        rows = curves.filter(bad)
        if rows.height:
            first = rows.row(0, named=True)
            where = f"{first.get('model')} {first.get('revision')}"
            more = f" (and {rows.height - 1} more rows)" if rows.height > 1 else ""
            raise InputError(f"--emergence {path}: bos_fraction holds {what} at {where}{more}")
    return curves


def read_csv_frame(path: str) -> Any:
    import polars as pl

    return pl.read_csv(path, infer_schema_length=None)


def known_model(args: argparse.Namespace, frame: Any, option: str) -> None:
    """Refuse ``--model`` when the table given as ``option`` holds no rows of it, naming the models it holds."""
    from circuitsweep.errors import InputError

    models = sorted(set(frame["model"].to_list()))
    if args.model not in models:
        held = ", ".join(map(str, models[:8])) + (", ..." if len(models) > 8 else "") or "no model"
        raise InputError(f"--model {args.model}: {getattr(args, option)} holds no rows of it (it holds {held})")


def cmd_plot_heatmap(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_frame
    from circuitsweep.outputs.plots import layer_heatmap

    milestones = read_frame(Path(args.milestones)) if args.milestones else None
    curves = read_frame(Path(args.emergence))
    known_model(args, curves, "emergence")
    layer_heatmap(curves, args.model, Path(args.output), milestones)


def cmd_plot_trajectories(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_table
    from circuitsweep.outputs.plots import head_trajectories

    heads, metadata = read_table(Path(args.heads))
    known_model(args, heads, "heads")
    thresholds = (metadata.get("models", {}).get(args.model) or {}).get("thresholds") or {}
    head_trajectories(heads, args.model, Path(args.output), thresholds.get("class_selectivity"))


def cmd_spectral_model(args: argparse.Namespace) -> None:
    from circuitsweep.heads.spectral import write_model_spectral

    write_model_spectral(Path(args.heads), args.model, Path(args.output), leave_out=args.leave_out)


def cmd_spectral_table(args: argparse.Namespace) -> None:
    from circuitsweep.heads.spectral import spectral_table

    spectral_table([Path(p) for p in args.models], Path(args.parquet), Path(args.csv))


def cmd_plot_spectral(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_table
    from circuitsweep.outputs.plots import spectral_plot

    heads, spectral = read_table(Path(args.heads))[0], read_table(Path(args.spectral))[0]
    known_model(args, heads, "heads")
    known_model(args, spectral, "spectral")
    spectral_plot(heads, spectral, args.model, Path(args.output), args.top_k)


def cmd_final_ablation(args: argparse.Namespace) -> None:
    import torch

    from circuitsweep.heads.final_ablation import run_final_ablation

    torch.set_num_threads(args.threads)
    run_final_ablation(
        args.settings,
        Path(args.snapshot),
        Path(args.heads),
        Path(args.spectral),
        Path(args.output),
        natural_batch=Path(args.natural_batch) if args.natural_batch else None,
        mem_mb=args.mem_mb,
    )


def cmd_final_ablation_table(args: argparse.Namespace) -> None:
    from circuitsweep.heads.final_ablation import final_ablation_table

    final_ablation_table([Path(p) for p in args.rows], Path(args.parquet), Path(args.csv), Path(args.markdown))


def cmd_findings(args: argparse.Namespace) -> None:
    from circuitsweep.milestones.findings import read_findings, write_findings

    result = read_findings(
        Path(args.spectral),
        Path(args.heads),
        Path(args.milestones),
        Path(args.final_ablation) if args.final_ablation else None,
        args.spectral_top_k,
    )
    write_findings(result, args.spectral_top_k, Path(args.csv), Path(args.markdown), Path(args.html))
    print(f"findings of {len(result.paragraphs)} models: {result.rows.height} rows")


def cmd_score_primitives(args: argparse.Namespace) -> None:
    from circuitsweep.primitives.stage import score_revision_primitives

    score_revision_primitives(Path(args.cache), Path(args.stimuli), args.scoring, Path(args.output), args.expected)


def cmd_primitive_tables(args: argparse.Namespace) -> None:
    from circuitsweep.primitives.stage import primitive_tables

    primitive_tables([Path(p) for p in args.revisions], Path(args.output))


def cmd_plot_primitive_gap(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_frame
    from circuitsweep.outputs.plots import primitive_gap_plot

    primitive_gap_plot(read_frame(Path(args.gaps)), Path(args.output), args.demonstration)


def cmd_plot_primitive_scaling(args: argparse.Namespace) -> None:
    import polars as pl

    from circuitsweep.outputs.plots import primitive_scaling_plot
    from circuitsweep.primitives.scaling import PLOTTED_KINDS

    primitive_scaling_plot(pl.read_csv(args.scaling), Path(args.output), PLOTTED_KINDS, args.demonstration)


def cmd_sweep_overhead(args: argparse.Namespace) -> None:
    from circuitsweep.io.atomic import atomic_write_text
    from circuitsweep.io.tables import write_csv
    from circuitsweep.outputs.overhead import estimate_comparison, overhead_markdown, sweep_overhead

    table = sweep_overhead(
        [Path(p) for p in args.scores],
        [Path(p) for p in args.fetch],
        [Path(p) for p in args.measure],
        [Path(p) for p in args.primitives],
    )
    write_csv(table, Path(args.csv))
    estimate = args.estimate or {"kinds": {}, "device": "-", "start_up_s": 0}
    batches = [path for path in args.natural_batch if Path(path).is_file()]  # a batch built before it had one: none
    measured = {"measure": args.measure, "final_ablation": args.final_ablation, "natural_batch": batches}
    comparison = estimate_comparison(estimate["kinds"], measured)
    if args.estimate_csv:
        write_csv(comparison, Path(args.estimate_csv))
    atomic_write_text(
        Path(args.markdown), overhead_markdown(table, comparison, estimate["device"], estimate["start_up_s"])
    )


def cmd_table_pages(args: argparse.Namespace) -> None:
    from circuitsweep.outputs.table_pages import write_table_pages

    write_table_pages([Path(p) for p in args.tables], [Path(p) for p in args.pages])


def cmd_block_record(args: argparse.Namespace) -> None:
    from circuitsweep.plan.scheduling import write_block_record

    write_block_record(args.block, [Path(p) for p in args.files], Path(args.output), args.expected or ())
    print(f"block {args.block}: {len(args.files)} files recorded in {args.output}")


def cmd_prefetch(args: argparse.Namespace) -> None:
    from circuitsweep.plan.prefetch import prefetch

    prefetch(Path(args.config), Path(args.root), models=args.models or None)


def cmd_demo_run(args: argparse.Namespace) -> None:
    from circuitsweep.toy.demo_run import save_demo_run

    for folder in save_demo_run(Path(args.folder), args.steps, args.pattern, force=args.force):
        print(folder)
