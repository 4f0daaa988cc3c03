"""Config checks beyond the schema that need the resolved models: toy settings, branch names, endpoints.

Run by :func:`circuitsweep.plan.plan_sweep` (so at DAG build and by
``circuitsweep check-config``), each returns one line per problem naming the
key, so a bad toy setting fails in a second instead of 10-14 s into a
training job, and a bad ``branch_format`` never reaches Snakemake as a
``KeyError`` or an empty sweep. No torch here.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from circuitsweep.config import ModelSettings
from circuitsweep.names import unsafe_reason
from circuitsweep.revisions import parse_branch
from circuitsweep.toy.spec import ToySpec, branch_name

BRANCH_FIELDS = ("step", "tokens", "ktokens")


def toy_problems(model: ModelSettings) -> list[str]:
    """Problems of a toy model's ``toy:`` settings, branch format and token accounting."""
    where = f"models.{model.name}"
    try:
        spec = ToySpec.from_dict({"architecture": model.architecture, **(model.toy or {})})
    except (TypeError, ValueError) as error:
        return [f"{where}.toy: {error}"]
    problems = []
    per_step = model.tokens.get("per_step")
    if per_step != spec.tokens_per_step:
        problems.append(
            f"{where}.tokens.per_step: {per_step} disagrees with the toy model's batch x seq_len = "
            f"{spec.batch} x {spec.seq_len} = {spec.tokens_per_step}"
        )
    problems += branch_format_problems(where, (model.toy or {}).get("branch_format"), spec)
    return problems


def branch_format_problems(where: str, branch_format: object, spec: ToySpec) -> list[str]:
    """Whether ``branch_format`` names every step of ``spec`` with a safe checkpoint name of that step."""
    key = f"{where}.toy.branch_format"
    if not isinstance(branch_format, str):
        return [f"{key}: required, a format string with fields {{step}}, {{tokens}} or {{ktokens}}"]
    try:
        names = [branch_name(branch_format, step, spec.tokens_per_step) for step in spec.schedule]
    except (KeyError, IndexError, ValueError, AttributeError) as error:
        return [
            f"{key}: {branch_format!r} cannot be formatted ({type(error).__name__}: {error}); fields: {BRANCH_FIELDS}"
        ]
    problems = []
    for step, name in zip(spec.schedule, names, strict=True):
        reason = unsafe_reason(name)
        if reason:
            problems.append(f"{key}: step {step} gives {name!r}, not a safe file name ({reason})")
            break
        try:
            revision = parse_branch(name, tokens_per_step=spec.tokens_per_step)
        except ValueError as error:
            problems.append(f"{key}: step {step} gives {error}")
            break
        if revision.step != step:
            problems.append(f"{key}: step {step} gives {name!r}, which reads as step {revision.step}")
            break
    return problems


def endpoint_problems(model: ModelSettings) -> list[str]:
    """A Hub endpoint must be an http(s) URL with a host (``file:///`` is not a Hub)."""
    endpoint = model.source.get("endpoint")
    if endpoint is None:
        return []
    parts = urlsplit(str(endpoint))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return [
            f"models.{model.name}.source.endpoint: {endpoint!r} is not an http(s) URL such as https://huggingface.co"
        ]
    return []


def model_problems(model: ModelSettings) -> list[str]:
    """Every problem of one resolved model that the schema cannot see."""
    problems = endpoint_problems(model)
    if model.source["type"] == "toy" and model.toy is not None:
        problems += toy_problems(model)
    return problems
