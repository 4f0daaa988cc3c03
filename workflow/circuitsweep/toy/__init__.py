"""The toy suite: tiny GPT-NeoX / OLMo / OLMoE models trained on the CPU on
synthetic copy data, their checkpoints published as Hub-style revisions
(DESIGN.md section 6)."""

from circuitsweep.toy.data import synthetic_batch
from circuitsweep.toy.train import ToySpec, build_model, load_published, train_and_publish

__all__ = ["ToySpec", "build_model", "load_published", "synthetic_batch", "train_and_publish"]
