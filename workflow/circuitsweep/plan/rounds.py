"""The refinement rounds file: the revisions earlier rounds of ``circuitsweep refine`` added to the sweep.

The plan reads it (every model's swept revisions gain the added ones); the
refinement driver (:mod:`circuitsweep.milestones.refine`) writes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from circuitsweep.checkpoints.revisions import Revision, sort_revisions
from circuitsweep.errors import CacheError, ConfigError
from circuitsweep.io import contracts as C
from circuitsweep.io.atomic import atomic_write_text

ROUNDS_FORMAT = "circuitsweep.refine/1"


@dataclass(frozen=True)
class Added:
    """One revision a refinement round added, and the milestone whose bracket it split."""

    round: int
    model: str
    milestone: str
    revision: str


@dataclass(frozen=True)
class RefineSettings:
    """The ``refine`` block: which milestones to bracket and how many rounds may add revisions."""

    milestones: tuple[str, ...]
    max_rounds: int


def resolve_refine(config: Mapping[str, Any]) -> RefineSettings | None:
    """The refinement settings of a (schema-valid) config; None without a ``refine`` block.

    ``milestones`` defaults to all of ``contracts.REFINE_MILESTONES``, less
    ``causal`` when the ablation is off; asking for ``causal`` then is an error.
    """
    block = config.get("refine")
    if block is None:
        return None
    ablation = bool((config.get("ablation") or {}).get("enabled", False))
    if "milestones" in block:
        milestones = tuple(block["milestones"])
        if "causal" in milestones and not ablation:
            raise ConfigError("refine.milestones: causal needs the ablation (ablation: {enabled: true})")
    else:
        milestones = tuple(m for m in C.REFINE_MILESTONES if ablation or m != "causal")
    return RefineSettings(milestones, int(block.get("max_rounds", 6)))


def read_rounds(path: Path) -> list[Added]:
    """The revisions earlier rounds added (none when ``path`` does not exist)."""
    if not Path(path).exists():
        return []
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != ROUNDS_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {ROUNDS_FORMAT!r}")
        return [Added(int(a["round"]), str(a["model"]), str(a["milestone"]), str(a["revision"])) for a in data["added"]]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CacheError(f"{path} is not a refinement rounds file ({error}); delete it to start over") from None


def write_rounds(path: Path, added: Sequence[Added]) -> None:
    """Write the rounds file atomically."""
    text = json.dumps({"format": ROUNDS_FORMAT, "added": [asdict(a) for a in added]}, indent=1)
    atomic_write_text(path, text + "\n")


def with_added(
    model: str, swept: Sequence[Revision], available: Sequence[Revision], added: Sequence[Added], rounds: Path
) -> list[Revision]:
    """``swept`` plus the revisions the rounds added to ``model``, in training order.

    An added name the source no longer publishes is a :class:`ConfigError` naming the rounds file.
    """
    by_name = {r.name: r for r in available}
    names = {r.name for r in swept}
    out = list(swept)
    for entry in added:
        if entry.model != model or entry.revision in names:
            continue
        if entry.revision not in by_name:
            raise ConfigError(
                f"{rounds}: round {entry.round} added revision {entry.revision!r} of {model}, which its source "
                "no longer publishes; delete the file to refine afresh"
            )
        names.add(entry.revision)
        out.append(by_name[entry.revision])
    return sort_revisions(out)
