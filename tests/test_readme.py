"""The README and config/README.md say what the code does: set-up lines, paths, costs and links (issue 21)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from circuitsweep.config.load import load_config
from circuitsweep.heads import jobs as heads_jobs
from circuitsweep.io.contracts import Paths
from circuitsweep.io.run_folder import run_root
from circuitsweep.plan import scheduling as S
from circuitsweep.plan.sweep import plan_sweep
from circuitsweep.primitives import contract as K
from circuitsweep.primitives import jobs as primitive_jobs

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def setup_lines() -> list[str]:
    """The lines of the README's first bash block."""
    block = re.search(r"```bash\n(.*?)```", README, re.S)
    assert block, "README must open with a bash block of set-up lines"
    return [line for line in block.group(1).splitlines() if line.strip()]


def bash_commands() -> list[str]:
    """Every command of the README's bash blocks, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    return [line for block in blocks for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_readme_opens_with_two_setup_lines():
    """Exactly two lines: one runs the default workflow, one runs the tests."""
    install_and_run, install_and_test = setup_lines()
    assert install_and_run.endswith("snakemake --cores all")
    assert install_and_test.endswith("pytest")


def test_ci_runs_the_readme_test_line():
    """.ci/run runs the README's test line verbatim, so CI tests what a new user runs."""
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert setup_lines()[1] in ci


def test_readme_is_short_and_links_only_inside_the_repository():
    """At most 250 lines; every relative link and every config, profile and docs path it names exists."""
    assert README.count("\n") <= 250
    assert "../shared" not in README and "DESIGN.md" not in README
    links = re.findall(r"\]\(([^)#]+)\)", README)
    assert links and all((REPO / link).exists() for link in links), [
        link for link in links if not (REPO / link).exists()
    ]
    named = re.findall(r"(?:--configfile|--workflow-profile|check-config) (\S+)", " ".join(bash_commands()))
    assert named and all((REPO / path).exists() for path in named), named


def test_the_tour_lists_files_the_toy_run_writes():
    """Every file of the README's tour of results/toy/ is one the contract names for the toy suite's run."""
    config = load_config(REPO / "config" / "config.yaml")
    paths = Paths(run_root(config, ["config/config.yaml"]))
    assert paths.root == Path("results/toy")
    written = {
        paths.milestones_table("md"), paths.emergence_table("csv"), paths.heads_table(), paths.ablation_table("csv"),
        paths.primitive_table(K.GAPS_MD), paths.emergence_plot("png"), paths.primitive_gap_plot(),
        paths.heatmap_plot("<model>"), paths.trajectory_plot("<model>"), paths.spectral_table("csv"),
        paths.final_ablation_table("md"), paths.spectral_plot("<model>"), paths.primitive_scaling_plot(),
        paths.findings("md"),
    }  # fmt: skip
    tour = README[README.index("results/toy/\n") : README.index("```", README.index("results/toy/\n"))]
    listed = {paths.root / name for name in re.findall(r"^  (\S+\.\w+)\s", tour, re.M)}
    assert len(listed) == 14 and listed <= written, listed - written


def test_the_quoted_job_counts_are_what_the_code_counts():
    """The README's SLURM dry run of config/paper.yaml (its lines are checked against the dry run itself in
    tests/test_docs_numbers.py) states the jobs scheduling.cluster_submissions counts for that plan."""
    config = load_config(REPO / "config" / "paper.yaml")
    plan = plan_sweep(config, REPO)
    slurm = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())["config"]
    order = S.fetch_order(
        {m: [r.name for r in revisions] for m, revisions in plan.revisions.items()},
        slurm["snapshots_on_disk"],
        slurm["revisions_per_job"],
    )
    counts = S.cluster_submissions(
        S.blocks(order),
        len(plan.models),
        0,
        len(primitive_jobs.primitive_models(plan)),
        "local",
        plan.ablation is not None,
        bootstrap=plan.bootstrap is not None,
        natural_batches=len(heads_jobs.natural_batches(plan)),
    )
    line = S.describe_submissions(
        counts, slurm["snapshots_on_disk"], S.block_size(slurm["snapshots_on_disk"], slurm["revisions_per_job"])
    )
    assert line in README


def test_config_readme_describes_every_config_and_key():
    """config/README.md names every bundled config file and every top-level key of the config schema."""
    text = (REPO / "config" / "README.md").read_text()
    configs = [p.relative_to(REPO / "config") for p in (REPO / "config").rglob("*.yaml")]
    assert configs and all(f"`{path}`" in text for path in configs), [p for p in configs if f"`{p}`" not in text]
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    keys = list(schema["properties"])
    assert all(f"`{key}`" in text for key in keys), [key for key in keys if f"`{key}`" not in text]


def test_docs_link_only_inside_the_repository():
    """Every relative link of docs/*.md exists, and none points at the design notes outside the repository."""
    for page in sorted((REPO / "docs").glob("*.md")):
        text = page.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text, page
        missing = [link for link in re.findall(r"\]\(([^)#:]+)\)", text) if not (page.parent / link).exists()]
        assert not missing, (page, missing)


def test_every_run_of_a_config_checks_it_first():
    """Snakemake reads ``--configfile`` itself, and a config that is not UTF-8 text ends in its traceback (its
    parser cannot be wrapped): every README path that runs a config runs `circuitsweep check-config` on it
    first, which names the file in one line (issue 32, case 16)."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    runs = 0
    for block in blocks:
        checked: set[str] = set()
        for line in block.replace("\\\n", " ").splitlines():
            checked |= set(re.findall(r"circuitsweep check-config (\S+)", line))
            for config in re.findall(r"snakemake .*?--configfile (\S+)", line):
                runs += 1
                assert config in checked, f"the README runs {config} before `circuitsweep check-config {config}`"
    assert runs >= 3
