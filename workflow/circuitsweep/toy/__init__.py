"""The toy suite: tiny GPT-NeoX / OLMo / OLMoE models trained on the CPU on
synthetic copy data, their checkpoints published as Hub-style revisions
(docs/methods.md).

Place in the data flow: a checkpoint source, after :mod:`circuitsweep.checkpoints`
(it publishes into a local Hub folder) and before the plan (which lists its
revisions). It may import :mod:`circuitsweep.checkpoints`, :mod:`circuitsweep.config`
and :mod:`circuitsweep.io`.

Names are imported on first use, so ``circuitsweep.toy.spec`` (the torch-free
spec the plan checks) does not load torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ToySpec", "build_model", "load_published", "synthetic_batch", "train_and_publish"]


def __getattr__(name: str) -> Any:
    if name == "ToySpec":
        from circuitsweep.toy.spec import ToySpec

        return ToySpec
    if name == "synthetic_batch":
        from circuitsweep.toy.data import synthetic_batch

        return synthetic_batch
    if name in ("build_model", "load_published", "train_and_publish"):
        from circuitsweep.toy import train

        return getattr(train, name)
    raise AttributeError(f"module 'circuitsweep.toy' has no attribute {name!r}")
