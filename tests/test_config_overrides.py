"""``check-config --config KEY=VALUE`` reads and merges its items as ``snakemake --config`` does, so both
commands plan, or refuse, the same config; a number that ``--config`` handed over as text says why."""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import pytest

from circuitsweep import cli
from circuitsweep.config.load import load_config, validate_schema
from circuitsweep.config.overrides import merge_config, parse_overrides
from circuitsweep.errors import ConfigError
from circuitsweep.plan.sweep import plan_run

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "config.yaml"

#: Items whose reading differs between YAML and Snakemake's readers, or between Snakemake's readers.
ITEMS = [
    "ab=9",
    "ab=0.5",
    "ab=1e-3",
    "ab=1_000",
    "ab= 7 ",
    "ab=True",
    "ab=False",
    "ab=true",
    "ab=null",
    "ab=~",
    "ab=",
    "ab=''",
    "ab='x'",
    "ab=x=y",
    "ab=[1, 2]",
    "ab={a: 1, b: [1, 2.5], c: {d: true}}",
    "ab={a: b",
    "ab={}",
    "a-b_c=1",
]


def check_config(*items: str) -> tuple[int, str]:
    """``circuitsweep check-config config/config.yaml --config ITEMS`` in-process: exit code and stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["check-config", str(CONFIG), "--root", str(REPO), "--config", *items])
    return code, err.getvalue()


def test_a_nested_value_merges_into_its_block_keeping_the_other_keys():
    """``thresholds={class_selectivity: 9}`` sets that one threshold; the block's other keys stay."""
    config = {"thresholds": {"class_selectivity": 30, "sink_alpha": 0.3}, "device": "auto"}
    merged = merge_config(config, parse_overrides(["thresholds={class_selectivity: 9}"]))
    assert merged == {"thresholds": {"class_selectivity": "9", "sink_alpha": 0.3}, "device": "auto"}
    assert config["thresholds"]["class_selectivity"] == 30


def test_items_of_one_key_merge_in_turn():
    """Two items of one block both count; a later plain value replaces an earlier mapping."""
    assert parse_overrides(["thresholds={aa: 1}", "thresholds={bb: {cc: 2}}"]) == {
        "thresholds": {"aa": "1", "bb": {"cc": "2"}}
    }
    assert parse_overrides(["ab={cc: 1}", "ab=3"]) == {"ab": 3}


def test_values_inside_braces_stay_text():
    """Snakemake reads a nested value with YAML's BaseLoader: numbers and booleans inside {...} or [...] are text."""
    assert parse_overrides(["ab={a: 1, b: [1, 2.5], c: {d: true}}"]) == {
        "ab": {"a": "1", "b": ["1", "2.5"], "c": {"d": "true"}}
    }


def test_top_level_numbers_are_int_or_float():
    assert parse_overrides(["ab=24", "cd=0.5", "ef=1e-3", "gh=1_000"]) == {"ab": 24, "cd": 0.5, "ef": 0.001, "gh": 1000}
    assert isinstance(parse_overrides(["ab=24"])["ab"], int)


def test_only_True_and_False_are_booleans():
    """As Snakemake: ``True``/``False`` are booleans, ``true`` and ``null`` are text, an empty value is None."""
    assert parse_overrides(["ab=True", "cd=False", "ef=true", "gh=null", "ij="]) == {
        "ab": True,
        "cd": False,
        "ef": "true",
        "gh": "null",
        "ij": None,
    }


@pytest.mark.parametrize("item", ["a=1", "1a=1", "thresholds.class_selectivity=9", "ab-=1", "=1"])
def test_a_key_snakemake_refuses_is_one_line_naming_it(item):
    key = item.partition("=")[0]
    with pytest.raises(ConfigError, match=r"^--config: .* is not a key Snakemake's --config takes"):
        parse_overrides([item])
    code, err = check_config(item)
    assert code == 3 and err.count("\n") == 1 and f"--config: {key!r} is not a key" in err, err


@pytest.mark.parametrize("item", ["ab= ", "ab=# note"])
def test_a_blank_value_is_refused_in_one_line(item):
    """Snakemake fails on these with a bare AssertionError; check-config names the key."""
    code, err = check_config(item)
    assert code == 3 and err.count("\n") == 1 and "--config: ab: " in err and "holds no value" in err, err


def test_the_readings_are_snakemakes():
    """Every item of :data:`ITEMS`, alone and all merged over a config, reads as Snakemake's parse_config and
    update_config read it."""
    snakemake_cli = pytest.importorskip("snakemake.cli")
    from snakemake.utils import update_config

    for item in ITEMS:
        assert repr(parse_overrides([item])) == repr(snakemake_cli.parse_config([item])), item
    base = {"ab": {"a": "0", "z": 1}, "a-b_c": {"d": 2}, "keep": [1]}
    theirs = copy.deepcopy(base)
    update_config(theirs, snakemake_cli.parse_config(ITEMS))
    assert merge_config(base, parse_overrides(ITEMS)) == theirs


def test_check_config_and_snakemake_refuse_a_nested_number_alike():
    """``--config 'thresholds={class_selectivity: 9}'``: check-config refuses with the message Snakemake's
    planning gives for the config its own --config makes, and the message says why the 9 is text."""
    snakemake_cli = pytest.importorskip("snakemake.cli")
    from snakemake.utils import update_config

    item = "thresholds={class_selectivity: 9}"
    config = load_config(CONFIG)
    update_config(config, snakemake_cli.parse_config([item]))
    with pytest.raises(ConfigError) as planned:
        plan_run(config, [str(CONFIG)], REPO, keep_hashes=False)
    code, err = check_config(item)
    assert code == 3 and err.count("\n") == 1
    expected = "thresholds.class_selectivity: expected number, got str '9' (Snakemake's --config passes values"
    assert expected in err and expected in str(planned.value)


def _problem(config: dict) -> str:
    with pytest.raises(ConfigError) as error:
        validate_schema(config)
    return str(error.value)


def test_a_number_given_as_text_says_where_text_comes_from():
    """A number, integer or boolean the config holds as text gets the one-line hint; other text does not."""
    config = load_config(CONFIG)
    number = _problem(merge_config(config, {"thresholds": {"class_selectivity": "9"}}))
    assert "class_selectivity: expected number, got str '9' (Snakemake's --config passes values inside {...}" in number
    assert number.count("\n") == 1 and number.endswith("set this key in a config file, unquoted)")
    boolean = _problem(merge_config(config, {"warm_worker": "false"}))
    assert "warm_worker: expected boolean, got str 'false' (Snakemake's --config reads only True and False" in boolean
    word = _problem(merge_config(config, {"thresholds": {"class_selectivity": "many"}}))
    assert word.endswith("expected number, got str 'many'")
