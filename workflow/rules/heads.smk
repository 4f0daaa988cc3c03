# Head measurements (one job per revision) and classification (one per model).


rule measure_heads:
    input:
        PATHS.snapshot("{model}", "{revision}"),
    output:
        stats=PATHS.head_stats("{model}", "{revision}"),
        scores=PATHS.head_scores("{model}", "{revision}"),
    params:
        settings=lambda wildcards: as_json(PLAN.measure_settings(wildcards.model, wildcards.revision)),
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
        "python -m circuitsweep measure-heads --settings {params.settings:q} --snapshot {input:q}"
        " --stats {output.stats:q} --scores {output.scores:q} --threads {threads} > {log:q} 2>&1"
        " || {{ python -m circuitsweep drop-snapshot {input:q} >> {log:q} 2>&1; exit 1; }}"


rule classify_heads:
    input:
        scores=head_scores_of,
        blocks=block_markers_of,
    output:
        heads=PATHS.model_heads("{model}"),
        revisions=PATHS.model_revisions("{model}"),
    params:
        thresholds=lambda wildcards: as_json(PLAN.thresholds(wildcards.model)),
    resources:
        mem_mb=small_resource("classify_heads", "mem_mb"),
        runtime=small_resource("classify_heads", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("classify_heads/{model}"),
    shell:
        "python -m circuitsweep classify-heads --model {wildcards.model} --thresholds {params.thresholds:q}"
        " --scores {input.scores:q} --heads {output.heads:q} --revisions {output.revisions:q} > {log:q} 2>&1"
