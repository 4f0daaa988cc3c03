"""The numbers README and docs/ state are what the code prints (issue 31).

Every ``console`` block of README.md and docs/*.md shows commands (``$ ...``)
and the lines they print ("..." skips lines); this module runs each command
(a dry run or ``check-config``, in a fresh working directory) and checks each
quoted line. It also checks that check-config and the dry run agree, that the
SLURM runtime requests of that dry run are the cost model's estimate of each job
times the stated margin, that docs/outputs.md describes every file the workflow
declares, and that the constants the docs state are the code's.
"""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from runenv import job_env

from circuitsweep.config.load import load_config
from circuitsweep.plan import costs, passes, sizing
from circuitsweep.plan.sweep import plan_sweep

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_WORKDIRS = tempfile.TemporaryDirectory(prefix="circuitsweep-docs-")


def transcripts() -> list[tuple[str, str, list[str]]]:
    """(page, command, quoted output lines) of every ``$ command`` in a console block of the pages."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```console\n(.*?)```", page.read_text(), re.S):
            command, lines = None, []
            for line in block.splitlines():
                if line.startswith("$ "):
                    if command:
                        found.append((page.name, command, lines))
                    command, lines = line[2:].strip(), []
                elif command and line.strip() and line.strip() != "...":
                    lines.append(line)
            if command:
                found.append((page.name, command, lines))
    return found


@functools.cache
def run(command: str) -> str:
    """What ``command`` (a dry run or check-config, as the docs show it) prints, run from the repository in a
    working directory of its own (nothing measured there yet)."""
    words = shlex.split(command)
    workdir = Path(tempfile.mkdtemp(dir=_WORKDIRS.name))
    if words[0] == "snakemake":
        assert "-n" in words, f"the docs' transcripts are dry runs: {command}"
        argv = [sys.executable, "-m", "snakemake", *words[1:], "-d", str(workdir)]
    elif words[:2] == ["circuitsweep", "check-config"]:
        argv = [sys.executable, "-m", "circuitsweep", *words[1:], "-d", str(workdir)]
    else:
        raise AssertionError(f"no transcript of {command!r} can be checked")
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=job_env(), timeout=600, check=False)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def as_on_a_gpu(line: str) -> str:
    """A cost or per-revision line as a machine with a GPU prints it (the docs' lines): this machine may have none."""
    here = r"about [\d,.<]+ CPU-hours here \(no GPU; on one: about ([\d,.<]+) GPU-hours\)"
    return re.sub(here, r"about \1 GPU-hours", line).replace(" on a GPU (no GPU here; ", " on a GPU (")


@pytest.mark.parametrize(("page", "command", "lines"), transcripts(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_quoted_line_is_what_its_command_prints(page, command, lines):
    """Each line a page quotes under ``$ command`` is a line that command prints (on a machine with a GPU)."""
    printed = {as_on_a_gpu(line) for line in run(command).splitlines()}
    missing = [line for line in lines if line not in printed]
    assert not missing, f"{page}: `{command}` does not print:\n" + "\n".join(missing)


def test_the_dry_run_gives_the_notes_check_config_gives():
    """A researcher who plans with a dry run alone reads the same notes as check-config's (here: the paper's
    Hugging Face corpus needs the datasets package, which this test environment does not install)."""
    import importlib.util

    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("the datasets package is installed here, so there is no note to give")
    checked = run("circuitsweep check-config config/paper.yaml")
    notes = [line.split("note: ", 1)[1] for line in checked.splitlines() if "note: natural-text corpus" in line]
    dry = run("snakemake -n --configfile config/paper.yaml --workflow-profile profiles/workstation")
    assert notes and all(f"circuitsweep: note: {note}" in dry.splitlines() for note in notes), notes


def test_the_docs_show_the_study_sweeps_dry_runs():
    """The transcripts include the paper sweep's dry runs on both profiles and check-config, so the GPU-hours,
    download and disk a researcher plans with are checked above."""
    commands = {command for _page, command, _lines in transcripts()}
    assert {
        "snakemake -n --configfile config/paper.yaml --workflow-profile profiles/workstation",
        "snakemake -n --configfile config/paper.yaml --workflow-profile profiles/slurm",
        "circuitsweep check-config config/paper.yaml",
    } <= commands


def _cost_lines(output: str) -> list[str]:
    return [
        as_on_a_gpu(line) for line in output.splitlines() if re.match(r"circuitsweep: (\d+ revisions|GPU-hours)", line)
    ]


def test_check_config_and_the_dry_run_agree():
    """check-config with a profile's config (--config) prints the cost lines of that profile's dry run."""
    slurm = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())["config"]
    settings = " ".join(f"{key}={value}" for key, value in slurm.items())
    dry = _cost_lines(run("snakemake -n --configfile config/paper.yaml --workflow-profile profiles/slurm"))
    checked = _cost_lines(run(f"circuitsweep check-config config/paper.yaml --config {settings}"))
    assert len(dry) == 2 and dry == checked
    workstation = _cost_lines(
        run("snakemake -n --configfile config/paper.yaml --workflow-profile profiles/workstation")
    )
    assert workstation == _cost_lines(run("circuitsweep check-config config/paper.yaml"))


def _by_pass(line: str) -> dict[str, float]:
    """``{pass: hours}`` of a ``GPU-hours by pass: load 1.0, ...; natural batch ...`` line."""
    parts = line.split("by pass: ", 1)[1].split(";")[0].split(", ")
    return {name: float(value) for name, value in (part.rsplit(" ", 1) for part in parts)}


def test_the_paper_dry_run_counts_the_ablation():
    """`snakemake -n --configfile config/paper.yaml` prints GPU-hours that count the per-revision and final
    ablation (by pass, and in the total): without them the same sweep costs the rest."""
    total_line, pass_line = _cost_lines(
        run("snakemake -n --configfile config/paper.yaml --workflow-profile profiles/workstation")
    )
    total = float(re.search(r"about ([\d.]+) GPU-hours", total_line).group(1))
    parts = _by_pass(pass_line)
    assert parts["ablation"] + parts["final ablation"] > total / 2 and sum(parts.values()) == pytest.approx(
        total, abs=0.2
    )
    config = load_config(REPO / "config" / "paper.yaml")
    without = plan_sweep({**config, "ablation": {"enabled": False}}, REPO)
    pending = costs.Pending({m: [r.name for r in revisions] for m, revisions in without.revisions.items()})
    rest = costs.sweep_cost(without, pending, 2, gpu_present=True).total_hours
    assert total - parts["ablation"] - parts["final ablation"] == pytest.approx(rest, abs=0.2)


def _jobs(output: str) -> dict[tuple[str, str], dict[str, str]]:
    """(rule, wildcards) -> resources of every job a dry run prints (a job group's jobs are indented blocks)."""
    jobs, rule, wildcards = {}, None, ""
    for line in output.splitlines():
        if found := re.match(r"^\s*(?:local)?rule (\w+):", line):
            rule, wildcards = found.group(1), ""
        elif found := re.match(r"^\s*wildcards: (.*)$", line):
            wildcards = found.group(1)
        elif (found := re.match(r"^\s*resources: (.*)$", line)) and rule:
            values = dict(item.split("=", 1) for item in found.group(1).split(", ") if "=" in item)
            jobs[(rule, wildcards)] = values
            rule = None
    return jobs


def test_slurm_runtime_requests_are_the_estimate_times_the_margin():
    """Every GPU job of the paper sweep's SLURM dry run requests the cost model's estimate of that job times
    RUNTIME_MARGIN (at least MIN_RUNTIME_MIN), and those estimates sum to the GPU-hours it prints."""
    output = run("snakemake -n --configfile config/paper.yaml --workflow-profile profiles/slurm")
    config = load_config(REPO / "config" / "paper.yaml")
    plan = plan_sweep({**config, "device": "cuda"}, REPO)
    seconds = 0.0
    checked = 0
    for (rule, wildcards), resources in _jobs(output).items():
        if rule not in ("measure_heads", "final_ablation"):
            continue
        fields = dict(item.split("=", 1) for item in wildcards.split(", "))
        model = fields["model"]
        shape = costs.model_shape(plan, model).config
        if rule == "measure_heads":
            work = costs.revision_job_work(plan, model, fields["revision"], shape, False)
        else:
            work = costs.final_ablation_work(plan, model)
        estimate = sum(costs.job_seconds(shape, plan.models[model].dtype, work, "cuda").values())
        assert int(resources["runtime"]) == max(costs.MIN_RUNTIME_MIN, -(-estimate * costs.RUNTIME_MARGIN // 60))
        seconds += estimate
        checked += 1
    assert checked == sum(len(r) for r in plan.revisions.values()) + len(plan.models)
    printed = re.search(r"about ([\d.]+) GPU-hours", _cost_lines(output)[0]).group(1)
    assert f"{seconds / 3600:.1f}" == printed


def test_the_constants_the_docs_state_are_the_codes():
    """Margins, floors, throughputs and start-ups written in docs/cluster.md, docs/costs.md and the README."""
    cluster = " ".join((REPO / "docs" / "cluster.md").read_text().split())
    assert f"times a margin of {costs.RUNTIME_MARGIN:g} (`costs.RUNTIME_MARGIN`)" in cluster
    assert f"least {costs.MIN_RUNTIME_MIN} minutes (`costs.MIN_RUNTIME_MIN`)" in cluster
    assert f"{sizing.RUNTIME_BYTES >> 30} GiB for Python, torch and CUDA" in cluster
    slurm = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())["config"]
    assert (
        f"(profile: {slurm['revisions_per_job']})" in cluster and f"(profile: {slurm['snapshots_on_disk']})" in cluster
    )
    readme = " ".join((REPO / "README.md").read_text().split())
    assert f"the dry run's estimate of that job times {costs.RUNTIME_MARGIN:g}" in readme
    assert f"the profile keeps {slurm['snapshots_on_disk']} snapshots" in readme
    assert f"the measurements of {slurm['revisions_per_job']} consecutive revisions" in readme
    text = " ".join((REPO / "docs" / "costs.md").read_text().split())
    assert f"published weight bytes / {costs.READ_MB_PER_S} MB/s" in text
    assert f"({costs.GPU_FLOPS:.0e} FLOP/s on a GPU, {costs.CPU_FLOPS:.0e} on a CPU)".replace("e+", "e") in text
    assert f"forward batches x layers x {costs.LAYER_BATCH_S:g} s" in text
    assert f"sampling steps x {costs.SAMPLING_STEP_S:g} s" in text
    assert f"a start-up of {costs.START_UP_S:g} s" in text and f"warm worker: {costs.WARM_START_UP_S:g} s)" in text
    assert f"up to {passes.SINGLE_HEAD_ALLOWANCE} heads alone" in text
    assert passes.NATURAL_SCAN_FACTOR == 4 and "about four corpus tokens read per token kept" in text


def test_the_readme_counts_are_the_plans():
    """The paper sweep's revision counts and the full sweep's revisions and download with the complete manifests."""
    from circuitsweep.checkpoints.revisions import read_manifest
    from circuitsweep.plan.sweep import manifest_path

    readme = " ".join((REPO / "README.md").read_text().split())
    paper = plan_sweep(load_config(REPO / "config" / "paper.yaml"), REPO)
    counts = {model: len(revisions) for model, revisions in paper.revisions.items()}
    assert counts == {"pythia-1b": 10, "pythia-160m": 17, "pythia-410m": 17, "olmo-1b-0724": 11, "olmoe-1b-7b": 11}
    assert (
        "ten for Pythia 1B, the 17 of its trajectories for 160M and 410M, and OLMo's and OLMoE's ten plus `main`"
        in readme
    )
    full = plan_sweep(load_config(REPO / "config" / "full.yaml"), REPO)
    total, download = 0, 0
    for model, settings in full.models.items():
        manifest = read_manifest(manifest_path(settings, REPO))
        published = manifest.published or len(manifest.revisions)
        total += published
        download += published * costs.published_bytes(costs.model_shape(full, model).config, settings.dtype)
    assert f"(about {total:,} revisions, about {download / 1e12:.0f} TB of downloads)" in readme
    olmo = read_manifest(manifest_path(full.models["olmo-1b-0724"], REPO))
    sources = " ".join((REPO / "docs" / "sources.md").read_text().split())
    assert olmo.partial and f"the full list of about {olmo.published:,} branches" in sources


def test_sources_page_matches_the_bundled_branch_lists_and_suites():
    """docs/sources.md says which branch lists ship complete and shows branch patterns the suites use: it once said
    only Pythia's lists ship and that suites naming branches otherwise cannot be swept, after branch_pattern came."""
    from circuitsweep.checkpoints.revisions import read_manifest

    sources = " ".join((REPO / "docs" / "sources.md").read_text().split())
    olmoe = read_manifest(REPO / "config" / "revisions" / "olmoe-1b-7b-0924.json")
    assert not olmoe.partial and "OLMoE 1B-7B in full" in sources
    shipped = {path.stem for path in (REPO / "config" / "revisions").glob("pythia-*.json")}
    assert {"pythia-14m", "pythia-12b", "pythia-12b-deduped"} <= shipped and "size from 14M to 12B" in sources
    patterns = set()
    for suite in (REPO / "config" / "suites").glob("*.yaml"):
        for model in yaml.safe_load(suite.read_text())["models"].values():
            patterns.add(model["source"].get("branch_pattern"))
    named = set(re.findall(r"`([^`]+\{step[^`]*)`", sources))
    assert named and named <= patterns, named - patterns


#: Folders whose files the outputs page may describe as one entry; tables and figures are named one by one.
FOLDER_ENTRIES_FORBIDDEN = ("tables/", "plots/")


def _described() -> list[re.Pattern]:
    """Patterns of every path docs/outputs.md names in its first column (``<model>`` etc. match one name)."""
    text = (REPO / "docs" / "outputs.md").read_text()
    patterns = []
    for cell in re.findall(r"^\| (.*?) \|", text, re.M):
        for path in re.findall(r"`([^`]+)`", cell):
            assert path not in FOLDER_ENTRIES_FORBIDDEN, path
            regex = re.escape(path)
            regex = re.sub(r"<[a-z]+>", "[^/]+", regex.replace(r"\<", "<").replace(r"\>", ">"))
            folder = path.endswith("/")
            patterns.append(re.compile(regex[:-1] + "(/.*)?" if folder else regex))
    return patterns


def test_outputs_page_describes_every_declared_output(tmp_path):
    """Every file the workflow declares (the dry run's outputs of the toy suite with refinement and a group
    added, so with every stage but natural text; and every path of contracts.Paths, natural text's included)
    is named on docs/outputs.md, table by table and figure by figure."""
    from circuitsweep.io.contracts import Paths

    config = load_config(REPO / "config" / "config.yaml")
    config["refine"] = {"max_rounds": 1}
    for model in config["models"].values():
        model["group"] = "toys"
    path = tmp_path / "every-stage.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-n", "--detailed-summary", "--cores", "1",
               "--configfile", str(path), "-d", str(tmp_path / "w")]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=job_env(), timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    root = "results/toy/"
    declared = {line.split("\t")[0][len(root) :] for line in result.stdout.splitlines() if line.startswith(root)}
    paths = Paths(Path("R"))
    names = {"model": "<model>", "revision": "<revision>", "batch": "<batch>", "name": "<name>", "block": "<block>"}
    for method in [m for m in dir(paths) if not m.startswith("_") and callable(getattr(paths, m))]:
        function = getattr(paths, method)
        arguments = [a for a in function.__code__.co_varnames[1 : function.__code__.co_argcount] if a != "suffix"]
        made = function(*(names[a] for a in arguments))
        if method not in ("primitive_table", "table_page"):
            declared.add(str(made.relative_to("R")))
    assert {"tables/milestone_brackets.csv", "tables/group_milestones.md", "tables/spectral.html"} <= declared
    patterns = _described()
    missing = sorted(d for d in declared if not any(p.fullmatch(d) for p in patterns))
    assert not missing, f"docs/outputs.md does not describe: {missing}"


def test_the_defaults_docs_methods_states_are_the_schemas():
    """The thresholds, probe sizes and K that docs/methods.md gives as defaults are the schema's defaults."""
    from circuitsweep.config.load import resolve_spectral_top_k, study_defaults

    text = " ".join((REPO / "docs" / "methods.md").read_text().split())
    thresholds, probes = study_defaults("thresholds"), study_defaults("probes")
    induction = probes["induction"]
    stated = [
        f"`thresholds.class_selectivity` ({thresholds['class_selectivity']})",
        f"`thresholds.induction_circuit` ({thresholds['induction_circuit']}, the study's ablation cut)",
        f"`thresholds.previous_circuit`, {thresholds['previous_circuit']})",
        f"`thresholds.induction_onset_heads` ({thresholds['induction_onset_heads']}",
        f"`thresholds.bos_fraction_milestone` ({thresholds['bos_fraction_milestone']:g}",
        f"`probes.spectral.n_sequences` sequences (the study's {probes['spectral']['n_sequences']};",
        f"the study: {induction['n_sequences']} sequences of {induction['seq_len']} tokens, seed {induction['seed']})",
    ]
    missing = [phrase for phrase in stated if phrase not in text]
    assert not missing, missing
    assert thresholds["early_screen_recall"] == pytest.approx(2 / 3) and "(2/3, the study's" in text
    top_k = resolve_spectral_top_k({})
    assert f"(the study's {top_k[0]} and {top_k[1]})" in text


def test_the_toy_shapes_docs_methods_states_are_the_configs():
    """docs/methods.md's toy section names the toys' one vocabulary, their layers and heads, and the OLMo and OLMoE
    toys' MLP width, as config/config.yaml sets them."""
    from circuitsweep.toy.spec import ToySpec

    models = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["models"]
    specs = {
        name: ToySpec.of_model(entry["architecture"], entry["toy"]) for name, entry in models.items() if "toy" in entry
    }
    text = " ".join((REPO / "docs" / "methods.md").read_text().split())
    (vocab,) = {spec.vocab_size for spec in specs.values()}
    (layers,) = {spec.num_layers for spec in specs.values()}
    (heads,) = {spec.num_heads for spec in specs.values()}
    assert f"synthetic sequences of a {vocab}-id vocabulary" in text
    assert f"OLMoE: {'two' if layers == 2 else layers} layers of {'eight' if heads == 8 else heads} heads)" in text
    widths = {specs[name].intermediate_size for name in ("toy-olmo", "toy-olmoe")}
    assert widths == {32} and "a small MLP (`intermediate_size: 32`)" in text
