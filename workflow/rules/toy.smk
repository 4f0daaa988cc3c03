# The toy suite: tiny models trained on the CPU, published as local revisions.
# Training prints a progress line every few seconds, to the console and the log.


rule train_toy_model:
    output:
        PATHS.toy_published("{model}"),
    params:
        settings=lambda wildcards: as_json(PLAN.toy_settings(wildcards.model)),
        hub=PATHS.toy_hub(),
    threads: 1
    priority: training_priority
    resources:
        attempt=attempt_resource,
        mem_mb=small_resource("train_toy_model", "mem_mb"),
        runtime=small_resource("train_toy_model", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("train_toy_model/{model}"),
    benchmark:
        PATHS.benchmark("train_toy_model/{model}")
    shell:
        "python -m circuitsweep --attempt {resources.attempt} train-toy --settings {params.settings:q} --hub {params.hub:q}"
        " --published {output:q} --threads {threads} 2>&1 | tee {log:q}"
