"""Table-only jobs pay for no model library: their CLI commands import neither torch nor transformers.

Each Snakemake job is a fresh interpreter; importing torch and transformers
costs seconds of start-up per job, which on the toy suite was most of the
sweep's wall time (results/tables/overhead.csv).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from circuitsweep.primitives import contract as K

WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"

#: a config the bracket job plans again (it then stops on the missing tables)
TOY_REFINE = {
    "primitives": {"enabled": False},
    "refine": {},
    "probes": {"token_range": [2, 64], "induction": {"seq_len": 64}, "repeated": {"seq_len": 64}},
    "models": {
        "toy": {
            "architecture": "GPTNeoXForCausalLM",
            "source": {"type": "toy", "repo_id": "toy/gptneox"},
            "revisions": "all",
            "tokens": {"per_step": 4096},
            "toy": {"schedule": [0, 25], "branch_format": "step{step}"},
        }
    },
}

#: each table-only command with arguments naming files that do not exist: it imports
#: what it needs, then stops on the missing input (a user error or an exception)
COMMANDS = {
    "head-tables": ["--heads", "x", "--revisions", "x", "--thresholds", "{}", "--heads-out", "o",
                    "--emergence", "o", "--emergence-csv", "o", "--milestones", "o", "--milestones-md", "o"],
    "classify-heads": ["--model", "m", "--thresholds", "{}", "--scores", "x", "--heads", "o", "--revisions", "o"],
    "bootstrap-heads": ["--model", "m", "--settings", "{}", "--stats", "x", "--heads", "x", "--revisions", "x",
                        "--heads-out", "o", "--curves-out", "o"],
    "primitive-tables": ["--revisions", "x", "--output", "o"],
    "plot-emergence": ["--emergence", "x", "--output", "o"],
    "plot-heatmap": ["--emergence", "x", "--model", "m", "--output", "o"],
    "plot-primitive-gap": ["--gaps", "x", "--output", "o"],
    "plot-primitive-scaling": ["--scaling", "x", "--output", "o"],
    "sweep-overhead": ["--scores", "x", "--measure", "x", "--csv", "o", "--markdown", "o"],
    "milestone-brackets": ["--config", json.dumps(TOY_REFINE), "--root", str(WORKFLOW.parent), "--results", "r",
                           "--emergence", "x", "--milestones", "x", "--csv", "o", "--markdown", "o"],
    "spectral-model": ["--heads", "x", "--model", "m", "--output", "o"],
    "spectral-table": ["--models", "x", "--parquet", "o", "--csv", "o"],
    "plot-spectral": ["--heads", "x", "--spectral", "x", "--model", "m", "--output", "o"],
    "final-ablation-table": ["--rows", "x", "--parquet", "o", "--csv", "o", "--markdown", "o"],
    "table-pages": ["--tables", "x", "--pages", "o"],
    "findings": ["--spectral", "x", "--heads", "x", "--milestones", "x", "--spectral-top-k", "[45]", "--csv", "o",
                 "--markdown", "o", "--html", "o"],
}  # fmt: skip

PROBE = """
import json, sys
from circuitsweep import cli
try:
    cli.main(json.loads(sys.argv[1]))
except BaseException:
    pass
print(json.dumps(sorted(m for m in ("torch", "transformers") if m in sys.modules)))
"""


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_table_only_command_imports_no_model_library(tmp_path, command):
    """Running ``command`` (up to its first input) leaves torch and transformers unimported."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([command, *COMMANDS[command]])],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(WORKFLOW), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"},
        timeout=120,
        check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_scoring_a_primitive_shard_imports_no_model_library(tmp_path):
    """score-primitives, run to the end on a real shard, writes its tables without torch or transformers.

    It runs once per revision; importing transformers cost it about 7 of its 10
    seconds on the toy suite.
    """
    import numpy as np
    from test_primitives_scoring import planted_cache

    from circuitsweep.config.stimuli import SET_A, load_stimuli
    from circuitsweep.io.stats import write_stats

    stimuli_path = WORKFLOW.parent / "config" / "primitives.yaml"
    stimuli = load_stimuli(stimuli_path)
    in_a = np.array([p.set == SET_A for p in stimuli.primitives])
    shard = tmp_path / "primitives.safetensors"
    write_stats(shard, planted_cache(stimuli, in_a), {"model": "planted", "revision": "step1", "tokens": 10})
    scoring = {"n_folds": 5, "n_perm": 200, "lexicon_resamples": 5, "seed": 0}
    argv = ["score-primitives", "--cache", str(shard), "--stimuli", str(stimuli_path),
            "--scoring", json.dumps(scoring), "--output", str(tmp_path / "tables")]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(WORKFLOW), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    assert sorted(path.name for path in (tmp_path / "tables").iterdir()) == sorted(K.REVISION_TABLES.values())
