"""Primitive measurements on small in-memory models: encoders, hidden states, toy pipeline, behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models import ARCHITECTURES, VOCAB, one_torch_thread, tiny_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from circuitsweep.config.stimuli import Stimuli, fill, load_stimuli
from circuitsweep.primitives import contract as K
from circuitsweep.primitives.behaviour import SamplingSettings, measure_behaviour, words
from circuitsweep.primitives.encoders import HashWordEncoder, TokenizerEncoder
from circuitsweep.primitives.extract import mean_word_states, word_states
from circuitsweep.primitives.measure import measure_primitives
from circuitsweep.primitives.scoring import ScoringSettings, score_primitives
from circuitsweep.primitives.tables import RevisionIdentity

FAST = ScoringSettings(n_folds=5, n_perm=500, lexicon_resamples=20, seed=0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def stimuli() -> Stimuli:
    return load_stimuli()


@pytest.fixture(scope="module")
def small(stimuli) -> Stimuli:
    return stimuli.subset(n_contexts=3, n_carriers=2)


def _texts(stimuli: Stimuli) -> list[str]:
    words_ = (*stimuli.phenomenological, *stimuli.abstract, *stimuli.cluster_words)
    return [o.text for p in stimuli.primitives for o in p.occurrences()] + [
        fill(c, w).text for c in stimuli.carriers for w in words_
    ]


@pytest.fixture(scope="module")
def bpe_tokenizer(stimuli) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (GPT-NeoX style: leading spaces inside tokens), trained on the stimuli."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_texts(stimuli), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


@pytest.fixture(scope="module")
def word_tokenizer(stimuli) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the stimuli's words, so a random model emits lexicon words often."""
    vocabulary = sorted(
        {*stimuli.phenomenological, *stimuli.abstract, *stimuli.cluster_words}
        | {w for p in stimuli.primitives for w in p.words}
        | {"+", "=", "the", "and", "a", "."}
    )
    vocab = {"[UNK]": 0, "[EOS]": 1, **{w: i + 2 for i, w in enumerate(vocabulary)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]")


def test_hash_encoder_is_deterministic_and_marks_the_word():
    """HashWordEncoder: same word -> same ids in range, case-insensitive, the span holds the word's ids."""
    encoder = HashWordEncoder(3, VOCAB, first_token_id=1)
    item = fill("{Word} called while you were out.", "someone")
    encoded = encoder.encode(item)
    assert encoded == HashWordEncoder(3, VOCAB, first_token_id=1).encode(item)
    assert encoded.ids[0] == 1 and all(3 <= i < VOCAB for i in encoded.ids[1:])
    assert encoded.ids[encoded.span[0] : encoded.span[1]] == encoder.word_ids("someone") == encoder.word_ids("Someone")
    assert encoder.encode(fill("I saw {word} there.", "someone")).span != encoded.span


def test_tokenizer_encoder_spans_cover_the_word(small, bpe_tokenizer):
    """With a byte-level BPE, every marked word's token span decodes to the word (leading space aside)."""
    encoder = TokenizerEncoder(bpe_tokenizer)
    for primitive in small.primitives:
        for item in primitive.occurrences():
            encoded = encoder.encode(item)
            span = bpe_tokenizer.decode(list(encoded.ids[encoded.span[0] : encoded.span[1]]))
            assert span.strip() == item.text[item.start : item.end], (item.text, span)


def test_word_states_do_not_depend_on_batching_or_padding(small, bpe_tokenizer):
    """A word's state is the same alone, in any batch, in any order (padding is masked), causal or encoder."""
    causal = tiny_model("GPTNeoXForCausalLM", "eager", vocab=len(bpe_tokenizer))
    encoder_model = tiny_model("BertModel", "eager", vocab=len(bpe_tokenizer))
    encoder = TokenizerEncoder(bpe_tokenizer)
    items = [o for p in small.primitives[:6] for o in p.occurrences()]
    for model in (causal, encoder_model):
        one = word_states(model, encoder, items, batch_size=1)
        many = word_states(model, encoder, items, batch_size=7)
        assert one.shape == (len(items), 3, 32)
        torch.testing.assert_close(one, many, atol=1e-5, rtol=1e-5)
        reversed_ = word_states(model, encoder, items[::-1], batch_size=5)
        torch.testing.assert_close(reversed_.flip(0), one, atol=1e-5, rtol=1e-5)
        grouped = mean_word_states(model, encoder, items, [i // 3 for i in range(len(items))], len(items) // 3)
        torch.testing.assert_close(grouped, one.reshape(-1, 3, 3, 32).mean(1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_toy_models_run_the_whole_pipeline(small, architecture):
    """A toy model (no tokenizer) with HashWordEncoder gives a full cache and tables, identically twice."""
    model = tiny_model(architecture, "eager")
    encoder = HashWordEncoder(3, VOCAB, first_token_id=1)
    cached = measure_primitives(model, encoder, small, batch_size=16)
    assert cached[K.STATES_PRIMITIVES].shape == (len(small.primitives), 3, 32)
    assert cached[K.STATES_CLUSTERS].shape == (len(small.cluster_words), 3, 32)
    assert cached[K.LAYERS].tolist() == [0, 1, 2]
    again = measure_primitives(model, encoder, small, batch_size=5)
    for name, tensor in cached.items():
        torch.testing.assert_close(again[name], tensor, atol=1e-5, rtol=1e-5)
    assert cached[K.STATES_CONTROLS].shape == (len(small.control_words), 3, 32)
    assert cached[K.STATES_PRIMITIVES_CARRIED].shape == (len(small.primitives), 3, 32)
    tables = score_primitives(cached, small, RevisionIdentity(architecture, "step0", 0), FAST)
    plain = tables.gaps.filter(tables.gaps["score_kind"] == K.REPRESENTATIONAL)
    assert plain["layer"].to_list() == ["0", "1", "2", "summary"]
    assert np.isfinite(tables.gaps["ci_low"].to_numpy()).all()


def test_selected_layers_are_recorded(small):
    """Measuring a subset of layers stores which ones, and the tables are labelled with them."""
    model = tiny_model("GPTNeoXForCausalLM", "eager")
    cached = measure_primitives(model, HashWordEncoder(3, VOCAB), small, layers=[1, 2])
    assert cached[K.LAYERS].tolist() == [1, 2]
    tables = score_primitives(cached, small, RevisionIdentity("toy", "main", None), FAST)
    assert tables.gaps.filter(tables.gaps["score_kind"] == K.REPRESENTATIONAL)["layer"].to_list() == [
        "1",
        "2",
        "summary",
    ]


def test_behaviour_is_deterministic_and_scored(small, word_tokenizer):
    """Seeded sampling repeats exactly, another seed differs, and the tables gain behavioural rows."""
    model = tiny_model("GPTNeoXForCausalLM", "eager", vocab=len(word_tokenizer))
    settings = SamplingSettings(samples=4, max_new_tokens=8, seed=11)
    first = measure_behaviour(model, word_tokenizer, small, settings)
    torch.manual_seed(12345)  # the global RNG state must not matter
    second = measure_behaviour(model, word_tokenizer, small, settings)
    assert first.continuations == second.continuations
    for name, tensor in first.tensors.items():
        assert torch.equal(tensor, second.tensors[name]), name
    other = measure_behaviour(model, word_tokenizer, small, SamplingSettings(samples=4, max_new_tokens=8, seed=12))
    assert other.continuations != first.continuations

    n_p, n_c = len(small.primitives), len(small.compositions)
    assert first.tensors[K.BEHAVIOUR_PHENOMENOLOGICAL].shape == (n_p, 4)
    assert first.tensors[K.BEHAVIOUR_COMPOSITION_CLUSTERS].shape == (n_c, 4, n_c)
    phen = set(small.phenomenological)
    expected = [sum(w in phen for w in words(t)) for t in first.continuations[small.primitives[0].name]]
    assert first.tensors[K.BEHAVIOUR_PHENOMENOLOGICAL][0].tolist() == expected
    assert int(first.tensors[K.BEHAVIOUR_PHENOMENOLOGICAL].sum()) > 0  # the test is not vacuous

    cached = measure_primitives(model, TokenizerEncoder(word_tokenizer), small) | first.tensors
    tables = score_primitives(cached, small, RevisionIdentity("random", "main", None), FAST)
    behavioural = tables.gaps.filter(tables.gaps["score_kind"] == K.BEHAVIOURAL)
    assert behavioural["layer"].to_list() == [K.SUMMARY]
    assert tables.compositions.filter(tables.compositions["score_kind"] == K.BEHAVIOURAL)["hits_any"].item() is not None
    scores = tables.scores.filter(tables.scores["score_kind"] == K.BEHAVIOURAL)["score"]
    assert scores.len() == n_p and scores.is_between(0.0, 1.0).all()
