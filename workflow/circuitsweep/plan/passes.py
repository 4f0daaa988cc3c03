"""What each job of a sweep runs through its model: tokens and forward batches of every pass; no torch.

The arithmetic of :mod:`circuitsweep.plan.costs` (which turns it into seconds) that
needs no plan: the per-revision measurement (:func:`revision_work`: head probes,
the participation ratio's rows, natural text, the ablation with its draws,
primitives), the final-revision ablation (:func:`final_ablation_tokens`, which
:meth:`circuitsweep.plan.sweep.Plan.final_ablation_tokens` reads) and the
primitive measurement counted from its stimuli file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

#: Characters of English text per token, to count the tokens of stimulus texts without a tokenizer.
CHARS_PER_TOKEN = 4
#: Corpus tokens the natural batch reads per token it keeps (documents without a usable repeat are skipped).
NATURAL_SCAN_FACTOR = 4
#: Heads ablated alone (induction class and screen) that the final-revision ablation's estimate allows for.
SINGLE_HEAD_ALLOWANCE = 16


@dataclass(frozen=True)
class Work:
    """What one job runs through its model: per pass its tokens (full forward passes) and forward batches.

    ``sampled``: tokens generated one step at a time (the behaviour's samples, ``sampling_steps`` steps of
    ``samples`` sequences each); ``spectral_rows``: rows of the participation ratio's SVDs
    (sequences x layers x heads, each ``[n, head_dim]``); ``scanned``: corpus tokens a natural batch reads.
    """

    head_probes: int = 0
    head_batches: int = 0
    natural_text: int = 0
    natural_batches: int = 0
    ablation: int = 0
    ablation_batches: int = 0
    final_ablation: int = 0
    final_batches: int = 0
    primitives: int = 0
    primitive_batches: int = 0
    sampled: int = 0
    sampling_steps: int = 0
    spectral_rows: int = 0
    scanned: int = 0

    def __add__(self, other: Work) -> Work:
        return Work(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def loads_model(self) -> bool:
        """Whether the job loads the model (every job but the natural batch's)."""
        return self.scanned == 0


def _batches(n: int, batch_size: int) -> int:
    return -(-int(n) // max(1, int(batch_size)))


def head_probe_tokens(probes: Mapping[str, Any]) -> int:
    """Tokens of one revision's head probes (``ProbeSettings.to_dict()``): n_sequences x seq_len, summed."""
    return sum(int(probes[k]["n_sequences"]) * int(probes[k]["seq_len"]) for k in ("induction", "repeated", "random"))


def natural_tokens(probes: Mapping[str, Any]) -> int:
    """Tokens of one revision's natural-text probe (0 when the run measures none)."""
    natural = probes.get("natural_text")
    return int(natural["n_examples"]) * int(natural["seq_len"]) if natural else 0


def _ablation_pass(probes: Mapping[str, Any], ablation: Mapping[str, Any]) -> tuple[int, int]:
    """Tokens and batches of one pass over the ablation probes: the induction probe's, and the natural one's
    when measured (each its first ``n_sequences`` when set)."""
    limit = ablation.get("n_sequences") or 10**12
    batch_size = int(ablation.get("batch_size", 16))
    sizes = [(min(limit, int(probes["induction"]["n_sequences"])), int(probes["induction"]["seq_len"]))]
    natural = probes.get("natural_text")
    if natural:
        sizes.append((min(limit, int(natural["n_examples"])), int(natural["seq_len"])))
    return sum(n * length for n, length in sizes), sum(_batches(n, batch_size) for n, _ in sizes)


def ablation_passes(ablation: Mapping[str, Any] | None) -> int:
    """Passes over the ablation probes of one revision (0 with the ablation off): none, the circuit,
    ``random_draws`` matched-random sets and at most ``max_single_heads`` single heads."""
    if not ablation:
        return 0
    return 2 + int(ablation.get("random_draws", 0)) + int(ablation.get("max_single_heads", 0))


def ablation_tokens(probes: Mapping[str, Any], ablation: Mapping[str, Any] | None) -> int:
    """Tokens one revision's ablation runs through the model (0 with the ablation off): every condition
    (:func:`ablation_passes`) over every ablation probe. ``ablation``: ``AblationSettings`` as a dict."""
    return ablation_passes(ablation) * _ablation_pass(probes, ablation or {})[0]


def final_ablation_passes(ablation: Mapping[str, Any] | None, spectral_top_k: Sequence[int]) -> int:
    """Passes of the final-revision ablation over its probes, at most: none, per K and for the screen the
    head set, its matched draws and full layers, and up to :data:`SINGLE_HEAD_ALLOWANCE` heads alone (the
    count is known only once classified)."""
    families = len(spectral_top_k) + 1
    return 1 + families * (int((ablation or {}).get("random_draws", 5)) + 2) + SINGLE_HEAD_ALLOWANCE


def final_ablation_tokens(
    probes: Mapping[str, Any], ablation: Mapping[str, Any] | None, spectral_top_k: Sequence[int]
) -> int:
    """Tokens the final-revision ablation runs through the model, at most: :func:`final_ablation_passes`
    over every ablation probe."""
    return final_ablation_passes(ablation, spectral_top_k) * _ablation_pass(probes, ablation or {})[0]


def final_ablation_job_work(
    probes: Mapping[str, Any], ablation: Mapping[str, Any] | None, spectral_top_k: Sequence[int]
) -> Work:
    """What a final-revision ablation job runs: its tokens and batches (:func:`final_ablation_tokens`)."""
    passes = final_ablation_passes(ablation, spectral_top_k)
    tokens, batches = _ablation_pass(probes, ablation or {})
    return Work(final_ablation=passes * tokens, final_batches=passes * batches)


@dataclass(frozen=True)
class StimuliCounts:
    """What a primitive measurement runs, from its stimuli file: texts and prompts, in characters."""

    text_chars: int
    texts: int
    primitives: int
    next_word_chars: int
    behaviour_prompts: int
    behaviour_chars: int


@cache
def stimuli_counts(path: Path) -> StimuliCounts:
    """:class:`StimuliCounts` of a stimuli file (read once per file)."""
    from circuitsweep.config.stimuli import fill, load_stimuli

    stimuli = load_stimuli(Path(path))
    texts = [item.text for primitive in stimuli.primitives for item in primitive.occurrences()]
    words = [*stimuli.phenomenological, *stimuli.abstract, *stimuli.cluster_words, *stimuli.control_words]
    words += [primitive.words[0] for primitive in stimuli.primitives]
    texts += [fill(template, word).text for word in words for template in stimuli.carriers]
    prompts = stimuli.behaviour
    primitive_prompts = [prompts.primitive_prompt.format(word=p.words[0]) for p in stimuli.primitives]
    composition_prompts = [
        prompts.composition_prompt.format(
            operator=stimuli.primitive(c.operator).words[0], seed=stimuli.primitive(c.seed).words[0]
        )
        for c in stimuli.compositions
    ]
    behaviour = primitive_prompts + composition_prompts
    return StimuliCounts(
        text_chars=sum(map(len, texts)),
        texts=len(texts),
        primitives=len(primitive_prompts),
        next_word_chars=sum(map(len, primitive_prompts)),
        behaviour_prompts=len(behaviour),
        behaviour_chars=sum(map(len, behaviour)),
    )


def _tokens(chars: int, texts: int) -> int:
    """Tokens of ``texts`` texts of ``chars`` characters in all (one more per text for a start token)."""
    return math.ceil(chars / CHARS_PER_TOKEN) + texts


def primitive_work(counts: StimuliCounts, primitives: Mapping[str, Any], generates: bool) -> Work:
    """One revision's primitive measurement: the stimulus texts (in batches of ``primitives.batch_size``);
    with ``generates`` (a model with a tokenizer and an LM head) one forward per next-word prompt and, with
    ``behaviour.enabled``, K samples of ``max_new_tokens`` per behaviour prompt."""
    tokens = _tokens(counts.text_chars, counts.texts)
    batches = _batches(counts.texts, int(primitives.get("batch_size", 32)))
    if not generates:
        return Work(primitives=tokens, primitive_batches=batches)
    tokens += _tokens(counts.next_word_chars, counts.primitives)
    batches += counts.primitives
    behaviour = primitives.get("behaviour") or {}
    if not behaviour.get("enabled"):
        return Work(primitives=tokens, primitive_batches=batches)
    prompts = counts.behaviour_prompts
    samples, new = int(behaviour.get("samples", 64)), int(behaviour.get("max_new_tokens", 24))
    tokens += samples * _tokens(counts.behaviour_chars, prompts)
    return Work(
        primitives=tokens,
        primitive_batches=batches + prompts,
        sampled=prompts * samples * new,
        sampling_steps=prompts * new,
    )


def revision_work(
    probes: Mapping[str, Any],
    ablation: Mapping[str, Any] | None,
    shape: Mapping[str, Any],
    primitives: Work | None = None,
) -> Work:
    """What one revision's measurement job runs: head probes (with the spectral rows), natural text,
    ablation, and ``primitives`` (:func:`primitive_work`) when the revision is selected for them."""
    spectral = min(int((probes.get("spectral") or {}).get("n_sequences", 500)), int(probes["induction"]["n_sequences"]))
    rows = spectral * int(shape.get("num_hidden_layers") or 0) * int(shape.get("num_attention_heads") or 0)
    batch_size = int(probes["batch_size"])
    natural = probes.get("natural_text")
    per_pass, per_pass_batches = _ablation_pass(probes, ablation or {})
    work = Work(
        head_probes=head_probe_tokens(probes),
        head_batches=sum(_batches(probes[k]["n_sequences"], batch_size) for k in ("induction", "repeated", "random")),
        natural_text=natural_tokens(probes),
        natural_batches=_batches(natural["n_examples"], batch_size) if natural else 0,
        ablation=ablation_passes(ablation) * per_pass,
        ablation_batches=ablation_passes(ablation) * per_pass_batches,
        spectral_rows=rows,
    )
    return work + primitives if primitives is not None else work
