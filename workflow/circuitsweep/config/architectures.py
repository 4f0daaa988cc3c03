"""Which transformers classes circuitsweep can load, decided from transformers' own model mappings.

A configured ``architecture`` is any class name that transformers lists as a
causal LM (``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES``: ``LlamaForCausalLM``,
``GPT2LMHeadModel``, ...) or as a bare base model (``MODEL_MAPPING_NAMES``:
``BertModel``, ``GPT2Model``, ...); the loader picks ``AutoModelForCausalLM``
or ``AutoModel`` accordingly.

Importing ``transformers.models.auto.modeling_auto`` imports torch (seconds),
and planning never imports torch, so at planning time the name mappings (plain
dict literals) are read from that module's source with :mod:`ast`; a job,
which imports transformers anyway, passes the imported mappings instead.
Whether a class routes attention through transformers' ``AttentionInterface``
(``_supports_attention_backend``) is read the same way where the class's
source can be found, else known only once the class is imported in the job.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from circuitsweep.errors import ConfigError, SnapshotError, UnsupportedModelError

CAUSAL_LM = "causal_lm"
BASE_MODEL = "base_model"
#: The classes the toy suite trains (source type toy).
TOY_ARCHITECTURES: tuple[str, ...] = ("GPTNeoXForCausalLM", "OlmoForCausalLM", "OlmoeForCausalLM")
#: Mapping name -> kind of model it lists.
MAPPINGS: dict[str, str] = {"MODEL_FOR_CAUSAL_LM_MAPPING_NAMES": CAUSAL_LM, "MODEL_MAPPING_NAMES": BASE_MODEL}


def _transformers_root() -> Path | None:
    spec = importlib.util.find_spec("transformers")
    return None if spec is None or spec.origin is None else Path(spec.origin).parent


def _class_names(value: object) -> list[str]:
    """The class names of one mapping value (a name, or a tuple of names for some base models)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (tuple, list)):
        return [v for v in value if isinstance(v, str)]
    return []


def names_from_source(source: str) -> dict[str, dict[str, str]]:
    """``{mapping name: {class name: model type}}`` of the mappings in :data:`MAPPINGS`, read from module source."""
    out: dict[str, dict[str, str]] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        if name not in MAPPINGS or not isinstance(node.value, ast.Call) or not node.value.args:
            continue
        try:
            pairs = ast.literal_eval(node.value.args[0])
        except ValueError:
            continue
        out[name] = {cls: model_type for model_type, value in pairs for cls in _class_names(value)}
    return out


@cache
def planning_mappings() -> dict[str, dict[str, str]] | None:
    """The mappings of the installed transformers, read without importing it (None if unreadable)."""
    root = _transformers_root()
    if root is None:
        return None
    try:
        found = names_from_source((root / "models" / "auto" / "modeling_auto.py").read_text())
    except (OSError, SyntaxError):
        return None
    return found if set(found) == set(MAPPINGS) else None


def imported_mappings() -> dict[str, dict[str, str]]:
    """The same mappings from the imported transformers module (imports torch: jobs only)."""
    from transformers.models.auto import modeling_auto

    out: dict[str, dict[str, str]] = {}
    for name in MAPPINGS:
        pairs = getattr(modeling_auto, name).items()
        out[name] = {cls: model_type for model_type, value in pairs for cls in _class_names(value)}
    return out


def architecture_kind(architecture: str, mappings: Mapping[str, Mapping[str, str]]) -> str:
    """:data:`CAUSAL_LM` or :data:`BASE_MODEL`; :class:`UnsupportedModelError` for any other class name."""
    for name, kind in MAPPINGS.items():
        if architecture in mappings.get(name, {}):
            return kind
    known: Iterable[str] = [cls for name in MAPPINGS for cls in mappings.get(name, {})]
    close = difflib.get_close_matches(architecture, list(known), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UnsupportedModelError(
        f"architecture {architecture} is neither a causal LM nor a bare base model that transformers knows{hint}"
    )


def is_unknown(architecture: str) -> bool:
    """Whether transformers' mappings, read at planning time, list ``architecture`` nowhere (a typo, most often).

    False where the mappings cannot be read: then nothing can be told before the job imports the class.
    """
    mappings = planning_mappings()
    return mappings is not None and not any(architecture in mappings.get(name, {}) for name in MAPPINGS)


def has_lm_head(architecture: str) -> bool:
    """Whether ``architecture`` is a causal LM (has an LM head), judged at planning time without torch.

    Falls back to the class name (``...ForCausalLM`` / ``...LMHeadModel``) when
    transformers' mappings cannot be read.
    """
    mappings = planning_mappings()
    if mappings is not None:
        try:
            return architecture_kind(architecture, mappings) == CAUSAL_LM
        except UnsupportedModelError:
            return False
    return architecture.endswith(("ForCausalLM", "LMHeadModel"))


def _class_defs(tree: ast.Module) -> dict[str, ast.ClassDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def _assigned_flag(node: ast.ClassDef, flag: str) -> bool | None:
    for statement in node.body:
        targets = (
            statement.targets
            if isinstance(statement, ast.Assign)
            else [statement.target]
            if isinstance(statement, ast.AnnAssign)
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == flag for t in targets):
            value = statement.value
            return value.value if isinstance(value, ast.Constant) and isinstance(value.value, bool) else None
    return None


def attention_backend_in_source(source: str, architecture: str) -> bool | None:
    """``_supports_attention_backend`` of ``architecture`` as its module source sets it along its bases.

    None when the source does not define the class or the flag comes from a
    class defined elsewhere than ``PreTrainedModel`` (then only the imported class can tell).
    """
    classes = _class_defs(ast.parse(source))
    current = classes.get(architecture)
    seen: set[str] = set()
    while current is not None and current.name not in seen:
        seen.add(current.name)
        flag = _assigned_flag(current, "_supports_attention_backend")
        if flag is not None:
            return flag
        bases = [b.id for b in current.bases if isinstance(b, ast.Name)]
        if "PreTrainedModel" in bases:
            return False  # PreTrainedModel's own default
        current = next((classes[b] for b in bases if b in classes), None)
    return None


def planning_attention_support(architecture: str, model_type: str) -> bool | None:
    """Whether ``architecture`` routes attention through ``AttentionInterface``, from its source; None: unknown."""
    root = _transformers_root()
    if root is None:
        return None
    for source_file in sorted((root / "models" / model_type.replace("-", "_")).glob("modeling_*.py")):
        try:
            text = source_file.read_text()
        except OSError:
            continue
        if f"class {architecture}(" in text:
            return attention_backend_in_source(text, architecture)
    return None


def refusal(architecture: str) -> str:
    """The reason a class that does not use ``AttentionInterface`` cannot be measured."""
    return (
        f"{architecture} does not route attention through transformers' AttentionInterface "
        "(_supports_attention_backend is False), so circuitsweep cannot observe its heads"
    )


def check_at_planning(architecture: str) -> None:
    """Refuse, without importing torch, a class name that transformers does not list or that cannot be observed.

    Raises :class:`ConfigError`. Where transformers' source cannot be read,
    nothing is checked here and the first job checks the imported class.
    """
    mappings = planning_mappings()
    if mappings is None:
        return
    try:
        kind = architecture_kind(architecture, mappings)
    except UnsupportedModelError as error:
        raise ConfigError(str(error)) from None
    model_type = mappings[next(name for name, k in MAPPINGS.items() if k == kind)][architecture]
    if planning_attention_support(architecture, model_type) is False:
        raise ConfigError(refusal(architecture))


def check_declared(snapshot: Path, config: Mapping[str, Any], architecture: str) -> None:
    """Refuse a checkpoint whose ``config.json`` (the mapping ``config``) does not declare ``architecture``
    among its ``architectures``, or asks for remote code (``auto_map``), naming ``snapshot``.

    The job's check before it loads weights, and planning's on a run_dir folder (no torch: the mapping only).
    """
    declared = config.get("architectures") or []
    if architecture not in declared:
        raise SnapshotError(
            f"{snapshot} holds {declared or 'no declared architecture'}, not {architecture} as configured"
        )
    if "auto_map" in config:
        raise SnapshotError(
            f"{Path(snapshot) / 'config.json'} asks for remote code (auto_map); circuitsweep never runs remote code"
        )
