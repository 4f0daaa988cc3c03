# Figures of the emergence tables.


rule plot_emergence:
    input:
        PATHS.emergence_table("parquet"),
    output:
        report(PATHS.emergence_plot(), caption="../report/emergence.rst", category="Plots"),
    resources:
        mem_mb=small_resource("plot_emergence", "mem_mb"),
        runtime=small_resource("plot_emergence", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("plot_emergence"),
    shell:
        "python -m circuitsweep plot-emergence --emergence {input:q} --output {output:q} > {log:q} 2>&1"


rule plot_heatmap:
    input:
        PATHS.emergence_table("parquet"),
    output:
        report(
            PATHS.heatmap_plot("{model}"),
            caption="../report/heatmap.rst",
            category="Plots",
            subcategory="{model}",
        ),
    resources:
        mem_mb=small_resource("plot_heatmap", "mem_mb"),
        runtime=small_resource("plot_heatmap", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("plot_heatmap/{model}"),
    shell:
        "python -m circuitsweep plot-heatmap --emergence {input:q} --model {wildcards.model} --output {output:q} > {log:q} 2>&1"
