# circuitsweep: when do attention-head circuits form during pretraining?
# Methods and data flow: DESIGN.md; how to run: README.md.

from snakemake.utils import min_version

min_version("9.0")


# The toy suite by default; a --configfile replaces it rather than merging
# into it (Snakemake would otherwise sweep the toy models too).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/toy.smk"
include: "workflow/rules/snapshots.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/heads.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/primitives.smk"
include: "workflow/rules/blocks.smk"


report: "workflow/report/workflow.rst"


# Downloads run in the Snakemake process itself (downloads: local, the default):
# on a cluster that is the login node, which has the internet access compute
# nodes often lack. With downloads: job they are cluster jobs (a transfer partition).
if config.get("downloads", "local") == "local":

    localrules:
        all,
        fetch_snapshot,

else:

    localrules:
        all,


rule all:
    input:
        final_targets(),
    default_target: True
