"""Behavioural score for generative models, comparable to the source study.

For each primitive, K short continuations of a prompt around the bare word are
sampled (inside the chat template when the tokenizer has one, see
:func:`circuitsweep.primitives.nextword.prompt_ids`); its score is the share of
phenomenological words among the phenomenological + abstract lexicon words in
them. A primitive whose continuations hold no lexicon word has no score (NaN,
flagged in the tables by its hit count 0), never the 0.5 the study used.
Composition prompts are sampled the same way and their continuations' words
are counted per cluster (see :mod:`circuitsweep.primitives.compositions`).

Words are lowercase runs of letters (``'`` and ``-`` inside a word kept),
matched against the lexicons by lemma (:func:`lemma`: a few English suffix
rules, so "tears", "laughing" and "sighed" count as "tear", "laugh", "sigh");
the prompt itself is never counted.
Sampling is seeded per prompt (from the run seed and the prompt text), so a
prompt's continuations do not depend on the other prompts, and runs on the CPU
with fixed seeds are identical. Needs an LM head and a tokenizer: toy models
have neither a tokenizer nor a behavioural score.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import GenerationConfig, PreTrainedModel

from circuitsweep.config.stimuli import Stimuli
from circuitsweep.primitives import contract as K
from circuitsweep.primitives.nextword import prompt_ids

_WORD = re.compile(r"[a-z]+(?:['-][a-z]+)*")


@dataclass(frozen=True)
class SamplingSettings:
    """How continuations are sampled: K = ``samples`` per prompt."""

    samples: int = 64
    max_new_tokens: int = 24
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class BehaviourSample:
    """Word counts as tensors (for the cache) and the continuations themselves (for inspection)."""

    tensors: dict[str, torch.Tensor]
    continuations: dict[str, list[str]] = field(default_factory=dict)


def words(text: str) -> list[str]:
    """The lowercase words of ``text``."""
    return _WORD.findall(text.lower())


_VOWELS = set("aeiou")


def lemma(word: str) -> str:
    """A crude lemma of a lowercase word: possessive, plural, -ing, -ed and -ly stripped, final e dropped.

    Both the lexicon and the replies go through it, so it only has to map a
    word's inflections onto one key, not to find the dictionary form:
    "tears" and "tear" -> "tear", "laughing"/"laughed" -> "laugh",
    "tired"/"tire" -> "tir", "cities"/"city" -> "city", "softly" -> "soft".
    Short words (4 letters or fewer) are left alone apart from the plural s.
    """
    w = word.removesuffix("'s")
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 4 and w.endswith(("sses", "shes", "ches", "xes")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ied"):
        w = w[:-3] + "y"
    elif len(w) > 4 and w.endswith("ed") or len(w) > 5 and w.endswith("ly"):
        w = w[:-2]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in _VOWELS and w[-1] not in "sl":
        w = w[:-1]  # stopping -> stopp -> stop
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def count_in(text: str, vocabulary: Iterable[str]) -> int:
    """How many words of ``text`` have the lemma of a word of ``vocabulary`` (every occurrence counts)."""
    lemmas = {lemma(w) for w in vocabulary}
    return sum(lemma(word) in lemmas for word in words(text))


def prompt_seed(seed: int, prompt: str) -> int:
    """The sampling seed of one prompt: sha256 of the run seed and the prompt text."""
    digest = hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**63)


@torch.inference_mode()
def sample_continuations(
    model: PreTrainedModel,
    tokenizer: Any,
    prompt: str,
    settings: SamplingSettings,
    *,
    device: torch.device | str | None = None,
) -> list[str]:
    """K sampled continuations of ``prompt`` (decoded, prompt excluded), deterministic for a fixed seed.

    The prompt goes inside the tokenizer's chat template when it has one.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    ids = torch.tensor([prompt_ids(tokenizer, prompt)], dtype=torch.long, device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = GenerationConfig(
        do_sample=True,
        max_new_tokens=settings.max_new_tokens,
        temperature=settings.temperature,
        top_k=settings.top_k,
        top_p=settings.top_p,
        num_return_sequences=settings.samples,
        pad_token_id=pad,
        eos_token_id=tokenizer.eos_token_id,
    )
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(prompt_seed(settings.seed, prompt))
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
    return tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)


def cluster_counts(texts: Sequence[str], stimuli: Stimuli) -> np.ndarray:
    """Words of each composition's cluster in each text: ``[len(texts), n_clusters]``."""
    clusters = [{lemma(w) for w in c.cluster} for c in stimuli.compositions]
    return np.array(
        [[sum(lemma(w) in cluster for w in words(text)) for cluster in clusters] for text in texts], dtype=np.int64
    )


def measure_behaviour(
    model: PreTrainedModel,
    tokenizer: Any,
    stimuli: Stimuli,
    settings: SamplingSettings = SamplingSettings(),
    *,
    device: torch.device | str | None = None,
) -> BehaviourSample:
    """Sample every primitive and composition prompt and count lexicon and cluster words.

    Tensors (names in :mod:`contract`): lexicon counts ``[P, K]``; cluster counts
    ``[C, K, C]`` for the composition prompts and for their bare seeds.
    """
    prompts = stimuli.behaviour
    continuations: dict[str, list[str]] = {}
    phen, abst = [], []
    for primitive in stimuli.primitives:
        texts = sample_continuations(
            model, tokenizer, prompts.primitive_prompt.format(word=primitive.words[0]), settings, device=device
        )
        continuations[primitive.name] = texts
        phen.append([count_in(t, stimuli.phenomenological) for t in texts])
        abst.append([count_in(t, stimuli.abstract) for t in texts])
    composition, seed_only = [], []
    for c in stimuli.compositions:
        prompt = prompts.composition_prompt.format(
            operator=stimuli.primitive(c.operator).words[0], seed=stimuli.primitive(c.seed).words[0]
        )
        texts = sample_continuations(model, tokenizer, prompt, settings, device=device)
        continuations[c.name] = texts
        composition.append(cluster_counts(texts, stimuli))
        seed_only.append(cluster_counts(continuations[c.seed], stimuli))
    tensors = {
        K.BEHAVIOUR_PHENOMENOLOGICAL: torch.tensor(phen, dtype=torch.int64),
        K.BEHAVIOUR_ABSTRACT: torch.tensor(abst, dtype=torch.int64),
        K.BEHAVIOUR_COMPOSITION_CLUSTERS: torch.from_numpy(np.stack(composition)),
        K.BEHAVIOUR_SEED_CLUSTERS: torch.from_numpy(np.stack(seed_only)),
    }
    return BehaviourSample(tensors, continuations)
