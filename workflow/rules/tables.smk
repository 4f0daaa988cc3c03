# Final tables across models: heads, emergence curves, milestones.


if PLAN.bootstrap is not None:

    # The bootstrap over probe sequences of one model (circuitsweep.milestones.bootstrap), from its
    # caches and classes alone: no model is loaded, so changing `bootstrap:` reruns only table jobs.
    rule bootstrap_heads:
        input:
            stats=head_stats_of,
            heads=PATHS.model_heads("{model}"),
            revisions=PATHS.model_revisions("{model}"),
        output:
            heads=PATHS.model_bootstrap_heads("{model}"),
            curves=PATHS.model_bootstrap_curves("{model}"),
        params:
            settings=lambda wildcards: as_json(bootstrap_settings(PLAN, wildcards.model)),
            expected=lambda wildcards: settings_file(
                f"classify_heads-{wildcards.model}",
                [heads_jobs.head_cache_expectation(PLAN, wildcards.model, revision) for revision in revisions_of(wildcards.model)],
            ),
        resources:
            attempt=attempt_resource,
            mem_mb=small_resource("bootstrap_heads", "mem_mb"),
            runtime=small_resource("bootstrap_heads", "runtime"),
        conda:
            ENV
        log:
            PATHS.log("bootstrap_heads/{model}"),
        shell:
            "python -m circuitsweep --attempt {resources.attempt} bootstrap-heads --model {wildcards.model}"
            " --settings {params.settings:q} --stats {input.stats:q} --expected {params.expected:q}"
            " --heads {input.heads:q} --revisions {input.revisions:q}"
            " --heads-out {output.heads:q} --curves-out {output.curves:q} > {log:q} 2>&1"


rule head_tables:
    input:
        heads=[PATHS.model_heads(model) for model in MODELS],
        revisions=[PATHS.model_revisions(model) for model in MODELS],
        ablation=ablation_rows(),
        bootstrap_heads=bootstrap_of("heads"),
        bootstrap_curves=bootstrap_of("curves"),
    output:
        heads=PATHS.heads_table(),
        emergence=PATHS.emergence_table("parquet"),
        emergence_csv=report_output(
            PATHS.emergence_table("csv"),
            caption="../report/emergence_table.rst",
            category="Table files (CSV)",
        ),
        milestones=report_output(
            PATHS.milestones_table("csv"),
            caption="../report/milestones.rst",
            category="Table files (CSV)",
        ),
        milestones_md=PATHS.milestones_table("md"),
        **TABLE_EXTRA_OUTPUTS,
        milestones_parquet=PATHS.milestones_table("parquet"),
    params:
        thresholds=lambda wildcards: settings_file(
            "head_tables", {model: milestone_thresholds(PLAN, model) for model in MODELS}
        ),
        extra=table_extra_args(),
        skip_duplicates=[model for model in MODELS if PLAN.models[model].duplicates == "skip"],
    resources:
        attempt=attempt_resource,
        mem_mb=small_resource("head_tables", "mem_mb"),
        runtime=small_resource("head_tables", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("head_tables"),
    shell:
        "python -m circuitsweep --attempt {resources.attempt} head-tables --heads {input.heads:q} --revisions {input.revisions:q}"
        " --thresholds {params.thresholds:q} --heads-out {output.heads:q} --emergence {output.emergence:q}"
        " --emergence-csv {output.emergence_csv:q} --milestones {output.milestones:q}"
        " --milestones-md {output.milestones_md:q} --milestones-parquet {output.milestones_parquet:q}"
        " --skip-duplicates {params.skip_duplicates:q} --ablation-rows {input.ablation:q} {params.extra}"
        " --bootstrap-heads {input.bootstrap_heads:q} --bootstrap-curves {input.bootstrap_curves:q}"
        " > {log:q} 2>&1"


if PLAN.refine is not None:

    # Per model and milestone, the swept revisions that bracket it and the revision the next
    # refinement round adds (circuitsweep.milestones.refine; `circuitsweep refine` runs the rounds).
    rule milestone_brackets:
        input:
            emergence=PATHS.emergence_table("parquet"),
            milestones=PATHS.milestones_table("parquet"),
        output:
            csv=report_output(
                PATHS.milestone_brackets("csv"),
                caption="../report/milestone_brackets.rst",
                category="Table files (CSV)",
            ),
            markdown=PATHS.milestone_brackets("md"),
        params:
            # a function: format fields in the config (toy branch_format "step{step}") are no wildcards
            config=lambda wildcards: as_json(run_config()),
            root=REPO,
            results=PATHS.root,
            # what each source publishes now: revisions that appear inside a bracket (a run_dir that
            # kept training, or was backfilled) reopen it, though no table changed
            published=lambda wildcards: published_revisions(),
        resources:
            mem_mb=small_resource("milestone_brackets", "mem_mb"),
            runtime=small_resource("milestone_brackets", "runtime"),
        conda:
            ENV
        log:
            PATHS.log("milestone_brackets"),
        shell:
            "python -m circuitsweep milestone-brackets --config {params.config:q} --root {params.root:q}"
            " --results {params.results:q} --emergence {input.emergence:q} --milestones {input.milestones:q}"
            " --csv {output.csv:q} --markdown {output.markdown:q} > {log:q} 2>&1"


if PLAN.groups():

    # Per group of models (`group:`, e.g. the seeds of one architecture) and milestone: the spread of its tokens.
    rule group_milestones:
        input:
            PATHS.milestones_table("parquet"),
        output:
            csv=report_output(PATHS.group_milestones("csv"), caption="../report/group_milestones.rst", category="Table files (CSV)"),
            markdown=PATHS.group_milestones("md"),
        params:
            groups=as_json(PLAN.groups()),
        resources:
            mem_mb=small_resource("group_milestones", "mem_mb"),
            runtime=small_resource("group_milestones", "runtime"),
        conda:
            ENV
        log:
            PATHS.log("group_milestones"),
        shell:
            "python -m circuitsweep group-milestones --milestones {input:q} --groups {params.groups:q}"
            " --csv {output.csv:q} --markdown {output.markdown:q} > {log:q} 2>&1"


rule sweep_overhead:
    input:
        scores=all_head_scores(),
        fetch=[PATHS.benchmark(f"fetch_snapshot/{m}/{r}") for m in MODELS for r in revisions_of(m)],
        measure=[PATHS.benchmark(f"{measuring_rule(m, r)}/{m}/{r}") for m in MODELS for r in revisions_of(m)],
        primitives=all_primitive_shards(),
        final_ablation=[PATHS.benchmark(f"final_ablation/{m}") for m in MODELS] if PLAN.ablation is not None else [],
    params:
        # not inputs: a batch built before it had a benchmark is not rebuilt for one (its measurements would rerun)
        natural_batch=[PATHS.benchmark(f"natural_batch/{b}") for b in heads_jobs.natural_batches(PLAN)],
        revisions=as_json({model: revisions_of(model) for model in MODELS}),
        # the cost model's estimate of every job above (circuitsweep.plan.costs), beside what they took
        estimate=lambda wildcards: as_json(overhead_estimate()),
    output:
        csv=report_output(
            PATHS.overhead_table("csv"),
            caption="../report/overhead.rst",
            category="Table files (CSV)",
        ),
        estimate_csv=report_output(
            PATHS.overhead_estimate_table(),
            caption="../report/overhead_estimate.rst",
            category="Table files (CSV)",
        ),
        markdown=PATHS.overhead_table("md"),
    resources:
        attempt=attempt_resource,
        mem_mb=small_resource("sweep_overhead", "mem_mb"),
        runtime=small_resource("sweep_overhead", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("sweep_overhead"),
    shell:
        "python -m circuitsweep --attempt {resources.attempt} sweep-overhead --scores {input.scores:q} --fetch {input.fetch:q}"
        " --measure {input.measure:q} --primitives {input.primitives:q} --final-ablation {input.final_ablation:q}"
        " --natural-batch {params.natural_batch:q} --estimate {params.estimate:q} --csv {output.csv:q}"
        " --estimate-csv {output.estimate_csv:q} --markdown {output.markdown:q} > {log:q} 2>&1"


# Every final CSV table as a page the report shows as a table (not only a download), beside its CSV
# (circuitsweep.outputs.table_pages).
rule table_pages:
    input:
        [table for table, _caption in table_pages().values()],
    output:
        **{
            name: report_output(
                PATHS.table_page(name),
                caption=f"../report/{caption}",
                category="Tables",
                labels={"table": name.replace("_", " ")},
            )
            for name, (_table, caption) in table_pages().items()
        },
    params:
        names=as_json(list(table_pages())),
    resources:
        mem_mb=small_resource("table_pages", "mem_mb"),
        runtime=small_resource("table_pages", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("table_pages"),
    shell:
        "python -m circuitsweep table-pages --tables {input:q} --pages {output:q} > {log:q} 2>&1"


# The study's findings (circuitsweep.milestones.findings): precision at K, K selection, class breakdowns,
# the screen against the top K and the five ablation claims per model, and the cross-model table, from
# the tables alone (no model is loaded); its HTML is the report's Findings page.
rule findings:
    input:
        spectral=PATHS.spectral_table("parquet"),
        heads=PATHS.heads_table(),
        milestones=PATHS.milestones_table("parquet"),
        final_ablation=final_ablation_table_input(),
    output:
        csv=report_output(PATHS.findings("csv"), caption="../report/findings_table.rst", category="Table files (CSV)"),
        markdown=PATHS.findings("md"),
        html=report_output(PATHS.findings("html"), caption="../report/findings.rst", category="Findings"),
    params:
        spectral_top_k=as_json(list(PLAN.spectral_top_k)),
        # a model added or removed reruns the findings (the profiles' rerun triggers ignore the input set)
        models=as_json(MODELS),
        final_ablation=findings_ablation_arg,
    resources:
        mem_mb=small_resource("findings", "mem_mb"),
        runtime=small_resource("findings", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("findings"),
    shell:
        "python -m circuitsweep findings --spectral {input.spectral:q} --heads {input.heads:q}"
        " --milestones {input.milestones:q} {params.final_ablation} --spectral-top-k {params.spectral_top_k:q}"
        " --csv {output.csv:q} --markdown {output.markdown:q} --html {output.html:q} > {log:q} 2>&1"
