# Snapshots: one revision's files, fetched and verified. Temporary: deleted
# once the caches that need them exist, so disk holds only a few at a time.


rule fetch_snapshot:
    input:
        snapshot_sources,
        # ancient: when a revision is inserted, the gates after it change what they
        # wait for and are rewritten; that must not refetch and remeasure anything
        ancient(fetch_gate("{model}", "{revision}")),
    output:
        temp(directory(PATHS.snapshot("{model}", "{revision}"))),
    params:
        settings=lambda wildcards: as_json(PLAN.fetch_settings(wildcards.model, wildcards.revision)),
    resources:
        mem_mb=small_resource("fetch_snapshot", "mem_mb"),
        runtime=small_resource("fetch_snapshot", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("fetch_snapshot/{model}/{revision}"),
    benchmark:
        PATHS.benchmark("fetch_snapshot/{model}/{revision}")
    shell:
        "python -m circuitsweep fetch-snapshot --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


# The disk bound (circuitsweep.scheduling): a revision's fetch waits for this gate,
# which waits for the caches of the revision snapshots_on_disk places earlier. A
# separate file, so that fetch_snapshot's own inputs never change with the order.
rule fetch_gate:
    input:
        fetch_waits_for,
    output:
        fetch_gate("{model}", "{revision}"),
    localrule: True
    resources:
        mem_mb=small_resource("fetch_gate", "mem_mb"),
        runtime=small_resource("fetch_gate", "runtime"),
    log:
        PATHS.log("fetch_gate/{model}/{revision}"),
    run:
        S.write_block_record(
            f"{wildcards.model}/{wildcards.revision}", [Path(p) for p in input], Path(output[0]), Path(log[0])
        )
