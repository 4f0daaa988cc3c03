"""Loading weights tensor by tensor into the configured dtype: exact, and without a second full copy."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from models import ARCHITECTURES, tiny_model
from safetensors.torch import save_file

from circuitsweep.checkpoints.loading import load_model
from circuitsweep.checkpoints.streaming import read_weights
from circuitsweep.errors import SnapshotError

CPU = torch.device("cpu")
WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_streamed_model_computes_what_was_saved(tmp_path, architecture):
    """A saved tiny model loads back with identical tensors and identical logits (buffers and ties rebuilt)."""
    model = tiny_model(architecture, "sdpa")
    model.config.architectures = [architecture]
    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path, architecture, "float32", CPU, "sdpa")
    tokens = torch.randint(2, 64, (2, 16))
    with torch.no_grad():
        assert torch.equal(loaded(tokens).logits, model(tokens).logits)


def test_published_per_expert_tensors_load_into_the_fused_experts(tmp_path):
    """OLMoE as published (one tensor per expert and projection, sharded) loads into the fused
    expert parameters with the logits of the model that was saved."""
    model = tiny_model("OlmoeForCausalLM", "sdpa")
    model.config.architectures = ["OlmoeForCausalLM"]
    model.config.save_pretrained(tmp_path)
    published = {}
    for name, tensor in model.state_dict().items():
        if name.endswith("experts.gate_up_proj"):
            half = tensor.shape[1] // 2
            for e in range(tensor.shape[0]):
                published[f"{name[: -len('gate_up_proj')]}{e}.gate_proj.weight"] = tensor[e, :half].clone()
                published[f"{name[: -len('gate_up_proj')]}{e}.up_proj.weight"] = tensor[e, half:].clone()
        elif name.endswith("experts.down_proj"):
            for e in range(tensor.shape[0]):
                published[f"{name[: -len('down_proj')]}{e}.down_proj.weight"] = tensor[e].clone()
        else:
            published[name] = tensor.clone()
    assert any(".experts.3.up_proj.weight" in name for name in published)
    names = sorted(published)
    save_file({n: published[n] for n in names[::2]}, tmp_path / "model-00001-of-00002.safetensors")
    save_file({n: published[n] for n in names[1::2]}, tmp_path / "model-00002-of-00002.safetensors")
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    weights = read_weights(sorted(tmp_path.glob("*.safetensors")), torch.float32, CPU, expected)
    assert sorted(weights) == sorted(expected)  # fused while reading, not left to transformers
    assert all(torch.equal(weights[name], tensor) for name, tensor in model.state_dict().items())
    loaded = load_model(tmp_path, "OlmoeForCausalLM", "float32", CPU, "sdpa")
    tokens = torch.randint(2, 64, (2, 16))
    with torch.no_grad():
        assert torch.equal(loaded(tokens).logits, model(tokens).logits)


def test_bf16_file_is_converted_per_tensor(tmp_path):
    """A bf16 safetensors file read as fp16 equals converting each tensor; integer tensors keep their dtype."""
    tensors = {"w": torch.randn(3, 5).to(torch.bfloat16), "steps": torch.arange(4), "empty": torch.zeros(0)}
    save_file(tensors, tmp_path / "model.safetensors")
    weights = read_weights([tmp_path / "model.safetensors"], torch.float16, CPU)
    assert torch.equal(weights["w"], tensors["w"].to(torch.float16))
    assert weights["steps"].dtype == torch.int64 and torch.equal(weights["steps"], tensors["steps"])
    assert weights["empty"].shape == (0,)


def test_truncated_safetensors_is_a_snapshot_error(tmp_path):
    """A file cut short inside a tensor is refused with a one-line error naming the tensor."""
    save_file({"w": torch.randn(64, 64)}, tmp_path / "model.safetensors")
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[:-100])
    with pytest.raises(SnapshotError, match="truncated inside tensor w"):
        read_weights([tmp_path / "model.safetensors"], torch.float32, CPU)


PEAK_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    from circuitsweep.checkpoints.loading import load_model
    folder, warm, dtype = sys.argv[1], sys.argv[2], sys.argv[3]
    def status(key):  # bytes
        return int(open("/proc/self/status").read().split(key + ":")[1].split()[0]) * 1024
    load_model(warm, "GPTNeoXForCausalLM", dtype, torch.device("cpu"), "sdpa")  # pays the lazy imports
    open("/proc/self/clear_refs", "w").write("5")  # restart the peak (VmHWM) from here
    base = status("VmRSS")
    model = load_model(folder, "GPTNeoXForCausalLM", dtype, torch.device("cpu"), "sdpa")
    weights = sum(t.nbytes for t in model.state_dict().values())
    print(json.dumps({"ratio": (status("VmHWM") - base) / weights}))
    """
)


@pytest.mark.parametrize(
    ("stored", "configured", "pickled"),
    [("float16", "float32", True), ("bfloat16", "float16", False), ("float32", "float16", False)],
    ids=["pythia-like-bin-fp16-as-fp32", "olmoe-like-bf16-as-fp16", "olmo-like-fp32-as-fp16"],
)
def test_loading_peaks_near_the_weights_in_the_configured_dtype(tmp_path, stored, configured, pickled):
    """Loading a ~100 MB model raises the process's peak memory by at most 1.3x its weights in the configured dtype.

    transformers' own loader peaks at 2x (bf16 as fp16) to 3x (fp32 as fp16);
    at OLMoE size (13.8 GB) that would not fit a 24 GB machine.
    """
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        vocab_size=8192,
        hidden_size=512,
        num_hidden_layers=6,
        num_attention_heads=8,
        intermediate_size=2048,
        architectures=["GPTNeoXForCausalLM"],
    )
    folder, warm = tmp_path / "model", tmp_path / "warm"
    for path, size in ((folder, config), (warm, GPTNeoXConfig(**{**config.to_dict(), "num_hidden_layers": 1}))):
        model = GPTNeoXForCausalLM(size).to(getattr(torch, stored))
        size.save_pretrained(path)
        if pickled:
            torch.save(model.state_dict(), path / "pytorch_model.bin")
        else:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path / "model.safetensors")
        del model
    result = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(folder), str(warm), configured],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(WORKFLOW), "PATH": "/usr/bin:/bin"},
        timeout=300,
        check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1])["ratio"] <= 1.3


def _header_file(path, header: bytes, length: int | None = None, data: bytes = b"") -> None:
    path.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda p: _header_file(p, b"{}", length=2**62), r"header length field says 4611686018427387904 bytes"),
        (lambda p: p.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n"), "not a safetensors"),
        (lambda p: _header_file(p, b"[1, 2, 3]"), "the safetensors header is a JSON list, not an object"),
        (lambda p: _header_file(p, b'{"w": {"dtype": "F32", "data_offsets": [0, 4]}}', data=b"\0" * 4), "no 'shape'"),
        (lambda p: _header_file(p, b'{"w": [1]}'), "tensor w of the safetensors header is a JSON list"),
        (lambda p: _header_file(p, b'{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}'), "shape"),
        (lambda p: _header_file(p, b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}'), "offsets"),
        (lambda p: _header_file(p, b'{"w": "\xff"}'), "unreadable safetensors header"),
    ],
    ids=["huge-length", "text-file", "json-list", "no-shape", "entry-list", "negative-shape", "offsets", "not-utf8"],
)
def test_a_damaged_safetensors_header_is_one_line_naming_the_file(tmp_path, write, message):
    """A header the format cannot hold is refused before any allocation, with one line naming the file, never
    MemoryError, TypeError or KeyError."""
    path = tmp_path / "model.safetensors"
    write(path)
    with pytest.raises(SnapshotError, match=message) as caught:
        read_weights([path], torch.float32, CPU, expected={"w": (1,)})
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_tensor_stored_in_two_files_is_refused(tmp_path):
    """Issue 22 (loading is complete or refused): two weight files holding one tensor name (a stale shard left
    beside the new ones) made the later file silently win; the streaming loader refuses it, naming both."""
    save_file({"a.weight": torch.zeros(2), "b.weight": torch.ones(2)}, str(tmp_path / "model-00001.safetensors"))
    save_file({"a.weight": torch.ones(2)}, str(tmp_path / "model-00002.safetensors"))
    files = sorted(tmp_path.glob("*.safetensors"))
    with pytest.raises(SnapshotError, match=r"a\.weight is stored in both model-00001\.safetensors and model-00002"):
        read_weights(files, torch.float32, torch.device("cpu"))
