"""The CPU constants of the cost model (``circuitsweep.plan.costs``) against a measurement on this machine.

Times the head measurement (``cs.measure_heads``: the observed attention, every
probe pass) of random-initialised GPT-NeoX models of a few depths and widths on
one thread, at several probe and batch sizes, and fits per model

    seconds = fixed seconds per forward batch x batches + seconds per token x tokens

by least squares. Prints per model the fitted fixed cost per layer and batch
and the throughput (2 x parameters per token / seconds per token), each beside
the constant the estimate uses and as a ratio to it (``measured / constant``):
a ratio below 1 for the fixed cost, or above 1 for the throughput, means the
estimate is conservative on this machine.

    python benchmarks/cost_model.py            # about a minute on one quiet core
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

import circuitsweep as cs
from circuitsweep.config.probes import ProbeSettings
from circuitsweep.heads.attention_hook import register
from circuitsweep.plan import costs, sizing

SEQ_LEN = 64
#: (sequences per probe, sequences per forward batch) of the timed runs.
RUNS = [(32, 2), (32, 8), (32, 32), (64, 4), (64, 16), (128, 8), (128, 64)]
VOCAB = 512


def model(layers: int, hidden: int, heads: int) -> GPTNeoXForCausalLM:
    """A random GPT-NeoX of the given shape, observed attention, eval mode."""
    config = GPTNeoXConfig(
        vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
        intermediate_size=4 * hidden, max_position_embeddings=4 * SEQ_LEN,
    )  # fmt: skip
    config._attn_implementation = register()
    return GPTNeoXForCausalLM(config).eval()


def probes(n_sequences: int, batch: int) -> ProbeSettings:
    """Three probes of ``n_sequences`` sequences of ``SEQ_LEN`` tokens, ``batch`` sequences per forward batch."""
    shape = {"n_sequences": n_sequences, "seq_len": SEQ_LEN}
    return cs.study_probes(token_range=[2, VOCAB], batch_size=batch, induction=shape, repeated=shape, random=shape)


def fit(m: GPTNeoXForCausalLM, runs: list[tuple[int, int]], repeats: int) -> tuple[float, float]:
    """(fixed seconds per batch, seconds per token) of ``cs.measure_heads`` on ``m``, fitted over ``runs`` of
    (sequences per probe, sequences per batch): batch sizes vary so that batches and tokens are not collinear."""
    batches, tokens, seconds = [], [], []
    cs.measure_heads(m, probes(*runs[0]))
    for n, batch in runs:
        settings = probes(n, batch)
        seconds.append(min(_timed(m, settings) for _ in range(repeats)))
        batches.append(3 * -(-n // batch))
        tokens.append(3 * n * SEQ_LEN)
    design = np.column_stack([batches, tokens]).astype(float)
    (per_batch, per_token), *_ = np.linalg.lstsq(design, np.array(seconds), rcond=None)
    return float(per_batch), float(per_token)


def _timed(m: GPTNeoXForCausalLM, settings: ProbeSettings) -> float:
    start = time.perf_counter()
    cs.measure_heads(m, settings)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timings per probe size (the fastest counts)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"constants: LAYER_BATCH_S {costs.LAYER_BATCH_S:g} s, CPU_FLOPS {costs.CPU_FLOPS:.1e} FLOP/s")
    for layers, hidden, heads in ((2, 128, 8), (8, 128, 8), (4, 512, 8)):
        m = model(layers, hidden, heads)
        shape = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
                 "intermediate_size": 4 * hidden, "vocab_size": VOCAB}  # fmt: skip
        per_batch, per_token = fit(m, RUNS, args.repeats)
        per_layer = per_batch / layers
        flops = 2.0 * sizing.model_params(shape) / per_token if per_token > 0 else float("inf")
        print(
            f"{layers} layers x hidden {hidden}: fixed {per_layer * 1e3:.2f} ms per layer and batch"
            f" (measured / constant {per_layer / costs.LAYER_BATCH_S:.2f}),"
            f" {flops:.2e} FLOP/s (measured / constant {flops / costs.CPU_FLOPS:.2f})"
        )


if __name__ == "__main__":
    main()
