# Measurements: one job per revision loads its weights once and writes every
# cache made from them (circuitsweep.revision_stage). A revision selected for
# primitives runs measure_revision (head cache and primitive shard); every
# other one measure_heads (head cache). The snapshot is ancient(): fetching it
# again (it is temporary) reruns no measurement whose caches are current; the
# settings in params carry everything a cache must match.


ruleorder: measure_revision > measure_heads


rule measure_heads:
    input:
        snapshot=ancient(PATHS.snapshot("{model}", "{revision}")),
        natural=natural_batch_of,
    output:
        stats=PATHS.head_stats("{model}", "{revision}"),
        scores=PATHS.head_scores("{model}", "{revision}"),
        **MEASURE_EXTRA_OUTPUTS,
    params:
        settings=lambda wildcards: as_json(heads_jobs.measure_settings(PLAN, wildcards.model, wildcards.revision)),
        extra=measure_extra_args,
    threads: 1
    resources:
        attempt=attempt_resource,
        mem_mb=measure_resource("mem_mb"),
        runtime=measure_resource("runtime"),
        gpu=measure_resource("gpu"),
    group:
        REVISION_GROUP
    priority: 10
    conda:
        ENV
    log:
        PATHS.log("measure_heads/{model}/{revision}"),
    benchmark:
        PATHS.benchmark("measure_heads/{model}/{revision}")
    shell:
        measure_shell(primitives=False)


rule measure_revision:
    input:
        snapshot=ancient(PATHS.snapshot("{model}", "{revision}")),
        natural=natural_batch_of,
        stimuli=primitive_stimuli,
    output:
        stats=PATHS.head_stats("{model}", "{revision}"),
        scores=PATHS.head_scores("{model}", "{revision}"),
        primitives=PATHS.primitive_stats("{model}", "{revision}"),
        **MEASURE_EXTRA_OUTPUTS,
    params:
        settings=lambda wildcards: as_json(heads_jobs.measure_settings(PLAN, wildcards.model, wildcards.revision)),
        extra=measure_extra_args,
        primitives=lambda wildcards: as_json(primitive_jobs.primitive_settings(PLAN, wildcards.model, wildcards.revision)),
        stimuli_sha256=lambda wildcards: PLAN.stimuli_sha256[wildcards.model],
    threads: 1
    resources:
        attempt=attempt_resource,
        mem_mb=measure_resource("mem_mb"),
        runtime=measure_resource("runtime"),
        gpu=measure_resource("gpu"),
    group:
        REVISION_GROUP
    priority: 10
    conda:
        ENV
    log:
        PATHS.log("measure_revision/{model}/{revision}"),
    benchmark:
        PATHS.benchmark("measure_revision/{model}/{revision}")
    shell:
        measure_shell(primitives=True)
