"""Dry runs and check-config that inform: download size, peak disk, hours, partial manifests (issue 21)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from runenv import job_env

import circuitsweep as cs
from circuitsweep.config.load import load_config
from circuitsweep.plan.costs import GB, describe_cost, snapshot_bytes, sweep_cost
from circuitsweep.plan.sweep import plan_sweep

REPO = Path(__file__).resolve().parents[1]
FULL = yaml.safe_load((REPO / "config" / "full.yaml").read_text())

#: One revision's weight files as the Hub publishes them (docs/costs.md; Pythia 1B's
#: intermediate branches hold a 2.0 GB fp16 pytorch_model.bin).
PUBLISHED_GB = {"pythia-1b": 2.0, "olmo-1b-0724": 4.7, "olmoe-1b-7b": 13.8}


def check_config(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "circuitsweep", "check-config", str(path), "--root", str(REPO)],
                          capture_output=True, text=True, env=job_env(), timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize("model", sorted(PUBLISHED_GB))
def test_a_revision_is_sized_as_its_published_weights(model):
    """The declared shape and published dtype give the size of the weight files a revision downloads (within 5%)."""
    entry = FULL["models"][model]
    assert snapshot_bytes(entry, entry["dtype"]) / GB == pytest.approx(PUBLISHED_GB[model], rel=0.05)


def test_cost_counts_only_hub_revisions_still_to_measure():
    """Download sums the pending Hub revisions; peak disk is the snapshots_on_disk largest; a toy downloads nothing."""
    plan = plan_sweep(FULL, REPO)
    pending = {"pythia-1b": ["step1", "step2"], "olmoe-1b-7b": ["step5000-tokens20B"]}
    cost = plan.cost(FULL["models"], pending, snapshots_on_disk=2)
    pythia = snapshot_bytes(FULL["models"]["pythia-1b"], "float32")
    olmoe = snapshot_bytes(FULL["models"]["olmoe-1b-7b"], "float16")
    assert cost.revisions == 3 and cost.download_bytes == 2 * pythia + olmoe
    assert cost.peak_disk_bytes == olmoe + pythia
    toy = load_config(REPO / "config" / "config.yaml")
    toy_plan = plan_sweep(toy, REPO)
    toy_cost = toy_plan.cost(toy["models"], {"toy-gptneox": ["step0"]}, snapshots_on_disk=2)
    assert toy_cost.download_bytes == 0 and toy_cost.peak_disk_bytes == 0 and toy_cost.hours > 0


def test_without_a_gpu_the_line_gives_both_cpu_and_gpu_hours():
    """device: auto on a machine without a GPU: hours here on the CPU, and what a GPU would take."""
    entry = FULL["models"]["pythia-1b"]
    probes = {"induction": {"n_sequences": 2000, "seq_len": 256}}
    args = ({"m": entry}, {"m": "float32"}, {"m": probes}, {"m": ["a"] * 10}, 2)
    auto = sweep_cost(*args, device="auto", gpu_present=False)
    assert auto.device == "CPU" and auto.gpu_hours is not None and auto.gpu_hours < auto.hours
    assert "CPU-hours here (no GPU; on one: about" in describe_cost(auto)
    cuda = sweep_cost(*args, device="cuda", gpu_present=False)
    assert cuda.device == "GPU" and cuda.gpu_hours is None and cuda.hours == pytest.approx(auto.gpu_hours)
    assert "GPU-hours" in describe_cost(cuda) and "CPU" not in describe_cost(cuda)


def test_check_config_of_full_prints_download_disk_and_the_partial_manifest():
    """check-config config/full.yaml gives the download and peak disk in GB, and says the OLMo manifest lacks about
    1,417 of its branches, with the command that lists them all."""
    result = check_config(REPO / "config" / "full.yaml")
    assert result.returncode == 0, result.stderr
    cost = next(line for line in result.stdout.splitlines() if "to measure" in line)
    assert "427 revisions to measure: download 3,8" in cost and "GB, peak disk 27.7 GB" in cost
    assert "lacks about 1,417 of about 1,446 branches" in result.stdout
    assert (
        "circuitsweep refresh-manifest allenai/OLMo-1B-0724-hf config/revisions/olmo-1b-0724-hf.json" in result.stdout
    )


def test_check_config_names_a_stimuli_file_as_one():
    """check-config of the primitives' stimuli file says what it is in one line, not schema errors about its words."""
    result = check_config(REPO / "config" / "primitives.yaml")
    assert result.returncode == 3
    assert "is a stimuli file" in result.stderr and "ANGER" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_dir_lists_the_notebook_api():
    """dir(cs) offers the notebook API for tab completion, though it is loaded only on first use."""
    assert set(cs.__all__) <= set(dir(cs))
    assert "read_results" in dir(cs) and "measure_heads" in dir(cs)
