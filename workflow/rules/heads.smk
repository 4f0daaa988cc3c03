# Head measurements (one job per revision) and classification (one per model).


rule measure_heads:
    input:
        snapshot=PATHS.snapshot("{model}", "{revision}"),
        natural=natural_batch_of,
    output:
        stats=PATHS.head_stats("{model}", "{revision}"),
        scores=PATHS.head_scores("{model}", "{revision}"),
        **MEASURE_EXTRA_OUTPUTS,
    params:
        settings=lambda wildcards: as_json(PLAN.measure_settings(wildcards.model, wildcards.revision)),
        extra=measure_extra_args,
    threads: 1
    resources:
        mem_mb=measure_resource("mem_mb"),
        runtime=measure_resource("runtime"),
        gpu=measure_resource("gpu"),
    group:
        "revisions"
    priority: 10
    conda:
        ENV
    log:
        PATHS.log("measure_heads/{model}/{revision}"),
    benchmark:
        PATHS.benchmark("measure_heads/{model}/{revision}")
    shell:
        "python -m circuitsweep measure-heads --settings {params.settings:q} --snapshot {input.snapshot:q}"
        " --stats {output.stats:q} --scores {output.scores:q} --threads {threads} --mem-mb {resources.mem_mb}"
        " {params.extra} > {log:q} 2>&1"
        " || {{ python -m circuitsweep drop-snapshot {input.snapshot:q} >> {log:q} 2>&1; exit 1; }}"


rule natural_batch:
    input:
        lambda wildcards: PATHS.snapshot(*PLAN.natural_batches()[wildcards.batch]),
    output:
        PATHS.natural_batch("{batch}"),
    params:
        settings=lambda wildcards: as_json(PLAN.natural_batch_settings(wildcards.batch)),
    resources:
        mem_mb=small_resource("natural_batch", "mem_mb"),
        runtime=small_resource("natural_batch", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("natural_batch/{batch}"),
    shell:
        "python -m circuitsweep natural-batch --settings {params.settings:q} --snapshot {input:q}"
        " --output {output:q} > {log:q} 2>&1"


rule classify_heads:
    input:
        scores=head_scores_of,
        stats=head_stats_of,
        natural=natural_scores_of,
        blocks=block_markers_of,
    output:
        heads=PATHS.model_heads("{model}"),
        revisions=PATHS.model_revisions("{model}"),
    params:
        thresholds=lambda wildcards: as_json(PLAN.thresholds(wildcards.model)),
        expected=lambda wildcards: as_json(
            [PLAN.head_cache_expectation(wildcards.model, revision) for revision in revisions_of(wildcards.model)]
        ),
    resources:
        mem_mb=small_resource("classify_heads", "mem_mb"),
        runtime=small_resource("classify_heads", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("classify_heads/{model}"),
    shell:
        "python -m circuitsweep classify-heads --model {wildcards.model} --thresholds {params.thresholds:q}"
        " --scores {input.scores:q} --stats {input.stats:q} --expected {params.expected:q}"
        " --heads {output.heads:q} --revisions {output.revisions:q}"
        " --natural {input.natural:q} > {log:q} 2>&1"
