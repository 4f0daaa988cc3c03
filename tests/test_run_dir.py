"""A researcher's own training run (``source: {type: run_dir}``): folders, steps, fingerprints, reruns."""

from __future__ import annotations

import json
import logging
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from runenv import job_env, job_logs, run_paths

from circuitsweep.checkpoints.run_dir import duplicate_groups, formats_back, list_checkpoints, pattern_regex
from circuitsweep.checkpoints.snapshots import fetch_snapshot
from circuitsweep.errors import ConfigError, SnapshotError
from circuitsweep.heads import jobs as heads_jobs
from circuitsweep.io.contracts import Paths
from circuitsweep.plan.sweep import plan_sweep

REPO = Path(__file__).resolve().parents[1]
PER_STEP = 2048


#: The config.json of a fake checkpoint: the keys planning sizes a job from.
FAKE_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16,
               "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 32}  # fmt: skip


def _safetensors(payload: bytes) -> bytes:
    """A complete safetensors file holding ``payload`` as one uint8 tensor (planning reads headers, never weights)."""
    header = json.dumps({"w": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}}).encode()
    return struct.pack("<Q", len(header)) + header + payload


def _fake_checkpoint(folder: Path, weights: bytes) -> None:
    """A checkpoint folder as HF Trainer writes one; the bytes stand in for the weights (planning never loads)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(FAKE_CONFIG))
    (folder / "model.safetensors").write_bytes(_safetensors(weights))
    (folder / "optimizer.pt").write_bytes(b"training state, not weights")


#: Probes every checkpoint here holds (planning refuses ids past a config.json's vocab_size, a probe past its context).
SMALL_PROBES = {"token_range": [3, 32], "batch_size": 4,
                "induction": {"n_sequences": 4, "seq_len": 48, "n_baseline": 10},
                "repeated": {"n_sequences": 4, "seq_len": 32}, "random": {"n_sequences": 4, "seq_len": 16}}  # fmt: skip


def _config(run: Path, **source) -> dict:
    return {
        "probes": SMALL_PROBES,
        "primitives": {"enabled": False},
        "models": {
            "my-run": {
                "architecture": "LlamaForCausalLM",
                "source": {"type": "run_dir", "path": str(run), **source},
                "revisions": "all",
                "tokens": {"per_step": PER_STEP},
            }
        },
    }


def test_patterns_match_only_names_they_format():
    """``{step}``, ``step{step}`` and ``iter_{step:07d}`` folders are found by step; near misses are not."""
    assert pattern_regex("checkpoint-{step}").fullmatch("checkpoint-120").group(1) == "120"
    for bad in ("checkpoint", "{step}-{step}", "run-{name}", "ck-{step:s}", "ck-{step"):
        with pytest.raises(ConfigError, match="pattern"):
            pattern_regex(bad)


def test_folders_become_revisions_in_step_order(tmp_path):
    """Matching folders are listed by step; other folders are ignored; names with fewer digits than the pattern
    pads to, or that do not parse, and files named as checkpoints are returned as skipped when they share the
    pattern's fixed text."""
    for name in ("iter_0001000", "iter_0000020", "iter_20", "iter_0000020x", "logs"):
        (tmp_path / name).mkdir()
    (tmp_path / "iter_0000300").write_text("a file, not a checkpoint")
    skipped: list[str] = []
    assert list_checkpoints(tmp_path, "iter_{step:07d}", skipped) == [("iter_0000020", 20), ("iter_0001000", 1000)]
    assert skipped == ["iter_0000020x", "iter_0000300", "iter_20"]
    shutil.rmtree(tmp_path / "iter_0000020")
    assert list_checkpoints(tmp_path, "iter_{step}") == [("iter_20", 20), ("iter_0001000", 1000)]


def test_a_step_in_other_digits_than_ascii_is_no_checkpoint(tmp_path):
    """Issue: `checkpoint-٣` (an Arabic-Indic three) was taken for step 3, though `checkpoint-{step}` formats 3
    as `checkpoint-3`. A folder is a checkpoint only when the pattern formats its step back to its name (or to
    its name less leading zeros); any other name that shares the pattern's fixed text is skipped and noted."""
    for name in ("checkpoint-\u0663", "checkpoint-\uff17", "checkpoint-5", "checkpoint-007"):
        (tmp_path / name).mkdir()
    skipped: list[str] = []
    assert list_checkpoints(tmp_path, "checkpoint-{step}", skipped) == [("checkpoint-5", 5), ("checkpoint-007", 7)]
    assert skipped == ["checkpoint-\u0663", "checkpoint-\uff17"]
    assert pattern_regex("ck-{step:07d}").fullmatch("ck-\u0663\u0663\u0663\u0663\u0663\u0663\u0663") is None
    assert formats_back("ck-0000300", "ck-{step:07d}", 300)
    assert formats_back("ck-00000300", "ck-{step:07d}", 300)
    assert not formats_back("ck-300", "ck-{step:07d}", 300)
    assert not formats_back("ck-0000300", "ck-{step:7d}", 300)  # that pattern writes `ck-    300`


def test_a_checkpoint_that_is_no_folder_is_refused_or_noted(tmp_path):
    """A checkpoint-N that is a link to a missing folder (a scratch disk not mounted) or a plain file was left
    out without a word, so the run's last checkpoint could vanish from the milestones: the link is refused,
    naming it and where it points; the file is noted with the skipped names."""
    run = tmp_path / "run"
    (run / "checkpoint-100").mkdir(parents=True)
    (run / "checkpoint-500").symlink_to(tmp_path / "scratch" / "checkpoint-500")
    with pytest.raises(ConfigError, match=r"checkpoint checkpoint-500 of .*run is a link to .*scratch/checkpoint-500, "
                       r"which does not exist"):  # fmt: skip
        list_checkpoints(run, "checkpoint-{step}")
    (run / "checkpoint-500").unlink()
    (run / "checkpoint-500").write_text("")
    (run / "notes.txt").write_text("")
    skipped: list[str] = []
    assert list_checkpoints(run, "checkpoint-{step}", skipped) == [("checkpoint-100", 100)]
    assert skipped == ["checkpoint-500"]


def test_checkpoints_of_another_shape_are_refused_at_planning(tmp_path):
    """Heads are followed by (layer, head) across checkpoints: a run folder reused after the model's size changed
    was measured in full, then failed the spectral ranking with a line naming neither checkpoint nor cause.
    Planning now names the checkpoint whose config.json gives another layers x heads."""
    run = tmp_path / "run"
    _fake_checkpoint(run / "checkpoint-0", b"weights 0")
    _fake_checkpoint(run / "checkpoint-100", b"weights 100")
    (run / "checkpoint-100" / "config.json").write_text(json.dumps({**FAKE_CONFIG, "num_hidden_layers": 3}))
    with pytest.raises(ConfigError) as info:
        plan_sweep(_config(run), REPO)
    assert (
        f"models.my-run.source: {run / 'checkpoint-100' / 'config.json'} has 3 layers x 2 heads, checkpoint-0 has "
        "1 x 2: one model's checkpoints must share one shape" in str(info.value)
    ), info.value


def test_zero_padded_folders_are_their_step_and_unparsed_ones_are_noted(tmp_path, caplog):
    """Issue: `checkpoint-01300` and `checkpoint-best` beside the checkpoints were dropped without a word. A
    zero-padded name is its step; one that collides with another folder's step is refused naming both; the names
    that do not parse are noted once, in one line, when the sweep is planned."""
    run = tmp_path / "run"
    for step in ("0", "01300", "best"):
        _fake_checkpoint(run / f"checkpoint-{step}", f"weights {step}".encode())
    (run / "runs").mkdir()  # HF Trainer's TensorBoard logs: no checkpoint, not noted
    with caplog.at_level(logging.WARNING, logger="circuitsweep"):
        plan = plan_sweep(_config(run), REPO)
    assert [(r.name, r.step) for r in plan.revisions["my-run"]] == [("checkpoint-0", 0), ("checkpoint-01300", 1300)]
    notes = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    named = "that is no checkpoint folder named checkpoint-<step>"
    assert notes == [f"my-run: skipped 1 entry of {run} {named}: checkpoint-best"]
    _fake_checkpoint(run / "checkpoint-1300", b"weights 1300")
    with pytest.raises(
        ConfigError,
        match=r"models\.my-run\.source: checkpoint folders checkpoint-1300 and checkpoint-01300 of .*run both hold "
        r"step 1300: remove or rename one",
    ):
        plan_sweep(_config(run), REPO)


def test_measured_revisions_whose_folders_are_gone_are_named(tmp_path, caplog):
    """Issue: HF Trainer's save_total_limit deletes old checkpoints as it trains; on the rerun their measured
    revisions left every table without a word, their caches still on disk. Planning names them per model, with
    where the caches stay; a cache folder the pattern does not take, or with no head cache, is not named."""
    run, results = tmp_path / "run", Paths(tmp_path / "results")
    for step in (0, 100, 200, 300):
        _fake_checkpoint(run / f"checkpoint-{step}", f"weights {step}".encode())
    for name in ("checkpoint-100", "checkpoint-200", "checkpoint-300", "checkpoint-best", "main"):
        results.head_scores("my-run", name).parent.mkdir(parents=True)
        results.head_scores("my-run", name).write_bytes(b"a head cache")
    results.revision_cache("my-run", "checkpoint-400").mkdir()  # no head cache: never measured

    def notes():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="circuitsweep"):
            plan = plan_sweep(_config(run), REPO, results)
        return [r.getMessage() for r in caplog.records if "no longer in" in r.getMessage()], plan

    assert notes()[0] == []
    shutil.rmtree(run / "checkpoint-200")
    found, plan = notes()
    assert [r.name for r in plan.revisions["my-run"]] == ["checkpoint-0", "checkpoint-100", "checkpoint-300"]
    assert found == [
        f"my-run: 1 measured revision is no longer in {run} (checkpoint-200): it is left out of the tables; "
        f"its cache stays in {results.revision_cache('my-run', 'checkpoint-200')} (restore the folder to bring it back)"
    ]
    shutil.rmtree(run / "checkpoint-300")
    shutil.rmtree(run / "checkpoint-100")
    assert notes()[0] == [
        f"my-run: 3 measured revisions are no longer in {run} (checkpoint-100, checkpoint-200, checkpoint-300): "
        f"they are left out of the tables; their caches stay in {results.root / 'cache' / 'my-run'} "
        "(restore the folders to bring them back)"
    ]


def test_plan_reads_steps_tokens_and_fingerprints(tmp_path):
    """Revisions are the folders with tokens = step x per_step; each measuring job's params carry its folder's
    weights fingerprint, which changes when the weights are overwritten; identical folders are flagged."""
    run = tmp_path / "run"
    _fake_checkpoint(run / "checkpoint-500", b"weights at 500")
    _fake_checkpoint(run / "checkpoint-1000", b"weights at 1000")
    paths_root = tmp_path / "results"

    plan = plan_sweep(_config(run), REPO, Paths(paths_root))
    revisions = plan.revisions["my-run"]
    assert [(r.name, r.step, r.tokens) for r in revisions] == [
        ("checkpoint-500", 500, 500 * PER_STEP),
        ("checkpoint-1000", 1000, 1000 * PER_STEP),
    ]
    before = heads_jobs.measure_settings(plan, "my-run", "checkpoint-500")["weights_sha256"]
    (run / "checkpoint-500" / "model.safetensors").write_bytes(_safetensors(b"overwritten weights at 500"))
    (run / "checkpoint-500" / "optimizer.pt").write_bytes(b"other training state")
    replanned = plan_sweep(_config(run), REPO, Paths(paths_root))
    after = heads_jobs.measure_settings(replanned, "my-run", "checkpoint-500")["weights_sha256"]
    assert after != before
    assert heads_jobs.measure_settings(replanned, "my-run", "checkpoint-1000") == heads_jobs.measure_settings(
        plan, "my-run", "checkpoint-1000"
    )
    shutil.copytree(run / "checkpoint-1000", run / "checkpoint-1500")
    prints = plan_sweep(_config(run), REPO, Paths(paths_root)).fingerprints["my-run"]
    assert duplicate_groups(prints) == [["checkpoint-1000", "checkpoint-1500"]]


def test_the_note_of_identical_folders_says_what_duplicates_does_with_them(tmp_path, caplog):
    """Folders with identical weights are noted when the sweep is planned: under `duplicates: mark` the later ones
    are marked duplicate_of the first; under `skip` they are measured but left out of the curves and milestones
    (they get no duplicate_of, having no row in the emergence table)."""
    run = tmp_path / "run"
    _fake_checkpoint(run / "checkpoint-500", b"weights at 500")
    shutil.copytree(run / "checkpoint-500", run / "checkpoint-1000")
    notes = {}
    for policy in ("mark", "skip"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="circuitsweep"):
            plan_sweep({**_config(run), "duplicates": policy}, REPO)
        (notes[policy],) = [r.getMessage() for r in caplog.records if "identical weights" in r.getMessage()]
    assert notes["mark"].endswith("later ones are marked duplicate_of checkpoint-500")
    assert "duplicate_of" not in notes["skip"]
    assert notes["skip"].endswith("measured but left out of the emergence curves and milestones (duplicates: skip)")


def test_bad_run_dir_sources_are_named(tmp_path):
    """A missing folder, a file, no match (saying what the folder holds, and where it is itself a checkpoint folder,
    which folder to give), a bad pattern or tokens from names each fail naming the key."""
    with pytest.raises(ConfigError, match=r"source\.path .*missing does not exist \(a training run's output folder\)"):
        plan_sweep(_config(tmp_path / "missing"), REPO)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match=r"source\.path .*a-file is not a folder"):
        plan_sweep(_config(tmp_path / "a-file"), REPO)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"models\.my-run\.source: no folder of .*empty matches the pattern"):
        plan_sweep(_config(tmp_path / "empty"), REPO)
    with pytest.raises(ConfigError, match=r"models\.my-run\.source\.pattern 'ckpt' must hold exactly one \{step\}"):
        plan_sweep(_config(tmp_path / "empty", pattern="ckpt"), REPO)
    run = tmp_path / "run"
    (run / "checkpoint-100").mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (run / "checkpoint-100" / name).write_text("{}")
    with pytest.raises(ConfigError) as info:  # path: one checkpoint folder, not the run's output folder
        plan_sweep(_config(run / "checkpoint-100"), REPO)
    assert str(info.value).endswith(
        "matches the pattern 'checkpoint-{step}' (it holds config.json, model.safetensors; checkpoint-100 is itself "
        f"a checkpoint: give source.path as the run's output folder, {run})"
    ), info.value
    config = _config(tmp_path / "empty")
    config["models"]["my-run"]["tokens"] = {"from_name": True}
    with pytest.raises(ConfigError, match=r"models\.my-run\.tokens: a run_dir source needs per_step"):
        plan_sweep(config, REPO)


def test_a_home_relative_path_is_expanded_and_a_blank_one_refused(tmp_path, monkeypatch):
    """Issue: `path: ~/qrun` was read as `<repository>/~/qrun` ("is not a folder"), and `path: ""` silently swept
    the repository root. `~` is the home folder, as a shell reads it; a blank path is refused naming the key."""
    monkeypatch.setenv("HOME", str(tmp_path))
    _fake_checkpoint(tmp_path / "qrun" / "checkpoint-5", b"weights")
    plan = plan_sweep(_config(Path("~/qrun")), REPO)
    assert plan.models["my-run"].source["path"] == str(tmp_path / "qrun")
    assert [r.name for r in plan.revisions["my-run"]] == ["checkpoint-5"]
    for blank in ("", "  "):
        with pytest.raises(ConfigError, match=rf"models\.my-run\.source\.path: {blank!r} is not a folder path"):
            plan_sweep(_config(Path("x"), path=blank), REPO)


@pytest.fixture(scope="module")
def saved_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A tiny GPT-NeoX saved by save_pretrained, whole and in shards, and torch.save's pickle of its weights."""
    import torch

    from circuitsweep.toy.spec import ToySpec
    from circuitsweep.toy.train import build_model

    root = tmp_path_factory.mktemp("saved")
    model = build_model(ToySpec.default("GPTNeoXForCausalLM"))
    model.save_pretrained(root / "single")
    model.save_pretrained(root / "sharded", max_shard_size="100KB")
    (root / "pickled").mkdir()
    shutil.copy(root / "single" / "config.json", root / "pickled" / "config.json")
    torch.save(model.state_dict(), root / "pickled" / "pytorch_model.bin")
    return {"single": root / "single", "sharded": root / "sharded", "pickled": root / "pickled"}


def _cut(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _dangle(folder: Path) -> None:
    """``config.json`` replaced by a symbolic link to a file that is not there (a copy made with ``cp -P``)."""
    (folder / "config.json").unlink()
    (folder / "config.json").symlink_to("../elsewhere/config.json")


#: Per broken checkpoint: the saved folder it starts from, what breaks it, and the one line planning gives.
BROKEN = {
    "truncated": ("single", lambda f: _cut(f / "model.safetensors", 200_000),
                  r"checkpoint-50/model\.safetensors is truncated: its header promises \d+ bytes, "
                  r"the file holds 200000$"),
    "random bytes": ("single", lambda f: (f / "model.safetensors").write_bytes(bytes(range(256)) * 20),
                     r"checkpoint-50/model\.safetensors is not a safetensors file: its header length field says"),
    "missing shard": ("sharded", lambda f: (f / "model-00003-of-00008.safetensors").unlink(),
                      r"checkpoint-50: shard model-00003-of-00008\.safetensors of model\.safetensors\.index\.json "
                      r"is missing \(1 of 8 shards\)"),
    "truncated pickle": ("pickled", lambda f: _cut(f / "pytorch_model.bin", 10_000),
                         r"checkpoint-50/pytorch_model\.bin is truncated: the zip archive torch\.save writes"),
    "pickle of other bytes": ("pickled", lambda f: (f / "pytorch_model.bin").write_bytes(b"not weights"),
                              r"checkpoint-50/pytorch_model\.bin is not a PyTorch weights file"),
    "no config.json": ("single", lambda f: (f / "config.json").unlink(),
                       r"checkpoint-50/config\.json does not exist: a model folder needs the config\.json"),
    "config.json a broken link": ("single", _dangle,
                                  r"checkpoint-50/config\.json is a broken symbolic link \(to \.\./elsewhere/"
                                  r"config\.json, which does not exist\)"),
    "config.json not JSON": ("single", lambda f: (f / "config.json").write_text('{"hidden_size": 64,'),
                             r"checkpoint-50/config\.json is not valid JSON"),
}  # fmt: skip


def broken_run(run: Path, saved: dict[str, Path], case: str) -> Path:
    """Checkpoints 0, 25 and 50 of one saved folder, checkpoint-50 broken as ``BROKEN[case]`` says."""
    kind, breaks, _ = BROKEN[case]
    for step in (0, 25, 50):
        shutil.copytree(saved[kind], run / f"checkpoint-{step}")
    breaks(run / "checkpoint-50")
    return run


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_planning_refuses_a_checkpoint_its_job_could_not_load(tmp_path, saved_checkpoints, case):
    """Issue: a truncated or foreign weight file, a sharded save missing a shard, or a config.json missing or not
    JSON passed planning (the sizing then assumed OLMoE-1B-7B) and failed only in the measuring job. Planning
    reads the headers and config.json of every planned checkpoint and refuses the first problem, naming the file;
    the intact folders plan."""
    run = broken_run(tmp_path / "run", saved_checkpoints, case)
    config = _config(run)
    config["models"]["my-run"]["architecture"] = "GPTNeoXForCausalLM"
    with pytest.raises(ConfigError, match=r"^models\.my-run\.source: .*" + BROKEN[case][2]):
        plan_sweep(config, REPO)
    config["models"]["my-run"]["revisions"] = ["checkpoint-0", "checkpoint-25"]
    assert [r.name for r in plan_sweep(config, REPO).revisions["my-run"]] == ["checkpoint-0", "checkpoint-25"]


def _check_config(config: dict, folder: Path) -> subprocess.CompletedProcess:
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "circuitsweep", "check-config", str(path), "--root", str(REPO)]
    return subprocess.run(command, capture_output=True, text=True, env=job_env(), cwd=folder, timeout=120)


@pytest.mark.parametrize("case", ["truncated", "missing shard", "no config.json", "config.json a broken link"])
def test_check_config_refuses_a_broken_checkpoint_in_one_line(tmp_path, saved_checkpoints, case):
    """`circuitsweep check-config` (the checks Snakemake runs at DAG build) exits 3 with one line naming the file,
    no traceback and no job sized as OLMoE; a folder not named by the pattern is noted in one line."""
    run = broken_run(tmp_path / "run", saved_checkpoints, case)
    config = _config(run)
    config["models"]["my-run"]["architecture"] = "GPTNeoXForCausalLM"
    result = _check_config(config, tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.match(r"circuitsweep check-config: error: models\.my-run\.source: .*" + BROKEN[case][2], result.stderr)
    shutil.rmtree(run / "checkpoint-50")
    shutil.copytree(run / "checkpoint-25", run / "checkpoint-final")
    result = _check_config(config, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "sized as" not in result.stdout
    skipped = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 1, result.stderr
    assert skipped[0].endswith("no checkpoint folder named checkpoint-<step>: checkpoint-final"), result.stderr
    assert skipped[0].startswith("circuitsweep: my-run: skipped"), "a note at the prompt, not a log record"


def test_refine_prints_plan_notes_as_check_config_does(tmp_path):
    """`circuitsweep refine` plans the sweep as check-config does, and its notes read the same at the prompt
    ("circuitsweep: my-run: skipped ..."), not as a job's log record with a time and a logger name."""
    run = tmp_path / "run"
    for step in ("0", "best"):
        _fake_checkpoint(run / f"checkpoint-{step}", f"weights {step}".encode())
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(_config(run)))  # no refine block: refused once planned, before any round
    command = [sys.executable, "-m", "circuitsweep", "refine", "--configfile", str(config), "--root", str(REPO)]
    result = subprocess.run(command, capture_output=True, text=True, env=job_env(), cwd=tmp_path, timeout=120)
    assert result.returncode == 3 and "has no refine block" in result.stderr, result.stderr
    (note,) = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert note.startswith("circuitsweep: my-run: skipped 1 entry of ") and "WARNING" not in note, note


def test_check_config_resolves_relative_paths_where_the_snakefile_does(tmp_path):
    """The Snakefile resolves a run_dir `path` against the repository; check-config run from any other
    folder must plan the same checkpoints, so its default --root is that repository, not the current folder."""
    from circuitsweep.cli import parser as cli_parser

    assert Path(cli_parser.workflow_root()) == REPO
    parsed = cli_parser.build_parser().parse_args(["check-config", str(REPO / "config" / "config.yaml")])
    assert parsed.root == str(REPO)


def test_fetch_reads_the_folder_in_place_and_refuses_changed_weights(tmp_path):
    """The snapshot of a checkpoint folder is the folder itself with the planned fingerprint, training state left
    out; weights overwritten after planning stop the job with a message, never a stale measurement."""
    run = tmp_path / "run"
    _fake_checkpoint(run / "checkpoint-7", b"weights")

    plan = plan_sweep(_config(run), REPO, Paths(tmp_path / "results"))
    settings = plan.fetch_settings("my-run", "checkpoint-7")
    snapshot = fetch_snapshot(settings, tmp_path / "snap")
    assert snapshot.path == (run / "checkpoint-7").resolve()
    assert sorted(snapshot.file_hashes) == ["config.json", "model.safetensors"]
    assert snapshot.fingerprint == heads_jobs.measure_settings(plan, "my-run", "checkpoint-7")["weights_sha256"]
    (run / "checkpoint-7" / "model.safetensors").write_bytes(b"newer weights")
    with pytest.raises(SnapshotError, match=r"checkpoint-7: its weights changed after the sweep was planned"):
        fetch_snapshot(settings, tmp_path / "snap2")


def test_gated_repository_without_token_is_named(tmp_path, monkeypatch):
    """A gated Hub source without HF_TOKEN stops before any download, naming the repository and the variable."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    settings = {"revision": "main", "source": {"type": "hub", "repo_id": "meta-llama/Llama-3.2-1B", "gated": True}}
    with pytest.raises(SnapshotError, match=r"^meta-llama/Llama-3\.2-1B is a gated repository: .* set HF_TOKEN"):
        fetch_snapshot(settings, tmp_path / "snap")


def _snakemake(args: list[str], workdir: Path) -> str:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow/Snakefile"), "--cores", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=job_env(), cwd=workdir, timeout=900)
    if result.returncode != 0:
        raise AssertionError(
            f"snakemake failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}\n{job_logs(workdir)}"
        )
    return result.stdout + result.stderr


def _planned_measurements(output: str) -> list[str]:
    """Revisions whose measure_heads job a dry run lists."""
    jobs = re.findall(r"rule measure_heads:\n(?:.*\n)*?\s+wildcards: model=my-run, revision=(\S+)", output)
    return sorted(jobs)


@pytest.mark.slow
def test_a_new_checkpoint_folder_is_the_only_one_measured(tmp_path):
    """The README's example config sweeps the demo run; after the sweep, saving one more checkpoint and
    rerunning measures only it; an overwritten checkpoint is measured again."""
    from circuitsweep.toy.demo_run import save_demo_run

    run = tmp_path / "run"
    save_demo_run(run, [0, 2, 4])
    later = run / "checkpoint-4"
    shutil.move(later, tmp_path / "checkpoint-4")
    config = yaml.safe_load((REPO / "config" / "examples" / "run-dir.yaml").read_text())  # the README's example
    config["models"]["my-run"]["source"]["path"] = str(run)
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    workdir.mkdir()
    paths = run_paths(workdir, config_file)
    targets = [str(paths.head_scores("my-run", f"checkpoint-{step}")) for step in (0, 2, 4)]
    _snakemake([*targets[:2], "--configfile", str(config_file)], workdir)
    shutil.move(tmp_path / "checkpoint-4", later)
    dry = _snakemake([*targets, "-n", "--configfile", str(config_file)], workdir)
    assert _planned_measurements(dry) == ["checkpoint-4"]
    shutil.copy(later / "model.safetensors", run / "checkpoint-2" / "model.safetensors")
    dry = _snakemake([*targets, "-n", "--configfile", str(config_file)], workdir)
    assert _planned_measurements(dry) == ["checkpoint-2", "checkpoint-4"]


@pytest.mark.slow
def test_the_readme_demo_run_forms_its_induction_heads_where_the_readme_says(tmp_path):
    """The README's demo, as a new user runs it: `circuitsweep demo-run` with its default steps, then the sweep of
    config/examples/run-dir.yaml. The run has an induction onset to find, at checkpoint-300 of its 400 steps, as
    the README and the example config say (a demo that learns nothing would show only flat curves)."""
    import polars as pl

    from circuitsweep.cli.parser import DEMO_STEPS

    run = tmp_path / "run"
    result = _demo_run_cli(str(run))
    assert result.returncode == 0, result.stderr[-2000:]
    assert {folder.name for folder in run.iterdir()} == {f"checkpoint-{step}" for step in DEMO_STEPS}
    example = REPO / "config" / "examples" / "run-dir.yaml"
    config = yaml.safe_load(example.read_text())
    config["models"]["my-run"]["source"]["path"] = str(run)
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    workdir.mkdir()
    _snakemake(["--configfile", str(config_file)], workdir)
    row = pl.read_csv(workdir / run_paths(workdir, config_file).milestones_table("csv")).row(0, named=True)
    assert row["induction_onset_revision"] == "checkpoint-300"
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"trained for {max(DEMO_STEPS)} steps" in readme and "heads form at checkpoint-300" in readme
    assert f"{max(DEMO_STEPS)} steps, whose induction heads form at about step300" in " ".join(
        line.lstrip("# ") for line in example.read_text().splitlines()
    )


def _demo_run_cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "circuitsweep", "demo-run", *args]
    return subprocess.run(cmd, env=job_env(), capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize(
    "pattern",
    ["x", "../escaped-{step}", "sub/../../escaped-{step}", "/abs-{step}", "a/{step}", "..{step}/.."],
)
def test_demo_run_refuses_a_pattern_that_merges_steps_or_leaves_the_run_folder(tmp_path, pattern):
    """Issue 22: `demo-run --pattern x --steps 0 1` saved both steps into one folder, and `../` wrote outside
    the run folder; each step must get its own single folder inside the run folder, refused before training."""
    from circuitsweep.toy.demo_run import save_demo_run

    run = tmp_path / "nest" / "run"
    with pytest.raises(ConfigError, match=r"^--pattern "):
        save_demo_run(run, [0, 1], pattern)
    assert not list(tmp_path.rglob("*"))


def test_demo_run_cli_refuses_a_bad_pattern_in_one_line(tmp_path):
    """The CLI turns the refusal into one line and exit 3 (a rerun would repeat it)."""
    result = _demo_run_cli(str(tmp_path / "run"), "--steps", "0", "1", "--pattern", "x")
    assert result.returncode == 3 and result.stderr.startswith("circuitsweep demo-run: error: --pattern 'x'")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_demo_run_never_replaces_an_existing_checkpoint_without_force(tmp_path):
    """Issue 22: a second demo-run into a run folder that holds its checkpoints is refused (naming the folder),
    the saved weights stay as they were; with --force they are replaced (and nothing partial is left)."""
    from circuitsweep.toy.demo_run import save_demo_run

    run = tmp_path / "run"
    save_demo_run(run, [0])
    weights = run / "checkpoint-0" / "model.safetensors"
    before = weights.read_bytes()
    with pytest.raises(ConfigError, match=r"checkpoint-0 exists .*--force"):
        save_demo_run(run, [0, 1])
    assert weights.read_bytes() == before and not (run / "checkpoint-1").exists()
    assert save_demo_run(run, [0, 1], force=True) == [run / "checkpoint-0", run / "checkpoint-1"]
    assert (run / "checkpoint-1" / "model.safetensors").is_file() and weights.is_file()
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint-0", "checkpoint-1"]


def test_a_checkpoint_overwritten_between_fetch_and_measurement_is_refused(tmp_path):
    """Issue 22: a run_dir checkpoint overwritten after its fetch was measured with the new weights under the old
    fingerprint. The folder is re-checked after the load: the job stops naming the changed file (the next run
    plans and measures the new weights)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from circuitsweep.heads.stage import RevisionJob, load_revision

    config = LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=128,
    )  # fmt: skip
    run = tmp_path / "run"
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(run / "checkpoint-7")
    plan = plan_sweep(_config(run), REPO, Paths(tmp_path / "results"))
    fetch_snapshot(plan.fetch_settings("my-run", "checkpoint-7"), tmp_path / "snap")
    settings = heads_jobs.measure_settings(plan, "my-run", "checkpoint-7")
    small = {"seq_len": 64, "n_sequences": 2}
    settings["probes"] = {
        **settings["probes"],
        **{k: {**settings["probes"][k], **small} for k in ("repeated", "random")},
    }
    settings["probes"]["induction"] = {**settings["probes"]["induction"], **small, "n_baseline": 8}
    job = RevisionJob.from_dict(settings)
    model, snapshot = load_revision(tmp_path / "snap", job)
    assert snapshot.fingerprint == settings["weights_sha256"]

    torch.manual_seed(1)
    LlamaForCausalLM(config).save_pretrained(run / "checkpoint-7")  # overwritten after the fetch
    with pytest.raises(SnapshotError, match=r"checkpoint-7: model\.safetensors changed after .*run the workflow again"):
        load_revision(tmp_path / "snap", job)


#: Per config.json that dooms every job: the change to the fake checkpoint and the config, and the job's own line.
DOOMED = {
    "probe ids past the vocabulary": ({"vocab_size": 20}, {},
                                      r"models\.my-run\.probes\.token_range: \[3, 32\) exceeds the vocabulary of "
                                      r"20 tokens \(vocab_size in .*checkpoint-1/config\.json\); use a range that "
                                      r"ends at 20 at most$"),
    "a first token past the vocabulary": ({"bos_token_id": 99}, {"first_token": {"policy": "bos"}},
                                          r"models\.my-run\.first_token: token 99 exceeds the vocabulary of 32 tokens"),
    "a probe past the context": ({"max_position_embeddings": 40}, {},
                                 r"models\.my-run\.probes\.induction\.seq_len: 48 exceeds the model's context of 40 "
                                 r"positions \(max_position_embeddings\); shorten the probe \(.*checkpoint-1/config"),
    "another class": ({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}, {},
                      r"models\.my-run\.architecture: .*checkpoint-1 holds \['Qwen2ForCausalLM'\], not "
                      r"LlamaForCausalLM as configured$"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(DOOMED))
def test_planning_refuses_a_config_json_that_fails_every_job(tmp_path, case):
    """Issue: check-config accepted probe ids past a checkpoint's vocab_size, a probe longer than its
    max_position_embeddings and a Llama checkpoint in a Qwen2 sweep; every job then failed alike. Planning reads
    each folder's config.json already: it refuses them with the job's own line (one rule, one wording)."""
    file_change, config_change, line = DOOMED[case]
    run = tmp_path / "run"
    _fake_checkpoint(run / "checkpoint-0", b"weights 0")
    _fake_checkpoint(run / "checkpoint-1", b"weights 1")
    (run / "checkpoint-1" / "config.json").write_text(json.dumps({**FAKE_CONFIG, **file_change}))
    config = _config(run)
    model = config["models"]["my-run"]
    model.update(config_change)
    with pytest.raises(ConfigError, match="^" + line):
        plan_sweep(config, REPO)
    model["revisions"] = ["checkpoint-0"]
    assert [r.name for r in plan_sweep(config, REPO).revisions["my-run"]] == ["checkpoint-0"]


def test_planning_checks_the_bos_first_token_the_job_would_place(tmp_path):
    """Policy bos takes the tokenizer's BOS before the config's bos_token_id (DESIGN), so planning checks that id
    against the vocabulary, not the config's: a tokenizer whose BOS lies past vocab_size is refused before any
    job, though config.json's own bos_token_id fits."""
    run = tmp_path / "run"
    _fake_checkpoint(run / "checkpoint-0", b"weights 0")
    (run / "checkpoint-0" / "config.json").write_text(json.dumps({**FAKE_CONFIG, "bos_token_id": 1}))
    (run / "checkpoint-0" / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>"}))
    (run / "checkpoint-0" / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"<s>": 40}}}))
    config = _config(run)
    config["models"]["my-run"]["first_token"] = {"policy": "bos"}
    with pytest.raises(ConfigError, match=r"^models\.my-run\.first_token: token 40 exceeds the vocabulary of 32"):
        plan_sweep(config, REPO)
    (run / "checkpoint-0" / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"<s>": 2}}}))
    assert [r.name for r in plan_sweep(config, REPO).revisions["my-run"]] == ["checkpoint-0"]


def test_check_config_refuses_another_class_in_one_line(tmp_path):
    """`circuitsweep check-config` says it in one line, exit 3, before any job."""
    _fake_checkpoint(tmp_path / "run" / "checkpoint-0", b"weights")
    config = _config(tmp_path / "run")
    config["models"]["my-run"]["architecture"] = "Qwen2ForCausalLM"
    result = _check_config(config, tmp_path)
    assert result.returncode == 3 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "models.my-run.architecture: " in result.stderr and "not Qwen2ForCausalLM as configured" in result.stderr


def test_check_config_writes_no_hash_cache_where_it_runs(tmp_path, monkeypatch):
    """Planning without a results folder (check-config) hashes the checkpoints but writes no
    ``results/cache/run_dir_sha256.json`` into the folder it runs from; the workflow's plan keeps it in its own."""
    run = tmp_path / "run"
    _fake_checkpoint(run / "checkpoint-1", b"weights")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    plan = plan_sweep(_config(run), REPO)
    assert plan.fingerprints["my-run"]["checkpoint-1"]
    assert list(elsewhere.iterdir()) == []
    plan_sweep(_config(run), REPO, Paths(tmp_path / "results"))
    assert (tmp_path / "results" / "cache" / "run_dir_sha256.json").is_file()


def test_planning_checks_checkpoint_folders_without_torch(tmp_path):
    """The checks planning runs on every checkpoint folder (headers, shards, config.json) import no torch."""
    run = tmp_path / "run"
    _fake_checkpoint(run / "checkpoint-1", b"weights")
    code = (
        "import sys; from pathlib import Path; from circuitsweep.plan.sweep import plan_sweep\n"
        f"plan = plan_sweep({_config(run)!r}, Path({str(REPO)!r}))\n"
        "assert plan.fingerprints['my-run']['checkpoint-1']\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=job_env(), timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_planning_refuses_primitives_of_checkpoints_without_a_tokenizer(tmp_path):
    """Primitives of a run_dir model read its words with its tokenizer: measured folders without one are refused
    when the sweep is planned, naming the model, the folder and the key that turns primitives off, instead of
    hashing the words into gaps with CIs and p-values that mean nothing (only toys are hashed, as a demonstration).
    A folder that primitives do not measure, or a run with primitives off, plans as before."""
    run = tmp_path / "run"
    for step in (100, 200):
        _fake_checkpoint(run / f"checkpoint-{step}", f"weights at {step}".encode())
    config = _config(run)
    config["primitives"] = {"enabled": True}
    with pytest.raises(ConfigError) as refused:
        plan_sweep(config, REPO)
    message = str(refused.value)
    assert message.startswith("invalid configuration (1 problem):\n  - models.my-run: ")  # as the schema's problems
    assert f"models.my-run: primitives need the checkpoints' tokenizer, and {run / 'checkpoint-100'} holds none" in (
        message
    )
    assert "(nor do 1 more of its checkpoint folders)" in message
    assert "set models.my-run.primitives: {enabled: false}" in message
    (run / "checkpoint-100" / "tokenizer.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"and \S+checkpoint-200 holds none \(tokenizer\.json, "):
        plan_sweep(config, REPO)
    config["models"]["my-run"]["primitives"] = {"revisions": ["checkpoint-100"]}
    assert plan_sweep(config, REPO).revisions["my-run"]
    config["models"]["my-run"]["primitives"] = {"enabled": False}
    assert plan_sweep(config, REPO).revisions["my-run"]


def test_a_primitive_job_without_a_tokenizer_stops_before_loading(tmp_path):
    """A snapshot without a tokenizer that planning could not look into (a Hub model) stops its primitive job
    with the same line before any weight is loaded: its words are never hashed. Only a toy's job says
    ``hash_words`` (and so may hash them); the settings of every other model stay as they were recorded."""
    from circuitsweep.heads.stage import RevisionJob
    from circuitsweep.primitives import jobs as primitive_jobs
    from circuitsweep.revision_stage import PrimitiveRequest, measure_revision

    run = tmp_path / "run"
    _fake_checkpoint(run / "checkpoint-7", b"not loadable weights")
    plan = plan_sweep(_config(run), REPO, Paths(tmp_path / "results"))
    snapshot = tmp_path / "snap"
    fetch_snapshot(plan.fetch_settings("my-run", "checkpoint-7"), snapshot)
    settings = primitive_jobs.primitive_settings(plan, "my-run", "checkpoint-7")
    assert "hash_words" not in settings
    job = RevisionJob.from_dict(heads_jobs.measure_settings(plan, "my-run", "checkpoint-7"))
    request = PrimitiveRequest(settings, primitive_jobs.stimuli_file(plan, "my-run"), tmp_path / "prim.safetensors")
    folder = (run / "checkpoint-7").resolve()
    expected = f"models.my-run: primitives need the checkpoints' tokenizer, and {folder} holds none"
    with pytest.raises(SnapshotError, match=re.escape(expected)):
        measure_revision(snapshot, job, tmp_path / "s.safetensors", tmp_path / "s.parquet", primitives=request)
    assert not (tmp_path / "s.parquet").exists()
    toy = plan_sweep(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), REPO)
    name = next(m for m in primitive_jobs.primitive_models(toy) if toy.models[m].source["type"] == "toy")
    revision = primitive_jobs.primitive_revisions(toy, name)[0].name
    assert primitive_jobs.primitive_settings(toy, name, revision)["hash_words"] is True
