"""The probe settings of a run (DESIGN.md 3), as plain data.

Kept apart from :mod:`circuitsweep.heads.measure` so that validating a config and
planning a sweep import neither torch nor transformers: Snakemake parses the
workflow once per job on a cluster.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class BatchSettings:
    n_sequences: int
    seq_len: int
    seed: int


@dataclass(frozen=True)
class InductionSettings(BatchSettings):
    min_first_position: int
    n_baseline: int
    baseline_seed: int


@dataclass(frozen=True)
class ProbeSettings:
    """The probes of one run (DESIGN.md 3), from the resolved ``probes`` config."""

    kind: str
    token_range: tuple[int, int]
    batch_size: int
    induction: InductionSettings
    repeated: BatchSettings
    random: BatchSettings
    #: how the induction probe and its baseline are built (``heads.probes.PROTOCOLS``)
    protocol: str = "xu2026"

    @classmethod
    def from_dict(cls, probes: dict[str, Any]) -> ProbeSettings:
        return cls(
            kind=probes["kind"],
            token_range=tuple(probes["token_range"]),
            batch_size=probes["batch_size"],
            induction=InductionSettings(**probes["induction"]),
            repeated=BatchSettings(**probes["repeated"]),
            random=BatchSettings(**probes["random"]),
            protocol=probes.get("protocol", "xu2026"),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["token_range"] = list(self.token_range)
        return out
