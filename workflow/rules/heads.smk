# The natural-text batch (one per tokenizer) and head classification (one job per
# model, from the caches alone). The measurements themselves: measure.smk.


rule natural_batch:
    input:
        lambda wildcards: ancient(PATHS.snapshot(*heads_jobs.natural_batches(PLAN)[wildcards.batch])),
    output:
        PATHS.natural_batch("{batch}"),
    params:
        settings=lambda wildcards: as_json(heads_jobs.natural_batch_settings(PLAN, wildcards.batch)),
    resources:
        attempt=attempt_resource,
        mem_mb=natural_batch_resource("mem_mb"),
        runtime=natural_batch_resource("runtime"),
    conda:
        ENV
    log:
        PATHS.log("natural_batch/{batch}"),
    benchmark:
        PATHS.benchmark("natural_batch/{batch}")
    shell:
        "python -m circuitsweep --attempt {resources.attempt} natural-batch --settings {params.settings:q} --snapshot {input:q}"
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
        thresholds=lambda wildcards: as_json(heads_jobs.classify_thresholds(PLAN, wildcards.model)),
        expected=lambda wildcards: settings_file(
            f"classify_heads-{wildcards.model}",
            [heads_jobs.head_cache_expectation(PLAN, wildcards.model, revision) for revision in revisions_of(wildcards.model)],
        ),
    resources:
        attempt=attempt_resource,
        mem_mb=small_resource("classify_heads", "mem_mb"),
        runtime=small_resource("classify_heads", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("classify_heads/{model}"),
    shell:
        "python -m circuitsweep --attempt {resources.attempt} classify-heads --model {wildcards.model} --thresholds {params.thresholds:q}"
        " --scores {input.scores:q} --stats {input.stats:q} --expected {params.expected:q}"
        " --heads {output.heads:q} --revisions {output.revisions:q}"
        " --natural {input.natural:q} > {log:q} 2>&1"
