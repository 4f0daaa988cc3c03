# Job blocks: the measurement jobs of a few consecutive revisions of one model,
# submitted to a cluster as one job group (group "revisions"); the record says
# every cache of the block exists. It runs in-process (no interpreter start-up:
# a workstation runs one per revision). See circuitsweep.scheduling.


rule revision_block:
    input:
        block_inputs,
    output:
        block_marker("{block}"),
    group:
        "revisions"
    resources:
        mem_mb=small_resource("revision_block", "mem_mb"),
        runtime=small_resource("revision_block", "runtime"),
    log:
        PATHS.log("revision_block/{block}"),
    run:
        S.write_block_record(wildcards.block, [Path(p) for p in input], Path(output[0]), Path(log[0]))
