"""The probe settings of a run (DESIGN.md 3), as plain data.

Kept apart from :mod:`circuitsweep.heads.measure` so that validating a config and
planning a sweep import neither torch nor transformers: Snakemake parses the
workflow once per job on a cluster.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Offsets of the "local" target below the last query q: q-2 .. q-5.
LOCAL_OFFSETS: tuple[int, ...] = (2, 3, 4, 5)


def baseline_candidates(seq_len: int) -> list[int]:
    """Key positions the selectivity baseline may use in an induction probe of length ``seq_len``.

    ``[1, q)`` without the targets of the last query q = seq_len - 1: q - 1
    (previous) and q - 2 .. q - 5 (local); position 0 (first) and q (self) lie
    outside the range.
    """
    last = seq_len - 1
    excluded = {last - 1, *(last - k for k in LOCAL_OFFSETS)}
    return [i for i in range(1, last) if i not in excluded]


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

    @classmethod
    def from_dict(cls, probes: dict[str, Any]) -> ProbeSettings:
        return cls(
            kind=probes["kind"],
            token_range=tuple(probes["token_range"]),
            batch_size=probes["batch_size"],
            induction=InductionSettings(**probes["induction"]),
            repeated=BatchSettings(**probes["repeated"]),
            random=BatchSettings(**probes["random"]),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["token_range"] = list(self.token_range)
        return out
