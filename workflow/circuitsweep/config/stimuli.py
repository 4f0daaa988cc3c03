"""The primitive stimuli: load ``config/primitives.yaml``, validate it, freeze it.

Validation runs in two steps and reports every problem with the path of the
offending key: the JSON schema (``workflow/schemas/primitives.schema.yaml``)
checks shapes, types and minimum sizes; :func:`check_references` then checks
what a schema cannot (one placeholder per template, compositions naming known
primitives, disjoint lexicons and clusters, ...).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from circuitsweep.config.schema_errors import describe
from circuitsweep.config.yaml_load import load_yaml
from circuitsweep.errors import ConfigError

_ROOT = Path(__file__).resolve().parents[3]
SCHEMA_FILE = _ROOT / "workflow" / "schemas" / "primitives.schema.yaml"
DEFAULT_STIMULI_FILE = _ROOT / "config" / "primitives.yaml"

SET_A = "0a"
SET_B = "0b"
_PLACEHOLDER = re.compile(r"\{(word|Word)\}")
_LOWER_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")


# --- Frozen stimuli ---------------------------------------------------------


@dataclass(frozen=True)
class WordInText:
    """A word placed in a text: ``text[start:end]`` is the word."""

    text: str
    start: int
    end: int


def fill(template: str, word: str) -> WordInText:
    """Put ``word`` into the one ``{word}`` / ``{Word}`` placeholder of ``template``."""
    matches = list(_PLACEHOLDER.finditer(template))
    if len(matches) != 1:
        raise ValueError(f"template {template!r} must hold exactly one {{word}} or {{Word}}")
    match = matches[0]
    surface = word[:1].upper() + word[1:] if match.group(1) == "Word" else word
    text = template[: match.start()] + surface + template[match.end() :]
    return WordInText(text, match.start(), match.start() + len(surface))


@dataclass(frozen=True)
class Primitive:
    """A semantic primitive: its set (0a/0b), surface words, context templates and word-class controls."""

    name: str
    set: str
    words: tuple[str, ...]
    contexts: tuple[str, ...]
    controls: tuple[str, ...] = ()

    def occurrences(self) -> tuple[WordInText, ...]:
        """Every context filled with every surface word (contexts outer, words inner)."""
        return tuple(fill(template, word) for template in self.contexts for word in self.words)


@dataclass(frozen=True)
class Composition:
    """A pre-registered prediction: operator + seed -> target, with its synonym cluster."""

    operator: str
    seed: str
    target: str
    cluster: tuple[str, ...]
    near_synonym: bool = False  # the target nearly restates the seed

    @property
    def name(self) -> str:
        return f"{self.operator}+{self.seed}"


@dataclass(frozen=True)
class BehaviourPrompts:
    """Prompt templates of the behavioural score (``{word}``; ``{operator}``, ``{seed}``)."""

    primitive_prompt: str
    composition_prompt: str


@dataclass(frozen=True)
class Stimuli:
    """All stimuli, validated. Orders are those of the YAML file and fix tensor layouts."""

    primitives: tuple[Primitive, ...]
    compositions: tuple[Composition, ...]
    phenomenological: tuple[str, ...]
    abstract: tuple[str, ...]
    carriers: tuple[str, ...]
    behaviour: BehaviourPrompts
    affective: tuple[str, ...] = ()  # the phenomenological words that name feelings

    @property
    def sensory(self) -> tuple[str, ...]:
        """The phenomenological words that are not affective."""
        return tuple(w for w in self.phenomenological if w not in set(self.affective))

    @property
    def control_words(self) -> tuple[str, ...]:
        """Every control word, primitive by primitive, in order."""
        return tuple(word for p in self.primitives for word in p.controls)

    @property
    def primitive_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.primitives)

    def primitive(self, name: str) -> Primitive:
        for primitive in self.primitives:
            if primitive.name == name:
                return primitive
        raise KeyError(f"no primitive named {name!r}")

    def index(self, name: str) -> int:
        """Position of primitive ``name`` in :attr:`primitives`."""
        return self.primitive_names.index(name)

    @property
    def cluster_words(self) -> tuple[str, ...]:
        """Every cluster word, composition by composition, in cluster order."""
        return tuple(word for c in self.compositions for word in c.cluster)

    def to_dict(self) -> dict[str, Any]:
        """The stimuli as plain data, in the layout of ``primitives.yaml``."""
        return {
            "version": 1,
            "primitives": {
                p.name: {
                    "set": p.set,
                    "words": list(p.words),
                    "contexts": list(p.contexts),
                    "controls": list(p.controls),
                }
                for p in self.primitives
            },
            "compositions": [
                {
                    "operator": c.operator,
                    "seed": c.seed,
                    "target": c.target,
                    "cluster": list(c.cluster),
                    "near_synonym": c.near_synonym,
                }
                for c in self.compositions
            ],
            "lexicons": {
                "phenomenological": list(self.phenomenological),
                "abstract": list(self.abstract),
                "affective": list(self.affective),
            },
            "carriers": list(self.carriers),
            "behaviour": {
                "primitive_prompt": self.behaviour.primitive_prompt,
                "composition_prompt": self.behaviour.composition_prompt,
            },
        }

    def fingerprint(self) -> str:
        """sha256 (hex) of the canonical JSON of :meth:`to_dict`: caches record it."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def subset(self, *, n_contexts: int | None = None, n_carriers: int | None = None) -> Stimuli:
        """The first ``n_contexts`` contexts of each primitive and the first ``n_carriers`` carriers.

        For quick runs and tests; the result is not re-validated against the minimum sizes.
        """
        primitives = tuple(replace(p, contexts=p.contexts[:n_contexts]) for p in self.primitives)
        return replace(self, primitives=primitives, carriers=self.carriers[:n_carriers])


# --- Validation -------------------------------------------------------------


@cache
def schema() -> dict[str, Any]:
    """The stimuli schema (JSON Schema draft 2020-12, written in YAML)."""
    return yaml.safe_load(SCHEMA_FILE.read_text())


def validate_schema(data: Any) -> list[str]:
    """Problems of ``data`` against the schema, each naming its key and what was expected."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    return [describe(e) for e in errors]


def _overlaps(named: dict[str, list[str]]) -> list[str]:
    """For groups of words, 'a and b share [...]' for every pair of groups that overlap."""
    problems = []
    names = list(named)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sorted(set(named[a]) & set(named[b]))
            if shared:
                problems.append(f"{a} and {b} share {shared}; expected disjoint word lists")
    return problems


def check_references(data: dict[str, Any]) -> list[str]:
    """Problems a schema cannot see; ``data`` must already satisfy the schema."""
    problems: list[str] = []
    primitives: dict[str, dict[str, Any]] = data["primitives"]
    for name, primitive in primitives.items():
        for i, template in enumerate(primitive["contexts"]):
            count = len(_PLACEHOLDER.findall(template))
            if count != 1:
                problems.append(
                    f"primitives.{name}.contexts.{i}: {template!r} holds {count} placeholders; expected one"
                )
    for i, template in enumerate(data["carriers"]):
        count = len(_PLACEHOLDER.findall(template))
        if count != 1:
            problems.append(f"carriers.{i}: {template!r} holds {count} placeholders; expected one")

    for needed in (SET_A, SET_B):
        members = [n for n, p in primitives.items() if p["set"] == needed]
        if len(members) < 2:
            problems.append(f"primitives: set {needed} has {len(members)} primitives; expected at least 2")

    surface = {f"primitives.{n}.words": p["words"] for n, p in primitives.items()}
    problems += _overlaps(surface)
    primitive_words = sorted({w for p in primitives.values() for w in p["words"]})

    lexicons = data["lexicons"]
    problems += _overlaps(
        {"lexicons.phenomenological": lexicons["phenomenological"], "lexicons.abstract": lexicons["abstract"]}
    )
    for side in ("phenomenological", "abstract"):
        shared = sorted(set(lexicons[side]) & set(primitive_words))
        if shared:
            problems.append(
                f"lexicons.{side}: holds primitive surface words {shared}; expected none "
                "(the axis must never use the words it scores)"
            )

    seen_pairs: dict[tuple[str, str], int] = {}
    clusters: dict[str, list[str]] = {}
    for i, composition in enumerate(data["compositions"]):
        where = f"compositions.{i}"
        for role in ("operator", "seed"):
            if composition[role] not in primitives:
                problems.append(
                    f"{where}.{role}: {composition[role]!r} is not a primitive; expected one of {sorted(primitives)}"
                )
        pair = (composition["operator"], composition["seed"])
        if pair in seen_pairs:
            problems.append(f"{where}: {pair[0]} + {pair[1]} repeats compositions.{seen_pairs[pair]}")
        seen_pairs.setdefault(pair, i)
        if composition["target"] not in composition["cluster"]:
            problems.append(
                f"{where}.cluster: lacks the target {composition['target']!r}; "
                f"expected it among {composition['cluster']}"
            )
        shared = sorted(set(composition["cluster"]) & set(primitive_words))
        if shared:
            problems.append(f"{where}.cluster: holds primitive surface words {shared}; expected none")
        clusters[f"{where}.cluster"] = composition["cluster"]
    problems += _overlaps(clusters)

    controls = {f"primitives.{n}.controls": p["controls"] for n, p in primitives.items()}
    problems += _overlaps(controls)
    taken = {
        "lexicons": set(lexicons["phenomenological"]) | set(lexicons["abstract"]),
        "clusters": {w for c in data["compositions"] for w in c["cluster"]},
        "primitive surface words": set(primitive_words),
    }
    for key, words in controls.items():
        for what, others in taken.items():
            shared = sorted(set(words) & others)
            if shared:
                problems.append(f"{key}: {shared} are also {what}; expected control words outside the study")
    outside = sorted(set(lexicons["affective"]) - set(lexicons["phenomenological"]))
    if outside:
        problems.append(f"lexicons.affective: {outside} are not phenomenological words; expected a subset")
    n_sensory = len(set(lexicons["phenomenological"]) - set(lexicons["affective"]))
    if n_sensory < 5:
        problems.append(f"lexicons.affective: leaves {n_sensory} sensory words; expected at least 5")

    # A context holding an axis or cluster word would drag the primitive toward it.
    planted = taken["lexicons"] | taken["clusters"]
    for name, primitive in primitives.items():
        for i, template in enumerate(primitive["contexts"]):
            found = sorted(set(_LOWER_WORD.findall(_PLACEHOLDER.sub(" ", template).lower())) & planted)
            if found:
                problems.append(
                    f"primitives.{name}.contexts.{i}: {template!r} holds lexicon or cluster words "
                    f"{found}; expected none"
                )
    return problems


def parse_stimuli(data: Any, source: str = "stimuli") -> Stimuli:
    """Validate plain data (as loaded from YAML) and freeze it; :class:`ConfigError` lists every problem."""
    problems = validate_schema(data)
    if not problems:
        problems = check_references(data)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ConfigError(f"invalid primitive stimuli in {source} ({count}):\n{lines}")
    data = copy.deepcopy(data)
    return Stimuli(
        primitives=tuple(
            Primitive(name, p["set"], tuple(p["words"]), tuple(p["contexts"]), tuple(p["controls"]))
            for name, p in data["primitives"].items()
        ),
        compositions=tuple(
            Composition(c["operator"], c["seed"], c["target"], tuple(c["cluster"]), c.get("near_synonym", False))
            for c in data["compositions"]
        ),
        phenomenological=tuple(data["lexicons"]["phenomenological"]),
        abstract=tuple(data["lexicons"]["abstract"]),
        carriers=tuple(data["carriers"]),
        behaviour=BehaviourPrompts(**data["behaviour"]),
        affective=tuple(data["lexicons"]["affective"]),
    )


def load_stimuli(path: Path | str = DEFAULT_STIMULI_FILE) -> Stimuli:
    """Read, validate and freeze a stimuli YAML file (default: ``config/primitives.yaml``)."""
    path = Path(path)
    data = load_yaml(path, "stimuli file")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of primitives and compositions, got a {type(data).__name__}")
    return parse_stimuli(data, source=str(path))
