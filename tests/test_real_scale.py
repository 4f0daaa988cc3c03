"""Plumbing of benchmarks/real_scale.py on tiny shapes: layouts, the run, the last line, the disk check."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from bench_scripts import load_script, script_path

SCRIPT = script_path("real_scale")
FINAL_LINE = re.compile(
    r"^fetch_ratio=([0-9.]+) load_ratio=([0-9.]+) peak_rss_ratio=([0-9.]+) measure_ratio=([0-9.]+)$"
)


def test_published_sizes_of_the_real_shapes():
    """The written-in shapes give the published checkpoint sizes: 2.0 GB fp16, 4.7 GB fp32, 13.8 GB bf16."""
    bench = load_script("real_scale")
    sizes = {
        name: sum(int(torch_numel(shape)) for _, shape in bench.published_tensors(spec))
        * bench.DTYPE_BYTES[spec["stored"]]
        for name, spec in bench.SHAPES.items()
    }
    assert round(sizes["pythia-1b"] / 1e9, 1) == 2.0
    assert round(sizes["olmo-1b-0724"] / 1e9, 1) == 4.7
    assert round(sizes["olmoe-1b-7b"] / 1e9, 1) == 13.8


def torch_numel(shape) -> int:
    out = 1
    for size in shape:
        out *= size
    return out


def test_tiny_sharded_moe_runs_end_to_end_and_cleans_up(tmp_path):
    """--tiny OLMoE (per-expert tensors in sharded safetensors) is fetched, loaded, measured; nothing is left."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--models", "olmoe-1b-7b", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    match = FINAL_LINE.match(proc.stdout.strip().splitlines()[-1])
    assert match, proc.stdout
    assert all(float(value) > 0 for value in match.groups())
    assert list(tmp_path.iterdir()) == []


def test_tiny_checkpoint_has_the_published_layout(tmp_path):
    """Pythia is one pickled pytorch_model.bin; OLMoE is indexed safetensors shards with per-expert tensors."""
    bench = load_script("real_scale")
    pythia = bench.write_checkpoint(bench.spec_of("pythia-1b", tiny=True), tmp_path / "pythia")
    assert sorted(path.name for path in pythia) == ["config.json", "pytorch_model.bin"]
    bench.write_checkpoint(bench.spec_of("olmoe-1b-7b", tiny=True), tmp_path / "olmoe")
    index = json.loads((tmp_path / "olmoe" / "model.safetensors.index.json").read_text())["weight_map"]
    assert len({shard for shard in index.values()}) > 1
    assert "model.layers.0.mlp.experts.3.down_proj.weight" in index


def test_too_little_disk_refuses_to_start(tmp_path, monkeypatch, capsys):
    """With less free disk than the run needs it stops with a message, before writing anything."""
    bench = load_script("real_scale")
    monkeypatch.setattr(bench.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 10**6})())
    assert bench.main(["--quick", "--workdir", str(tmp_path)]) == 2
    assert "refusing to start" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["pythia-1b", "olmoe-1b-7b"])
def test_random_weights_keep_norms_at_one_and_biases_at_zero(name):
    """Norm weights are ones and biases zeros, so a forward through random weights stays finite."""
    import torch

    bench = load_script("real_scale")
    for tensor_name, shape in bench.published_tensors(bench.spec_of(name, tiny=True)):
        tensor = bench.random_tensor(tensor_name, shape, torch.float32, 0)
        if tensor_name.endswith(".bias"):
            assert not tensor.any(), tensor_name
        elif "norm" in tensor_name:
            assert bool((tensor == 1).all()), tensor_name


def test_load_baselines_read_both_published_formats(tmp_path):
    """The load's baselines (plain read, conversion floor) run on a pickled .bin and on sharded safetensors."""
    bench = load_script("real_scale")
    for name in ("pythia-1b", "olmoe-1b-7b"):
        spec = bench.spec_of(name, tiny=True)
        files = [p for p in bench.write_checkpoint(spec, tmp_path / name) if p.suffix in (".bin", ".safetensors")]
        assert files and bench.plain_read_seconds(files) > 0 and bench.page_cache_copy_seconds(files) > 0
        assert bench.conversion_seconds(files, spec["configured"]) > 0
