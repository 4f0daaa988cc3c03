"""Safe loading of snapshots: safetensors or weights-only pickles, the configured architecture, no code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, GPTNeoXConfig, GPTNeoXForCausalLM

from circuitsweep.checkpoints.loading import load_model
from circuitsweep.errors import SnapshotError

CPU = torch.device("cpu")


class RunsCode:
    """A pickle payload that, if unpickled without weights_only, creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def snapshot(tmp_path: Path) -> tuple[Path, GPTNeoXForCausalLM]:
    """A one-layer GPT-NeoX snapshot holding only a pickled pytorch_model.bin, as Pythia's branches do."""
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    model = GPTNeoXForCausalLM(config)
    folder = tmp_path / "snapshot"
    model.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder, model


def test_pickled_weights_load_exactly(snapshot):
    """A weights-only pytorch_model.bin loads into the configured class with identical tensors."""
    folder, model = snapshot
    loaded = load_model(folder, "GPTNeoXForCausalLM", "float32", CPU, "sdpa")
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_pickle_carrying_code_is_refused_without_running_it(snapshot, tmp_path):
    """A pickle with a code-running reduce is refused with a clear error, and the code never runs."""
    folder, model = snapshot
    marker = tmp_path / "code-ran"
    torch.save({**model.state_dict(), "payload": RunsCode(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(SnapshotError, match="would run code"):
        load_model(folder, "GPTNeoXForCausalLM", "float32", CPU, "sdpa")
    assert not marker.exists()


def test_other_architecture_is_refused(snapshot):
    """A snapshot of another class than the configured one fails before loading weights."""
    folder, _ = snapshot
    with pytest.raises(SnapshotError, match="not OlmoForCausalLM as configured"):
        load_model(folder, "OlmoForCausalLM", "float32", CPU, "sdpa")


def test_remote_code_config_is_refused(snapshot):
    """A config that asks for remote code (auto_map) is refused: remote code is never run."""
    folder, _ = snapshot
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "evil.Model"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(SnapshotError, match="remote code"):
        load_model(folder, "GPTNeoXForCausalLM", "float32", CPU, "sdpa")


def test_snapshot_without_weights_is_refused(snapshot):
    """A snapshot with a config but no weight file is an error naming what is missing."""
    folder, _ = snapshot
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(SnapshotError, match="no model.safetensors or pytorch_model.bin"):
        load_model(folder, "GPTNeoXForCausalLM", "float32", CPU, "sdpa")


def test_encoder_loads_as_its_base_model(tmp_path):
    """A BertModel snapshot (as sentence-transformers ships) loads through AutoModel: no LM head, same tensors."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    model = BertModel(config)
    folder = tmp_path / "bert"
    model.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["BertModel"]
    loaded = load_model(folder, "BertModel", "float32", CPU, "sdpa")
    assert type(loaded) is BertModel
    assert loaded.get_output_embeddings() is None
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    with pytest.raises(SnapshotError, match="not GPTNeoXForCausalLM as configured"):
        load_model(folder, "GPTNeoXForCausalLM", "float32", CPU, "sdpa")


def test_unloadable_architecture_name_is_refused(snapshot):
    """A class transformers lists neither as a causal LM nor as a bare base model is refused before anything is read."""
    folder, _ = snapshot
    with pytest.raises(SnapshotError, match="neither a causal LM"):
        load_model(folder, "BertForMaskedLM", "float32", CPU, "sdpa")


def test_cuda_without_a_gpu_is_a_user_error(monkeypatch):
    """``device: cuda`` on a machine without CUDA stops with a one-line config error, not a torch traceback."""
    from circuitsweep.checkpoints.loading import resolve_device
    from circuitsweep.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="device: 'cuda' is configured but torch sees no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto") == CPU


@pytest.fixture
def two_layers(tmp_path: Path) -> Path:
    """A two-layer GPT-NeoX snapshot saved in two safetensors shards with their index, as large models are."""
    torch.manual_seed(0)
    config = GPTNeoXConfig(
        vocab_size=32, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16
    )
    folder = tmp_path / "sharded"
    GPTNeoXForCausalLM(config).save_pretrained(folder, max_shard_size="6KB")
    assert len(list(folder.glob("model-*.safetensors"))) >= 2
    return folder


def _declare(folder: Path, **keys) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **keys}))


def test_complete_sharded_checkpoint_loads(two_layers):
    """The shards together load (the checks below refuse only what is incomplete or inconsistent)."""
    assert load_model(two_layers, "GPTNeoXForCausalLM", "float32", CPU, "sdpa").config.num_hidden_layers == 2


def test_a_missing_shard_is_refused_naming_it(two_layers):
    """Issue 22: with one shard gone, transformers filled its tensors at random and the revision was measured."""
    shard = sorted(two_layers.glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(SnapshotError, match=rf"{shard.name}"):
        load_model(two_layers, "GPTNeoXForCausalLM", "float32", CPU, "sdpa")


def test_a_missing_shard_without_an_index_is_refused_naming_a_missing_tensor(two_layers):
    """Without the index to name the shard, the tensors missing from the weights are named."""
    (two_layers / "model.safetensors.index.json").unlink()
    sorted(two_layers.glob("model-*.safetensors"))[-1].unlink()
    with pytest.raises(SnapshotError, match=r"missing from the weights: .*gpt_neox"):
        load_model(two_layers, "GPTNeoXForCausalLM", "float32", CPU, "sdpa")


@pytest.mark.parametrize(("layers", "problem"), [(3, "missing from the weights"), (1, "not used by the model")])
def test_declared_layers_must_match_the_weights(two_layers, layers, problem):
    """Issue 22: a config.json declaring more layers than the weights hold got random layers; fewer silently
    dropped the extra ones. Both are refused, naming a tensor."""
    _declare(two_layers, num_hidden_layers=layers)
    with pytest.raises(SnapshotError, match=rf"{problem}: .*layers\.[0-9]"):
        load_model(two_layers, "GPTNeoXForCausalLM", "float32", CPU, "sdpa")


def test_declared_heads_must_match_the_weights(two_layers):
    """A head count whose shapes do not match the weights is refused naming the tensor, not a RuntimeError."""
    _declare(two_layers, hidden_size=32, num_attention_heads=4)
    with pytest.raises(SnapshotError, match=r"gpt_neox\.\S+ .*shape"):
        load_model(two_layers, "GPTNeoXForCausalLM", "float32", CPU, "sdpa")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 8}, r"tensor \S+ of model\.safetensors has"),
        ({"num_key_value_heads": 1}, r"k_proj\.weight of model\.safetensors has shape \(16, 32\), but config"),
    ],
    ids=["heads", "kv-heads"],
)
def test_a_head_count_that_does_not_match_the_weights_is_named(tmp_path, change, message):
    """config.json declaring other head counts than the weights hold is one line naming the tensor and the keys,
    not transformers' RuntimeError."""
    from transformers import LlamaConfig, LlamaForCausalLM

    settings = dict(vocab_size=32, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2)
    LlamaForCausalLM(LlamaConfig(**settings, intermediate_size=16)).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(SnapshotError, match=message) as caught:
        load_model(tmp_path, "LlamaForCausalLM", "float32", CPU, "sdpa")
    assert "num_attention_heads" in str(caught.value) and "\n" not in str(caught.value)


def test_a_config_json_that_is_not_utf8_is_named(snapshot):
    """A config.json in another encoding is one line naming it, not UnicodeDecodeError."""
    folder, _ = snapshot
    (folder / "config.json").write_bytes('{"architectures": ["GPTNeoXForCausalLM"], "name": "café"}'.encode("latin-1"))
    with pytest.raises(SnapshotError, match=r"config\.json is not UTF-8 text"):
        load_model(folder, "GPTNeoXForCausalLM", "float32", CPU, "sdpa")
