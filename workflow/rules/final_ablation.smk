# The study's ablation at the final revision (docs/methods.md): one job per model
# loads its final revision once, after the model's spectral ranking exists, and runs
# every condition of the study's scripts (circuitsweep.heads.final_ablation).
#
# Its snapshot is a copy of its own, fetched by the same command as fetch_snapshot once
# the ranking exists: sharing the measurement's snapshot would make a rerun of this job
# (a revision added, a threshold changed) measure the final revision again. The copy
# takes the final revision's place in the disk-bound fetch order while this job is not
# current (revision_stage.needs_snapshot): it waits as that revision's fetch would, and the fetch
# after it waits for this job (snapshot_consumers in common.smk). The measurement's own
# snapshot is deleted once measured, before the ranking exists, so the two never coexist.


rule fetch_final_snapshot:
    input:
        snapshot_sources,
        final_fetch_waits_for,
        ancient(PATHS.model_spectral("{model}")),
    output:
        temp(directory(PATHS.final_snapshot("{model}"))),
    params:
        settings=lambda wildcards: as_json(PLAN.fetch_settings(wildcards.model, final_revision_of(wildcards))),
    resources:
        mem_mb=small_resource("fetch_snapshot", "mem_mb"),
        runtime=small_resource("fetch_snapshot", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("fetch_final_snapshot/{model}"),
    shell:
        "python -m circuitsweep fetch-snapshot --settings {params.settings:q} --output {output:q} > {log:q} 2>&1"


rule final_ablation:
    input:
        snapshot=PATHS.final_snapshot("{model}"),
        heads=PATHS.model_heads("{model}"),
        spectral=PATHS.model_spectral("{model}"),
        natural=natural_batch_of,
    output:
        PATHS.final_ablation_rows("{model}"),
    params:
        settings=lambda wildcards: as_json(heads_jobs.final_ablation_settings(PLAN, wildcards.model)),
        natural=final_natural_arg,
    threads: 1
    resources:
        mem_mb=measure_resource("mem_mb", final_snapshot_of, final_ablation_work),
        runtime=measure_resource("runtime", final_snapshot_of, final_ablation_work),
        gpu=measure_resource("gpu", final_snapshot_of, final_ablation_work),
    conda:
        ENV
    log:
        PATHS.log("final_ablation/{model}"),
    benchmark:
        PATHS.benchmark("final_ablation/{model}")
    shell:
        "python -m circuitsweep final-ablation --settings {params.settings:q} --snapshot {input.snapshot:q}"
        " --heads {input.heads:q} --spectral {input.spectral:q} --output {output:q} {params.natural}"
        " --threads {threads} --mem-mb {resources.mem_mb} > {log:q} 2>&1"


rule final_ablation_table:
    input:
        [PATHS.final_ablation_rows(model) for model in MODELS],
    output:
        parquet=PATHS.final_ablation_table("parquet"),
        csv=report_output(
            PATHS.final_ablation_table("csv"),
            caption="../report/final_ablation.rst",
            category="Table files (CSV)",
        ),
        markdown=PATHS.final_ablation_table("md"),
    params:
        models=as_json(MODELS),
    resources:
        mem_mb=small_resource("final_ablation_table", "mem_mb"),
        runtime=small_resource("final_ablation_table", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("final_ablation_table"),
    shell:
        "python -m circuitsweep final-ablation-table --rows {input:q} --parquet {output.parquet:q}"
        " --csv {output.csv:q} --markdown {output.markdown:q} > {log:q} 2>&1"
