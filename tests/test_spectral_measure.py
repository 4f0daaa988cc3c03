"""The spectral phase's measurement: each head's participation ratio at the induction probe's query."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models import ARCHITECTURES, ENCODERS, one_torch_thread, small_probes, tiny_model

from circuitsweep.api import study_probes
from circuitsweep.heads.attention_hook import register
from circuitsweep.heads.measure import head_statistics
from circuitsweep.heads.participation import participation_ratio, projections
from circuitsweep.heads.probes import run_induction_probe
from circuitsweep.heads.scores import head_scores
from circuitsweep.io import contracts as C


def numpy_pr(x: np.ndarray) -> float:
    """DESIGN.md 3 item 6 written out in numpy (float64): the reference the torch version must meet."""
    s = np.linalg.svd(x.astype(np.float64), compute_uv=False)
    p = s**2 / max((s**2).sum(), 1e-12)
    return float(np.exp(-(p * np.log(p + 1e-12)).sum()))


def test_participation_ratio_matches_numpy_on_hand_built_matrices() -> None:
    """The PR of a rank-1 matrix is 1, of an orthogonal frame its rank, and of a random matrix the numpy value."""
    rank_one = np.outer(np.arange(1, 7), np.ones(4))
    frame = np.eye(6)[:, :3] * 5.0
    rng = np.random.default_rng(0)
    skewed = rng.normal(size=(20, 8)) * np.array([5, 3, 2, 1, 1, 0.5, 0.1, 0.01])
    for x, expected in ((rank_one, 1.0), (frame, 3.0), (skewed, None)):
        got = float(participation_ratio(torch.tensor(x, dtype=torch.float32)))
        assert got == pytest.approx(numpy_pr(x), rel=1e-5)
        if expected is not None:
            assert got == pytest.approx(expected, rel=1e-5)
    zero = float(participation_ratio(torch.zeros(5, 3)))
    assert zero == pytest.approx(numpy_pr(np.zeros((5, 3))))  # the floors keep an all-zero head finite
    batched = participation_ratio(torch.tensor(np.stack([rank_one, skewed[:6, :4]]), dtype=torch.float32))
    assert batched.shape == (2,)


def eager_pr(model: torch.nn.Module, tokens: torch.Tensor, n: int) -> np.ndarray:
    """PR per head, ``[L, H]``, from an eager model's output-projection inputs at the last position (the study's)."""
    heads = model.config.num_attention_heads
    captured: dict[int, torch.Tensor] = {}
    handles = [
        module.register_forward_pre_hook(lambda _m, args, layer=layer: captured.__setitem__(layer, args[0]))
        for layer, module in projections(model).items()
    ]
    try:
        with torch.no_grad():
            model(tokens[:n])
    finally:
        for handle in handles:
            handle.remove()
    out = np.zeros((len(captured), heads))
    for layer, x in captured.items():
        at = x[:, -1].view(n, heads, -1).numpy()
        for head in range(heads):
            out[layer, head] = numpy_pr(at[:, head])
    return out


@pytest.mark.parametrize("architecture", (*ARCHITECTURES, *ENCODERS))
def test_measured_pr_equals_eager_attention_hooked_at_the_output_projection(architecture: str) -> None:
    """The PR measured in the induction probe's own passes (observed SDPA, cut short at the last projection,
    batches straddling n) equals the PR of an eager model's projection inputs over the first n sequences
    (an encoder's projection, BERT's ``attention.output.dense``, included)."""
    probes = small_probes()
    with one_torch_thread():
        observed = tiny_model(architecture, register(), layers=3)
        stats = head_statistics(observed, probes, None, torch.device("cpu"), progress=False)
        eager = tiny_model(architecture, "eager", layers=3)
        tokens = run_induction_probe(probes, None).tokens
        expected = eager_pr(eager, tokens, 17)
    measured = stats[C.STAT_SPECTRAL_PR].numpy()
    assert measured.shape == (3, 4)
    np.testing.assert_allclose(measured, expected, rtol=1e-4)
    scores = head_scores(stats)
    np.testing.assert_allclose(scores["pr"].to_numpy().reshape(3, 4), measured, rtol=1e-6)


def test_spectral_sequences_are_capped_by_the_induction_probe() -> None:
    """A probe smaller than spectral.n_sequences uses all of its sequences (the count the cache records)."""
    probes = study_probes(induction={"n_sequences": 64})
    assert probes.spectral.n_sequences == 500
    assert probes.spectral_sequences == 64
    assert study_probes().spectral_sequences == 500


def test_caches_measured_without_the_spectral_phase_are_refused(tmp_path) -> None:
    """A score cache of the previous layout (no spectral settings, cache schema 2) does not belong to a run of
    this version: reading it says "delete it and rerun" instead of mixing a cache without PR into the ranking."""
    from circuitsweep.errors import CacheError
    from circuitsweep.io.cache_check import CACHE_SCHEMA_VERSION, SCHEMA_KEY, verify_metadata

    probes = study_probes().to_dict()
    old = {k: v for k, v in probes.items() if k != "spectral"}
    assert probes["spectral"] == {"n_sequences": 500} and CACHE_SCHEMA_VERSION >= 3
    with pytest.raises(CacheError, match="delete it and rerun"):
        verify_metadata(tmp_path / "heads.parquet", {"probes": old, SCHEMA_KEY: 2}, {"probes": probes})
    with pytest.raises(CacheError, match=f"{SCHEMA_KEY} is 2, expected {CACHE_SCHEMA_VERSION}"):
        verify_metadata(
            tmp_path / "heads.parquet", {"probes": probes, SCHEMA_KEY: 2}, {SCHEMA_KEY: CACHE_SCHEMA_VERSION}
        )


def test_job_size_counts_the_captured_rows() -> None:
    """The memory estimate holds the PR capture on the host: float32 [n, hidden] per layer."""
    from circuitsweep.plan.sizing import estimate_heads_memory

    model = {"hidden_size": 2048, "num_attention_heads": 16, "num_hidden_layers": 16, "vocab_size": 50304}
    estimate = estimate_heads_memory(study_probes().to_dict(), model, "float16")
    assert estimate.parts["spectral"] == 4 * 500 * 16 * 2048
    assert "spectral" in estimate.on_host().parts and "spectral" not in estimate.on_device().parts


def test_nan_weights_are_refused_in_one_line_before_the_svd() -> None:
    """A checkpoint with NaN weights is a DataError naming the head, not torch's LinAlgError from svdvals
    (a regression of round four, issue 32 case 10)."""
    from circuitsweep.errors import DataError

    probes = small_probes(batch_size=8, induction_sequences=8, spectral_sequences=8)
    with one_torch_thread():
        model = tiny_model("GPTNeoXForCausalLM", register(), layers=2)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(float("nan"))
        with pytest.raises(DataError, match=r"non-finite values .* at index \[0, 0\]"):
            head_statistics(model, probes, None, torch.device("cpu"), progress=False)
    with pytest.raises(DataError, match="non-finite"):
        participation_ratio(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
