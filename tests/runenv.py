"""The environment and failure report of workflow runs in a subprocess, shared by the end-to-end tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from circuitsweep.config.load import load_config
from circuitsweep.io.contracts import Paths
from circuitsweep.io.run_folder import run_root

#: The workflow's Snakefile, as `snakemake -s` takes it.
SNAKEFILE = str(Path(__file__).resolve().parents[1] / "workflow" / "Snakefile")


def job_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with ``extra`` and the interpreter running the tests first on PATH.

    The jobs' shell commands (``python -m circuitsweep ...``) must find that
    interpreter, with its packages, before any other ``python``.
    """
    env = {**os.environ, **(extra or {})}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_results(workdir: Path | str, configfile: Path | str) -> Path:
    """The folder that a run of ``configfile`` in ``workdir`` writes (``results/<run>``, circuitsweep.io.run_folder)."""
    return Path(workdir) / run_root(load_config(configfile), [configfile])


def run_paths(workdir: Path | str, configfile: Path | str) -> Paths:
    """The contract's paths of that run, relative to ``workdir`` (as Snakemake targets are)."""
    return Paths(run_results(workdir, configfile).relative_to(workdir))


def job_logs(workdir: Path, tail: int = 3000) -> str:
    """The last ``tail`` characters of every non-empty job log of every run under ``workdir/results``."""
    written = [p for p in sorted(Path(workdir).glob("results/*/logs/**/*.log")) if p.stat().st_size]
    return "\n".join(f"== {p}\n{p.read_text()[-tail:]}" for p in written)


def toy_hub_settings() -> dict:
    """Probes and thresholds of a sweep of the toy models served by the loopback Hub (T = 64, their context).

    A fresh dict each call, so a test may change its copy.
    """
    return {
        "probes": {
            "token_range": [2, 64],
            "batch_size": 32,
            "induction": {"n_sequences": 32, "seq_len": 64},
            "repeated": {"n_sequences": 16, "seq_len": 64},
            "random": {"n_sequences": 16, "seq_len": 64},
        },
        "thresholds": {"class_selectivity": 8, "induction_circuit": 12},
    }
