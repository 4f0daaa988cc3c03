"""The logits a model predicts with: its LM head's output after the transform its config declares.

The loss-drop scores of the measurement and the ablation's outcomes both read
next-token predictions, so both apply the same transform (:class:`LogitTransform`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LogitTransform:
    """The final transform a model applies to its LM head's output, as its config declares it.

    logits = softcap * tanh(scale * raw / softcap) with ``softcap`` set
    (Gemma's ``final_logit_softcapping``), else scale * raw; ``scale`` is
    Cohere's ``logit_scale`` or 1 / Granite's ``logits_scaling``.
    """

    scale: float = 1.0
    softcap: float | None = None

    @classmethod
    def of(cls, config: object) -> LogitTransform:
        scale = 1.0
        logit_scale = getattr(config, "logit_scale", None)
        if isinstance(logit_scale, (int, float)):
            scale *= float(logit_scale)
        logits_scaling = getattr(config, "logits_scaling", None)
        if isinstance(logits_scaling, (int, float)) and logits_scaling:
            scale /= float(logits_scaling)
        softcap = getattr(config, "final_logit_softcapping", None)
        return cls(scale, float(softcap) if isinstance(softcap, (int, float)) and softcap else None)

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        if self.scale != 1.0:
            logits = logits * self.scale
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits
