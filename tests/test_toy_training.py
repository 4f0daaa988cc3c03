"""The toy suite trainer: synthetic copy data, seeded training, published revisions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import snapshot_download

from circuitsweep.toy import ToySpec, load_published, synthetic_batch, train_and_publish
from circuitsweep.toy.train import branch_name

ARCHITECTURES = ("GPTNeoXForCausalLM", "OlmoForCausalLM", "OlmoeForCausalLM")


def micro(architecture: str = "GPTNeoXForCausalLM", **overrides) -> ToySpec:
    """A spec small enough to train a few steps in well under a second."""
    values = dict(
        architecture=architecture,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        intermediate_size=32,
        vocab_size=32,
        seq_len=32,
        batch=4,
        schedule=(0, 1, 3),
        span_min=3,
        span_max=6,
        n_spans=2,
    )
    values.update(overrides)
    return ToySpec(**values)


def copies(row: torch.Tensor, length: int = 6) -> list[tuple[int, int]]:
    """(source, destination) of every repeated n-gram of ``length`` in one row."""
    grams = {}
    found = []
    for start in range(1, len(row) - length + 1):
        key = tuple(row[start : start + length].tolist())
        if key in grams:
            found.append((grams[key], start))
        else:
            grams[key] = start
    return found


def test_batch_has_first_token_and_copies_at_random_offsets():
    """Position 0 holds the fixed token; most rows hold copied spans at varied source offsets and gaps, some none."""
    spec = ToySpec(architecture="GPTNeoXForCausalLM")
    batch = synthetic_batch(spec, torch.Generator().manual_seed(3))
    assert batch.shape == (spec.batch, spec.seq_len) and batch.dtype == torch.long
    assert (batch[:, 0] == spec.first_token_id).all()
    assert batch[:, 1:].min() >= 2 and batch.max() < spec.vocab_size
    found = [copies(row) for row in batch]
    with_copies = sum(bool(f) for f in found)
    assert spec.batch * 0.6 <= with_copies < spec.batch, "some rows must copy and some must not"
    pairs = [pair for f in found for pair in f]
    assert len({source for source, _ in pairs}) >= 20
    assert len({dest - source for source, dest in pairs}) >= 20


def test_chains_follow_the_permutation_and_the_first_id_is_ordinary_content():
    """With chains, most rows hold a stretch where each token is the fixed permutation of the token two before it
    (for at least chain_min - 2 positions in a row); with first_in_content the first token's id also occurs
    after position 0, while position 0 still holds it."""
    from circuitsweep.toy.data import chain_permutation

    spec = ToySpec(
        architecture="GPTNeoXForCausalLM", chain_spans=2, chain_min=8, chain_max=16, chain_fraction=1.0,
        first_in_content=True, copy_fraction=0.0,
    )  # fmt: skip
    batch = synthetic_batch(spec, torch.Generator().manual_seed(0))
    perm = chain_permutation(spec.first_token_id, spec.vocab_size, spec.chain_seed)
    assert (batch[:, 0] == spec.first_token_id).all()
    assert (batch[:, 1:] == spec.first_token_id).any()
    longest = []
    for row in batch.tolist():
        run = best = 0
        for t in range(2, len(row)):
            run = run + 1 if row[t] == perm[row[t - 2] - spec.first_token_id] else 0
            best = max(best, run)
        longest.append(best)
    assert sum(best >= spec.chain_min - 2 for best in longest) >= 0.9 * spec.batch
    plain = synthetic_batch(
        ToySpec(architecture="GPTNeoXForCausalLM", copy_fraction=0.0), torch.Generator().manual_seed(0)
    )
    assert plain[:, 1:].min() >= 2, "without first_in_content the first id is reserved"


def test_same_seed_same_batches():
    """A generator seeded alike yields the same batches; another seed does not."""
    spec = ToySpec(architecture="GPTNeoXForCausalLM", batch=8)
    first = [synthetic_batch(spec, g) for g in [torch.Generator().manual_seed(5)] * 3]
    again = [synthetic_batch(spec, g) for g in [torch.Generator().manual_seed(5)] * 3]
    other = synthetic_batch(spec, torch.Generator().manual_seed(6))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_same_seed_bit_identical_checkpoints(tmp_path, architecture):
    """Two runs of one spec publish byte-identical checkpoints (same commits); another seed gives other weights."""
    spec = micro(architecture)
    runs = [train_and_publish(spec, tmp_path / f"hub{i}", "toy/m", "step{step}", progress=False) for i in range(2)]
    assert [r["commit"] for r in runs[0]] == [r["commit"] for r in runs[1]]
    reseeded = train_and_publish(micro(architecture, seed=1), tmp_path / "hub2", "toy/m", "step{step}", progress=False)
    assert runs[0][-1]["commit"] != reseeded[-1]["commit"]
    assert len({r["commit"] for r in runs[0][:-1]}) == len(spec.schedule), "every checkpoint differs"


def test_published_revisions_load_offline(tmp_path):
    """Every branch (and main) resolves with snapshot_download(local_files_only) and holds a correct revision.json."""
    spec = micro("OlmoeForCausalLM")
    fmt = "step{step}-tokens{ktokens}K"
    published = train_and_publish(spec, tmp_path, "toy/olmoe", fmt, progress=False)
    expected = [branch_name(fmt, s, spec.tokens_per_step) for s in spec.schedule] + ["main"]
    assert [r["branch"] for r in published] == expected
    assert published[-1]["commit"] == published[-2]["commit"]
    for record in published:
        path = Path(
            snapshot_download("toy/olmoe", revision=record["branch"], cache_dir=tmp_path, local_files_only=True)
        )
        assert {"config.json", "model.safetensors", "revision.json"} <= {p.name for p in path.iterdir()}
        info = json.loads((path / "revision.json").read_text())
        assert info == {
            "step": record["step"],
            "tokens": record["step"] * spec.batch * spec.seq_len,
            "tokens_per_step": spec.batch * spec.seq_len,
            "seed": spec.seed,
        }
    model = load_published(tmp_path, "toy/olmoe", "main")
    assert type(model).__name__ == "OlmoeForCausalLM"
    assert model.config.num_hidden_layers == spec.num_layers


def test_spec_from_dict_round_trip_and_rejects_unknown_keys():
    """A config mapping round-trips through ToySpec; misspelt keys fail loudly; branch_format is tolerated."""
    spec = micro("OlmoForCausalLM", lr=3e-4)
    assert ToySpec.from_dict(spec.to_dict()) == spec
    assert ToySpec.from_dict({**spec.to_dict(), "branch_format": "step{step}"}) == spec
    with pytest.raises(ValueError, match="unknown toy keys"):
        ToySpec.from_dict({**spec.to_dict(), "learning_rate": 1e-3})
    with pytest.raises(ValueError, match="schedule"):
        micro(schedule=(5, 10))


def test_olmoe_spec_refuses_more_experts_per_token_than_experts():
    """An OLMoE toy routing each token to more experts than it has would stop its training job with torch's
    'selected index k out of range'; the spec refuses it when the config is read, naming both keys."""
    with pytest.raises(ValueError, match="experts_per_token 2 must be at least 1 and at most num_experts 1"):
        ToySpec.default("OlmoeForCausalLM", num_experts=1)
    with pytest.raises(ValueError, match="experts_per_token 0"):
        ToySpec.default("OlmoeForCausalLM", experts_per_token=0)
    assert ToySpec.default("OlmoeForCausalLM", num_experts=2, experts_per_token=2).num_experts == 2
