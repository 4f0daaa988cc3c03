# Final tables across models: heads, emergence curves, milestones.


rule head_tables:
    input:
        heads=[PATHS.model_heads(model) for model in MODELS],
        revisions=[PATHS.model_revisions(model) for model in MODELS],
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
    params:
        thresholds=as_json({model: PLAN.thresholds(model) for model in MODELS}),
        results=PATHS.root,
        skip_duplicates=[model for model in MODELS if PLAN.models[model].duplicates == "skip"],
    conda:
        ENV
    log:
        PATHS.log("head_tables"),
    shell:
        "python -m circuitsweep head-tables --heads {input.heads:q} --revisions {input.revisions:q}"
        " --thresholds {params.thresholds:q} --results {params.results:q}"
        " --skip-duplicates {params.skip_duplicates:q} > {log:q} 2>&1"
