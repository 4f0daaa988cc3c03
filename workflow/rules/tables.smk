# Final tables across models: heads, emergence curves, milestones.


rule head_tables:
    input:
        heads=[PATHS.model_heads(model) for model in MODELS],
        revisions=[PATHS.model_revisions(model) for model in MODELS],
        ablation=ablation_rows(),
    output:
        heads=PATHS.heads_table(),
        emergence=PATHS.emergence_table("parquet"),
        emergence_csv=report(
            PATHS.emergence_table("csv"),
            caption="../report/emergence_table.rst",
            category="Tables",
        ),
        milestones=report(
            PATHS.milestones_table("csv"),
            caption="../report/milestones.rst",
            category="Tables",
        ),
        milestones_md=PATHS.milestones_table("md"),
        **TABLE_EXTRA_OUTPUTS,
        milestones_parquet=PATHS.milestones_table("parquet"),
    params:
        thresholds=lambda wildcards: settings_file(
            "head_tables", {model: PLAN.milestone_thresholds(model) for model in MODELS}
        ),
        extra=table_extra_args(),
        skip_duplicates=[model for model in MODELS if PLAN.models[model].duplicates == "skip"],
    resources:
        mem_mb=small_resource("head_tables", "mem_mb"),
        runtime=small_resource("head_tables", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("head_tables"),
    shell:
        "python -m circuitsweep head-tables --heads {input.heads:q} --revisions {input.revisions:q}"
        " --thresholds {params.thresholds:q} --heads-out {output.heads:q} --emergence {output.emergence:q}"
        " --emergence-csv {output.emergence_csv:q} --milestones {output.milestones:q}"
        " --milestones-md {output.milestones_md:q} --milestones-parquet {output.milestones_parquet:q}"
        " --skip-duplicates {params.skip_duplicates:q} --ablation-rows {input.ablation:q} {params.extra}"
        " > {log:q} 2>&1"


rule sweep_overhead:
    input:
        scores=all_head_scores(),
        fetch=[PATHS.benchmark(f"fetch_snapshot/{m}/{r}") for m in MODELS for r in revisions_of(m)],
        measure=[PATHS.benchmark(f"{measuring_rule(m, r)}/{m}/{r}") for m in MODELS for r in revisions_of(m)],
        primitives=all_primitive_shards(),
    params:
        revisions=as_json({model: revisions_of(model) for model in MODELS}),
    output:
        csv=report(
            PATHS.overhead_table("csv"),
            caption="../report/overhead.rst",
            category="Tables",
        ),
        markdown=PATHS.overhead_table("md"),
    resources:
        mem_mb=small_resource("sweep_overhead", "mem_mb"),
        runtime=small_resource("sweep_overhead", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("sweep_overhead"),
    shell:
        "python -m circuitsweep sweep-overhead --scores {input.scores:q} --fetch {input.fetch:q}"
        " --measure {input.measure:q} --primitives {input.primitives:q} --csv {output.csv:q} --markdown {output.markdown:q} > {log:q} 2>&1"
