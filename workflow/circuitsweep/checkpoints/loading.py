"""Safe loading of one checkpoint snapshot into a transformers model.

Safetensors are preferred; a pickled ``pytorch_model.bin`` (all that Pythia's
intermediate branches hold) is read with ``torch.load(weights_only=True)``
only, which refuses to run code. ``trust_remote_code`` is never passed.

A class transformers lists as a causal LM (``LlamaForCausalLM``,
``GPT2LMHeadModel``, ...) loads with its LM head through
``AutoModelForCausalLM``; a bare base model (``BertModel``, the class that
sentence-transformers checkpoints declare, or ``GPT2Model``) loads through
``AutoModel`` and has no LM head (:mod:`circuitsweep.config.architectures`). A class
that does not route attention through transformers' ``AttentionInterface`` is
refused before its weights are read.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, GenerationConfig, PreTrainedModel

from circuitsweep.checkpoints.run_dir import check_shards  # torch-free: planning runs it too
from circuitsweep.checkpoints.safetensors_format import safetensors_header
from circuitsweep.checkpoints.streaming import read_weights
from circuitsweep.config.architectures import CAUSAL_LM, architecture_kind, check_declared, imported_mappings, refusal
from circuitsweep.config.model_config import attention_windows
from circuitsweep.errors import ConfigError, SnapshotError, UnsupportedModelError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def auto_class(architecture: str) -> type:
    """The transformers auto class that builds ``architecture``, from transformers' model mappings.

    Raises :class:`UnsupportedModelError` for a class that is neither a causal
    LM nor a bare base model, or that cannot route attention through
    ``AttentionInterface`` (no observed attention could see its heads).
    """
    kind = architecture_kind(architecture, imported_mappings())
    import transformers

    model_class = getattr(transformers, architecture, None)
    if model_class is not None and not model_class.is_backend_compatible():
        raise UnsupportedModelError(refusal(architecture))
    return AutoModelForCausalLM if kind == CAUSAL_LM else AutoModel


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device: 'cuda' is configured but torch sees no CUDA device on this machine; "
            "run on a GPU node or set device: auto (or cpu)"
        )
    return torch.device(device)


def weight_files(snapshot: Path) -> list[Path]:
    """The weight files of a snapshot: safetensors if any, else pickled ``.bin``."""
    safetensors = sorted(snapshot.glob("*.safetensors"))
    return safetensors or sorted(snapshot.glob("pytorch_model*.bin"))


def check_architecture(snapshot: Path, architecture: str) -> dict:
    """Read ``config.json`` and fail clearly unless it declares ``architecture``."""
    config_file = snapshot / "config.json"
    if not config_file.is_file():
        raise SnapshotError(f"{snapshot} has no config.json")
    try:
        config = json.loads(config_file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as error:
        raise SnapshotError(
            f"{config_file} is not UTF-8 text (byte {error.start}); config.json must be UTF-8 JSON"
        ) from None
    except json.JSONDecodeError as error:
        raise SnapshotError(f"{config_file} is not valid JSON: {error}") from error
    if not isinstance(config, dict):
        raise SnapshotError(f"{config_file} holds a JSON {type(config).__name__}, not an object")
    check_declared(snapshot, config, architecture)
    return config


def _names(keys: Iterable[str], most: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")


def check_loading_info(snapshot: Path, info: Mapping[str, Any]) -> None:
    """Refuse a load that was not complete: any missing, unexpected or mismatched tensor, named.

    ``info``: transformers' ``output_loading_info`` (``missing_keys``, ``unexpected_keys``,
    ``mismatched_keys`` as ``(name, checkpoint shape, model shape)``, ``error_msgs``).
    """
    problems = []
    if missing := info.get("missing_keys"):
        problems.append(f"{len(missing)} tensors of the model missing from the weights: {_names(missing)}")
    if unexpected := info.get("unexpected_keys"):
        problems.append(f"{len(unexpected)} tensors of the weights not used by the model: {_names(unexpected)}")
    if mismatched := sorted(info.get("mismatched_keys") or ()):
        name, stored, wanted = mismatched[0]
        problems.append(
            f"{len(mismatched)} tensors of another shape than the model's: {name} has shape {tuple(stored)} "
            f"in the weights, {tuple(wanted)} in the model"
        )
    if errors := info.get("error_msgs"):
        problems.append(str(errors[0]).splitlines()[0])
    if problems:
        raise SnapshotError(
            f"{snapshot}: the weights do not match its config.json (layers, heads or sizes): " + "; ".join(problems)
        )


def check_shapes(snapshot: Path, files: list[Path], expected: dict[str, tuple[int, ...]]) -> None:
    """Refuse, before reading weights, a safetensors tensor whose shape is not the one ``config.json`` implies.

    A head or layer width in ``config.json`` that does not match the weights
    (``num_attention_heads``, ``num_key_value_heads``, ``head_dim``) shows as
    a projection of another shape; named here instead of transformers' RuntimeError.
    """
    for path in files:
        if path.suffix != ".safetensors":
            continue
        for name, entry in safetensors_header(path)[1].items():
            for key in (name, name.removeprefix("model."), f"model.{name}"):
                if key in expected and tuple(entry["shape"]) != expected[key]:
                    raise SnapshotError(
                        f"{snapshot}: tensor {name} of {path.name} has shape {tuple(entry['shape'])}, but "
                        f"config.json implies {expected[key]}; its head or layer sizes (num_attention_heads, "
                        "num_key_value_heads, head_dim, hidden_size) do not match the weights"
                    )


def snapshot_windows(snapshot: Path) -> list[int | None] | None:
    """Per layer, the sliding window of ``snapshot``'s model as its transformers config class builds it.

    The class's ``__post_init__`` sets what an old config.json leaves out (its
    ``layer_types``), so this is exact where the config.json alone is not
    (:func:`~circuitsweep.config.model_config.attention_windows`). None when
    the class cannot be built here; :func:`load_model` then says why.
    """
    try:
        config = AutoConfig.from_pretrained(snapshot, trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return attention_windows(config)


def load_model(
    snapshot: Path,
    architecture: str,
    dtype: str,
    device: torch.device,
    attn_implementation: str,
) -> PreTrainedModel:
    """Load ``snapshot`` for inference in ``dtype`` on ``device``.

    The weights are read one tensor at a time into ``dtype`` on ``device``
    (:func:`~circuitsweep.checkpoints.streaming.read_weights`), so the peak
    memory is about the weights in ``dtype``, not the file plus a converted copy.
    The load is complete or refused (:class:`SnapshotError`): a missing shard
    (:func:`check_shards`) and any missing, unexpected or mismatched tensor
    (:func:`check_loading_info`), so declared and stored layers and heads agree.
    """
    snapshot = Path(snapshot)
    loader = auto_class(architecture)
    check_architecture(snapshot, architecture)
    files = weight_files(snapshot)
    if not files:
        raise SnapshotError(f"{snapshot} holds no model.safetensors or pytorch_model.bin")
    check_shards(snapshot)
    config = AutoConfig.from_pretrained(snapshot, trust_remote_code=False)
    try:
        model_class = loader._model_mapping[type(config)]
    except KeyError as error:
        raise SnapshotError(f"{snapshot}: {loader.__name__} has no class for a {type(config).__name__}") from error
    with torch.device("meta"):  # parameter shapes only, no memory: where fused expert weights go
        expected = {name: tuple(t.shape) for name, t in model_class(config).state_dict().items()}
    check_shapes(snapshot, files, expected)
    try:
        # read tensor by tensor straight into dtype and device: no second full copy (streaming.py)
        weights = read_weights(files, DTYPES[dtype], device, expected)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()
        detail = next((line for line in reason if "GLOBAL" in line), reason[0] if reason else "")
        raise SnapshotError(
            f"{snapshot}: refused to load {files[0].name}: the pickle holds more than tensors "
            f"and would run code ({detail.strip()})"
        ) from error
    try:
        model, loading_info = model_class.from_pretrained(
            None,
            config=config,
            state_dict=weights,
            dtype=DTYPES[dtype],
            attn_implementation=attn_implementation,
            trust_remote_code=False,
            ignore_mismatched_sizes=True,  # reported in loading_info and refused below, naming the tensor
            output_loading_info=True,
        )
    except RuntimeError as error:
        if "loading state_dict" not in str(error) and "conversion" not in str(error):
            raise
        raise SnapshotError(
            f"{snapshot}: the weights do not load into {architecture} as its config.json declares it "
            f"({str(error).splitlines()[-1].strip()})"
        ) from None
    del weights
    check_loading_info(snapshot, loading_info)
    if (snapshot / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(snapshot)
    if type(model).__name__ != architecture:
        raise SnapshotError(f"{snapshot}: {loader.__name__} built {type(model).__name__}, not {architecture}")
    return model.to(device).eval()
