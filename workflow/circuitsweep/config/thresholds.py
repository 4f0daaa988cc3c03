"""The thresholds a config sets (docs/methods.md): those that classify heads and those that date milestones.

They are two classes so that each job receives only its own: a changed milestone
threshold reclassifies nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from circuitsweep.errors import ConfigError


@dataclass(frozen=True)
class Thresholds:
    """The classification thresholds of docs/methods.md (the milestone ones are :class:`MilestoneThresholds`).

    Only these reach the classification jobs, so a changed milestone threshold
    reclassifies nothing.
    """

    class_selectivity: float
    induction_circuit: float
    previous_circuit: float
    sink_alpha: float

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Thresholds:
        """Pick this class's fields out of a config ``thresholds`` mapping (which holds the milestone ones too)."""
        missing = [field.name for field in fields(cls) if field.name not in values]
        if missing:
            raise ConfigError(f"thresholds: no {', '.join(missing)}")
        return cls(**{field.name: values[field.name] for field in fields(cls)})


@dataclass(frozen=True)
class MilestoneThresholds:
    """The milestone thresholds of docs/methods.md; they act on emergence curves, never on head classes."""

    induction_onset_heads: int
    bos_fraction_milestone: float
    early_screen_recall: float
    #: a curve whose narrowest window holding 80% of its rise spans at most this token ratio is a phase transition
    phase_transition_factor: float

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MilestoneThresholds:
        """Pick this class's fields out of a config ``thresholds`` mapping (which holds the class ones too)."""
        return cls(**{field.name: values[field.name] for field in fields(cls)})
