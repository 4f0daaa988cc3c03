# Figures of the emergence tables.


rule plot_emergence:
    input:
        emergence=PATHS.emergence_table("parquet"),
        milestones=PATHS.milestones_table("parquet"),
        brackets=refine_targets()[:1],
    output:
        png=report_output(PATHS.emergence_plot("png"), caption="../report/emergence.rst", category="Plots"),
        # inlined on the report's landing page (workflow/report/workflow.rst)
        svg=PATHS.emergence_plot("svg"),
    params:
        groups=as_json(PLAN.groups()),
    resources:
        attempt=attempt_resource,
        mem_mb=small_resource("plot_emergence", "mem_mb"),
        runtime=small_resource("plot_emergence", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("plot_emergence"),
    shell:
        "python -m circuitsweep --attempt {resources.attempt} plot-emergence --emergence {input.emergence:q}"
        " --milestones {input.milestones:q} --brackets {input.brackets:q} --groups {params.groups:q}"
        " --output {output.png:q} {output.svg:q} > {log:q} 2>&1"


rule plot_heatmap:
    input:
        emergence=PATHS.emergence_table("parquet"),
        milestones=PATHS.milestones_table("parquet"),
    output:
        report_output(
            PATHS.heatmap_plot("{model}"),
            caption="../report/heatmap.rst",
            category="Plots",
            subcategory="{model}",
        ),
    resources:
        attempt=attempt_resource,
        mem_mb=small_resource("plot_heatmap", "mem_mb"),
        runtime=small_resource("plot_heatmap", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("plot_heatmap/{model}"),
    shell:
        "python -m circuitsweep --attempt {resources.attempt} plot-heatmap --emergence {input.emergence:q}"
        " --milestones {input.milestones:q} --model {wildcards.model} --output {output:q} > {log:q} 2>&1"


rule plot_trajectories:
    input:
        PATHS.heads_table(),
    output:
        report_output(
            PATHS.trajectory_plot("{model}"),
            caption="../report/trajectories.rst",
            category="Plots",
            subcategory="{model}",
        ),
    resources:
        attempt=attempt_resource,
        mem_mb=small_resource("plot_trajectories", "mem_mb"),
        runtime=small_resource("plot_trajectories", "runtime"),
    conda:
        ENV
    log:
        PATHS.log("plot_trajectories/{model}"),
    shell:
        "python -m circuitsweep --attempt {resources.attempt} plot-trajectories --heads {input:q} --model {wildcards.model} --output {output:q} > {log:q} 2>&1"
