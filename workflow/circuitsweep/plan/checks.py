"""Config checks beyond the schema that need the resolved models: toy settings, branch names, endpoints.

Run by :func:`circuitsweep.plan.sweep.plan_sweep` (so at DAG build and by
``circuitsweep check-config``), each returns one line per problem naming the
key, so a bad toy setting fails in a second instead of 10-14 s into a
training job, and a bad ``branch_format`` never reaches Snakemake as a
``KeyError`` or an empty sweep. No torch here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from circuitsweep.checkpoints import run_dir
from circuitsweep.checkpoints.revisions import Revision, fewer_tokens, parse_branch, same_point
from circuitsweep.checkpoints.special_tokens import bos_policy_token_id
from circuitsweep.config.architectures import check_declared
from circuitsweep.config.load import ModelSettings
from circuitsweep.errors import ConfigError, SnapshotError
from circuitsweep.io.names import unsafe_reason
from circuitsweep.plan import sizing
from circuitsweep.toy.spec import ARCHITECTURE_KEYS, ToySpec, branch_name

BRANCH_FIELDS = ("step", "tokens", "ktokens")


def revision_problems(
    model: ModelSettings,
    available: Sequence[Revision],
    swept: Sequence[Revision],
    where: str = "",
    manifest: Path | None = None,
) -> list[str]:
    """Two revisions of one name among what the source publishes, a swept revision with fewer tokens than one at
    an earlier step (or more than one at a later step), or two swept revisions at one point of training (equal
    step and tokens), one line naming both: each would be measured into one cache twice, counted twice in the
    tables or put out of order on the token axis, and fail only after every revision is measured, or not at all.
    ``manifest``: the manifest file the source's revisions were read from, named in the message."""
    where = where or f"models.{model.name}"
    problems = []
    if model.source["type"] == "hub_repos":
        by_name: dict[str, list[str]] = {}
        for repo in model.source.get("repos", []):
            by_name.setdefault(repo["repo_id"].split("/")[-1], []).append(repo["repo_id"])
        for name, repos in by_name.items():
            if len(repos) > 1:
                problems.append(
                    f"{where}.source.repos: {' and '.join(repos)} would both be revision {name!r} (a revision is its "
                    "repository's name): list each checkpoint once"
                )
    else:
        counts: dict[str, int] = {}
        for revision in available:
            counts[revision.name] = counts.get(revision.name, 0) + 1
        problems += [f"{where}: the source lists revision {n!r} {c} times" for n, c in counts.items() if c > 1]
    if problems:
        return problems
    swept_names = {revision.name for revision in swept}
    decreasing = [pair for pair in fewer_tokens(available) if swept_names & {pair[0].name, pair[1].name}]
    if decreasing:
        earlier, later = decreasing[0]
        others = len(decreasing) - 1
        more = f" ({others} more revision{'s' if others > 1 else ''} as well)" if others else ""
        problems.append(
            f"{_tokens_key(model, where, manifest, (earlier.name, later.name))}: revision {later.name!r} (step "
            f"{later.step:,}) has {later.tokens:,} tokens, fewer than {earlier.name!r} at the earlier step "
            f"{earlier.step:,} ({earlier.tokens:,} tokens): tokens cannot decrease as training goes on; "
            f"correct the tokens of one of them, or state a branch's step and tokens under tokens.branches{more}"
        )
    for first, second in same_point(swept):
        problems.append(
            f"{where}.revisions: {first.name!r} and {second.name!r} are one checkpoint (step {first.step:,}, "
            f"{first.tokens:,} tokens): sweep only one of them (list the revisions, or narrow the branch pattern)"
        )
    return problems


def spectral_leave_out_problems(model: ModelSettings, swept: Sequence[Revision]) -> list[str]:
    """A name in ``spectral_leave_out`` that is no revision the run sweeps (a typo would leave nothing out, and the
    ranking would silently differ from the one asked for), one line naming it and the revisions swept."""
    names = [revision.name for revision in swept]
    unknown = [name for name in model.spectral_leave_out if name not in names]
    if unknown:
        shown = ", ".join(names[:3]) + (f" .. {names[-1]}" if len(names) > 3 else "")
        return [
            f"models.{model.name}.spectral_leave_out: {', '.join(map(repr, unknown))} "
            f"{'is no revision' if len(unknown) == 1 else 'are no revisions'} this run sweeps ({shown})"
        ]
    if names and set(names) <= set(model.spectral_leave_out):
        return [f"models.{model.name}.spectral_leave_out: leaves out every revision this run sweeps: none to rank"]
    return []


def _tokens_key(model: ModelSettings, where: str, manifest: Path | None, names: Sequence[str]) -> str:
    """Where the tokens of revisions ``names`` were written: ``tokens.branches``, a hub_repos entry, the
    manifest file (``source.manifest`` when the config names it), else the branch names themselves."""
    if any(name in model.tokens.get("branches", {}) for name in names):
        return f"{where}.tokens.branches"
    if model.source["type"] == "hub_repos":
        return f"{where}.source.repos"
    if manifest is not None:
        return f"{where}.source.manifest: {manifest}" if model.source.get("manifest") else f"{where}: {manifest}"
    return f"{where}.revisions" if model.source["type"] == "hub" else f"{where}.source"


def tokenizer_problem(model: ModelSettings, folder: Path, revisions: Sequence[Revision]) -> str | None:
    """A run_dir model measuring primitives (``revisions``: those it measures) whose checkpoint folders ship no
    tokenizer, one line naming the model and the first such folder: only a toy's words may be hashed to token ids
    (docs/primitives.md), so its primitive jobs would fail after its heads are planned and fetched."""
    missing = [folder / revision.name for revision in revisions if not run_dir.has_tokenizer(folder / revision.name)]
    return run_dir.no_tokenizer(model.name, missing[0], len(missing) - 1) if missing else None


def toy_problems(model: ModelSettings) -> list[str]:
    """Problems of a toy model's ``toy:`` settings, branch format and token accounting."""
    where = f"models.{model.name}"
    try:
        spec = ToySpec.of_model(model.architecture, model.toy)
    except (TypeError, ValueError) as error:
        return [f"{where}.toy: {error}"]
    problems = [
        f"{where}.toy.{key}: only {ARCHITECTURE_KEYS[key]} toys read it, and this one is {model.architecture}"
        for key in (model.toy or {})
        if key in ARCHITECTURE_KEYS and ARCHITECTURE_KEYS[key] != model.architecture
    ]
    per_step = model.tokens.get("per_step")
    if per_step is None:
        # from_name: the toy's branch names are made from per_step, so there is no name to read tokens from
        problems.append(
            f"{where}.tokens: a toy source needs per_step: {spec.tokens_per_step}, the toy's batch x seq_len "
            f"({spec.batch} x {spec.seq_len}); from_name is not available for a toy source (its branch names are "
            "made from per_step)"
        )
    elif per_step != spec.tokens_per_step:
        problems.append(
            f"{where}.tokens.per_step: {per_step} disagrees with the toy model's batch x seq_len = "
            f"{spec.batch} x {spec.seq_len} = {spec.tokens_per_step}"
        )
    problems += branch_format_problems(where, (model.toy or {}).get("branch_format"), spec)
    problems += toy_vocabulary_problems(where, model.probes.token_range, model.first_token, spec)
    return problems


def shared_toy_repo_problems(models: Mapping[str, ModelSettings]) -> list[str]:
    """Toy models that name a toy repository another toy model of the config already trains into.

    Each toy publishes its branches under its ``source.repo_id``; a second toy with the same id would
    overwrite the first one's branches, and one of them would be measured with the other's weights.
    """
    first_of: dict[str, str] = {}
    problems = []
    for name, model in models.items():
        if model.source.get("type") != "toy":
            continue
        repo_id = str(model.source.get("repo_id"))
        folded = repo_id.casefold()  # one folder on a case-insensitive disk
        if folded in first_of:
            problems.append(
                f"models.{name}.source.repo_id: {repo_id!r} is also models.{first_of[folded]}'s; each toy model "
                "trains into a repository of its own"
            )
        else:
            first_of[folded] = name
    return problems


def toy_vocabulary_problems(
    where: str, token_range: Sequence[int], first_token: dict[str, Any], spec: ToySpec
) -> list[str]:
    """Ids the probes would feed a toy model that its embedding does not hold (ids ``>= spec.vocab_size``).

    The probes draw from ``token_range`` ``[low, high)`` and put the fixed first token at position 0, so a
    toy trained with a smaller vocabulary would fail at its first measurement, after its training.
    """
    problems = []
    low, high = token_range
    if high > spec.vocab_size:
        problems.append(
            f"{where}.probes.token_range: [{low}, {high}) reaches past the toy's vocabulary of {spec.vocab_size} ids "
            f"(toy.vocab_size); use a range that ends at {spec.vocab_size} at most"
        )
    token_id = first_token.get("token_id") if first_token.get("policy") == "fixed" else None
    if token_id is not None and token_id >= spec.vocab_size:
        problems.append(
            f"{where}.first_token.token_id: {token_id} is outside the toy's vocabulary of {spec.vocab_size} ids "
            "(toy.vocab_size)"
        )
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


def toy_model_config(spec: ToySpec) -> dict[str, Any]:
    """The ``config.json`` keys of a toy model that sizing needs (as ``toy.train.build_config`` sets them)."""
    config: dict[str, Any] = {
        "hidden_size": spec.hidden_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_heads,
        "intermediate_size": spec.intermediate_size,
        "vocab_size": spec.vocab_size,
        "max_position_embeddings": spec.seq_len,
        "hidden_act": "gelu" if spec.architecture == "GPTNeoXForCausalLM" else "silu",
    }
    if spec.architecture == "OlmoeForCausalLM":
        config["num_experts"] = spec.num_experts
    return config


def size_problems(model: ModelSettings) -> list[str]:
    """Probes longer than a model's context or sliding window, probe ids past a declared ``shape.vocab_size``;
    a job no machine could hold (``MAX_JOB_BYTES``).

    The model's shape is a toy's own, or the ``shape`` a Hub model declares
    (a run_dir's sliding windows are checked where planning reads its
    config.json, ``sweep.run_dir_fingerprints``). Without one, a Hub model's config is not
    known before download: its probes are bounded here by the model-free part
    of the estimate, and its context, windows and full size by the job, before
    it allocates.
    """
    model_config = model.shape
    if model.source["type"] == "toy" and model.toy is not None:
        try:
            model_config = toy_model_config(ToySpec.of_model(model.architecture, model.toy))
        except (TypeError, ValueError):
            return []  # reported by toy_problems
    probes = model.probes.to_dict()
    problems = []
    if model_config is not None:
        problem = sizing.length_problem(probes, model_config, f"models.{model.name}")
        if problem:
            problems.append(problem)
    if model.shape is not None and model.source["type"] != "toy":  # a toy's ids: toy_vocabulary_problems
        fixed = model.first_token.get("token_id") if model.first_token.get("policy") == "fixed" else None
        vocab = model.shape.get("vocab_size")
        where = f"models.{model.name}"
        problem = sizing.vocabulary_problem(model.probes.token_range, fixed, vocab, where, f"{where}.shape")
        if problem:
            problems.append(problem)
    try:
        estimate = sizing.estimate_heads_memory(probes, model_config, model.dtype)
        sizing.check_fits(estimate, sizing.MAX_JOB_BYTES, f"models.{model.name}", "any one job may use")
    except ConfigError as error:
        problems.append(str(error))
    return problems


def checkpoint_problem(model: ModelSettings, folder: Path, model_config: Mapping[str, Any]) -> str | None:
    """What in a run_dir checkpoint's ``config.json`` would fail every job of ``model``, as its job would say it.

    ``model_config``: the file as :func:`sizing.load_model_config` reads it. The job's own checks, on the file
    alone: the class it declares (:func:`check_declared`), a probe longer than its context or a layer's
    sliding window (:func:`sizing.length_problem`), probe ids or a first token past its vocabulary
    (:func:`sizing.vocabulary_problem`; a ``bos`` first token as the job resolves it,
    :func:`checkpoints.special_tokens.bos_policy_token_id`, when the folder's files name one: otherwise the
    config class's default, not known here, decides).
    """
    where, config_file = f"models.{model.name}", Path(folder) / "config.json"
    try:
        check_declared(folder, model_config, model.architecture)
    except SnapshotError as error:
        return f"{where}.architecture: {error}"
    problem = sizing.length_problem(model.probes.to_dict(), model_config, where)
    if problem:
        return f"{problem} ({config_file})"
    policy, token_id = model.first_token.get("policy"), None
    if policy == "fixed":
        token_id = int(model.first_token["token_id"])
    elif policy == "bos":
        token_id = bos_policy_token_id(model_config, folder)
    vocab = model_config.get("vocab_size")
    vocab = vocab if isinstance(vocab, int) and not isinstance(vocab, bool) else None
    return sizing.vocabulary_problem(model.probes.token_range, token_id, vocab, where, f"vocab_size in {config_file}")


def model_problems(model: ModelSettings) -> list[str]:
    """Every problem of one resolved model that the schema cannot see."""
    problems = endpoint_problems(model)
    if model.source["type"] == "toy" and model.toy is not None:
        problems += toy_problems(model)
    return problems + size_problems(model)
