"""The README's set-up lines are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def setup_lines() -> list[str]:
    """The lines of the README's first bash block."""
    block = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert block, "README must open with a bash block of set-up lines"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_two_setup_lines():
    """Exactly two lines: one runs the default workflow, one runs the tests."""
    install_and_run, install_and_test = setup_lines()
    assert install_and_run.endswith("snakemake --cores all")
    assert install_and_test.endswith("pytest")


def test_ci_runs_the_readme_test_line():
    """.ci/run runs the README's test line verbatim, so CI tests what a new user runs."""
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert setup_lines()[1] in ci


def test_config_readme_describes_every_config_and_key():
    """config/README.md names every bundled config file and every top-level key of the config schema."""
    import yaml

    text = (REPO / "config" / "README.md").read_text()
    configs = [p.relative_to(REPO / "config") for p in (REPO / "config").rglob("*.yaml")]
    assert configs and all(f"`{path}`" in text for path in configs), [p for p in configs if f"`{p}`" not in text]
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    keys = list(schema["properties"])
    assert all(f"`{key}`" in text for key in keys), [key for key in keys if f"`{key}`" not in text]
