"""Primitive stimuli: the shipped file is complete and valid; bad edits are named precisely."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from circuitsweep.config.stimuli import DEFAULT_STIMULI_FILE, fill, load_stimuli, parse_stimuli
from circuitsweep.errors import ConfigError

DESIGN_0A = ["KNOW", "FEEL", "GOOD", "BAD", "DO", "SOMEONE", "TIME", "PLACE"]
DESIGN_0B = ["WANT", "HAPPEN", "ANGER", "RELIEF", "JOY", "NOSTALGIA", "GRIEF", "FEAR"]
OPERATORS = ["KNOW", "PLACE", "FEEL", "WANT", "TIME"]


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(DEFAULT_STIMULI_FILE.read_text())


def _problems(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_stimuli(data)
    return str(info.value)


def test_shipped_stimuli_match_the_design():
    """config/primitives.yaml holds DESIGN.md 5's sets, 5 x 6 compositions and the required sizes."""
    stimuli = load_stimuli()
    assert [p.name for p in stimuli.primitives if p.set == "0a"] == DESIGN_0A
    assert [p.name for p in stimuli.primitives if p.set == "0b"] == DESIGN_0B
    assert all(len(p.contexts) >= 20 for p in stimuli.primitives)
    assert len(stimuli.compositions) == 30
    assert sorted({c.operator for c in stimuli.compositions}) == sorted(OPERATORS)
    assert len({c.seed for c in stimuli.compositions}) == 6
    assert len({(c.operator, c.seed) for c in stimuli.compositions}) == 30
    assert any((c.operator, c.seed, c.target) == ("WANT", "GRIEF", "longing") for c in stimuli.compositions)
    assert all(len(c.cluster) >= 4 and c.target in c.cluster for c in stimuli.compositions)
    assert len(stimuli.phenomenological) >= 40 and len(stimuli.abstract) >= 40


def test_shipped_contexts_hold_no_lexicon_or_cluster_word():
    """No primitive context contains an axis or cluster word that would drag its representation.

    (Loading checks this too, see test_reference_errors_name_the_key; this is an independent scan.)
    """
    stimuli = load_stimuli()
    planted = set(stimuli.phenomenological) | set(stimuli.abstract) | set(stimuli.cluster_words)
    leaks = []
    for primitive in stimuli.primitives:
        for occurrence in primitive.occurrences():
            found = set(re.findall(r"[a-z]+", occurrence.text.lower())) & planted
            if found:
                leaks.append((primitive.name, occurrence.text, sorted(found)))
    assert not leaks


def test_fill_marks_the_word():
    """A filled template marks exactly the word, capitalised for {Word}."""
    item = fill("{Word} left a note.", "someone")
    assert item.text == "Someone left a note." and item.text[item.start : item.end] == "Someone"
    item = fill("I {word} it.", "know")
    assert item.text[item.start : item.end] == "know"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["primitives"]["KNOW"].update(set="0c"),
            "primitives.KNOW.set: '0c' is not allowed; expected one of ['0a', '0b']",
        ),
        (
            lambda d: d["primitives"]["FEAR"].update(contexts=d["primitives"]["FEAR"]["contexts"][:5]),
            "primitives.FEAR.contexts: has 5 entries; expected at least 20",
        ),
        (
            lambda d: d["lexicons"].update(abstract=d["lexicons"]["abstract"][:10]),
            "lexicons.abstract: has 10 entries; expected at least 40",
        ),
        (
            lambda d: d["compositions"][3].update(cluster=["a", "b"]),
            "compositions.3.cluster: has 2 entries; expected at least 4",
        ),
        (lambda d: d["compositions"][0].pop("target"), "compositions.0: 'target' is a required property"),
        (lambda d: d.update(extra=1), "the top level: unknown key 'extra'"),
        (
            lambda d: d["lexicons"]["phenomenological"].__setitem__(0, "Warm"),
            "lexicons.phenomenological.0: 'Warm' is not a lowercase word",
        ),
        (
            lambda d: d["primitives"]["JOY"]["contexts"].__setitem__(2, "no placeholder here"),
            "primitives.JOY.contexts.2: 'no placeholder here' is not a text with exactly one placeholder",
        ),
        (
            lambda d: d["behaviour"].update(composition_prompt="{operator} only"),
            "behaviour.composition_prompt: '{operator} only' is not a prompt with the placeholder {seed}",
        ),
    ],
)
def test_schema_errors_name_the_key_and_the_expectation(raw, edit, expected):
    """Each schema violation is reported with its key path and what was expected."""
    data = copy.deepcopy(raw)
    edit(data)
    assert expected in _problems(data)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["compositions"][0].update(operator="LOVE"), "compositions.0.operator: 'LOVE' is not a primitive"),
        (lambda d: d["compositions"][0].update(target="grace"), "compositions.0.cluster: lacks the target 'grace'"),
        (
            lambda d: d["lexicons"]["abstract"].append("warm"),
            "lexicons.phenomenological and lexicons.abstract share ['warm']",
        ),
        (
            lambda d: d["lexicons"]["phenomenological"].append("grief"),
            "lexicons.phenomenological: holds primitive surface words ['grief']",
        ),
        (
            lambda d: d["compositions"][1]["cluster"].append("pity"),
            "compositions.0.cluster and compositions.1.cluster share ['pity']",
        ),
        (
            lambda d: d["primitives"]["JOY"]["contexts"].__setitem__(0, "{word} and {word}"),
            "primitives.JOY.contexts.0: '{word} and {word}' holds 2 placeholders; expected one",
        ),
        (
            lambda d: d["compositions"][1].update(operator="KNOW", seed="GRIEF"),
            "compositions.1: KNOW + GRIEF repeats compositions.0",
        ),
        (
            lambda d: d["primitives"]["JOY"]["contexts"].__setitem__(0, "Her {word} made the room feel warm."),
            "primitives.JOY.contexts.0: 'Her {word} made the room feel warm.' holds lexicon or cluster words ['warm']",
        ),
        (
            lambda d: d["primitives"]["GRIEF"]["contexts"].__setitem__(0, "{Word} turned into longing."),
            "holds lexicon or cluster words ['longing']",
        ),
        (
            lambda d: d["primitives"]["FEAR"]["controls"].append("sadness"),
            "primitives.FEAR.controls: ['sadness'] are also lexicons",
        ),
        (
            lambda d: d["primitives"]["FEAR"]["controls"].append("envy"),
            "primitives.ANGER.controls and primitives.FEAR.controls share ['envy']",
        ),
        (
            lambda d: d["lexicons"]["affective"].append("theorem"),
            "lexicons.affective: ['theorem'] are not phenomenological words",
        ),
    ],
)
def test_reference_errors_name_the_key(raw, edit, expected):
    """Cross-reference problems (unknown primitive, overlapping words, ...) name the offending key."""
    data = copy.deepcopy(raw)
    edit(data)
    assert expected in _problems(data)


def test_every_problem_is_listed_at_once(raw):
    """Several schema problems are all reported in one error."""
    data = copy.deepcopy(raw)
    data["primitives"]["KNOW"]["set"] = "x"
    data["lexicons"]["abstract"] = ["rule"]
    message = _problems(data)
    assert "primitives.KNOW.set" in message and "lexicons.abstract" in message and "2 problems" in message


def test_fingerprint_follows_the_content(raw):
    """Editing any stimulus changes the fingerprint that caches are checked against."""
    base = parse_stimuli(raw)
    edited = copy.deepcopy(raw)
    edited["carriers"][0] = 'A note said "{word}".'
    assert parse_stimuli(copy.deepcopy(raw)).fingerprint() == base.fingerprint()
    assert parse_stimuli(edited).fingerprint() != base.fingerprint()
