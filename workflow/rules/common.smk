# Helpers shared by every stage: the validated sweep plan and the paths.
# All logic lives in the circuitsweep package; this file only adapts it to rules.

import functools
import json
import sys
import shlex
from dataclasses import asdict
from pathlib import Path

REPO = Path(workflow.basedir).parent

from snakemake.common import NOTHING_TO_BE_DONE_MSG
from snakemake.logging import logger as snakemake_logger

from circuitsweep.io.atomic import atomic_write_text
from circuitsweep.io.bytecode import compile_package
from circuitsweep.io.console import quiet_console
from circuitsweep.io.contracts import Paths
from circuitsweep.milestones.text import finished_run_summary
from circuitsweep.io.names import SAFE_NAME_PATTERN
from circuitsweep.plan.sweep import plan_run
from circuitsweep.plan.retry import attempt_resource
from circuitsweep.io.run_folder import (
    claim_run_folder,
    disk_full_note,
    finish_when_nothing_to_do,
    lock_run_folder,
    mark_run_failed,
    mark_run_finished,
    mark_run_started,
    unfinished_note,
)
from circuitsweep.io.report_mode import UNFINISHED_NOTE_KEY, building_report, outputs_exist
from circuitsweep.io.settings_files import settings_name, write_settings_file
from circuitsweep.errors import USER_ERRORS, error_line
from circuitsweep.plan.retry import EXIT_DETERMINISTIC
from circuitsweep.plan import costs
from circuitsweep.plan.costs import describe_cost, describe_partial
from circuitsweep.plan.resources import suits
from circuitsweep.config.yaml_load import load_yaml
from circuitsweep.primitives import contract as K
from circuitsweep.heads import jobs as heads_jobs
from circuitsweep.primitives import jobs as primitive_jobs
from circuitsweep.milestones.tables import milestone_thresholds
from circuitsweep.milestones.bootstrap import bootstrap_settings
from circuitsweep import revision_stage

# Every rule runs the package of this workflow's own source tree, in whatever
# environment runs the job (the activated one, or ENV under --sdm conda).
ENV = "../../envs/circuitsweep.yaml"
SHELL_PREFIX = (
    f"set -euo pipefail; export PYTHONPATH={shlex.quote(str(Path(workflow.basedir)))}"
    "${{PYTHONPATH:+:$PYTHONPATH}}; "
)
shell.prefix(SHELL_PREFIX)


# The run's folder records the config that made it (circuitsweep.io.run_folder) when the
# run starts, and this Snakemake holds its lock until it ends: a second run of the folder
# (the same config started from another working directory, whose .snakemake lock is another)
# stops here, before it runs or deletes anything. Every job imports the package from its
# bytecode, compiled here once (circuitsweep.io.bytecode). A local run on the CPU forks its
# fetch and measurement jobs from one warm process (circuitsweep.warm_worker): torch and
# transformers are imported once, not per revision.
onstart:
    try:
        lock_run_folder(PATHS.root)
        claim_run_folder(PATHS.root, workflow.configfiles)
    except USER_ERRORS as _error:
        print(error_line(_error), file=sys.stderr)
        sys.exit(EXIT_DETERMINISTIC)
    mark_run_started(PATHS.root)
    compile_package(Path(workflow.basedir) / "circuitsweep")
    if workflow.executor_plugin.name == "local" and config.get("warm_worker", True) and suits(PLAN.device):
        shell.prefix(f"{SHELL_PREFIX}export CIRCUITSWEEP_WARM_WORKER=1; ")

# The console of a run shows the project's lines, errors and a progress line per tenth of the jobs;
# the log file (.snakemake/log/) keeps every job's full block (circuitsweep.io.console).
if workflow.is_main_process and not workflow.output_settings.dryrun:
    quiet_console(verbose=workflow.output_settings.verbose)

#: Whether this run submits to a cluster executor: it takes --jobs, which a cluster profile sets (the executor
#: itself is known only once the run starts, see onstart).
ON_CLUSTER = bool(workflow.resource_settings.nodes)

#: Whether the cost estimates count a warm worker's start-up for this run's CPU jobs: a local run,
#: unless the config says warm_worker: false.
WARM_WORKER = config.get("warm_worker", True) and not ON_CLUSTER

# Snakemake's YAML reader keeps the last of two equal keys (a model listed twice
# would silently sweep only the second entry): re-read the config files strictly.
# Every output of this run lives under one folder: results/<run>/ or the config's
# outdir (circuitsweep.io.run_folder). The plan validates the config against
# workflow/schemas/config.schema.yaml and resolves every model's revisions. A bad config
# stops here, before any job: its own errors first, then a folder another config made,
# each as the one message `circuitsweep check-config` prints (the same function,
# circuitsweep.plan.sweep.plan_run), exit 3 and no traceback.
try:
    for _configfile in workflow.overwrite_configfiles or []:
        load_yaml(_configfile, "config")
    PLAN = plan_run(config, workflow.configfiles, REPO)
    # A cache that cannot be read at all (truncated, overwritten) is no measurement, but Snakemake would not
    # remake a file it sees: a run deletes it and plans again, a dry run says so.
    if workflow.is_main_process and (
        _damaged := revision_stage.remove_damaged_caches(PLAN, dry_run=workflow.output_settings.dryrun)
    ):
        print("\n".join(_damaged), file=sys.stderr)
        if not workflow.output_settings.dryrun:
            PLAN = plan_run(config, workflow.configfiles, REPO)
except USER_ERRORS as _error:
    print(error_line(_error), file=sys.stderr)
    sys.exit(EXIT_DETERMINISTIC)
PATHS = PLAN.paths
MODELS = list(PLAN.models)

# A run that finds nothing to do calls no hook (onsuccess included): the note of an earlier
# failed run goes when Snakemake says that every output is up to date.
if workflow.is_main_process and not workflow.output_settings.dryrun:
    finish_when_nothing_to_do(PATHS.root, snakemake_logger, NOTHING_TO_BE_DONE_MSG)


wildcard_constraints:
    model="|".join(MODELS),
    revision=SAFE_NAME_PATTERN,
    block=r"[^/]+",


# `snakemake --report` of a run that failed or has not finished bundles the outputs that exist, below the
# run folder's unfinished note (circuitsweep.io.report_mode): Snakemake refuses a report with a missing
# output flagged for it.
BUILDING_REPORT = workflow.is_main_process and building_report(sys.argv[1:])
if BUILDING_REPORT and (_note := unfinished_note(PATHS.root)):
    config[UNFINISHED_NOTE_KEY] = _note


def run_config():
    """The config as given, without the note a report's template reads from it."""
    return {key: value for key, value in config.items() if key != UNFINISHED_NOTE_KEY}


def report_output(path, **flags):
    """``report(path, **flags)``, unless Snakemake builds a report now and a file ``path`` names is missing."""
    if BUILDING_REPORT and not outputs_exist(path, MODELS):
        return path
    return report(path, **flags)


def as_json(value):
    """Compact, key-sorted JSON: a stable params value for rerun detection."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def settings_file(name, value):
    """``@PATH`` of a file holding ``as_json(value)``, for settings too long for a command line
    (a failed job prints its command). The file's name carries the digest of its content, so a
    change of settings changes the params and reruns the job, as inline JSON would; a file that
    no longer holds what its name says is written again (circuitsweep.io.settings_files). A dry
    run writes nothing."""
    text = as_json(value)
    path = PATHS.settings_file(settings_name(name, text))
    write_settings_file(path, text, dry_run=workflow.output_settings.dryrun)
    return f"@{path}"


def revisions_of(model):
    return [revision.name for revision in PLAN.revisions[model]]


def is_toy(model):
    return PLAN.models[model].source["type"] == "toy"


def snapshot_sources(wildcards):
    """A toy model's snapshots need the model trained first."""
    return [PATHS.toy_published(wildcards.model)] if is_toy(wildcards.model) else []


def head_scores_of(wildcards):
    return [PATHS.head_scores(wildcards.model, revision) for revision in revisions_of(wildcards.model)]


def head_stats_of(wildcards):
    return [PATHS.head_stats(wildcards.model, revision) for revision in revisions_of(wildcards.model)]


def natural_batch_of(wildcards):
    """The natural-text batch a measurement reads (none when the run measures no natural text)."""
    return [PATHS.natural_batch(heads_jobs.natural_batch_of(PLAN, wildcards.model))] if heads_jobs.natural_text(PLAN) else []


def natural_scores_of(wildcards):
    if not heads_jobs.natural_text(PLAN):
        return []
    return [PATHS.natural_scores(wildcards.model, revision) for revision in revisions_of(wildcards.model)]


def ablation_rows():
    if PLAN.ablation is None:
        return []
    return [PATHS.ablation_rows(model, revision) for model in MODELS for revision in revisions_of(model)]


def bootstrap_of(kind):
    """Every model's bootstrap output of ``kind`` (heads or curves); none when the bootstrap is off."""
    if PLAN.bootstrap is None:
        return []
    path = PATHS.model_bootstrap_heads if kind == "heads" else PATHS.model_bootstrap_curves
    return [path(model) for model in MODELS]


def primitive_stimuli(wildcards):
    """The stimuli of a revision selected for primitives. Any other revision gets a path
    that no rule makes, so measure_revision cannot build it and Snakemake falls back to
    measure_heads (ruleorder in measure.smk): exactly one measuring rule per revision."""
    if primitive_jobs.measures_primitives(PLAN, wildcards.model, wildcards.revision):
        return primitive_jobs.stimuli_file(PLAN, wildcards.model)
    return PATHS.root / "not-selected-for-primitives" / wildcards.model / wildcards.revision


def measuring_rule(model, revision):
    """Which measuring rule runs a revision (measure_revision when it has primitives, else measure_heads)."""
    return "measure_revision" if primitive_jobs.measures_primitives(PLAN, model, revision) else "measure_heads"


MEASURE_SHELL = (
    "python -m circuitsweep --attempt {resources.attempt} measure-revision --settings {params.settings:q} --snapshot {input.snapshot:q}"
    " --stats {output.stats:q} --scores {output.scores:q} --threads {threads} --mem-mb {resources.mem_mb}"
    " {params.extra} %s > {log:q} 2>&1 && tail -n 1 {log:q}"
)


def measure_shell(primitives):
    """The shell command of the measuring rules; it exits with the command's code (3: a deterministic failure).

    A finished measurement shows its log's last line on the console: the revision, its heads and seconds."""
    options = "--primitive-settings {params.primitives:q} --stimuli {input.stimuli:q} --primitives {output.primitives:q}"
    return MEASURE_SHELL % (options if primitives else "")


#: Outputs of the measuring rules besides the head cache (natural-text scores, ablation rows; see Plan).
MEASURE_EXTRA_OUTPUTS = heads_jobs.measure_extra_outputs(PLAN, "{model}", "{revision}")

#: Outputs of head_tables besides the heads, emergence and milestone tables.
TABLE_EXTRA_OUTPUTS = {}
if PLAN.ablation is not None:
    TABLE_EXTRA_OUTPUTS["ablation"] = PATHS.ablation_table("parquet")
    TABLE_EXTRA_OUTPUTS["ablation_csv"] = PATHS.ablation_table("csv")


def measure_extra_args(wildcards):
    """Options of measure-revision for the natural batch and the extra outputs (the paths declared as outputs)."""
    args = []
    if heads_jobs.natural_text(PLAN):
        args += ["--natural-batch", natural_batch_of(wildcards)[0]]
    for key, path in heads_jobs.measure_extra_outputs(PLAN, wildcards.model, wildcards.revision).items():
        args += [f"--{key.replace('_', '-')}", path]
    return " ".join(shlex.quote(str(arg)) for arg in args)


def table_extra_args():
    if PLAN.ablation is None:
        return ""
    args = ["--ablation-out", PATHS.ablation_table("parquet"), "--ablation-csv", PATHS.ablation_table("csv")]
    args += ["--causal-factor", PLAN.causal_factor, "--causal-alpha", PLAN.causal_alpha]
    return " ".join(shlex.quote(str(arg)) for arg in args)


def revision_table_files(model, revision):
    folder = PATHS.primitive_revision_tables(model, revision)
    return [folder / name for name in K.REVISION_TABLES.values()]


def primitive_revision_tables(wildcards):
    return [
        path
        for model in primitive_jobs.primitive_models(PLAN)
        for revision in primitive_jobs.primitive_revisions(PLAN, model)
        for path in revision_table_files(model, revision.name)
    ]


def primitive_final_tables():
    return [PATHS.primitive_table(name) for name in K.FINAL_FILES]


def primitive_targets():
    if not primitive_jobs.primitive_models(PLAN):
        return []
    return [*primitive_final_tables(), PATHS.primitive_gap_plot(), PATHS.primitive_scaling_plot()]


def all_head_scores():
    return [PATHS.head_scores(model, revision) for model in MODELS for revision in revisions_of(model)]


def all_primitive_shards():
    return [
        PATHS.primitive_stats(model, revision.name)
        for model in primitive_jobs.primitive_models(PLAN)
        for revision in primitive_jobs.primitive_revisions(PLAN, model)
    ]


def published_revisions():
    """Every revision each model's source publishes now, by name (a param of the bracket table)."""
    return as_json({model: [revision.name for revision in PLAN.available[model]] for model in MODELS})


def refine_targets():
    """The bracket table, with a refine block (circuitsweep.milestones.refine)."""
    if PLAN.refine is None:
        return []
    return [PATHS.milestone_brackets("csv"), PATHS.milestone_brackets("md")]


def group_targets():
    """The group milestone table, when some model has a group (circuitsweep.milestones.groups)."""
    if not PLAN.groups():
        return []
    return [PATHS.group_milestones("csv"), PATHS.group_milestones("md")]


def measurement_targets():
    """Every output of the measuring jobs and every final-revision ablation's rows. Targets of their own,
    so that a cache deleted by hand is made again (Snakemake does not remake a missing file that only
    up-to-date jobs read), as revision_stage.pending, and with it the dry run's cost, counts it."""
    files = []
    for model in MODELS:
        for revision in revisions_of(model):
            files += revision_stage.revision_cache_files(PLAN, model, revision)
        if PLAN.ablation is not None:
            files.append(PATHS.final_ablation_rows(model))
    return files


def table_pages():
    """Each final CSV table the run makes, by name (its file's stem): its path and the caption of its page in
    the report (circuitsweep.outputs.table_pages; the pages sit beside the CSVs)."""
    pages = {
        "milestones": (PATHS.milestones_table("csv"), "milestones.rst"),
        "emergence": (PATHS.emergence_table("csv"), "emergence_table.rst"),
        "spectral": (PATHS.spectral_table("csv"), "spectral_table.rst"),
    }
    if PLAN.ablation is not None:
        pages["ablation"] = (PATHS.ablation_table("csv"), "ablation_table.rst")
        pages["final_ablation"] = (PATHS.final_ablation_table("csv"), "final_ablation.rst")
    if primitive_jobs.primitive_models(PLAN):
        for name in (K.GAPS_CSV, K.COMPOSITIONS_CSV, K.AXIS_FILE, K.SCALING_CSV, K.AGREEMENT_CSV):
            pages[Path(name).stem] = (PATHS.primitive_table(name), f"{Path(name).stem}_table.rst")
    if PLAN.refine is not None:
        pages["milestone_brackets"] = (PATHS.milestone_brackets("csv"), "milestone_brackets.rst")
    if PLAN.groups():
        pages["group_milestones"] = (PATHS.group_milestones("csv"), "group_milestones.rst")
    pages["overhead"] = (PATHS.overhead_table("csv"), "overhead.rst")
    pages["overhead_estimate"] = (PATHS.overhead_estimate_table(), "overhead_estimate.rst")
    return pages


def final_targets():
    return [
        *[PATHS.table_page(name) for name in table_pages()],
        *refine_targets(),
        *group_targets(),
        PATHS.overhead_table("csv"),
        PATHS.overhead_table("md"),
        *primitive_targets(),
        PATHS.heads_table(),
        PATHS.emergence_table("parquet"),
        PATHS.emergence_table("csv"),
        PATHS.milestones_table("csv"),
        PATHS.milestones_table("md"),
        *TABLE_EXTRA_OUTPUTS.values(),
        PATHS.milestones_table("parquet"),
        PATHS.emergence_plot("png"),
        PATHS.emergence_plot("svg"),
        *[PATHS.heatmap_plot(model) for model in MODELS],
        *[PATHS.trajectory_plot(model) for model in MODELS],
        PATHS.spectral_table("parquet"),
        PATHS.spectral_table("csv"),
        *[PATHS.spectral_plot(model) for model in MODELS],
        *final_ablation_targets(),
        *[PATHS.findings(suffix) for suffix in ("csv", "md", "html")],
        *measurement_targets(),
    ]


def final_revision_of(wildcards):
    return PLAN.final_revision(wildcards.model)


def final_snapshot_of(wildcards):
    return PATHS.final_snapshot(wildcards.model)


def final_fetch_waits_for(wildcards):
    """fetch_final_snapshot's disk-bound wait: the final revision's place in the fetch order (revision_stage.needs_snapshot)."""
    order = SLOTS if S.input_set_triggers_reruns(workflow.rerun_triggers) else to_measure()
    final = final_revision_of(wildcards)
    if (wildcards.model, final) not in order:
        return []
    earlier = S.fetch_after(order, wildcards.model, final, SNAPSHOTS_ON_DISK)
    return snapshot_consumers(*earlier) if earlier else []


def final_natural_arg(wildcards, input):
    """final-ablation's option for the natural-text batch, when the run measures natural text."""
    return f"--natural-batch {shlex.quote(str(input.natural[0]))}" if input.natural else ""


def final_ablation_targets():
    if PLAN.ablation is None:
        return []
    return [PATHS.final_ablation_table(suffix) for suffix in ("parquet", "csv", "md")]


def final_ablation_table_input():
    """The final-ablation table the findings read, when the run ablates."""
    return [PATHS.final_ablation_table("parquet")] if PLAN.ablation is not None else []


def findings_ablation_arg(wildcards, input):
    """findings' option for the final-ablation table, when the run ablates."""
    return f"--final-ablation {shlex.quote(str(input.final_ablation))}" if input.final_ablation else ""


# --- job sizes, the snapshot bound and job blocks (circuitsweep.plan.resources, .scheduling) ---
from circuitsweep.plan import resources as R
from circuitsweep.plan import scheduling as S

SNAPSHOTS_ON_DISK = int(config.get("snapshots_on_disk", 2))
REVISIONS_PER_JOB = int(config.get("revisions_per_job", 8))
SLOTS = S.fetch_order(
    {model: revisions_of(model) for model in MODELS}, SNAPSHOTS_ON_DISK, REVISIONS_PER_JOB
)
BLOCKS = S.blocks(SLOTS)

# The job group of a block's measurements, for a cluster executor (ON_CLUSTER); a local run runs
# no groups, so none is planned there. Snakemake checks
# every group by walking all the jobs upstream of each grouped job, and the disk bound chains
# the fetches one after another: in a long sweep that walk is quadratic in the jobs (minutes for
# the 1,844 revisions of config/full.yaml) and as deep as the sweep is long, deeper than
# Python's default limit of 1,000 frames.
REVISION_GROUP = "revisions" if ON_CLUSTER else None
if REVISION_GROUP:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1_000 + 4 * len(SLOTS)))


@functools.cache
def pending():
    """What this run still has to do (revision_stage.pending): the revisions without caches made with
    the settings planned now, the final ablations and natural batches that run. Read from the caches'
    headers once, when the DAG is built (or a dry run prints its cost), not when a job's Snakemake parses."""
    return revision_stage.pending(PLAN)


@functools.cache
def to_measure():
    """The disk-bound order of the revisions still to measure: one measured before (with the
    settings planned now) is not fetched, so adding or removing a revision never moves its
    wait (the final revision of a run that ablates also while its final-revision ablation is not
    current: revision_stage.needs_snapshot). The profiles drop Snakemake's `input` rerun trigger for the same
    reason. Read from the caches' headers once, when the DAG is built."""
    return S.fetch_order(
        {model: [r for r in revisions_of(model) if revision_stage.needs_snapshot(PLAN, model, r)] for model in MODELS},
        SNAPSHOTS_ON_DISK,
        REVISIONS_PER_JOB,
    )


@functools.cache
def planning_shape(model):
    """The shape that sizes a model's jobs before its snapshot is fetched (circuitsweep.plan.costs.model_shape)."""
    return costs.model_shape(PLAN, model).config


def revision_work(wildcards, shape):
    """What a revision's measurement job runs through its model (circuitsweep.plan.costs)."""
    with_primitives = primitive_jobs.measures_primitives(PLAN, wildcards.model, wildcards.revision)
    return costs.revision_job_work(PLAN, wildcards.model, wildcards.revision, shape, with_primitives)


def final_ablation_work(wildcards, shape):
    return costs.final_ablation_work(PLAN, wildcards.model)


def measure_resource(
    key,
    snapshot_of=lambda wildcards: PATHS.snapshot(wildcards.model, wildcards.revision),
    work_of=revision_work,
):
    """One key of the size of a job that loads a model: circuitsweep.plan.sizing's memory estimate, the one
    the job checks, and circuitsweep.plan.costs' runtime estimate times its margin (the estimate the dry run
    sums). ``snapshot_of(wildcards)``: the snapshot the job loads; ``work_of(wildcards, shape)``: what it runs
    through the model (a revision's measurement, or a final-revision ablation).

    From the snapshot's config.json once fetched (Snakemake re-evaluates resources when
    a job's inputs exist, before submitting it), else the model's planning shape. Memory and
    runtime scale with the attempt, unless the last attempt failed deterministically
    (circuitsweep.plan.retry).
    """

    def size(wildcards, attempt, rulename):
        from circuitsweep.plan.retry import job_log, sizing_attempt

        model = PLAN.models[wildcards.model]
        shape = R.snapshot_model_config(snapshot_of(wildcards)) or planning_shape(wildcards.model)
        estimate = R.measure_size(shape, model.dtype, model.probes.to_dict(), PLAN.device, work_of(wildcards, shape))
        log = job_log(getattr(rules, rulename).log, dict(wildcards.items()))
        return getattr(estimate.scaled(sizing_attempt(log, attempt)), key)

    return size


def natural_batch_resource(key):
    """One key of a natural batch's size: fixed memory, circuitsweep.plan.costs' runtime times its margin."""

    def size(wildcards, attempt, rulename):
        from circuitsweep.plan.retry import job_log, sizing_attempt

        model, _ = heads_jobs.natural_batches(PLAN)[wildcards.batch]
        work = costs.natural_batch_work(PLAN, model)
        seconds = sum(costs.job_seconds(planning_shape(model), PLAN.models[model].dtype, work, PLAN.device).values())
        log = job_log(getattr(rules, rulename).log, dict(wildcards.items()))
        return getattr(R.natural_batch_size(seconds).scaled(sizing_attempt(log, attempt)), key)

    return size


def overhead_estimate():
    """The cost model's estimate of every job of the sweep, per job kind, on the device and with the start-up
    the jobs have here (tables/overhead.md puts it beside the measured seconds; circuitsweep.plan.costs)."""
    on_cpu = PLAN.device == "cpu" or (PLAN.device == "auto" and suits("auto"))
    start_up = costs.WARM_START_UP_S if WARM_WORKER and on_cpu else costs.START_UP_S
    everything = costs.Pending(
        revisions={model: revisions_of(model) for model in MODELS},
        primitives={m: [r.name for r in primitive_jobs.primitive_revisions(PLAN, m)] for m in primitive_jobs.primitive_models(PLAN)},
        final_ablations=tuple(MODELS) if PLAN.ablation is not None else (),
        natural_batches=heads_jobs.natural_batches(PLAN),
    )
    kinds = costs.estimate_by_kind(PLAN, everything, "cpu" if on_cpu else "cuda", start_up)
    return {"device": "the CPU" if on_cpu else "a GPU", "start_up_s": start_up, "kinds": kinds}


def training_priority(wildcards):
    """A toy's training priority: models earlier in the fetch order (to_measure(): the config's model order) train
    first, so that the disk-bound chain of fetches, which starts with the first model's revisions, does not wait on a
    toy still training while the others' trainings hold the cores."""
    return len(MODELS) - MODELS.index(wildcards.model)


def small_resource(rule, key):
    """One key of a small job's size (circuitsweep.plan.resources.SMALL_JOBS), scaled as measure_resource's."""

    def size(wildcards, attempt, rulename):
        from circuitsweep.plan.retry import job_log, sizing_attempt

        log = job_log(getattr(rules, rulename).log, dict(wildcards.items()))
        return getattr(R.small_size(rule).scaled(sizing_attempt(log, attempt)), key)

    return size


def revision_caches(model, revision):
    """Every cache made from one revision's snapshot: once they exist, the snapshot is gone."""
    caches = [PATHS.head_stats(model, revision), PATHS.head_scores(model, revision)]
    if primitive_jobs.measures_primitives(PLAN, model, revision):
        caches.append(PATHS.primitive_stats(model, revision))
    return caches


def snapshot_consumers(model, revision):
    """What must exist before a revision's snapshot is gone: its caches, and for the final revision of a run
    that ablates, its final-revision ablation (final_ablation.smk), which reads the same snapshot."""
    consumers = revision_caches(model, revision)
    if PLAN.ablation is not None and revision == PLAN.final_revision(model):
        consumers.append(PATHS.final_ablation_rows(model))
    return consumers


@functools.cache
def is_measured(model, revision):
    """revision_stage.is_measured, read once per revision when the DAG is built."""
    return revision_stage.is_measured(PLAN, model, revision)


def fetch_waits_for(wildcards):
    """What must exist before a revision is fetched for its measurement: the consumers of the revision
    snapshots_on_disk places earlier among those to measure (to_measure()), the disk bound.

    A revision measured with the settings planned now is not fetched for its measurement, so its
    fetch waits for nothing: a wait on caches or a final-revision ablation made in this run would
    plan that fetch, and with it the measurement, again. The final revision's place in to_measure()
    is then its final-revision ablation's copy (final_fetch_waits_for).

    Under Snakemake's input-set rerun trigger (a profile without the rerun-triggers of
    profiles/default) that order would change from run to run and refetch everything,
    so it then counts every swept revision (inserting one refetches the next ones) and waits
    for their caches only: a final-revision ablation rerun (a threshold changed) measures nothing.
    """
    if S.input_set_triggers_reruns(workflow.rerun_triggers):
        earlier = S.fetch_after(SLOTS, wildcards.model, wildcards.revision, SNAPSHOTS_ON_DISK)
        return revision_caches(*earlier) if earlier else []
    if is_measured(wildcards.model, wildcards.revision):
        return []
    order = to_measure()
    if (wildcards.model, wildcards.revision) not in order:
        return []
    earlier = S.fetch_after(order, wildcards.model, wildcards.revision, SNAPSHOTS_ON_DISK)
    return snapshot_consumers(*earlier) if earlier else []


def block_marker(block):
    return PATHS.block_record(block)


def block_inputs(wildcards):
    """Everything a block's group job makes: its revisions' caches and primitive tables."""
    files = []
    for model, revision in BLOCKS[wildcards.block]:
        files += revision_caches(model, revision)
        if PATHS.primitive_stats(model, revision) in files:
            files += revision_table_files(model, revision)
    return files


def block_head_caches(block):
    """The head cache of each revision of a block and what it must say it is: the block record verifies them."""
    return [
        {
            "scores": str(PATHS.head_scores(model, revision)),
            "stats": str(PATHS.head_stats(model, revision)),
            "expected": heads_jobs.head_cache_expectation(PLAN, model, revision),
        }
        for model, revision in BLOCKS[block]
    ]


def block_markers_of(wildcards):
    """The model's block records, for a cluster executor: they put the job groups in the DAG. Not
    ancient: Snakemake skips the own rerun checks (updated caches, --forcerun) of a job downstream of
    one that reruns, so a rebuilt block (a cache replaced on disk, a primitive rescoring) must
    reclassify through it. A local run has no groups and its classification reads and verifies the
    caches themselves, so it plans no block records (49 one-second jobs on the toy suite)."""
    if not ON_CLUSTER:
        return []
    return [block_marker(block) for block in BLOCKS if BLOCKS[block][0][0] == wildcards.model]


# A failed measurement leaves its temporary snapshot (a retry needs it): whatever snapshot
# is left when the run fails is deleted then, so failures never hold disk between runs.
onerror:
    mark_run_failed(PATHS.root)
    if (_full := disk_full_note(PATHS.root)) is not None:
        print(_full, file=sys.stderr)
    for snapshot in S.drop_unmeasured_snapshots(
        [(PATHS.snapshot(m, r), snapshot_consumers(m, r)) for m in MODELS for r in revisions_of(m)]
        + [(PATHS.final_snapshot(m), [PATHS.final_ablation_rows(m)]) for m in MODELS]
    ):
        print(f"circuitsweep: deleted the snapshot {snapshot} (its measurement failed or did not run)", file=sys.stderr)


# A dry run says what the sweep costs (download, peak disk, hours), which manifests list
# only part of their repository's branches, the plan's notes (as check-config prints them)
# and, for a cluster executor (one that takes --jobs, as profiles/slurm sets), what it
# submits: Snakemake's own dry run lists jobs, not the job groups they are submitted in.
if workflow.output_settings.dryrun and workflow.exec_mode.name == "DEFAULT":
    print(describe_cost(costs.sweep_cost(PLAN, pending(), SNAPSHOTS_ON_DISK, gpu_present=not suits("auto"), warm_worker=WARM_WORKER)), file=sys.stderr)
    for _manifest in PLAN.partial_manifests():
        print(describe_partial(_manifest), file=sys.stderr)
    for _note in PLAN.notes:
        print(f"circuitsweep: note: {_note}", file=sys.stderr)
if workflow.output_settings.dryrun and workflow.exec_mode.name == "DEFAULT" and ON_CLUSTER:
    print(
        S.describe_submissions(
            S.cluster_submissions(
                BLOCKS,
                models=len(MODELS),
                toy_models=sum(is_toy(model) for model in MODELS),
                primitive_models=len(primitive_jobs.primitive_models(PLAN)),
                downloads=config.get("downloads", "local"),
                ablation=PLAN.ablation is not None,
                groups=bool(PLAN.groups()),
                refine=PLAN.refine is not None,
                bootstrap=PLAN.bootstrap is not None,
                natural_batches=len(heads_jobs.natural_batches(PLAN)),
            ),
            SNAPSHOTS_ON_DISK,
            S.block_size(SNAPSHOTS_ON_DISK, REVISIONS_PER_JOB),
        ),
        file=sys.stderr,
    )


# A job group holds one GPU and runs its measurements one after another. Snakemake
# passes the profile's `resources: gpu` only to its main process, so the Snakemake
# running a group inside its SLURM job (and the one srun starts there) sets it again.
if not workflow.is_main_process and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", 1)
