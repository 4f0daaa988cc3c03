"""envs/circuitsweep.yaml provides pyproject.toml's runtime dependencies, with compatible bounds."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import Specifier, SpecifierSet
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = REPO_ROOT / "pyproject.toml"
ENV_FILE = REPO_ROOT / "envs" / "circuitsweep.yaml"

# PyPI name -> conda-forge name, where they differ beyond -/_ spelling. Keep it small.
CONDA_NAME = {
    "torch": "pytorch",
    "matplotlib": "matplotlib-base",  # matplotlib without the Qt GUI stack
}

LOWER_OPS = {">=", ">"}
UPPER_OPS = {"<", "<="}


def normalise(name: str) -> str:
    """PEP 503: huggingface_hub, Huggingface-Hub and huggingface.hub are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject() -> dict:
    with open(PYPROJECT, "rb") as fh:
        return tomllib.load(fh)


def runtime_requirements() -> list[Requirement]:
    return [Requirement(dep) for dep in pyproject()["project"]["dependencies"]]


def conda_specs() -> dict[str, SpecifierSet]:
    """normalised conda name -> version bounds, from the env file's conda dependencies."""
    env = yaml.safe_load(ENV_FILE.read_text())
    specs: dict[str, SpecifierSet] = {}
    for dep in env["dependencies"]:
        if not isinstance(dep, str):  # the `pip:` sub-list
            continue
        match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", dep.split("::")[-1])
        assert match, f"cannot parse conda dependency {dep!r}"
        name, bounds = match.groups()
        try:
            # only PEP 440-style bounds (">=1,<2") are used, so that this test can compare them
            specs[normalise(name)] = SpecifierSet(bounds.replace(" ", ""))
        except Exception as exc:
            pytest.fail(f"{ENV_FILE.name}: write bounds of {dep!r} as '>=a,<b' ({exc})")
    return specs


def conda_name(requirement: Requirement) -> str:
    name = normalise(requirement.name)
    return normalise(CONDA_NAME.get(name, name))


def _covers(env: SpecifierSet, spec: Specifier) -> bool:
    """The env's bounds are at least as strict as one pyproject bound."""
    for own in env:
        if spec.operator in LOWER_OPS and own.operator in LOWER_OPS:
            if Version(own.version) > Version(spec.version) or (
                own.version == spec.version and (own.operator == ">" or spec.operator == ">=")
            ):
                return True
        elif spec.operator in UPPER_OPS and own.operator in UPPER_OPS:
            if Version(own.version) < Version(spec.version) or (
                own.version == spec.version and (own.operator == "<" or spec.operator == "<=")
            ):
                return True
        elif own.operator == spec.operator and own.version == spec.version:
            return True
    return False


def _some_version_satisfies(a: SpecifierSet, b: SpecifierSet) -> bool:
    """Whether the two sets of bounds have a common version (tried at every bound and just past it)."""
    candidates = {Version("0")}
    for spec in [*a, *b]:
        v = Version(spec.version.replace(".*", ""))
        candidates |= {v, Version(f"{v}.post1"), Version(f"{v.major}.{v.minor}.{v.micro + 1}")}
    return any(a.contains(v, prereleases=True) and b.contains(v, prereleases=True) for v in candidates)


def test_name_normalisation():
    assert normalise("huggingface_hub") == normalise("huggingface-hub") == "huggingface-hub"
    assert conda_name(Requirement("torch>=2")) == "pytorch"
    assert conda_name(Requirement("PyYAML>=6")) == "pyyaml"


@pytest.mark.parametrize("requirement", runtime_requirements(), ids=lambda r: r.name)
def test_env_provides_runtime_dependency(requirement: Requirement):
    specs = conda_specs()
    name = conda_name(requirement)
    assert name in specs, (
        f"pyproject dependency {requirement} is missing from {ENV_FILE.relative_to(REPO_ROOT)} "
        f"(expected conda package {name!r}; add it, or map the name in CONDA_NAME)"
    )
    env = specs[name]
    for spec in requirement.specifier:
        assert _covers(env, spec), f"{ENV_FILE.name}: {name} {env} does not keep pyproject's bound {spec}"
    assert _some_version_satisfies(env, requirement.specifier), f"{name}: {env} contradicts {requirement.specifier}"


def test_torch_upper_bound_kept():
    torch = next(r for r in runtime_requirements() if normalise(r.name) == "torch")
    uppers = [s for s in torch.specifier if s.operator in UPPER_OPS]
    assert uppers, "pyproject lost torch's upper bound"
    env = conda_specs()["pytorch"]
    for upper in uppers:
        assert _covers(env, upper)


def test_env_python_matches_requires_python():
    requires = SpecifierSet(pyproject()["project"]["requires-python"])
    env = conda_specs()["python"]
    for spec in requires:
        assert _covers(env, spec), f"python {env} vs requires-python {requires}"


def test_checker_catches_problems():
    loose = SpecifierSet(">=2.6")
    assert not _covers(loose, Specifier("<2.14"))
    assert not _covers(SpecifierSet(">=2.0,<2.14"), Specifier(">=2.6"))
    assert _covers(SpecifierSet(">=2.7,<2.13"), Specifier("<2.14"))
    assert not _some_version_satisfies(SpecifierSet("<2"), SpecifierSet(">=2.6"))
    assert _some_version_satisfies(SpecifierSet(">=2.6,<2.14"), SpecifierSet(">=2.6,<2.14"))
