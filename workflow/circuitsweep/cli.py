"""The ``circuitsweep`` command line: one subcommand per workflow stage.

Snakemake rules call these subcommands; each takes its scientific settings
as one JSON argument (the rule's ``params``), so a change of settings reruns
exactly the jobs it affects. ``@PATH`` in place of the JSON reads it from that
file: the rules pass long settings (every revision's expected cache settings)
that way, so a failed job's command line stays short. Heavy libraries are imported inside the
subcommands, so a command that loads no model starts fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circuitsweep.plan.sweep import Plan

log = logging.getLogger("circuitsweep")


def _json(text: str) -> Any:
    """A JSON argument, or ``@PATH``: the JSON text of that file."""
    where = ""
    if text.startswith("@"):
        where = f"{text[1:]}: "
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as error:
            raise argparse.ArgumentTypeError(f"cannot read the settings file {text[1:]}: {error.strerror}") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"{where}not valid JSON: {error}") from error


def check_inputs(args: argparse.Namespace) -> None:
    """Refuse, naming the option, an input path of the command (``inputs`` of its parser) that does not exist."""
    from circuitsweep.errors import InputError

    for name in args.inputs:
        value = getattr(args, name, None)
        for path in value if isinstance(value, list) else [value]:
            if path and not Path(path).exists():
                option = name if name == "config" else f"--{name.replace('_', '-')}"
                raise InputError(f"{option}: {path} does not exist")


def describe_plan(plan: Plan, jobs: dict[str, str] | None = None) -> list[str]:
    """What a sweep plans, one line per model and then the run's notes (``circuitsweep check-config``).

    Per model: its revisions (first .. last, in training order, with the last one's tokens), the
    natural-text batch and the tokenizer that builds it, its primitive jobs and ``jobs[model]`` (its
    measurement job's size, :func:`measurement_job`).
    """
    from circuitsweep.heads.jobs import natural_batches
    from circuitsweep.primitives.jobs import primitive_models, primitive_revisions

    batches = natural_batches(plan)
    lines = []
    for model, revisions in plan.revisions.items():
        last = revisions[-1]
        parts = [f"{len(revisions)} revisions ({revisions[0].name} .. {last.name}, {last.tokens:,} tokens)"]
        natural = plan.models[model].probes.natural_text
        if natural is not None:
            builder = batches[natural.tokenizer][0]
            special = natural.special_tokens
            parts.append(f"natural text: batch {natural.tokenizer} (tokenizer of {builder}, special tokens {special})")
        primitives = len(primitive_revisions(plan, model)) if model in primitive_models(plan) else 0
        parts.append(f"{primitives} primitive jobs" if primitives else "no primitive jobs")
        lines.append(f"{model}: " + "; ".join(parts))
        if jobs and model in jobs:
            lines.append(f"  {jobs[model]}")
    lines.append(f"ablation: {'every revision' if plan.ablation is not None else 'off'}")
    return lines + [f"note: {note}" for note in plan.notes]


def measurement_job(plan: Plan, model: str) -> str:
    """What one revision of ``model`` costs, as the rules size its job before the fetch: the download (Hub
    sources), the memory the job requests and the cost model's minutes of its largest revision job (on a GPU
    unless the run says ``device: cpu``) with the runtime it requests."""
    from circuitsweep.plan import costs
    from circuitsweep.plan.resources import measure_size
    from circuitsweep.primitives.jobs import measures_primitives

    settings = plan.models[model]
    device = "cpu" if plan.device == "cpu" else "cuda"
    shape = costs.model_shape(plan, model).config
    sizes = []
    for revision in plan.revisions[model]:
        work = costs.revision_job_work(
            plan, model, revision.name, shape, measures_primitives(plan, model, revision.name)
        )
        seconds = sum(costs.job_seconds(shape, settings.dtype, work, device).values())
        sizes.append((seconds, measure_size(shape, settings.dtype, settings.probes.to_dict(), device, work)))
    seconds, size = max(sizes, key=lambda pair: pair[0])
    where = "on the CPU" if device == "cpu" else "on a GPU"
    download = ""
    if settings.source["type"] in ("hub", "hub_repos"):
        download = f"{costs.published_bytes(shape, settings.dtype) / costs.GB:,.2f} GB to download, "
    return (
        f"per revision: {download}a job of {size.mem_mb:,} MB and at most about {seconds / 60:,.1f} min {where}"
        f" (runtime request {size.runtime:,} min)"
    )


def config_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items as Snakemake's ``--config`` reads them (each value parsed as YAML)."""
    import yaml

    from circuitsweep.errors import InputError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--config: {item!r} is not KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def cmd_check_config(args: argparse.Namespace) -> None:
    from circuitsweep import revision_stage
    from circuitsweep.config.load import load_config
    from circuitsweep.io.contracts import Paths
    from circuitsweep.io.run_folder import run_folder_refusal
    from circuitsweep.plan import costs
    from circuitsweep.plan.costs import describe_cost, describe_partial
    from circuitsweep.plan.resources import suits
    from circuitsweep.plan.sweep import plan_sweep, results_paths

    configfile, root = os.path.abspath(args.config), os.path.abspath(args.root)
    config = {**load_config(configfile), **config_overrides(args.set)}
    # the run's folder and its caches as Snakemake sees them, from its working directory (-d)
    paths = results_paths(config, [configfile])
    if Path(args.directory).is_dir():
        os.chdir(args.directory)
    else:  # Snakemake would create it: nothing is measured there yet
        paths = Paths(Path(args.directory) / paths.root)
    refusal = run_folder_refusal(paths.root, [configfile])
    plan = plan_sweep(config, Path(root), paths, keep_hashes=False)
    if refusal is not None:
        raise refusal
    for line in describe_plan(plan, {model: measurement_job(plan, model) for model in plan.models}):
        print(line)
    warm = bool(config.get("warm_worker", True))
    cost = costs.sweep_cost(
        plan, revision_stage.pending(plan), int(config.get("snapshots_on_disk", 2)), not suits("auto"), warm
    )
    print(describe_cost(cost))
    for manifest in plan.partial_manifests():
        print(describe_partial(manifest))


def cmd_refresh_manifest(args: argparse.Namespace) -> None:
    from circuitsweep.checkpoints.hub import refresh_manifest

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
        RevisionJob.from_dict(args.settings),
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
        Thresholds.from_dict(args.thresholds),
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
        Thresholds.from_dict(args.settings["thresholds"]),
        BootstrapSettings.from_dict(args.settings["bootstrap"]),
        Path(args.heads_out),
        Path(args.curves_out),
        expected=args.expected,
        skip_duplicates=bool(args.settings.get("skip_duplicates")),
    )


def cmd_head_tables(args: argparse.Namespace) -> None:
    from circuitsweep.milestones.emergence import MilestoneThresholds
    from circuitsweep.milestones.tables import HeadTableOutputs, head_tables

    thresholds = {model: MilestoneThresholds.from_dict(values) for model, values in args.thresholds.items()}
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
    from circuitsweep.milestones.refine import RefineFailed, RefineRun, dry_run, refine
    from circuitsweep.plan.sweep import plan_sweep, results_paths

    root = Path(args.root)
    configfiles = tuple(Path(c) for c in args.configfile)
    configfiles_read = configfiles or (root / "config" / "config.yaml",)
    config = load_configs(configfiles_read)
    plan = plan_sweep(config, root, results_paths(config, configfiles_read))
    if plan.refine is None:
        raise ConfigError(f"refine: {', '.join(map(str, configfiles)) or 'the config'} has no refine block")
    options = tuple(a for a in args.snakemake if a != "--")
    run = RefineRun(root / "workflow" / "Snakefile", configfiles, options, tuple(args.targets))
    if args.dry_run:
        raise SystemExit(dry_run(run))
    try:
        added = refine(run, plan.refine, plan.paths.milestone_brackets("csv"), plan.paths.refine_rounds())
    except RefineFailed as failed:
        raise SystemExit(failed.code) from None
    final = plan_sweep(config, root, results_paths(config, configfiles_read))
    rounds = max((a.round for a in added), default=0)
    for model, revisions in final.revisions.items():
        print(
            f"{model}: {len(revisions)} revisions measured ({len(plan.revisions[model])} before this run) "
            f"of {len(final.available[model])} available, after {rounds} refinement round{'s' * (rounds != 1)}"
        )
    print(f"brackets: {final.paths.milestone_brackets('csv')}")


def cmd_plot_emergence(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_frame, read_table
    from circuitsweep.outputs.plots import emergence_plot

    curves = read_frame(Path(args.emergence))
    milestones, settings = read_table(Path(args.milestones)) if args.milestones else (None, {})
    models = settings.get("models", {}).values()
    levels = {((model or {}).get("milestones") or {}).get("bos_fraction_milestone") for model in models}
    level = levels.pop() if len(levels) == 1 and None not in levels else 0.5
    brackets = read_csv_frame(args.brackets[0]) if args.brackets else None
    for output in args.output:
        emergence_plot(curves, Path(output), milestones, bos_level=level, brackets=brackets, groups=args.groups)


def read_csv_frame(path: str) -> Any:
    import polars as pl

    return pl.read_csv(path, infer_schema_length=None)


def cmd_plot_heatmap(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_frame
    from circuitsweep.outputs.plots import layer_heatmap

    milestones = read_frame(Path(args.milestones)) if args.milestones else None
    layer_heatmap(read_frame(Path(args.emergence)), args.model, Path(args.output), milestones)


def cmd_plot_trajectories(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_table
    from circuitsweep.outputs.plots import head_trajectories

    heads, metadata = read_table(Path(args.heads))
    thresholds = (metadata.get("models", {}).get(args.model) or {}).get("thresholds") or {}
    head_trajectories(heads, args.model, Path(args.output), thresholds.get("class_selectivity"))


def cmd_spectral_model(args: argparse.Namespace) -> None:
    from circuitsweep.heads.spectral import write_model_spectral

    write_model_spectral(Path(args.heads), args.model, Path(args.output))


def cmd_spectral_table(args: argparse.Namespace) -> None:
    from circuitsweep.heads.spectral import spectral_table

    spectral_table([Path(p) for p in args.models], Path(args.parquet), Path(args.csv))


def cmd_plot_spectral(args: argparse.Namespace) -> None:
    from circuitsweep.io.tables import read_table
    from circuitsweep.outputs.plots import spectral_plot

    spectral_plot(read_table(Path(args.heads))[0], read_table(Path(args.spectral))[0], args.model, Path(args.output))


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

    primitive_gap_plot(read_frame(Path(args.gaps)), Path(args.output))


def cmd_plot_primitive_scaling(args: argparse.Namespace) -> None:
    import polars as pl

    from circuitsweep.outputs.plots import primitive_scaling_plot
    from circuitsweep.primitives.scaling import PLOTTED_KINDS

    primitive_scaling_plot(pl.read_csv(args.scaling), Path(args.output), PLOTTED_KINDS)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="circuitsweep", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument(
        "--attempt", type=int, help="Snakemake attempt of the job running this command (set by the rules)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], None], help: str, inputs: tuple[str, ...] = ()
    ) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help, description=help)
        command.set_defaults(func=func, inputs=inputs)
        return command

    p = add(
        "check-config",
        cmd_check_config,
        "validate a config, list the revisions it sweeps and what measuring those still to measure costs",
        ("config",),
    )
    p.add_argument("config", help="YAML config file")
    p.add_argument("--root", default=".", help="workflow folder that relative paths resolve against")
    p.add_argument(
        "-d", "--directory", default=".", help="the working directory Snakemake runs in (its -d): where results/ is"
    )
    p.add_argument(
        "--config",
        dest="set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="set config keys as Snakemake's --config (and a profile's config:) does, e.g. snapshots_on_disk=24",
    )

    p = add("refresh-manifest", cmd_refresh_manifest, "list a Hub repository's checkpoint branches into a manifest")
    p.add_argument("repo_id", help="Hub repository, e.g. allenai/OLMo-1B-0724-hf")
    p.add_argument("manifest", help="manifest JSON to write, e.g. config/revisions/olmo-1b-0724-hf.json")
    p.add_argument("--tokens-per-step", type=int, help="for branch names without a token count (stepN)")
    p.add_argument("--endpoint", help="Hub endpoint (default HF_ENDPOINT or huggingface.co)")
    p.add_argument("--branch-pattern", help="checkpoint branch names, e.g. 'stage1-step{step}-tokens{tokens}B'")
    p.add_argument("--force", action="store_true", help="replace the manifest even if revisions would be lost")

    p = add("train-toy", cmd_train_toy, "train one toy model and publish its checkpoints as revisions")
    p.add_argument("--settings", type=_json, required=True, help="JSON: model name, architecture and toy settings")
    p.add_argument("--hub", required=True, help="local hub folder (Hub cache layout)")
    p.add_argument("--published", required=True, help="JSON list of published revisions, written last")
    p.add_argument("--threads", type=int, default=1, help="torch threads")

    p = add("demo-run", cmd_demo_run, "save a small training run's checkpoint folders, to try a run_dir sweep on")
    p.add_argument("folder", help="the run's output folder")
    p.add_argument("--steps", type=int, nargs="+", default=[0, 20, 40], help="steps at which to save")
    p.add_argument("--pattern", default="checkpoint-{step}", help="checkpoint folder names")
    p.add_argument("--force", action="store_true", help="replace checkpoint folders that already exist")

    p = add("fetch-snapshot", cmd_fetch_snapshot, "fetch and verify one revision's files")
    p.add_argument("--settings", type=_json, required=True, help="JSON: source and revision")
    p.add_argument("--output", required=True, help="snapshot folder to create")

    p = add("measure-revision", cmd_measure_revision, "load one revision once; write its head cache (and primitives)")
    p.add_argument("--settings", type=_json, required=True, help="JSON: model, revision, probes, dtype, first token")
    p.add_argument("--snapshot", required=True, help="snapshot folder (with snapshot.json)")
    p.add_argument("--stats", required=True, help="output safetensors shard of statistics")
    p.add_argument("--scores", required=True, help="output Parquet of per-head scores")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--mem-mb", type=int, help="the job's memory limit in MB: refuse before loading if it cannot fit")
    p.add_argument("--natural-batch", help="natural-text batch (safetensors) to measure, with probes.natural_text")
    p.add_argument("--natural-scores", help="output Parquet of per-head natural-text scores")
    p.add_argument("--ablation", help="output Parquet of ablation rows, with settings.ablation")
    p.add_argument(
        "--primitive-settings", type=_json, help="JSON: the primitive job (primitives.jobs.primitive_settings)"
    )
    p.add_argument("--stimuli", help="stimuli YAML of the primitive measurement")
    p.add_argument("--primitives", help="output safetensors shard of the primitive measurement")

    p = add("natural-batch", cmd_natural_batch, "tokenize the natural-text corpus with one revision's tokenizer")
    p.add_argument("--settings", type=_json, required=True, help="JSON: batch name, model and natural_text settings")
    p.add_argument("--snapshot", required=True, help="snapshot folder whose tokenizer is used")
    p.add_argument("--output", required=True, help="output safetensors batch")

    p = add(
        "classify-heads",
        cmd_classify_heads,
        "classify every head of one model from its cache",
        ("scores", "stats", "natural"),
    )
    p.add_argument("--model", required=True)
    p.add_argument("--thresholds", type=_json, required=True, help="JSON classification thresholds")
    p.add_argument("--scores", nargs="+", required=True, help="per-revision score Parquet files")
    p.add_argument("--heads", required=True, help="output Parquet of classified heads")
    p.add_argument("--revisions", required=True, help="output Parquet of per-revision facts")
    p.add_argument("--stats", nargs="+", help="per-revision statistics shards (same order), verified")
    p.add_argument("--expected", type=_json, help="JSON list: the metadata each score file must carry")
    p.add_argument("--natural", nargs="*", default=[], help="per-revision natural-text score Parquet files")

    p = add(
        "bootstrap-heads",
        cmd_bootstrap_heads,
        "bootstrap one model's selectivities, classes and milestone counts over probe sequences (caches only)",
        ("stats", "heads", "revisions"),
    )
    p.add_argument("--model", required=True)
    p.add_argument("--settings", type=_json, required=True, help="JSON: bootstrap, thresholds, skip_duplicates")
    p.add_argument("--stats", nargs="+", required=True, help="per-revision statistics shards, verified")
    p.add_argument("--expected", type=_json, help="JSON list: the metadata each shard must carry")
    p.add_argument("--heads", required=True, help="the model's classified heads (Parquet)")
    p.add_argument("--revisions", required=True, help="the model's revision facts (Parquet)")
    p.add_argument("--heads-out", required=True, help="output Parquet: intervals and class stability per head")
    p.add_argument("--curves-out", required=True, help="output Parquet: milestone counts per resample")

    p = add(
        "head-tables",
        cmd_head_tables,
        "write the heads, emergence and milestone tables",
        ("heads", "revisions", "ablation_rows", "bootstrap_heads", "bootstrap_curves"),
    )
    p.add_argument("--heads", nargs="+", required=True)
    p.add_argument("--revisions", nargs="+", required=True)
    p.add_argument("--thresholds", type=_json, required=True, help="JSON: model -> milestone thresholds")
    p.add_argument("--heads-out", required=True, help="the heads table (Parquet)")
    p.add_argument("--emergence", required=True, help="the emergence table (Parquet)")
    p.add_argument("--emergence-csv", required=True)
    p.add_argument("--milestones", required=True, help="the milestones table (CSV)")
    p.add_argument("--milestones-parquet", required=True, help="the milestones table (Parquet, with its settings)")
    p.add_argument("--milestones-md", required=True)
    p.add_argument("--skip-duplicates", nargs="*", default=[], help="models whose duplicate revisions are left out")
    p.add_argument("--ablation-rows", nargs="*", default=[], help="per-revision ablation Parquet files")
    p.add_argument("--ablation-out", help="the ablation table (Parquet)")
    p.add_argument("--ablation-csv", help="the ablation table (CSV)")
    p.add_argument("--causal-factor", type=float, default=2.0, help="causal milestone factor")
    p.add_argument("--bootstrap-heads", nargs="*", default=[], help="per-model bootstrap heads (Parquet)")
    p.add_argument("--bootstrap-curves", nargs="*", default=[], help="per-model bootstrap curves (Parquet)")

    p = add("milestone-brackets", cmd_milestone_brackets, "bracket each milestone between two swept revisions")
    p.add_argument("--config", type=_json, required=True, help="JSON: the workflow's config (it is planned again)")
    p.add_argument("--root", required=True, help="workflow folder that relative paths resolve against")
    p.add_argument("--results", required=True, help="results folder (Paths root) holding the refinement rounds")
    p.add_argument("--emergence", required=True, help="the emergence table (Parquet)")
    p.add_argument("--milestones", required=True, help="the milestones table (Parquet)")
    p.add_argument("--csv", required=True)
    p.add_argument("--markdown", required=True)

    p = add("group-milestones", cmd_group_milestones, "spread of each milestone's tokens over a group's models")
    p.add_argument("--milestones", required=True, help="the milestones table (Parquet)")
    p.add_argument("--groups", type=_json, required=True, help="JSON: model -> group")
    p.add_argument("--csv", required=True)
    p.add_argument("--markdown", required=True)

    p = add(
        "refine",
        cmd_refine,
        "sweep, then add revisions where milestones lie until each is bracketed by adjacent available revisions",
    )
    p.add_argument("--configfile", nargs="*", default=[], help="config files (default config/config.yaml)")
    p.add_argument("--root", default=".", help="workflow folder (holding workflow/Snakefile)")
    p.add_argument("--dry-run", action="store_true", help="show the next round's jobs (snakemake --dry-run)")
    p.add_argument("--targets", nargs="*", default=[], help="what the last Snakemake run builds (default: all)")
    p.add_argument("snakemake", nargs=argparse.REMAINDER, help="snakemake options (no targets) after --: -- --cores 8")

    p = add(
        "plot-emergence",
        cmd_plot_emergence,
        "plot BOS fraction and induction heads against tokens",
        ("emergence", "milestones"),
    )
    p.add_argument("--emergence", required=True)
    p.add_argument("--milestones", help="milestones table (Parquet), marked on the curves")
    p.add_argument("--brackets", nargs="*", default=[], help="milestone brackets table (CSV), drawn as spans")
    p.add_argument("--groups", type=_json, default={}, help="JSON: model -> group, drawn as a band per group")
    p.add_argument("--output", nargs="+", required=True, help="figure files (.png, .svg)")

    p = add("plot-heatmap", cmd_plot_heatmap, "plot one model's per-layer head counts per revision", ("emergence",))
    p.add_argument("--emergence", required=True)
    p.add_argument("--milestones", help="milestones table (Parquet), marked on the panels")
    p.add_argument("--model", required=True)
    p.add_argument("--output", required=True)

    p = add(
        "plot-trajectories", cmd_plot_trajectories, "plot every head's best selectivity across training", ("heads",)
    )
    p.add_argument("--heads", required=True, help="the heads table (Parquet)")
    p.add_argument("--model", required=True)
    p.add_argument("--output", required=True)

    p = add("spectral-model", cmd_spectral_model, "rank one model's heads by their participation-ratio integral")
    p.add_argument("--heads", required=True, help="the model's classified heads (Parquet)")
    p.add_argument("--model", required=True)
    p.add_argument("--output", required=True, help="the model's spectral ranking (Parquet)")

    p = add("spectral-table", cmd_spectral_table, "concatenate the models' spectral rankings")
    p.add_argument("--models", nargs="+", required=True, help="per-model spectral rankings (Parquet)")
    p.add_argument("--parquet", required=True)
    p.add_argument("--csv", required=True)

    p = add("plot-spectral", cmd_plot_spectral, "plot one model's participation ratio across training by final class")
    p.add_argument("--heads", required=True, help="the model's classified heads (Parquet)")
    p.add_argument("--spectral", required=True, help="the model's spectral ranking (Parquet)")
    p.add_argument("--model", required=True)
    p.add_argument("--output", required=True)

    p = add("final-ablation", cmd_final_ablation, "load the final revision once; run the study's ablation conditions")
    p.add_argument("--settings", type=_json, required=True, help="JSON: heads.jobs.final_ablation_settings")
    p.add_argument("--snapshot", required=True, help="the final revision's snapshot folder")
    p.add_argument("--heads", required=True, help="the model's classified heads (Parquet)")
    p.add_argument("--spectral", required=True, help="the model's spectral ranking (Parquet)")
    p.add_argument("--output", required=True, help="output Parquet of every condition's rows")
    p.add_argument("--natural-batch", help="natural-text batch (safetensors), with probes.natural_text")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--mem-mb", type=int, help="the job's memory limit in MB: refuse before loading if it cannot fit")

    p = add("final-ablation-table", cmd_final_ablation_table, "write the final-revision ablation table")
    p.add_argument("--rows", nargs="+", required=True, help="per-model final-revision ablation Parquet files")
    p.add_argument("--parquet", required=True)
    p.add_argument("--csv", required=True)
    p.add_argument("--markdown", required=True)

    p = add(
        "findings",
        cmd_findings,
        "the study's summaries per model and across models, from the run's tables (no model)",
        ("spectral", "heads", "milestones", "final_ablation"),
    )
    p.add_argument("--spectral", required=True, help="tables/spectral.parquet")
    p.add_argument("--heads", required=True, help="tables/heads.parquet")
    p.add_argument("--milestones", required=True, help="tables/milestones.parquet")
    p.add_argument("--final-ablation", help="tables/final_ablation.parquet (a run with ablation)")
    p.add_argument("--spectral-top-k", type=_json, required=True, help="JSON: ablation.spectral_top_k")
    p.add_argument("--csv", required=True)
    p.add_argument("--markdown", required=True)
    p.add_argument("--html", required=True, help="the report's Findings page")

    p = add(
        "score-primitives",
        cmd_score_primitives,
        "score one revision's primitive shard (no model)",
        ("cache", "stimuli"),
    )
    p.add_argument("--cache", required=True, help="primitive shard of measure-revision")
    p.add_argument("--stimuli", required=True)
    p.add_argument("--scoring", type=_json, required=True, help="JSON: n_folds, n_perm, seed")
    p.add_argument("--output", required=True, help="folder for the revision's tables")
    p.add_argument("--expected", type=_json, help="JSON: the metadata the shard must carry")

    p = add("primitive-tables", cmd_primitive_tables, "stack every revision's primitive tables", ("revisions",))
    p.add_argument("--revisions", nargs="+", required=True, help="folders of score-primitives")
    p.add_argument("--output", required=True, help="tables folder")

    p = add("plot-primitive-gap", cmd_plot_primitive_gap, "plot the summary primitive gap against tokens", ("gaps",))
    p.add_argument("--gaps", required=True, help="primitive_gaps.csv")
    p.add_argument("--output", required=True)

    p = add(
        "plot-primitive-scaling",
        cmd_plot_primitive_scaling,
        "plot each model's last gap against its size",
        ("scaling",),
    )
    p.add_argument("--scaling", required=True, help="primitive_scaling.csv")
    p.add_argument("--output", required=True)

    p = add(
        "sweep-overhead",
        cmd_sweep_overhead,
        "compare job wall time with forward-pass time",
        ("scores", "fetch", "measure", "primitives"),
    )
    p.add_argument("--scores", nargs="+", required=True, help="head-score Parquet files")
    p.add_argument("--fetch", nargs="*", default=[], help="fetch_snapshot benchmark TSVs")
    p.add_argument("--measure", nargs="+", required=True, help="benchmark TSVs of the measuring jobs")
    p.add_argument("--primitives", nargs="*", default=[], help="primitive shards (their forward seconds count too)")
    p.add_argument("--final-ablation", nargs="*", default=[], help="benchmark TSVs of the final-ablation jobs")
    p.add_argument("--natural-batch", nargs="*", default=[], help="benchmark TSVs of the natural-batch jobs, if made")
    p.add_argument(
        "--estimate",
        type=_json,
        help="JSON: device, start_up_s and per job kind the estimated jobs and seconds (plan.costs.estimate_by_kind)",
    )
    p.add_argument("--csv", required=True)
    p.add_argument("--estimate-csv", help="the estimate beside the measured seconds, per job kind")
    p.add_argument("--markdown", required=True)

    p = add(
        "table-pages", cmd_table_pages, "write each final CSV table as an HTML page (the report's tables)", ("tables",)
    )
    p.add_argument("--tables", nargs="+", required=True, help="final CSV tables")
    p.add_argument("--pages", nargs="+", required=True, help="the HTML page of each, in the same order")

    p = add("block-record", cmd_block_record, "record that every cache of a job block exists")
    p.add_argument("--block", required=True, help="block name (<model>.<first revision>)")
    p.add_argument("--files", nargs="*", default=[], help="the caches of the block's revisions")
    p.add_argument("--output", required=True, help="the block's JSON record")
    p.add_argument("--expected", type=_json, help="JSON: per revision, its head caches and expected metadata")

    p = add(
        "prefetch",
        cmd_prefetch,
        "download every planned Hub revision of a config into the shared Hub cache (HF_HOME), for offline jobs",
        ("config",),
    )
    p.add_argument("config", help="YAML config file")
    p.add_argument("--root", default=".", help="workflow folder that relative paths resolve against")
    p.add_argument("--models", nargs="*", help="only these models (default: every Hub model)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from circuitsweep import warm_worker

    setting = os.environ.get(warm_worker.ENV)
    if setting and args.command in warm_worker.WARM_COMMANDS and not os.environ.get(warm_worker.CHILD_ENV):
        code = warm_worker.run_warm(argv, setting, entry="circuitsweep.cli:main")
        if code is not None:
            return code
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from circuitsweep.errors import USER_ERRORS, error_line
    from circuitsweep.plan import retry

    argv = list(sys.argv[1:] if argv is None else argv)
    if (replayed := retry.replay_failure(argv, args.attempt)) is not None:
        print(replayed, file=sys.stderr)
        return retry.EXIT_DETERMINISTIC
    try:
        check_inputs(args)
        args.func(args)
    except USER_ERRORS as error:
        message = error_line(error, args.command)
        print(message, file=sys.stderr)
        return retry.exit_code(argv, error, message, args.attempt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
