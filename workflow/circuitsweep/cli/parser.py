"""The command line's subcommands and their arguments: every argument declares what it is (an
:class:`~circuitsweep.cli.arguments.Argument`), checked before the command runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from circuitsweep.cli import commands
from circuitsweep.cli.arguments import (
    Count,
    CsvTable,
    InputFile,
    InputFolder,
    Name,
    OutputFile,
    OutputFolder,
    Parser,
    Real,
    RevisionScores,
    Text,
    check_branch_pattern,
    check_endpoint,
    check_hub_repo_id,
    check_key_value,
    check_run_pattern,
)
from circuitsweep.cli.json_arguments import (
    Json,
    check_bootstrap_settings,
    check_final_ablation_settings,
    check_milestone_thresholds,
    check_spectral_leave_out,
    check_spectral_top_k,
    check_thresholds,
)

#: The first line of ``circuitsweep --help``.
DESCRIPTION = "The circuitsweep command line: one subcommand per workflow stage."
#: The end of ``circuitsweep --help``: which subcommands a person runs, and which the rules run as jobs.
EPILOG = (
    "Commands a person runs: check-config, refresh-manifest, demo-run, refine and prefetch (and the plot-* commands "
    "on a run's tables); the others are the workflow's jobs, which its rules run with the settings they need."
)
#: The steps ``circuitsweep demo-run`` saves by default (``toy.demo_run``): the loss plateau, the induction onset
#: (about step300) and after it.
DEMO_STEPS = (0, 100, 200, 250, 300, 400)


def workflow_root() -> str:
    """The repository holding ``workflow/Snakefile`` that this package lies in, else ``"."``.

    The Snakefile resolves a config's relative paths (a ``run_dir`` source's ``path``) against that
    folder, whatever Snakemake's working directory; commands that plan a run do the same.
    """
    repo = Path(__file__).resolve().parents[3]
    return str(repo) if (repo / "workflow" / "Snakefile").is_file() else "."


def _tables() -> dict[str, InputFile]:
    """The tables commands read, each with columns that tell it from another kind (of ``io.contracts``;
    tests/test_cli_boundary.py checks each is in its contract)."""
    parquet, csv = {"suffix": ".parquet"}, {"suffix": ".csv"}
    return {
        "heads": InputFile("heads table", ("model", "revision", "layer", "head", "class"), **parquet),
        "revisions": InputFile("revisions table", ("model", "revision", "n_layers"), **parquet),
        "emergence": InputFile("emergence table", ("model", "revision", "bos_fraction"), **parquet),
        "milestones": InputFile("milestones table", ("model", "final_revision"), **parquet),
        "brackets": InputFile("milestone brackets table", ("model", "milestone", "status"), **csv),
        "spectral": InputFile("spectral ranking", ("model", "layer", "head", "rank"), **parquet),
        "final_ablation": InputFile("final-revision ablation table", ("model", "condition", "heads"), **parquet),
        "final_ablation_table": InputFile("final ablation table", ("model", "condition", "statistic"), **parquet),
        "gaps": InputFile("primitive gap table", ("model", "revision", "tokens", "score_kind", "gap")),
        "scaling": InputFile("primitive scaling table", ("model", "parameters", "score_kind", "gap"), **csv),
    }


def add_root(parser: argparse.ArgumentParser, what: str = "") -> None:
    """The ``--root`` option of a command that plans a run: the repository, by default :func:`workflow_root`."""
    what = what or "repository folder that relative paths resolve against, as in the Snakefile"
    parser.add_argument(
        "--root",
        type=InputFolder("workflow folder"),
        default=workflow_root(),
        help=f"{what} (default: the one this package lies in)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line: every argument declares what it is (an :class:`Argument`), checked before the command runs."""
    parser = Parser(prog="circuitsweep", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages; show a crash's traceback")
    parser.add_argument(
        "--attempt", type=Count(1, 10**6), help="Snakemake attempt of the job running this command (set by the rules)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    table = _tables()
    config_file = InputFile("YAML config")
    file = InputFile()
    files = InputFile(blank=True)
    snapshot = InputFolder("snapshot folder")
    root = InputFolder("workflow folder")
    out = OutputFile()
    table_out = OutputFile()
    csv_out = OutputFile()
    md_out = OutputFile()
    figure = OutputFile((".png", ".svg"))
    threads = Count(1, 4096)
    mem_mb = Count(1, 2**40)

    def add(name: str, func: Callable[[argparse.Namespace], None], help: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help, description=help)
        command.set_defaults(func=func)
        return command

    p = add(
        "check-config",
        commands.cmd_check_config,
        "validate a config, list the revisions it sweeps and what measuring those still to measure costs",
    )
    p.add_argument("config", type=config_file, help="YAML config file")
    add_root(p)
    p.add_argument(
        "-d",
        "--directory",
        type=OutputFolder(),
        default=".",
        help="the working directory Snakemake runs in (its -d): where results/ is",
    )
    p.add_argument(
        "--config",
        dest="set",
        type=Text(check_key_value, "snapshots_on_disk=24"),
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="set config keys as Snakemake's --config (and a profile's config:) does, e.g. snapshots_on_disk=24",
    )

    p = add(
        "refresh-manifest", commands.cmd_refresh_manifest, "list a Hub repository's checkpoint branches into a manifest"
    )
    p.add_argument(
        "repo_id", type=Text(check_hub_repo_id, "org/name"), help="Hub repository, e.g. allenai/OLMo-1B-0724-hf"
    )
    p.add_argument("manifest", type=OutputFile(), help="manifest JSON to write, e.g. config/revisions/olmo.json")
    p.add_argument("--tokens-per-step", type=Count(1), help="for branch names without a token count (stepN)")
    p.add_argument(
        "--endpoint",
        type=Text(check_endpoint, "http://127.0.0.1:9"),
        help="Hub endpoint (default HF_ENDPOINT or huggingface.co)",
    )
    p.add_argument(
        "--branch-pattern",
        type=Text(check_branch_pattern, "step{step}"),
        help="checkpoint branch names, e.g. 'stage1-step{step}-tokens{tokens}B'",
    )
    p.add_argument("--force", action="store_true", help="replace the manifest even if revisions would be lost")

    p = add("train-toy", commands.cmd_train_toy, "train one toy model and publish its checkpoints as revisions")
    p.add_argument(
        "--settings",
        type=Json(dict, ("model", "architecture", "repo_id", "toy")),
        required=True,
        help="JSON: model name, architecture and toy settings",
    )
    p.add_argument("--hub", type=OutputFolder(), required=True, help="local hub folder (Hub cache layout)")
    p.add_argument("--published", type=out, required=True, help="JSON list of published revisions, written last")
    p.add_argument("--threads", type=threads, default=1, help="torch threads")

    p = add(
        "demo-run", commands.cmd_demo_run, "save a small training run's checkpoint folders, to try a run_dir sweep on"
    )
    p.add_argument("folder", type=OutputFolder(), help="the run's output folder")
    p.add_argument(
        "--steps",
        type=Count(0, 10**9),
        nargs="+",
        default=list(DEMO_STEPS),
        help=f"steps at which to save (default: {' '.join(map(str, DEMO_STEPS))}: the loss plateau, the induction "
        "onset at about step300, and after it)",
    )
    p.add_argument(
        "--pattern",
        type=Text(check_run_pattern, "checkpoint-{step}"),
        default="checkpoint-{step}",
        help="checkpoint folder names, with {step} (default: checkpoint-{step})",
    )
    p.add_argument("--force", action="store_true", help="replace checkpoint folders that already exist")

    p = add("fetch-snapshot", commands.cmd_fetch_snapshot, "fetch and verify one revision's files")
    p.add_argument("--settings", type=Json(dict, ("source", "revision")), required=True, help="JSON: source, revision")
    p.add_argument("--output", type=OutputFolder(), required=True, help="snapshot folder to create")

    p = add(
        "measure-revision",
        commands.cmd_measure_revision,
        "load one revision once; write its head cache (and primitives)",
    )
    p.add_argument(
        "--settings",
        type=Json(dict, ("revision",)),
        required=True,
        help="JSON: model, revision, probes, dtype, first token",
    )
    p.add_argument("--snapshot", type=snapshot, required=True, help="snapshot folder (with snapshot.json)")
    p.add_argument("--stats", type=out, required=True, help="output safetensors shard of statistics")
    p.add_argument("--scores", type=table_out, required=True, help="output Parquet of per-head scores")
    p.add_argument("--threads", type=threads, default=1, help="torch CPU threads")
    p.add_argument("--mem-mb", type=mem_mb, help="the job's memory limit in MB: refuse before loading if it cannot fit")
    p.add_argument("--natural-batch", type=file, help="natural-text batch (safetensors), with probes.natural_text")
    p.add_argument("--natural-scores", type=table_out, help="output Parquet of per-head natural-text scores")
    p.add_argument("--ablation", type=table_out, help="output Parquet of ablation rows, with settings.ablation")
    p.add_argument(
        "--primitive-settings", type=Json(dict), help="JSON: the primitive job (primitives.jobs.primitive_settings)"
    )
    p.add_argument("--stimuli", type=file, help="stimuli YAML of the primitive measurement")
    p.add_argument("--primitives", type=out, help="output safetensors shard of the primitive measurement")

    p = add(
        "natural-batch", commands.cmd_natural_batch, "tokenize the natural-text corpus with one revision's tokenizer"
    )
    p.add_argument(
        "--settings", type=Json(dict), required=True, help="JSON: batch name, model and natural_text settings"
    )
    p.add_argument("--snapshot", type=snapshot, required=True, help="snapshot folder whose tokenizer is used")
    p.add_argument("--output", type=out, required=True, help="output safetensors batch")

    p = add("classify-heads", commands.cmd_classify_heads, "classify every head of one model from its cache")
    p.add_argument("--model", type=Name(), required=True)
    p.add_argument(
        "--thresholds", type=Json(dict, check=check_thresholds), required=True, help="JSON classification thresholds"
    )
    p.add_argument("--scores", type=RevisionScores(), nargs="+", required=True, help="per-revision score Parquet files")
    p.add_argument("--heads", type=table_out, required=True, help="output Parquet of classified heads")
    p.add_argument("--revisions", type=table_out, required=True, help="output Parquet of per-revision facts")
    p.add_argument("--stats", type=file, nargs="+", help="per-revision statistics shards (same order), verified")
    p.add_argument("--expected", type=Json(list), help="JSON list: the metadata each score file must carry")
    p.add_argument("--natural", type=files, nargs="*", default=[], help="per-revision natural-text score Parquet files")

    p = add(
        "bootstrap-heads",
        commands.cmd_bootstrap_heads,
        "bootstrap one model's selectivities, classes and milestone counts over probe sequences (caches only)",
    )
    p.add_argument("--model", type=Name(), required=True)
    p.add_argument(
        "--settings",
        type=Json(dict, ("bootstrap", "thresholds"), check=check_bootstrap_settings),
        required=True,
        help="JSON: bootstrap, thresholds, induction_onset_heads, skip_duplicates",
    )
    p.add_argument("--stats", type=file, nargs="+", required=True, help="per-revision statistics shards, verified")
    p.add_argument("--expected", type=Json(list), help="JSON list: the metadata each shard must carry")
    p.add_argument("--heads", type=table["heads"], required=True, help="the model's classified heads (Parquet)")
    p.add_argument("--revisions", type=table["revisions"], required=True, help="the model's revision facts (Parquet)")
    p.add_argument("--heads-out", type=table_out, required=True, help="output Parquet: intervals, class stability")
    p.add_argument("--curves-out", type=table_out, required=True, help="output Parquet: milestone counts per resample")

    p = add("head-tables", commands.cmd_head_tables, "write the heads, emergence and milestone tables")
    p.add_argument("--heads", type=table["heads"], nargs="+", required=True)
    p.add_argument("--revisions", type=table["revisions"], nargs="+", required=True)
    p.add_argument(
        "--thresholds",
        type=Json(dict, check=check_milestone_thresholds),
        required=True,
        help="JSON: model -> milestone thresholds",
    )
    p.add_argument("--heads-out", type=table_out, required=True, help="the heads table (Parquet)")
    p.add_argument("--emergence", type=table_out, required=True, help="the emergence table (Parquet)")
    p.add_argument("--emergence-csv", type=csv_out, required=True)
    p.add_argument("--milestones", type=csv_out, required=True, help="the milestones table (CSV)")
    p.add_argument("--milestones-parquet", type=table_out, required=True, help="the milestones table (Parquet)")
    p.add_argument("--milestones-md", type=md_out, required=True)
    p.add_argument(
        "--skip-duplicates", type=Name(), nargs="*", default=[], help="models whose duplicate revisions are left out"
    )
    p.add_argument("--ablation-rows", type=files, nargs="*", default=[], help="per-revision ablation Parquet files")
    p.add_argument("--ablation-out", type=table_out, help="the ablation table (Parquet)")
    p.add_argument("--ablation-csv", type=csv_out, help="the ablation table (CSV)")
    p.add_argument("--causal-factor", type=Real(0.0, 1e6), default=2.0, help="causal milestone factor")
    p.add_argument(
        "--causal-alpha", type=Real(0.0, 1.0), default=0.01, help="causal milestone's significance level (Holm)"
    )
    p.add_argument("--bootstrap-heads", type=files, nargs="*", default=[], help="per-model bootstrap heads (Parquet)")
    p.add_argument("--bootstrap-curves", type=files, nargs="*", default=[], help="per-model bootstrap curves (Parquet)")

    p = add("milestone-brackets", commands.cmd_milestone_brackets, "bracket each milestone between two swept revisions")
    p.add_argument("--config", type=Json(dict), required=True, help="JSON: the workflow's config (it is planned again)")
    p.add_argument("--root", type=root, required=True, help="workflow folder that relative paths resolve against")
    p.add_argument(
        "--results", type=OutputFolder(), required=True, help="results folder (Paths root) holding the rounds"
    )
    p.add_argument("--emergence", type=table["emergence"], required=True, help="the emergence table (Parquet)")
    p.add_argument("--milestones", type=table["milestones"], required=True, help="the milestones table (Parquet)")
    p.add_argument("--csv", type=csv_out, required=True)
    p.add_argument("--markdown", type=md_out, required=True)

    p = add(
        "group-milestones", commands.cmd_group_milestones, "spread of each milestone's tokens over a group's models"
    )
    p.add_argument("--milestones", type=table["milestones"], required=True, help="the milestones table (Parquet)")
    p.add_argument("--groups", type=Json(dict), required=True, help="JSON: model -> group")
    p.add_argument("--csv", type=csv_out, required=True)
    p.add_argument("--markdown", type=md_out, required=True)

    p = add(
        "refine",
        commands.cmd_refine,
        "sweep, then add revisions where milestones lie until each is bracketed by adjacent available revisions",
    )
    p.add_argument(
        "--configfile", type=config_file, nargs="*", default=[], help="config files (default config/config.yaml)"
    )
    add_root(p, "repository folder holding workflow/Snakefile")
    p.add_argument("--dry-run", action="store_true", help="show the next round's jobs (snakemake --dry-run)")
    p.add_argument("--targets", type=Text(), nargs="*", default=[], help="what the last Snakemake run builds")
    p.add_argument(
        "snakemake", type=Text(), nargs=argparse.REMAINDER, help="snakemake options (no targets) after --: -- --cores 8"
    )

    p = add("plot-emergence", commands.cmd_plot_emergence, "plot BOS fraction and induction heads against tokens")
    p.add_argument("--emergence", type=table["emergence"], required=True)
    p.add_argument("--milestones", type=table["milestones"], help="milestones table (Parquet), marked on the curves")
    p.add_argument(
        "--brackets", type=table["brackets"], nargs="*", default=[], help="milestone brackets table (CSV), as spans"
    )
    p.add_argument("--groups", type=Json(dict), default={}, help="JSON: model -> group, drawn as a band per group")
    p.add_argument("--output", type=figure, nargs="+", required=True, help="figure files (.png, .svg)")

    p = add("plot-heatmap", commands.cmd_plot_heatmap, "plot one model's per-layer head counts per revision")
    p.add_argument("--emergence", type=table["emergence"], required=True)
    p.add_argument("--milestones", type=table["milestones"], help="milestones table (Parquet), marked on the panels")
    p.add_argument("--model", type=Name(), required=True)
    p.add_argument("--output", type=figure, required=True)

    p = add("plot-trajectories", commands.cmd_plot_trajectories, "plot every head's best selectivity across training")
    p.add_argument("--heads", type=table["heads"], required=True, help="the heads table (Parquet)")
    p.add_argument("--model", type=Name(), required=True)
    p.add_argument("--output", type=figure, required=True)

    p = add(
        "spectral-model", commands.cmd_spectral_model, "rank one model's heads by their participation-ratio integral"
    )
    p.add_argument("--heads", type=table["heads"], required=True, help="the model's classified heads (Parquet)")
    p.add_argument("--model", type=Name(), required=True)
    p.add_argument("--output", type=table_out, required=True, help="the model's spectral ranking (Parquet)")
    p.add_argument(
        "--leave-out",
        type=Json(list, check=check_spectral_leave_out),
        default=[],
        help="JSON list: revisions the ranking leaves out (the model's spectral_leave_out)",
    )

    p = add("spectral-table", commands.cmd_spectral_table, "concatenate the models' spectral rankings")
    p.add_argument(
        "--models", type=table["spectral"], nargs="+", required=True, help="per-model spectral rankings (Parquet)"
    )
    p.add_argument("--parquet", type=table_out, required=True)
    p.add_argument("--csv", type=csv_out, required=True)

    p = add(
        "plot-spectral", commands.cmd_plot_spectral, "plot one model's PR-integral ranking and PR trajectories by class"
    )
    p.add_argument("--heads", type=table["heads"], required=True, help="the model's classified heads (Parquet)")
    p.add_argument("--spectral", type=table["spectral"], required=True, help="the model's spectral ranking (Parquet)")
    p.add_argument("--model", type=Name(), required=True)
    p.add_argument("--output", type=figure, required=True)
    p.add_argument(
        "--top-k",
        type=Json(list, check=check_spectral_top_k),
        default=[],
        help="JSON: ablation.spectral_top_k, the top-K cuts drawn",
    )

    p = add(
        "final-ablation",
        commands.cmd_final_ablation,
        "load the final revision once; run the study's ablation conditions",
    )
    p.add_argument(
        "--settings",
        type=Json(dict, ("job", "spectral_top_k", "thresholds"), check=check_final_ablation_settings),
        required=True,
        help="JSON: heads.jobs.final_ablation_settings",
    )
    p.add_argument("--snapshot", type=snapshot, required=True, help="the final revision's snapshot folder")
    p.add_argument("--heads", type=table["heads"], required=True, help="the model's classified heads (Parquet)")
    p.add_argument("--spectral", type=table["spectral"], required=True, help="the model's spectral ranking (Parquet)")
    p.add_argument("--output", type=table_out, required=True, help="output Parquet of every condition's rows")
    p.add_argument("--natural-batch", type=file, help="natural-text batch (safetensors), with probes.natural_text")
    p.add_argument("--threads", type=threads, default=1, help="torch CPU threads")
    p.add_argument("--mem-mb", type=mem_mb, help="the job's memory limit in MB: refuse before loading if it cannot fit")

    p = add("final-ablation-table", commands.cmd_final_ablation_table, "write the final-revision ablation table")
    p.add_argument(
        "--rows", type=table["final_ablation"], nargs="+", required=True, help="per-model final ablation Parquet files"
    )
    p.add_argument("--parquet", type=table_out, required=True)
    p.add_argument("--csv", type=csv_out, required=True)
    p.add_argument("--markdown", type=md_out, required=True)

    p = add(
        "findings", commands.cmd_findings, "the study's summaries per model and across models, from the run's tables"
    )
    p.add_argument("--spectral", type=table["spectral"], required=True, help="tables/spectral.parquet")
    p.add_argument("--heads", type=table["heads"], required=True, help="tables/heads.parquet")
    p.add_argument("--milestones", type=table["milestones"], required=True, help="tables/milestones.parquet")
    p.add_argument(
        "--final-ablation", type=table["final_ablation_table"], help="tables/final_ablation.parquet (with ablation)"
    )
    p.add_argument(
        "--spectral-top-k",
        type=Json(list, check=check_spectral_top_k),
        required=True,
        help="JSON: ablation.spectral_top_k (counts, shares of the heads, elbow)",
    )
    p.add_argument("--csv", type=csv_out, required=True)
    p.add_argument("--markdown", type=md_out, required=True)
    p.add_argument("--html", type=out, required=True, help="the report's Findings page")

    p = add("score-primitives", commands.cmd_score_primitives, "score one revision's primitive shard (no model)")
    p.add_argument("--cache", type=file, required=True, help="primitive shard of measure-revision")
    p.add_argument("--stimuli", type=file, required=True)
    p.add_argument("--scoring", type=Json(dict), required=True, help="JSON: n_folds, n_perm, seed")
    p.add_argument("--output", type=OutputFolder(), required=True, help="folder for the revision's tables")
    p.add_argument("--expected", type=Json(dict), help="JSON: the metadata the shard must carry")

    p = add("primitive-tables", commands.cmd_primitive_tables, "stack every revision's primitive tables")
    p.add_argument("--revisions", type=InputFolder(), nargs="+", required=True, help="folders of score-primitives")
    p.add_argument("--output", type=OutputFolder(), required=True, help="tables folder")

    p = add("plot-primitive-gap", commands.cmd_plot_primitive_gap, "plot the summary primitive gap against tokens")
    p.add_argument("--gaps", type=table["gaps"], required=True, help="primitive_gaps.csv")
    p.add_argument("--output", type=figure, required=True)
    p.add_argument(
        "--demonstration", type=Json(list), default=[], help="JSON: models whose gaps mean nothing (toys), so labelled"
    )

    p = add(
        "plot-primitive-scaling", commands.cmd_plot_primitive_scaling, "plot each model's last gap against its size"
    )
    p.add_argument("--scaling", type=table["scaling"], required=True, help="primitive_scaling.csv")
    p.add_argument("--output", type=figure, required=True)
    p.add_argument(
        "--demonstration", type=Json(list), default=[], help="JSON: models whose gaps mean nothing (toys), so labelled"
    )

    p = add("sweep-overhead", commands.cmd_sweep_overhead, "compare job wall time with forward-pass time")
    p.add_argument("--scores", type=RevisionScores(), nargs="+", required=True, help="per-revision score Parquet files")
    p.add_argument("--fetch", type=file, nargs="*", default=[], help="fetch_snapshot benchmark TSVs")
    p.add_argument("--measure", type=file, nargs="+", required=True, help="benchmark TSVs of the measuring jobs")
    p.add_argument("--primitives", type=file, nargs="*", default=[], help="primitive shards (their forward seconds)")
    p.add_argument("--final-ablation", type=file, nargs="*", default=[], help="benchmark TSVs of final-ablation jobs")
    p.add_argument("--natural-batch", type=file, nargs="*", default=[], help="benchmark TSVs of natural-batch jobs")
    p.add_argument(
        "--estimate",
        type=Json(dict),
        help="JSON: device, start_up_s and per job kind the estimated jobs and seconds (plan.costs.estimate_by_kind)",
    )
    p.add_argument("--csv", type=csv_out, required=True)
    p.add_argument("--estimate-csv", type=csv_out, help="the estimate beside the measured seconds, per job kind")
    p.add_argument("--markdown", type=md_out, required=True)

    p = add("table-pages", commands.cmd_table_pages, "write each final CSV table as an HTML page (the report's tables)")
    p.add_argument("--tables", type=CsvTable(), nargs="+", required=True, help="final CSV tables")
    p.add_argument(
        "--pages", type=OutputFile((".html",)), nargs="+", required=True, help="the HTML page of each, in order"
    )

    p = add("block-record", commands.cmd_block_record, "record that every cache of a job block exists")
    p.add_argument("--block", type=Name(), required=True, help="block name (<model>.<first revision>)")
    p.add_argument(
        "--files", type=InputFile(content=False), nargs="*", default=[], help="the caches of the block's revisions"
    )
    p.add_argument("--output", type=OutputFile(), required=True, help="the block's JSON record")
    p.add_argument("--expected", type=Json(list), help="JSON: per revision, its head caches and expected metadata")

    p = add(
        "prefetch",
        commands.cmd_prefetch,
        "download every planned Hub revision of a config into the shared Hub cache (HF_HOME), for offline jobs",
    )
    p.add_argument("config", type=config_file, help="YAML config file")
    add_root(p)
    p.add_argument("--models", type=Name(), nargs="*", help="only these models (default: every Hub model)")
    return parser
