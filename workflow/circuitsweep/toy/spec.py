"""What determines a toy model's checkpoints (:class:`ToySpec`) and its branch names.

No torch here: the plan checks a config's toy settings and branch format when
the DAG is built, not seconds into the training job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from circuitsweep.config.architectures import TOY_ARCHITECTURES

ARCHITECTURES = TOY_ARCHITECTURES

#: Per-architecture overrides of the ToySpec defaults, tuned so that induction
#: heads form mid-schedule within about 100-120 CPU seconds on one thread.
ARCHITECTURE_DEFAULTS: dict[str, dict[str, Any]] = {
    "GPTNeoXForCausalLM": {},
    "OlmoForCausalLM": {},
    # OLMoE RMS-normalises q and k over all heads together, which caps how sharp
    # a 16-dim head can attend; 4 heads of 32 dims form induction heads twice as early.
    "OlmoeForCausalLM": {
        "num_heads": 4,
        "intermediate_size": 64,
        "schedule": (0, 25, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500),
    },
}

#: Toy keys that only one architecture's model reads (any other class would train as if they were not set).
ARCHITECTURE_KEYS: dict[str, str] = {
    "rotary_fraction": "GPTNeoXForCausalLM",
    "num_experts": "OlmoeForCausalLM",
    "experts_per_token": "OlmoeForCausalLM",
}

#: Keys of a ``toy:`` config entry that the caller uses and ToySpec ignores.
CALLER_KEYS = frozenset({"branch_format"})


@dataclass(frozen=True)
class ToySpec:
    """Everything that determines a toy model's checkpoints.

    schedule: steps at which a checkpoint is published, ascending, starting at 0.
    n_spans, span_min, span_max, copy_fraction: the copied spans of the data.
    chain_spans, chain_min, chain_max, chain_fraction, chain_seed: the skip-bigram chains
    of the data (``toy.data``; 0 chains: none); first_in_content: the first token's id is
    also an ordinary token (layer 0 cannot then single out position 0 by its id).
    weight_decay: AdamW's (decoupled) weight decay.
    rotary_fraction: share of each head's dims that get rotary (GPT-NeoX only).
    num_experts, experts_per_token: the MoE layers (OLMoE only).
    """

    architecture: str
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 8
    intermediate_size: int = 128
    vocab_size: int = 64
    seq_len: int = 64
    batch: int = 64
    lr: float = 2e-3
    warmup_steps: int = 50
    schedule: tuple[int, ...] = (0, 25, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600)
    seed: int = 0
    first_token_id: int = 1
    n_spans: int = 5
    span_min: int = 6
    span_max: int = 16
    copy_fraction: float = 0.9
    chain_spans: int = 0
    chain_min: int = 8
    chain_max: int = 20
    chain_fraction: float = 0.8
    chain_seed: int = 12345
    first_in_content: bool = False
    weight_decay: float = 0.01
    rotary_fraction: float = 1.0
    num_experts: int = 4
    experts_per_token: int = 2

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"toy architecture {self.architecture!r} is not one of {ARCHITECTURES}")
        steps = tuple(int(s) for s in self.schedule)
        if not steps or steps[0] != 0 or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError(f"toy schedule must start at 0 and increase strictly, got {self.schedule}")
        object.__setattr__(self, "schedule", steps)
        if not 0 <= self.first_token_id < self.vocab_size:
            raise ValueError(f"first_token_id {self.first_token_id} is outside the vocabulary")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")
        if self.span_min > self.span_max:
            raise ValueError(f"span lengths {self.span_min}..{self.span_max} must satisfy span_min <= span_max")
        if self.n_spans and self.copy_fraction and 1 + 2 * self.span_min > self.seq_len:
            raise ValueError(
                f"span_min {self.span_min} leaves no room for a copy: a span and its copy after the first token"
                f" need 1 + 2 x span_min <= seq_len {self.seq_len}"
            )
        if self.architecture == "OlmoeForCausalLM" and not 1 <= self.experts_per_token <= self.num_experts:
            raise ValueError(
                f"experts_per_token {self.experts_per_token} must be at least 1 and at most num_experts"
                f" {self.num_experts}: each token is routed to that many of the experts"
            )
        if self.chain_spans and not 3 <= self.chain_min <= self.chain_max < self.seq_len:
            raise ValueError(
                f"chain lengths {self.chain_min}..{self.chain_max} must satisfy 3 <= chain_min <= chain_max < seq_len"
            )

    @property
    def tokens_per_step(self) -> int:
        """Training tokens per optimizer step: batch x seq_len."""
        return self.batch * self.seq_len

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ToySpec:
        """Build from a config mapping (the model's ``toy:`` entry plus ``architecture``).

        Missing keys take the architecture's tuned defaults; unknown keys are an error.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names - CALLER_KEYS
        if unknown:
            raise ValueError(f"unknown toy keys {sorted(unknown)}; known: {sorted(names)}")
        values = {k: v for k, v in d.items() if k in names}
        if "schedule" in values:
            values["schedule"] = tuple(values["schedule"])
        if "architecture" not in values:
            raise ValueError("toy settings need an architecture")
        return cls.default(values.pop("architecture"), **values)

    @classmethod
    def of_model(cls, architecture: str, toy: Mapping[str, Any] | None) -> ToySpec:
        """The spec of a model entry: its ``architecture`` and its ``toy:`` settings (None: the defaults)."""
        return cls.from_dict({"architecture": architecture, **(toy or {})})

    @classmethod
    def default(cls, architecture: str, **overrides: Any) -> ToySpec:
        """The tuned default spec of ``architecture`` (see ``ARCHITECTURE_DEFAULTS``), with ``overrides``."""
        if architecture not in ARCHITECTURE_DEFAULTS:
            raise ValueError(f"toy architecture {architecture!r} is not one of {ARCHITECTURES}")
        return cls(architecture=architecture, **{**ARCHITECTURE_DEFAULTS[architecture], **overrides})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping; ``ToySpec.from_dict(spec.to_dict()) == spec``."""
        d = dataclasses.asdict(self)
        d["schedule"] = list(self.schedule)
        return d


def branch_name(branch_format: str, step: int, tokens_per_step: int) -> str:
    """Format a branch name; fields ``step``, ``tokens`` and ``ktokens`` (= round(tokens / 1000))."""
    tokens = step * tokens_per_step
    return branch_format.format(step=step, tokens=tokens, ktokens=round(tokens / 1000))
