"""The next-word construct: the phenomenological share of a generative model's next-word distribution.

The source study scored what a bare primitive elicits: the share of
phenomenological words among the phenomenological + abstract words of the
model's replies. This is the same construct measured exactly instead of by
sampling, and without the model grading itself: after the prompt (the
primitive's behavioural prompt inside the chat template when the tokenizer has
one, the bare prompt otherwise), one forward pass gives the next-token
distribution q, and

    share = q(phenomenological first tokens) / (q(phen first tokens) + q(abstract first tokens)).

Lexicon words and their first tokens. Each word is tokenized in the forms a
reply can start with ("word", " word", "Word", " Word"; no special tokens) and
the *first token* of each form stands for it. So a multi-token word (say
"velvety" -> "vel", "vety") is represented by the probability of its first
piece, which also begins other words: its mass is an upper bound on the
word's. A first token that begins words of both lexicons is dropped from both
(it cannot say which side the reply goes to); tokens shared within one lexicon
count once. :class:`LexiconTokens` records how many words are whole tokens,
and the tables report the lexicon mass (q of both token sets), so a share
computed from a sliver of the distribution is visible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel

from circuitsweep.config.stimuli import Stimuli
from circuitsweep.primitives import contract as K


def word_forms(word: str) -> tuple[str, ...]:
    """The forms a reply can start a word with: as is, capitalised, each with and without a leading space."""
    capital = word[:1].upper() + word[1:]
    return tuple(dict.fromkeys((word, " " + word, capital, " " + capital)))


@dataclass(frozen=True)
class LexiconTokens:
    """First-token ids of each lexicon (disjoint), and how many words are a single token in some form."""

    phenomenological: tuple[int, ...]
    abstract: tuple[int, ...]
    dropped: tuple[int, ...]  # first tokens that begin words of both lexicons
    whole_words: int  # lexicon words that are one token in at least one form
    n_words: int


def lexicon_first_tokens(tokenizer: Any, phenomenological: Sequence[str], abstract: Sequence[str]) -> LexiconTokens:
    """First tokens of every form of every lexicon word, with the tokens both lexicons share removed."""

    def first_tokens(words: Sequence[str]) -> tuple[set[int], int]:
        ids: set[int] = set()
        whole = 0
        for word in words:
            pieces = [tokenizer.encode(form, add_special_tokens=False) for form in word_forms(word)]
            ids.update(p[0] for p in pieces if p)
            whole += any(len(p) == 1 for p in pieces)
        return ids, whole

    phen, whole_p = first_tokens(phenomenological)
    abst, whole_a = first_tokens(abstract)
    shared = phen & abst
    return LexiconTokens(
        tuple(sorted(phen - shared)),
        tuple(sorted(abst - shared)),
        tuple(sorted(shared)),
        whole_p + whole_a,
        len(phenomenological) + len(abstract),
    )


def has_chat_template(tokenizer: Any) -> bool:
    """Whether prompts go inside the tokenizer's chat template (else the bare prompt is used)."""
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of ``prompt`` as the model sees it: in the chat template (user turn, reply opened) if any."""
    if has_chat_template(tokenizer):
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # newer transformers may return a BatchEncoding
            ids = ids["input_ids"]
        return [int(i) for i in ids]
    return [int(i) for i in tokenizer(prompt)["input_ids"]]


@torch.inference_mode()
def next_token_distribution(
    model: PreTrainedModel, ids: Sequence[int], *, device: torch.device | str | None = None
) -> torch.Tensor:
    """The model's next-token distribution after ``ids``: ``[vocab]`` float64 on the CPU."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    batch = torch.tensor([list(ids)], dtype=torch.long, device=device)
    logits = model(input_ids=batch, attention_mask=torch.ones_like(batch)).logits[0, -1]
    return torch.softmax(logits.to(torch.float64), dim=-1).cpu()


def measure_next_word(
    model: PreTrainedModel, tokenizer: Any, stimuli: Stimuli, *, device: torch.device | str | None = None
) -> dict[str, torch.Tensor]:
    """Per primitive, the next-token mass on each lexicon's first tokens: two ``[P]`` float64 tensors.

    Also how many lexicon words are whole tokens, and whether the prompts were in a chat template.
    """
    tokens = lexicon_first_tokens(tokenizer, stimuli.phenomenological, stimuli.abstract)
    phen_ids = torch.tensor(tokens.phenomenological, dtype=torch.long)
    abst_ids = torch.tensor(tokens.abstract, dtype=torch.long)
    phen, abst = [], []
    for primitive in stimuli.primitives:
        prompt = stimuli.behaviour.primitive_prompt.format(word=primitive.words[0])
        q = next_token_distribution(model, prompt_ids(tokenizer, prompt), device=device)
        phen.append(float(q[phen_ids[phen_ids < q.numel()]].sum()))
        abst.append(float(q[abst_ids[abst_ids < q.numel()]].sum()))
    return {
        K.NEXTWORD_PHENOMENOLOGICAL: torch.tensor(phen, dtype=torch.float64),
        K.NEXTWORD_ABSTRACT: torch.tensor(abst, dtype=torch.float64),
        K.NEXTWORD_WHOLE_WORDS: torch.tensor([tokens.whole_words, tokens.n_words], dtype=torch.int64),
        K.PROMPT_CHAT_TEMPLATE: torch.tensor([int(has_chat_template(tokenizer))], dtype=torch.int64),
    }
