"""One short forward pass that checks a model can be measured before any probe runs.

Any transformers class may be configured, and not every class computes what
the engine assumes. On a dozen tokens this pass checks that

- the forward pass runs with the observed attention at all (a class whose
  attention soft-caps its logits, e.g. Gemma 2, cannot run through SDPA);
- circuitsweep's attention function saw every layer exactly once (a class
  that bypasses ``AttentionInterface`` is never seen, and one that calls it
  twice per layer would mix statistics);
- the in-context loss's LM head, with the final logit transform read from the
  config, reproduces the model's own logits (an unknown transform would
  silently change the loss).

Each failure is one :class:`UnsupportedModelError` naming the class and the reason.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

import torch
from transformers import PreTrainedModel

from circuitsweep.errors import UnsupportedModelError
from circuitsweep.heads.attention_hook import ScoreRows, observing, run_until_stop

#: Length of the verification sequence (tokens).
VERIFY_TOKENS = 12
#: Largest logit difference accepted, relative to the largest logit, per weight dtype.
LOGIT_TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 2e-2}


class _Head(Protocol):
    def logits(self, hidden: torch.Tensor) -> torch.Tensor: ...


class LayerCounter:
    """Counts how often each layer's attention reached the observed attention function."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()

    def observe(self, layer: int, scores: ScoreRows) -> None:
        self.counts[layer] += 1


def layer_problem(counts: Counter[int], n_layers: int) -> str | None:
    """What is wrong with per-layer observation counts, or None when every layer was seen exactly once."""
    missing = [layer for layer in range(n_layers) if counts[layer] == 0]
    if len(missing) == n_layers:
        return "its attention never reached circuitsweep's attention function"
    if missing:
        return f"circuitsweep's attention function never saw layers {missing} of {n_layers}"
    repeated = {layer: n for layer, n in sorted(counts.items()) if n != 1}
    if repeated:
        return f"layers were observed more than once per forward pass ({repeated} times)"
    return None


def verify_model(
    model: PreTrainedModel, head: _Head | None, token_range: tuple[int, int] | list[int], device: torch.device
) -> None:
    """Run the verification pass on ``model`` (loaded with the observed attention); raise on any problem.

    ``head``: the loss head whose logits must match the model's (None: no LM head).
    Token ids are drawn from ``token_range`` (``[low, high)``) with a fixed seed.
    """
    name = type(model).__name__
    n_layers = model.config.get_text_config().num_hidden_layers
    low, high = token_range
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(low, high, (1, VERIFY_TOKENS), generator=generator).to(device)
    counter = LayerCounter()
    outputs: list[torch.Tensor] = []
    handle = model.base_model.register_forward_hook(lambda module, args, output: outputs.append(output[0]))
    try:
        if head is not None:
            with torch.inference_mode(), observing(counter):
                result = model(input_ids=tokens, use_cache=False)
        else:  # nothing after the last attention is needed: stop there, as the probes do
            with torch.inference_mode(), observing(counter, stop_after=n_layers - 1):
                run_until_stop(lambda: model.base_model(input_ids=tokens, use_cache=False))
    except UnsupportedModelError as error:
        raise UnsupportedModelError(f"{name} cannot be measured: {error}") from None
    except Exception as error:  # noqa: BLE001 - any failure of a foreign class becomes one clear message
        first_line = (str(error).strip().splitlines() or [""])[0]
        raise UnsupportedModelError(
            f"{name} cannot be measured: its forward pass with circuitsweep's attention failed "
            f"({type(error).__name__}: {first_line})"
        ) from None
    finally:
        handle.remove()
    problem = layer_problem(counter.counts, n_layers)
    if problem:
        raise UnsupportedModelError(f"{name} cannot be measured: {problem}")
    if head is None:
        return
    expected = result.logits.float()
    with torch.inference_mode():
        got = head.logits(outputs[-1])
    scale = max(1.0, expected.abs().max().item())
    difference = (got - expected).abs().max().item()
    tolerance = LOGIT_TOLERANCE.get(model.dtype, 2e-2) * scale
    if difference > tolerance:
        raise UnsupportedModelError(
            f"{name} cannot be measured: the in-context loss's logits differ from the model's by up to "
            f"{difference:.3g} (tolerance {tolerance:.3g}): its final logit transform is not one circuitsweep applies"
        )
