"""Revisions: branch-name parsing, selection rules and manifests (pure, offline)."""

from __future__ import annotations

import json
import time

import pytest

from circuitsweep.checkpoints import revisions as R
from circuitsweep.checkpoints.revisions import Manifest, Revision

DESIGN_PYTHIA = [
    "step1",
    "step4",
    "step16",
    "step64",
    "step256",
    "step512",
    "step3000",
    "step10000",
    "step38000",
    "step143000",
]
DESIGN_OLMO = [
    "step1000-tokens2B",
    "step2000-tokens4B",
    "step5000-tokens10B",
    "step11000-tokens23B",
    "step25000-tokens52B",
    "step56000-tokens117B",
    "step126000-tokens264B",
    "step285000-tokens597B",
    "step644000-tokens1350B",
    "step1454000-tokens3048B",
]
DESIGN_OLMOE = [
    "step5000-tokens20B",
    "step10000-tokens41B",
    "step25000-tokens104B",
    "step50000-tokens209B",
    "step100000-tokens419B",
    "step200000-tokens838B",
    "step400000-tokens1677B",
    "step600000-tokens2516B",
    "step800000-tokens3355B",
    "step1220000-tokens5117B",
]


def _revs(n: int) -> list[Revision]:
    return [Revision(f"step{s}", s, s * 10) for s in range(n)]


# -- parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "step", "tokens"),
    [
        ("step1000-tokens2B", 1000, 2_000_000_000),
        ("step1-tokens4M", 1, 4_000_000),
        ("step3-tokens1638K", 3, 1_638_000),
        ("step1220000-tokens5117B", 1_220_000, 5_117_000_000_000),
        ("step9-tokens2T", 9, 2_000_000_000_000),
        ("step7-tokens2.5B", 7, 2_500_000_000),
        ("step0-tokens0B", 0, 0),
    ],
)
def test_tokens_are_read_from_the_name(name: str, step: int, tokens: int) -> None:
    """stepN-tokensX<unit> names give the step and the tokens written in the name, never step x batch."""
    revision = R.parse_branch(name, tokens_per_step=999)
    assert (revision.name, revision.step, revision.tokens) == (name, step, tokens)


def test_plain_step_names_use_tokens_per_step() -> None:
    """stepN names compute tokens as N x tokens_per_step."""
    assert R.parse_branch("step143000", tokens_per_step=2_097_152).tokens == 143000 * 2_097_152


@pytest.mark.parametrize("name", ["step12-tokensXB", "step5-tokens3Q", "step3-tokens", "step4-tokens2B-x"])
def test_unparseable_checkpoint_name_is_a_clear_error(name: str) -> None:
    """A malformed stepN... branch raises ValueError naming the branch, also inside a branch list."""
    with pytest.raises(ValueError, match=name):
        R.parse_branches(["main", name], tokens_per_step=1)
    with pytest.raises(ValueError, match=name):
        R.parse_branch(name, tokens_per_step=1)


def test_non_step_names_are_not_checkpoints() -> None:
    """Names not starting with 'step<digit>' are skipped in lists and refused one by one."""
    assert R.parse_branches(["stepX", "step-1", "main"], tokens_per_step=1) == []
    with pytest.raises(ValueError, match="'main' is not a checkpoint"):
        R.parse_branch("main")


def test_plain_step_without_tokens_per_step_is_an_error() -> None:
    """stepN without tokens_per_step is refused, naming the branch, instead of guessing tokens."""
    with pytest.raises(ValueError, match="step8"):
        R.parse_branches(["step8"])


def test_main_and_other_names_are_skipped_unless_mapped() -> None:
    """main is not a checkpoint unless aliased; results come sorted by step."""
    names = ["main", "step2-tokens4M", "v1.0", "step1-tokens2M"]
    assert [r.name for r in R.parse_branches(names)] == ["step1-tokens2M", "step2-tokens4M"]
    aliased = R.parse_branches(names, aliases={"main": (3, 6_000_000)})
    assert aliased[-1] == Revision("main", 3, 6_000_000)
    assert R.parse_branches(["main"], aliases={"main": 5}, tokens_per_step=10) == [Revision("main", 5, 50)]


def test_commit_does_not_affect_equality() -> None:
    """A revision listed with its commit equals the same revision from a commit-less manifest."""
    assert Revision("step1", 1, 2, commit="a" * 40) == Revision("step1", 1, 2)


# -- selection -------------------------------------------------------------------


def test_every_k_keeps_first_and_last() -> None:
    """every: k takes every k-th by step and always the first and the last."""
    chosen = R.select_revisions(_revs(10), {"every": 4})
    assert [r.step for r in chosen] == [0, 4, 8, 9]
    assert [r.step for r in R.select_revisions(_revs(9), {"every": 4})] == [0, 4, 8]


def test_log_count_spacing_includes_ends_and_step0() -> None:
    """log_count: n gives n distinct revisions, log-spaced, first (step0) and last included."""
    pythia = R.pythia_manifest().revisions
    chosen = R.select_revisions(pythia, {"log_count": 10})
    names = [r.name for r in chosen]
    assert len(set(names)) == 10
    assert names[0] == "step0" and names[-1] == "step143000"
    assert names == [
        "step0",
        "step1",
        "step4",
        "step16",
        "step64",
        "step512",
        "step2000",
        "step7000",
        "step32000",
        "step143000",
    ]
    ratios = [b.tokens / a.tokens for a, b in zip(chosen[1:], chosen[2:], strict=False)]
    assert max(ratios) / min(ratios) < 2.5  # roughly even in log space


def test_log_count_fills_up_when_targets_collide() -> None:
    """Dense early revisions never yield duplicates: exactly n revisions come back."""
    revs = [Revision(f"s{i}", i, t) for i, t in enumerate([1, 2, 3, 1000, 1001, 1002, 10**6])]
    chosen = R.select_log_count(revs, 6)
    assert len(chosen) == 6 and chosen[0].tokens == 1 and chosen[-1].tokens == 10**6
    assert R.select_log_count(revs, 50) == revs


def test_explicit_names_and_steps() -> None:
    """An explicit list selects by name or by step and returns training order."""
    pythia = R.pythia_manifest().revisions
    chosen = R.select_revisions(pythia, list(reversed(DESIGN_PYTHIA)), model="pythia-1b")
    assert [r.name for r in chosen] == DESIGN_PYTHIA
    assert [r.name for r in R.select_revisions(pythia, [64, "step1"])] == ["step1", "step64"]


def test_unknown_explicit_revision_names_it_and_the_model() -> None:
    """An unknown requested revision fails naming the revision, the model and close names."""
    olmo = R.olmo_0724_manifest().revisions
    with pytest.raises(ValueError, match=r"olmo-1b-0724.*'step1000'.*step1000-tokens2B"):
        R.select_revisions(olmo, ["step1000", "step2000-tokens4B"], model="olmo-1b-0724")


def test_unknown_revision_with_a_step_points_at_the_nearest_step() -> None:
    """A requested name carrying a step is pointed at the published revision nearest by step, not by spelling."""
    toy = [Revision(f"step{s}", s, s * 4096) for s in (0, 25, 50, 100, 250, 300, 800, 1200)]
    with pytest.raises(ValueError) as caught:
        R.select_revisions(toy, ["step250", "step9999"], model="toy-gptneox")
    assert "'step9999' (closest: step1200);" in str(caught.value)
    with pytest.raises(ValueError, match=r"'step260' \(closest: step250\);"):
        R.select_revisions(toy, ["step260"], model="toy-gptneox")
    with pytest.raises(ValueError, match=r"'275' \(closest: step250, step300\);"):
        R.select_revisions(toy, [275], model="toy-gptneox")
    olmo = [Revision(f"step{s}-tokens{s * 4}K", s, s * 4096) for s in (0, 300, 600)]
    with pytest.raises(ValueError, match=r"'step310' \(closest: step300-tokens1200K\);"):
        R.select_revisions(olmo, ["step310"], model="toy-olmo")
    # a name without a step keeps the closest spellings
    with pytest.raises(ValueError, match=r"'stepp250' \(closest: step250"):
        R.select_revisions(toy, ["stepp250"], model="toy-gptneox")
    with pytest.raises(ValueError, match=r"'mian'; 8 revisions are known"):
        R.select_revisions(toy, ["mian"], model="toy-gptneox")


def test_unknown_run_dir_checkpoint_points_at_the_nearest_step() -> None:
    """A run_dir folder name (``checkpoint-999``) carries its step in its trailing digits, as the published folders
    do: it is pointed at the nearest step, not at the most similar spellings (checkpoint-0, -50, -25)."""
    run = [Revision(f"checkpoint-{s}", s, s * 768) for s in (0, 25, 50)]
    with pytest.raises(ValueError, match=r"'checkpoint-999' \(closest: checkpoint-50\);"):
        R.select_revisions(run, ["checkpoint-0", "checkpoint-999"], model="my-run")
    with pytest.raises(ValueError, match=r"'checkpoint-30' \(closest: checkpoint-25\);"):
        R.select_revisions(run, ["checkpoint-30"], model="my-run")
    padded = [Revision(f"iter_{s:07d}", s, s) for s in (20, 1000)]
    with pytest.raises(ValueError, match=r"'iter_0000900' \(closest: iter_0001000\);"):
        R.select_revisions(padded, ["iter_0000900"], model="my-run")
    # other fixed text is no step of these folders: by spelling
    with pytest.raises(ValueError, match=r"'ckpt-999'; 3 revisions are known"):
        R.select_revisions(run, ["ckpt-999"], model="my-run")


def test_all_and_bad_rules() -> None:
    """'all' returns everything in order; an unknown rule, or a form the schema does not offer, is an error."""
    revs = list(reversed(_revs(5)))
    assert R.select_revisions(revs, "all") == _revs(5)
    with pytest.raises(ValueError, match="every or log_count"):
        R.select_revisions(revs, {"all": True}, model="m")
    with pytest.raises(ValueError, match="every or log_count"):
        R.select_revisions(revs, {"most": 3}, model="m")
    with pytest.raises(ValueError):
        R.select_log_count(revs, 1)


def test_parse_and_select_over_all_branches_is_fast() -> None:
    """Parsing ~1,850 branch names and selecting from them takes well under a second."""
    names = [r.name for r in R.olmoe_manifest().revisions]
    names += [f"step{s}-tokens{s * 2 // 1000}B" for s in range(0, 1_454_000, 1000)]
    names += [r.name for r in R.pythia_manifest().revisions]
    start = time.perf_counter()
    revs = R.parse_branches(names, tokens_per_step=2_097_152)
    R.select_revisions(revs, {"log_count": 30})
    R.select_revisions(revs, {"every": 7})
    assert len(revs) >= 1800
    assert time.perf_counter() - start < 1.0


# -- manifests -------------------------------------------------------------------


def test_manifest_round_trip(tmp_path) -> None:
    """A manifest written (atomically) reads back equal, commits and partial flag included."""
    revs = (Revision("step2-tokens4M", 2, 4_000_000, "b" * 40), Revision("step1-tokens2M", 1, 2_000_000))
    manifest = Manifest("org/model", revs, tokens_per_step=2_000_000, partial=True, source="test", note="n")
    path = tmp_path / "sub" / "m.json"
    R.write_manifest(path, manifest)
    back = R.read_manifest(path)
    assert back.repo_id == "org/model" and back.partial and back.tokens_per_step == 2_000_000
    assert back.names() == ["step1-tokens2M", "step2-tokens4M"]
    assert back.by_name()["step2-tokens4M"].commit == "b" * 40
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # no temporary left behind


def test_reading_a_non_manifest_fails(tmp_path) -> None:
    """A JSON file of another kind is refused with its path in the message."""
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"revisions": []}))
    with pytest.raises(ValueError, match="not a revision manifest"):
        R.read_manifest(path)


@pytest.mark.parametrize("stem", sorted(R.BUNDLED_GENERATORS))
def test_bundled_manifests_equal_their_generator(stem: str) -> None:
    """config/revisions/*.json are exactly what the generators produce (regenerate with write_bundled_manifests)."""
    path = R.BUNDLED_DIR / f"{stem}.json"
    assert path.read_text() == R.manifest_text(R.BUNDLED_GENERATORS[stem]())


def test_bundled_pythia_is_the_published_list() -> None:
    """Pythia: 154 branches, step0, 1..512 doubling, 1000..143000; tokens = step x 2,097,152."""
    pythia = R.bundled_manifest("pythia-1b")
    assert len(pythia.revisions) == 154 and not pythia.partial
    assert pythia.names()[:12] == ["step0"] + [f"step{2**i}" for i in range(10)] + ["step1000"]
    assert pythia.names()[-1] == "step143000"
    assert all(r.tokens == r.step * 2_097_152 for r in pythia.revisions)
    assert set(DESIGN_PYTHIA) <= set(pythia.names())


def test_bundled_olmoe_reproduces_design_names() -> None:
    """OLMoE: 244 branches every 5000 steps whose names (floor of billions) include all of DESIGN's."""
    olmoe = R.bundled_manifest("olmoe-1b-7b-0924")
    assert len(olmoe.revisions) == 244 and not olmoe.partial
    assert set(DESIGN_OLMOE) <= set(olmoe.names())
    assert olmoe.names()[0] == "step5000-tokens20B" and olmoe.names()[-1] == "step1220000-tokens5117B"


def test_bundled_olmo_is_partial_and_has_the_study_revisions() -> None:
    """OLMo 1B 0724: the bundled list is marked partial and holds the study's ten revisions."""
    olmo = R.bundled_manifest("olmo-1b-0724-hf")
    assert olmo.partial
    assert set(DESIGN_OLMO) <= set(olmo.names())
    assert olmo.by_name()["step1454000-tokens3048B"].tokens == 3_048_000_000_000  # read, not 1454000 x 2^21


@pytest.mark.parametrize("spec", [{"every": 3}, {"log_count": 4, "by": "steps"}])
def test_primitive_selection_of_a_revision_does_not_depend_on_the_others_swept(spec) -> None:
    """Adding or removing a swept revision never changes whether another one gets primitives.

    Counted in the swept list, ``every``/``log_count`` would shift (and rerun the
    measurement of every revision after the change); counted on the source's grid, they do not.
    """
    from circuitsweep.plan.sweep import stable_selection

    grid = [Revision(f"step{step}", step, step * 10) for step in range(0, 120, 10)]
    chosen_on_grid = {r.name for r in R.select_revisions(grid, spec)}
    swept = [grid[i] for i in (0, 2, 3, 5, 8, 11)]
    before = {r.name for r in stable_selection(swept, grid, spec)}
    assert before == chosen_on_grid & {r.name for r in swept}
    for changed in ([r for r in swept if r.name != "step30"], [*swept, grid[4]], [*swept[:2], grid[1], *swept[2:]]):
        after = {r.name for r in stable_selection(changed, grid, spec)}
        assert after & before == before & {r.name for r in changed}
        assert after - before <= chosen_on_grid


def test_primitive_selection_by_name_chooses_from_the_swept_revisions() -> None:
    """A list of names or steps picks those swept revisions, as for the head revisions."""
    from circuitsweep.plan.sweep import stable_selection

    grid = [Revision(f"step{step}", step, step) for step in (0, 10, 20, 30)]
    assert [r.name for r in stable_selection(grid[:3], grid, ["step20", 0])] == ["step0", "step20"]


_HEADER = {"format": R.MANIFEST_FORMAT, "repo_id": "org/model", "tokens_per_step": 10}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", r"not a revision manifest \(expected a JSON object, found a JSON array\)"),
        ("", r"not JSON \(line 1 column 1: Expecting value\); the file is empty"),
        ('{"format": "circuitsweep.revisions/1", "revisions": [', r"not JSON \(line 1 column 54"),
        ({"revisions": [{"name": "step10", "tokens": 100}]}, r"revision 'step10': no 'step'"),
        ({"revisions": [{"name": "step10", "step": 10, "tokens": None}]}, r"revision 'step10': tokens null is not a"),
        ({"revisions": [{"name": "step10", "step": 10, "tokens": 1e12}]}, r"tokens 1000000000000.0 is not a count"),
        ({"revisions": [{"name": "step10", "step": True, "tokens": 100}]}, r"revision 'step10': step true is not"),
        ({"revisions": [{"name": "step10", "step": -1, "tokens": 100}]}, r"revision 'step10': step -1 is not a count"),
        ({"revisions": [{"step": 10, "tokens": 100}]}, r"revision entry 1 has name null, not a branch name"),
        ({"revisions": ["step10"]}, r"revision entry 1 is a JSON string, not an object"),
        ({"revisions": {"step10": 10}}, r"revisions is \{\"step10\": 10\}, not a list"),
        ({"repo_id": None, "revisions": []}, r"repo_id null is not a Hub repository \(owner/name\)"),
        ({"revisions": [{"name": "step1", "step": 2, "tokens": 20}]}, r"revision 'step1': its name says step 1 but"),
        ({"revisions": [], "partial": "false"}, r'partial "false" is not true or false'),
    ],
    ids=[
        "list",
        "empty",
        "cut short",
        "no step",
        "null tokens",
        "float tokens",
        "bool step",
        "negative step",
        "no name",
        "string entry",
        "revisions a mapping",
        "no repo_id",
        "name states another step",
        "partial a string",
    ],
)
def test_a_bad_manifest_is_refused_in_one_line_naming_the_file(tmp_path, text, message) -> None:
    """Every malformed manifest is a ValueError (an InputError: no traceback) of one line naming the file, and
    the revision at fault: never an AttributeError, KeyError or TypeError, nor a JSON error without the file."""
    from circuitsweep.errors import InputError

    path = tmp_path / "m.json"
    path.write_text(text if isinstance(text, str) else json.dumps({**_HEADER, **text}))
    with pytest.raises(InputError, match=message) as refused:
        R.read_manifest(path)
    assert str(refused.value).startswith(f"{path}: ") and "\n" not in str(refused.value)


def test_a_manifest_with_nan_tokens_is_refused_naming_the_file(tmp_path) -> None:
    """``NaN`` (which Python's JSON reader accepts) is no count, named with the file and the revision."""
    path = tmp_path / "m.json"
    path.write_text(json.dumps(_HEADER)[:-1] + ', "revisions": [{"name": "step1", "step": 1, "tokens": NaN}]}')
    with pytest.raises(ValueError, match=rf"^{path}: revision 'step1': tokens NaN is not a count"):
        R.read_manifest(path)


def test_a_name_without_a_plain_step_is_not_held_to_its_entry(tmp_path) -> None:
    """Only a name that states its step (``step1``, ``stage1-step100-tokens1B``) is checked against its entry;
    ``step-1431k`` (a unit) and names without ``step`` are read as their entries say."""
    assert [R.named_step(n) for n in ("step1", "stage1-step100-tokens1B", "step0010", "x-step-1431k-3T", "main")] == [
        1,
        100,
        10,
        None,
        None,
    ]
    entries = [{"name": "main", "step": 5, "tokens": 50}, {"name": "ck-step1431k", "step": 1431000, "tokens": 9}]
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**_HEADER, "revisions": entries}))
    assert R.read_manifest(path).names() == ["main", "ck-step1431k"]


def test_revisions_with_fewer_tokens_than_an_earlier_step_are_found() -> None:
    """A revision with fewer tokens than one at an earlier step is paired with the revision holding the most."""
    revisions = [Revision("a", 715, 9000), Revision("b", 955, 2000), Revision("c", 1195, 2500), Revision("d", 0, 0)]
    assert R.fewer_tokens(revisions) == [(revisions[0], revisions[1]), (revisions[0], revisions[2])]
    assert R.fewer_tokens([Revision("x", 5, 20), Revision("y", 5, 10), Revision("z", 6, 20)]) == []
