# Job blocks: the measurement jobs of a few consecutive revisions of one model,
# submitted to a cluster as one job group (group "revisions"); the record says
# every cache of the block exists. See circuitsweep.plan.scheduling.


rule revision_block:
    input:
        block_inputs,
    output:
        block_marker("{block}"),
    params:
        members=lambda wildcards: as_json(BLOCKS[wildcards.block]),
        expected=lambda wildcards: as_json(block_head_caches(wildcards.block)),
    group:
        REVISION_GROUP
    resources:
        attempt=attempt_resource,
        mem_mb=small_resource("revision_block", "mem_mb"),
        runtime=small_resource("revision_block", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("revision_block/{block}"),
    shell:
        "python -m circuitsweep --attempt {resources.attempt} block-record --block {wildcards.block:q} --files {input:q} --output {output:q}"
        " --expected {params.expected:q} > {log:q} 2>&1"
