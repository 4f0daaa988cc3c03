"""A model's ``config.json`` under transformers' standard attribute names, read without importing torch.

Config classes rename some standard attributes: GPT-2's ``config.json`` says
``n_embd``, ``n_layer``, ``n_head`` and ``n_positions`` where a Llama's says
``hidden_size``, ``num_hidden_layers``, ``num_attention_heads`` and
``max_position_embeddings``. Each class declares the renaming in its
``attribute_map`` (``{standard name: name in config.json}``), which
``PretrainedConfig`` applies on attribute access. Importing a config class
imports torch (seconds), and planning never imports torch, so the map is read
from the class's source with :mod:`ast`: the class is found through
transformers' ``CONFIG_MAPPING_NAMES`` (``model_type`` -> config class) and
its module through ``SPECIAL_MODEL_TYPE_TO_MODULE_NAME``, as
``transformers.AutoConfig`` finds them.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from circuitsweep.config.architectures import _transformers_root

#: Modules of transformers' auto package that define the two name mappings (their literals).
AUTO_MODULES = ("auto_mappings.py", "configuration_auto.py")
CONFIG_BASES = ("PreTrainedConfig", "PretrainedConfig")


def _literal_pairs(node: ast.expr) -> dict[str, str]:
    """``{key: value}`` of a dict literal or an ``OrderedDict([...], **{...})`` call (literal parts only)."""
    if isinstance(node, ast.Call):
        out: dict[str, str] = {}
        for part in [*node.args[:1], *(k.value for k in node.keywords if k.arg is None)]:
            out.update(_literal_pairs(part))
        return out
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return {}
    pairs = value.items() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    try:
        return {str(k): str(v) for k, v in pairs}
    except (TypeError, ValueError):
        return {}


def mappings_from_source(source: str, names: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``{name: {key: value}}`` of the module-level mappings ``names``: assignments and ``.update(...)`` calls."""
    out: dict[str, dict[str, str]] = {name: {} for name in names}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in out:
                out[node.targets[0].id].update(_literal_pairs(node.value))
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            func, args = node.value.func, node.value.args
            target = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
            if target in out and func.attr == "update" and args:
                out[target].update(_literal_pairs(args[0]))
    return out


@cache
def _auto_names() -> tuple[dict[str, str], dict[str, str]] | None:
    """transformers' ``CONFIG_MAPPING_NAMES`` and ``SPECIAL_MODEL_TYPE_TO_MODULE_NAME``, or None if unreadable."""
    root = _transformers_root()
    if root is None:
        return None
    names = ("CONFIG_MAPPING_NAMES", "SPECIAL_MODEL_TYPE_TO_MODULE_NAME")
    found: dict[str, dict[str, str]] = {name: {} for name in names}
    for module in AUTO_MODULES:
        try:
            source = (root / "models" / "auto" / module).read_text(encoding="utf-8")
            for name, pairs in mappings_from_source(source, names).items():
                found[name].update(pairs)
        except (OSError, SyntaxError, ValueError):
            continue
    if not found["CONFIG_MAPPING_NAMES"]:
        return None
    return found["CONFIG_MAPPING_NAMES"], found["SPECIAL_MODEL_TYPE_TO_MODULE_NAME"]


def attribute_map_in_source(source: str, class_name: str) -> dict[str, str] | None:
    """The ``attribute_map`` of ``class_name`` as its module source sets it along its bases in that module.

    ``{}`` for a class that inherits ``PreTrainedConfig``'s (empty) map; None
    when the class or a base defining the map lies outside the source.
    """
    classes = {n.name: n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)}
    current = classes.get(class_name)
    seen: set[str] = set()
    while current is not None and current.name not in seen:
        seen.add(current.name)
        for statement in current.body:
            target = (
                statement.targets[0]
                if isinstance(statement, ast.Assign) and len(statement.targets) == 1
                else statement.target
                if isinstance(statement, ast.AnnAssign)
                else None
            )
            if isinstance(target, ast.Name) and target.id == "attribute_map" and statement.value is not None:
                return _literal_pairs(statement.value)
        bases = [b.id for b in current.bases if isinstance(b, ast.Name)]
        if any(b in CONFIG_BASES for b in bases):
            return {}
        current = next((classes[b] for b in bases if b in classes), None)
    return None


@cache
def attribute_map(model_type: str) -> dict[str, str]:
    """``{standard name: config.json name}`` of the config class of ``model_type`` (``{}`` when unknown)."""
    names = _auto_names()
    root = _transformers_root()
    if names is None or root is None or model_type not in names[0]:
        return {}
    class_name = names[0][model_type]
    # a class shared by several model types (gpt-sw3 -> GPT2Config) is defined in one of their modules
    sharing = [model_type] + [t for t, c in names[0].items() if c == class_name and t != model_type]
    for kind in sharing:
        module = names[1].get(kind, kind.replace("-", "_"))
        for source_file in sorted(Path(root, "models", *module.split(".")).glob("configuration_*.py")):
            try:
                text = source_file.read_text(encoding="utf-8")
                if f"class {class_name}(" in text:
                    return attribute_map_in_source(text, class_name) or {}
            except (OSError, ValueError, SyntaxError):
                continue
    return {}


def standard_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` (a ``config.json`` mapping) with each renamed attribute also under its standard name.

    Where both names are present the class's own wins, as in ``PretrainedConfig``.
    """
    out = dict(config)
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        return out
    for standard, own in attribute_map(model_type).items():
        if own in config:
            out[standard] = config[own]
    return out


#: Layer types that transformers masks to a sliding window (``masking_utils.LAYER_PATTERN_TO_MASK_FUNCTION_MAPPING``).
SLIDING_LAYER_TYPES = ("sliding_attention",)
#: Model types whose config class has a ``use_sliding_window`` switch, off by default (transformers 5.x;
#: tests/test_sliding_window.py holds the list to the installed classes).
SWITCHED_WINDOW_TYPES = (
    "qwen2",
    "qwen2_moe",
    "qwen2_vl_text",
    "qwen2_5_vl_text",
    "qwen2_5_omni_text",
    "qwen2_5_omni_talker",
    "qwen3",
    "qwen3_moe",
    "smollm3",
    "deepseek_ocr2_encoder",
)
#: The ``max_window_layers`` default of Qwen2, Qwen2-MoE and Qwen3.
QWEN_MAX_WINDOW_LAYERS = 28


def _setting(config: Any, key: str) -> Any:
    return config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)


def _text_config(config: Any) -> Any:
    """The part of a composite (multimodal) config that sets the decoder's attention."""
    if not isinstance(config, Mapping):
        text = getattr(config, "get_text_config", None)
        return text() if callable(text) else config
    nested = config.get("text_config")
    if isinstance(nested, Mapping) and "sliding_window" not in config and "layer_types" not in config:
        return nested
    return config


def attention_windows(config: Any) -> list[int | None]:
    """Per layer, the sliding window W its attention is limited to, or None where attention is full.

    transformers (5.x, ``masking_utils.sliding_window_overlay``: ``kv_idx > q_idx -
    sliding_window``; flash attention's ``window_size`` is ``W - 1``) lets a
    query at position q of a sliding layer see the keys q - W + 1 .. q: W
    positions, itself and the W - 1 before it. A query sees position 0 exactly
    when q < W, so in a probe of T tokens every query sees it exactly when T <= W.

    Which layers slide, as the installed config classes decide:

    - ``use_sliding_window`` false or, for a class that has the switch
      (:data:`SWITCHED_WINDOW_TYPES`: Qwen2, Qwen3, their MoEs, SmolLM3), absent:
      none, whatever ``sliding_window`` says (the class sets it to None or 0);
    - ``sliding_window`` unset, null or 0: none (Llama, GPT-2, Mistral v0.2+, ...);
    - ``layer_types``: the ``"sliding_attention"`` entries (Gemma 2/3, Cohere2,
      GPT-OSS, Olmo3, Ministral, Qwen2/Qwen3, ...: every class that mixes kinds
      of layer builds the list in ``__post_init__`` and ``save_pretrained``
      writes it to config.json);
    - a Qwen2/Qwen3 config.json without ``layer_types``: the layers from
      ``max_window_layers`` (default 28) on; Qwen2-MoE's: the even layers below it;
    - otherwise every layer (Mistral v0.1, Mixtral, Phi-3, Starcoder2, Qwen3-MoE:
      their models mask every layer when ``sliding_window`` is set).

    config: a config.json mapping (:func:`standard_config`) or a transformers
    config object. A config.json that ``save_pretrained`` wrote gives what the
    object does; an older one of a class that mixes kinds of layer may omit
    ``layer_types``, and then every layer counts (the object, whose class has
    built the list, is exact). A composite config is read through its text config.
    """
    config = _text_config(config)
    layer_types = _setting(config, "layer_types")
    layers = _setting(config, "num_hidden_layers")
    count = len(layer_types) if isinstance(layer_types, (list, tuple)) else layers if isinstance(layers, int) else 0
    window = _setting(config, "sliding_window")
    model_type = _setting(config, "model_type")
    switch = _setting(config, "use_sliding_window")
    switched_off = not switch if switch is not None else model_type in SWITCHED_WINDOW_TYPES
    if switched_off or isinstance(window, bool) or not isinstance(window, int) or window <= 0:
        return [None] * count
    if isinstance(layer_types, (list, tuple)):
        return [window if kind in SLIDING_LAYER_TYPES else None for kind in layer_types]
    limit = _setting(config, "max_window_layers")
    limit = limit if isinstance(limit, int) else QWEN_MAX_WINDOW_LAYERS
    if model_type in ("qwen2", "qwen3"):
        return [window if i >= limit else None for i in range(count)]
    if model_type == "qwen2_moe":
        return [window if i % 2 == 0 and i < limit else None for i in range(count)]
    return [window] * count
