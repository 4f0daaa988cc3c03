# Snapshots: one revision's files, fetched and verified. Temporary: deleted
# once the caches that need them exist, so disk holds only a few at a time.


rule fetch_snapshot:
    input:
        snapshot_sources,
        fetch_waits_for,
    output:
        temp(directory(PATHS.snapshot("{model}", "{revision}"))),
    params:
        settings=lambda wildcards: as_json(PLAN.fetch_settings(wildcards.model, wildcards.revision)),
    resources:
        attempt=attempt_resource,
        mem_mb=small_resource("fetch_snapshot", "mem_mb"),
        runtime=small_resource("fetch_snapshot", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("fetch_snapshot/{model}/{revision}"),
    benchmark:
        PATHS.benchmark("fetch_snapshot/{model}/{revision}")
    shell:
        "python -m circuitsweep --attempt {resources.attempt} fetch-snapshot --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"
