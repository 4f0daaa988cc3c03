# Semantic primitives (DESIGN.md 5): per revision, measure (model) then score
# (cache only); then one set of final tables and a plot across models.


rule measure_primitives:
    input:
        snapshot=PATHS.snapshot("{model}", "{revision}"),
        stimuli=lambda wildcards: PLAN.stimuli(wildcards.model),
    output:
        PATHS.primitive_stats("{model}", "{revision}"),
    params:
        settings=lambda wildcards: as_json(PLAN.primitive_settings(wildcards.model, wildcards.revision)),
    threads: 1
    resources:
        snapshot_slots=1,
    priority: 10
    conda:
        ENV
    log:
        PATHS.log("measure_primitives/{model}/{revision}"),
    benchmark:
        PATHS.benchmark("measure_primitives/{model}/{revision}")
    shell:
        "python -m circuitsweep measure-primitives --settings {params.settings:q} --snapshot {input.snapshot:q}"
        " --stimuli {input.stimuli:q} --output {output:q} --threads {threads} > {log:q} 2>&1"


rule score_primitives:
    input:
        cache=PATHS.primitive_stats("{model}", "{revision}"),
        stimuli=lambda wildcards: PLAN.stimuli(wildcards.model),
    output:
        revision_table_files("{model}", "{revision}"),
    params:
        scoring=lambda wildcards: as_json(PLAN.primitive_scoring(wildcards.model)),
        folder=lambda wildcards: PATHS.primitive_revision_tables(wildcards.model, wildcards.revision),
        expected=lambda wildcards: as_json(PLAN.primitive_cache_expectation(wildcards.model, wildcards.revision)),
    conda:
        ENV
    log:
        PATHS.log("score_primitives/{model}/{revision}"),
    shell:
        "python -m circuitsweep score-primitives --cache {input.cache:q} --stimuli {input.stimuli:q}"
        " --scoring {params.scoring:q} --expected {params.expected:q} --output {params.folder:q} > {log:q} 2>&1"


rule primitive_tables:
    input:
        primitive_revision_tables,
    output:
        primitive_final_tables(),
    params:
        folders=lambda wildcards, input: sorted({str(Path(path).parent) for path in input}),
        tables=PATHS.primitive_table(""),
    conda:
        ENV
    log:
        PATHS.log("primitive_tables"),
    shell:
        "python -m circuitsweep primitive-tables --revisions {params.folders:q}"
        " --output {params.tables:q} > {log:q} 2>&1"


rule plot_primitive_gap:
    input:
        PATHS.primitive_table(K.GAPS_CSV),
    output:
        report(PATHS.primitive_gap_plot(), caption="../report/primitive_gap.rst", category="Plots"),
    conda:
        ENV
    log:
        PATHS.log("plot_primitive_gap"),
    shell:
        "python -m circuitsweep plot-primitive-gap --gaps {input:q} --output {output:q} > {log:q} 2>&1"
