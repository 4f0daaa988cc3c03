"""Per revision, the model side of the primitives: hidden-state summaries of the stimuli.

:func:`measure_primitives` returns tensors that are saved as a safetensors
shard (:func:`circuitsweep.io.stats.write_stats`);
:func:`circuitsweep.primitives.scoring.score_primitives` turns such a shard into
the tables without a model, so a change of scoring settings never reruns one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from circuitsweep.config.stimuli import Stimuli, WordInText, fill
from circuitsweep.primitives import contract as K
from circuitsweep.primitives.encoders import WordEncoder
from circuitsweep.primitives.extract import mean_word_states


def _fingerprint_tensor(stimuli: Stimuli) -> torch.Tensor:
    return torch.tensor(list(bytes.fromhex(stimuli.fingerprint())), dtype=torch.uint8)


def measure_primitives(
    model: PreTrainedModel,
    encoder: WordEncoder,
    stimuli: Stimuli,
    *,
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """Hidden-state summaries of one revision, keyed by the names in :mod:`contract`.

    Primitives: mean over their contexts ``[P, L, H]``; lexicon, cluster and
    control words, and each primitive's first word: mean over the carrier
    templates ``[W, L, H]``. One batched pass over all texts; ``layers``
    selects hidden-state layers (0 = embeddings, default all).
    """
    items: list[WordInText] = []
    groups: list[int] = []

    def add(occurrences: Sequence[WordInText]) -> None:
        group = groups[-1] + 1 if groups else 0
        items.extend(occurrences)
        groups.extend([group] * len(occurrences))

    for primitive in stimuli.primitives:
        add(primitive.occurrences())
    words = [
        *stimuli.phenomenological,
        *stimuli.abstract,
        *stimuli.cluster_words,
        *stimuli.control_words,
        *(p.words[0] for p in stimuli.primitives),
    ]
    for word in words:
        add([fill(template, word) for template in stimuli.carriers])
    n_groups = len(stimuli.primitives) + len(words)
    states = mean_word_states(
        model, encoder, items, groups, n_groups, layers=layers, batch_size=batch_size, device=device
    )
    sizes = [
        len(stimuli.primitives),
        len(stimuli.phenomenological),
        len(stimuli.abstract),
        len(stimuli.cluster_words),
        len(stimuli.control_words),
        len(stimuli.primitives),
    ]
    bounds = np.cumsum([0, *sizes])
    n_layers = states.shape[1]
    kept = torch.arange(n_layers) if layers is None else torch.tensor(list(layers), dtype=torch.int64)
    return {
        K.STATES_PRIMITIVES: states[: bounds[1]].contiguous(),
        K.STATES_PHENOMENOLOGICAL: states[bounds[1] : bounds[2]].contiguous(),
        K.STATES_ABSTRACT: states[bounds[2] : bounds[3]].contiguous(),
        K.STATES_CLUSTERS: states[bounds[3] : bounds[4]].contiguous(),
        K.STATES_CONTROLS: states[bounds[4] : bounds[5]].contiguous(),
        K.STATES_PRIMITIVES_CARRIED: states[bounds[5] :].contiguous(),
        K.LAYERS: kept.to(torch.int64),
        K.STIMULI_SHA256: _fingerprint_tensor(stimuli),
    }
