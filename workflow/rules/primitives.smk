# Semantic primitives (docs/primitives.md): per revision, score the shard that
# measure_revision wrote (cache only; measure.smk); then one set of final tables
# and a plot across models.


rule score_primitives:
    input:
        cache=PATHS.primitive_stats("{model}", "{revision}"),
        stimuli=lambda wildcards: primitive_jobs.stimuli_file(PLAN, wildcards.model),
    output:
        revision_table_files("{model}", "{revision}"),
    params:
        scoring=lambda wildcards: as_json(primitive_jobs.primitive_scoring(PLAN, wildcards.model)),
        folder=lambda wildcards: PATHS.primitive_revision_tables(wildcards.model, wildcards.revision),
        expected=lambda wildcards: as_json(primitive_jobs.primitive_cache_expectation(PLAN, wildcards.model, wildcards.revision)),
        stimuli_sha256=lambda wildcards: PLAN.stimuli_sha256[wildcards.model],
    resources:
        attempt=attempt_resource,
        mem_mb=small_resource("score_primitives", "mem_mb"),
        runtime=small_resource("score_primitives", "runtime"),
    group:
        REVISION_GROUP
    conda:
        ENV
    log:
        PATHS.log("score_primitives/{model}/{revision}"),
    shell:
        "python -m circuitsweep --attempt {resources.attempt} score-primitives --cache {input.cache:q} --stimuli {input.stimuli:q}"
        " --scoring {params.scoring:q} --expected {params.expected:q} --output {params.folder:q} > {log:q} 2>&1"


rule primitive_tables:
    input:
        primitive_revision_tables,
    output:
        primitive_final_tables(),
    params:
        folders=lambda wildcards, input: sorted({str(Path(path).parent) for path in input}),
        tables=PATHS.primitive_table(""),
        revisions=as_json({m: [r.name for r in primitive_jobs.primitive_revisions(PLAN, m)] for m in primitive_jobs.primitive_models(PLAN)}),
    resources:
        attempt=attempt_resource,
        mem_mb=small_resource("primitive_tables", "mem_mb"),
        runtime=small_resource("primitive_tables", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("primitive_tables"),
    shell:
        "python -m circuitsweep --attempt {resources.attempt} primitive-tables --revisions {params.folders:q}"
        " --output {params.tables:q} > {log:q} 2>&1"


rule plot_primitive_gap:
    input:
        PATHS.primitive_table(K.GAPS_CSV),
    output:
        report_output(PATHS.primitive_gap_plot(), caption="../report/primitive_gap.rst", category="Plots"),
    params:
        demonstration=as_json(primitive_jobs.demonstration_models(PLAN)),
    resources:
        attempt=attempt_resource,
        mem_mb=small_resource("plot_primitive_gap", "mem_mb"),
        runtime=small_resource("plot_primitive_gap", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("plot_primitive_gap"),
    shell:
        "python -m circuitsweep --attempt {resources.attempt} plot-primitive-gap --gaps {input:q} --output {output:q}"
        " --demonstration {params.demonstration:q} > {log:q} 2>&1"


rule plot_primitive_scaling:
    input:
        PATHS.primitive_table(K.SCALING_CSV),
    output:
        report_output(PATHS.primitive_scaling_plot(), caption="../report/primitive_scaling.rst", category="Plots"),
    params:
        demonstration=as_json(primitive_jobs.demonstration_models(PLAN)),
    resources:
        attempt=attempt_resource,
        mem_mb=small_resource("plot_primitive_scaling", "mem_mb"),
        runtime=small_resource("plot_primitive_scaling", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("plot_primitive_scaling"),
    shell:
        "python -m circuitsweep --attempt {resources.attempt} plot-primitive-scaling --scaling {input:q} --output {output:q}"
        " --demonstration {params.demonstration:q} > {log:q} 2>&1"
