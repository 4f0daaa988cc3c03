# The spectral phase (docs/methods.md): each model's heads ranked by the integral
# of their participation ratio over ln(tokens), from its classified heads alone (no
# model is loaded). Per model, so adding a revision recomputes only that model's ranking.


rule spectral_model:
    input:
        PATHS.model_heads("{model}"),
    output:
        PATHS.model_spectral("{model}"),
    params:
        revisions=lambda wildcards: as_json(revisions_of(wildcards.model)),
        leave_out=lambda wildcards: as_json(list(PLAN.models[wildcards.model].spectral_leave_out)),
    resources:
        mem_mb=small_resource("spectral_model", "mem_mb"),
        runtime=small_resource("spectral_model", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("spectral_model/{model}"),
    shell:
        "python -m circuitsweep spectral-model --heads {input:q} --model {wildcards.model} --output {output:q}"
        " --leave-out {params.leave_out:q} > {log:q} 2>&1"


rule spectral_table:
    input:
        [PATHS.model_spectral(model) for model in MODELS],
    output:
        parquet=PATHS.spectral_table("parquet"),
        csv=report_output(PATHS.spectral_table("csv"), caption="../report/spectral_table.rst", category="Table files (CSV)"),
    params:
        # a model added or removed reruns the table (the profiles' rerun triggers ignore the input set)
        models=as_json(MODELS),
    resources:
        mem_mb=small_resource("spectral_table", "mem_mb"),
        runtime=small_resource("spectral_table", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("spectral_table"),
    shell:
        "python -m circuitsweep spectral-table --models {input:q} --parquet {output.parquet:q} --csv {output.csv:q}"
        " > {log:q} 2>&1"


rule plot_spectral:
    input:
        heads=PATHS.model_heads("{model}"),
        spectral=PATHS.model_spectral("{model}"),
    output:
        report_output(
            PATHS.spectral_plot("{model}"),
            caption="../report/spectral.rst",
            category="Plots",
            subcategory="{model}",
        ),
    params:
        top_k=as_json(list(PLAN.spectral_top_k)),
    resources:
        mem_mb=small_resource("plot_spectral", "mem_mb"),
        runtime=small_resource("plot_spectral", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("plot_spectral/{model}"),
    shell:
        "python -m circuitsweep plot-spectral --heads {input.heads:q} --spectral {input.spectral:q}"
        " --model {wildcards.model} --output {output:q} --top-k {params.top_k:q} > {log:q} 2>&1"
