"""A run_dir sweep of GPT-2-, Llama-, Qwen2- and Gemma3-class checkpoints, through Snakemake.

Each class names its config attributes its own way (GPT-2: ``n_embd``,
``n_layer``, ``n_head``): planning, job sizing and measurement must read all
of them, from the dry run to the tables.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from models import one_torch_thread, tiny_decoder
from runenv import SNAKEFILE, job_env, job_logs

CLASSES = {
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "gemma3": "Gemma3ForCausalLM",
}
#: Probes for the tiny models' 64-token vocabulary and context (seconds per revision on a CPU).
PROBES = {
    "token_range": [3, 64],
    "batch_size": 8,
    "induction": {"n_sequences": 8, "seq_len": 48, "n_baseline": 4},
    "repeated": {"n_sequences": 4, "seq_len": 48},
    "random": {"n_sequences": 4, "seq_len": 16},
}

#: Gemma 3's sliding layer keeps its window, as long as the longest probe so that every query still sees
#: position 0 (a shorter window is refused: tests/test_sliding_window.py).
WINDOWS = {"gemma3": {"sliding_window": PROBES["induction"]["seq_len"]}}


def _sweep(root: Path, classes: dict[str, str]) -> Path:
    """Two checkpoint folders (steps 0 and 1, other random weights) per class, and a config sweeping them."""
    models = {}
    with one_torch_thread():
        for name, architecture in classes.items():
            for step in (0, 1):
                tiny_decoder(architecture, "eager", seed=step, **WINDOWS.get(name, {})).save_pretrained(
                    root / "runs" / name / f"checkpoint-{step}"
                )
            models[name] = {
                "architecture": architecture,
                "source": {"type": "run_dir", "path": str(root / "runs" / name)},
                "revisions": "all",
                "tokens": {"per_step": 100},
                "first_token": {"policy": "bos"},
            }
    config = root / "sweep.yaml"
    config.write_text(
        yaml.safe_dump({"probes": PROBES, "primitives": {"enabled": False}, "models": models, "outdir": "results"})
    )
    return config


def _snakemake(workdir: Path, *args: str) -> str:
    command = [sys.executable, "-m", "snakemake", "-s", SNAKEFILE, "--cores", "2", *args]
    result = subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, env=job_env({"OMP_NUM_THREADS": "1"}), timeout=1200
    )
    if result.returncode != 0:
        raise AssertionError(
            f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n{job_logs(workdir)}"
        )
    return result.stdout + result.stderr


def test_the_dry_run_of_a_gpt2_sweep_plans_once_its_snapshots_exist(tmp_path):
    """With its snapshots fetched, job sizing reads GPT-2's own config.json (n_embd ...): the dry run plans
    the measurements instead of dying on KeyError 'hidden_size'."""
    config = _sweep(tmp_path, {"gpt2": CLASSES["gpt2"]})
    work = tmp_path / "work"
    work.mkdir()
    snapshots = [f"results/snapshots/gpt2/checkpoint-{step}" for step in (0, 1)]
    _snakemake(work, *snapshots, "--configfile", str(config))
    dry = _snakemake(work, "--configfile", str(config), "-n")
    assert "measure_heads" in dry and "model=gpt2, revision=checkpoint-1" in dry


@pytest.mark.slow
def test_a_sweep_of_four_decoder_classes_runs_end_to_end(tmp_path):
    """Every class is fetched, sized, measured and classified, and the tables hold every head of each."""
    config = _sweep(tmp_path, CLASSES)
    work = tmp_path / "work"
    work.mkdir()
    _snakemake(work, "--configfile", str(config))
    heads = pl.read_parquet(work / "results" / "tables" / "heads.parquet")
    counts = dict(heads.group_by("model").len().iter_rows())
    assert counts == {name: 2 * 2 * 4 for name in CLASSES}  # revisions x layers x heads
    for name in CLASSES:
        assert (work / "results" / "plots" / f"heatmap_{name}.png").is_file()
