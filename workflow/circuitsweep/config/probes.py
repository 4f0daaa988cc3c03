"""The probe settings of a run (docs/methods.md), as plain data.

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
class SpectralSettings:
    """The spectral phase (docs/methods.md): the participation ratio of each head's output at the query.

    n_sequences: the first n sequences of the induction probe (study 500), at most
    the probe's own count (a smaller probe uses all of its sequences).
    """

    n_sequences: int = 500


@dataclass(frozen=True)
class NaturalTextSettings:
    """The natural-text induction probe (docs/methods.md, natural-text variant).

    corpus: a folder or file of ``.txt`` / ``.jsonl`` / ``.parquet`` text (relative
    to the workflow folder), or ``hf:<name or path>`` for a Hugging Face dataset;
    tokenizer: the name of the batch, shared by every model that sets the same one;
    tokenizer_model: the model of the run whose tokenizer builds a shared batch (None:
    its first user's), the others read it as built (the study tokenized once with
    gpt-neox-20b's tokenizer for all five models); special_tokens: ``default`` adds
    what the tokenizer adds by default (the study's; none for gpt-neox-20b),
    ``none`` adds no special token.
    """

    corpus: str
    tokenizer: str
    text_field: str = "text"
    split: str = "train"
    n_examples: int = 2000
    seq_len: int = 256
    min_filler: int = 20
    min_first_position: int = 0
    min_token_id: int = 100
    n_baseline: int = 50
    baseline_seed: int = 0
    max_draws: int = 200
    special_tokens: str = "default"
    tokenizer_model: str | None = None

    def batch_dict(self) -> dict[str, Any]:
        """The settings that determine the batch (everything but the tokenizer's name)."""
        return {k: v for k, v in asdict(self).items() if k != "tokenizer"}


@dataclass(frozen=True)
class AblationSettings:
    """Causal ablation of the induction circuit (docs/methods.md), run-wide.

    random_draws: matched-random head sets drawn in sequence from one
    ``RandomState(random_seed)``; max_single_heads: each circuit head is also
    ablated alone when the circuit has at most this many heads.
    """

    random_draws: int = 5
    random_seed: int = 123
    max_single_heads: int = 8
    batch_size: int = 16
    #: score only the first n sequences of each probe (None: all of them)
    n_sequences: int | None = None


@dataclass(frozen=True)
class BootstrapSettings:
    """The bootstrap over probe sequences (``bootstrap:``, docs/methods.md), run-wide; resamples 0 is off."""

    resamples: int = 200
    seed: int = 0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BootstrapSettings:
        return cls(resamples=int(values["resamples"]), seed=int(values["seed"]))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class ProbeSettings:
    """The probes of one run (docs/methods.md), from the resolved ``probes`` config."""

    kind: str
    token_range: tuple[int, int]
    batch_size: int
    induction: InductionSettings
    repeated: BatchSettings
    random: BatchSettings
    natural_text: NaturalTextSettings | None = None
    #: how the induction probe and its baseline are built (``heads.probes.PROTOCOLS``)
    protocol: str = "xu2026"
    spectral: SpectralSettings = SpectralSettings()

    @property
    def spectral_sequences(self) -> int:
        """Induction-probe sequences the participation ratio is computed over: the first ``spectral.n_sequences``."""
        return min(self.spectral.n_sequences, self.induction.n_sequences)

    @classmethod
    def from_dict(cls, probes: dict[str, Any]) -> ProbeSettings:
        return cls(
            kind=probes["kind"],
            token_range=tuple(probes["token_range"]),
            batch_size=probes["batch_size"],
            induction=InductionSettings(**probes["induction"]),
            repeated=BatchSettings(**probes["repeated"]),
            random=BatchSettings(**probes["random"]),
            natural_text=NaturalTextSettings(**probes["natural_text"]) if probes.get("natural_text") else None,
            protocol=probes.get("protocol", "xu2026"),
            spectral=SpectralSettings(**probes.get("spectral", {})),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["token_range"] = list(self.token_range)
        if self.natural_text is None:
            del out["natural_text"]  # runs without natural text keep their settings (and caches) unchanged
        return out
