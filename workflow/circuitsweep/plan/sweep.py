"""The sweep plan: which revisions of which models are swept, where their files go, on what device.

Built once when Snakemake parses the workflow, from the config alone (and
bundled or refreshed manifests), so the DAG builds offline and fast. The plan
holds what is swept and how its sources are fetched; each measuring stage turns
it into its own job settings (:mod:`circuitsweep.heads.jobs`,
:mod:`circuitsweep.primitives.jobs`), so a new probe or table touches its stage's
folder and its rule file, not the plan.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from circuitsweep.checkpoints import local_hub, run_dir
from circuitsweep.checkpoints.revisions import (
    Manifest,
    Revision,
    parse_branches,
    read_manifest,
    select_revisions,
    sort_revisions,
)
from circuitsweep.config.load import (
    RUN_DIR_PATTERN,
    ModelSettings,
    resolve_ablation,
    resolve_bootstrap,
    resolve_config,
    resolve_spectral_top_k,
    schema_default,
    setting_key,
)
from circuitsweep.config.patterns import pattern_regex
from circuitsweep.config.probes import AblationSettings, BootstrapSettings
from circuitsweep.config.stimuli import load_stimuli
from circuitsweep.errors import ConfigError, DataError, SnapshotError, config_problems
from circuitsweep.io.cache_check import (
    CACHE_SCHEMA_VERSION,
    SCHEMA_KEY,
)
from circuitsweep.io.contracts import Paths
from circuitsweep.io.corpus import corpus_files
from circuitsweep.io.readable import unreadable_file
from circuitsweep.io.run_folder import run_folder_refusal, run_root
from circuitsweep.io.settings_files import check_settings_folder
from circuitsweep.plan import passes, sizing
from circuitsweep.plan.checks import (
    checkpoint_problem,
    model_problems,
    revision_problems,
    shared_toy_repo_problems,
    spectral_leave_out_problems,
    tokenizer_problem,
)
from circuitsweep.plan.rounds import RefineSettings, read_rounds, resolve_refine, with_added

logger = logging.getLogger(__name__)

#: The one revision of a package source: a released pretrained model whose
#: step and training tokens are not published with it (recorded as 0).
PACKAGE_REVISION = "main"
#: Heads ablated alone (induction class and screen) that the final-revision ablation's runtime allows for.
SINGLE_HEAD_ALLOWANCE = passes.SINGLE_HEAD_ALLOWANCE
#: A hub source swept at ``revisions: [main]`` only is a released model (step and tokens recorded as 0),
#: e.g. the chat models of the primitive study; it needs neither a manifest nor a token count.
RELEASED_REVISION = "main"


def toy_branches(toy: dict[str, Any], tokens_per_step: int) -> list[str]:
    """The branch names a toy model publishes: one per step of its schedule."""
    return [
        toy["branch_format"].format(
            step=step, tokens=step * tokens_per_step, ktokens=round(step * tokens_per_step / 1000)
        )
        for step in toy["schedule"]
    ]


def repo_revision(repo_id: str) -> str:
    """The revision name of a hub_repos checkpoint: its repository's name (``TinyLlama/X`` -> ``X``)."""
    return repo_id.split("/")[1]


#: The branch of each repository of a hub_repos source that holds its checkpoint.
HUB_REPOS_BRANCH = "main"


def manifest_path(model: ModelSettings, root: Path) -> Path:
    """The manifest of a Hub source: ``source.manifest``, else the bundled ``config/revisions/<name>.json``."""
    given = model.source.get("manifest")
    if given:
        return root / given
    return root / "config" / "revisions" / f"{model.source['repo_id'].split('/')[1].lower()}.json"


def listed_manifest(model: ModelSettings, root: Path) -> Path | None:
    """The manifest file a Hub source's revisions are read from (None: another source, or no manifest)."""
    if model.source["type"] != "hub":
        return None
    path = manifest_path(model, root)
    return path if path.is_file() else None


def _manifest_file_problem(path: Path) -> str | None:
    """Why the manifest a config names cannot be read as one (missing, a folder, a device), or None."""
    hint = "; correct the path, or leave source.manifest out to use config/revisions"
    return unreadable_file(path, "manifest file", missing_hint=hint)


def model_manifest(model: ModelSettings, path: Path) -> Manifest:
    """The manifest of Hub model ``model`` at ``path``; a :class:`ConfigError` naming the key and the file when
    it is no readable manifest, or when the manifest found by the model's name (no ``source.manifest``) lists
    another repository's revisions (a fork of a bundled model).

    A variant of the manifest's repository by the same owner (``EleutherAI/pythia-160m-seed1``, a seed of
    ``EleutherAI/pythia-160m``, which publishes the same branches) may share it; a manifest the config names
    that lists another repository is used as named (sibling runs publish the same branches), with a warning."""
    key = f"models.{model.name}.source" + (".manifest" if model.source.get("manifest") else "")
    try:
        manifest = read_manifest(path)
    except ValueError as error:
        raise ConfigError(f"{key}: {error}") from None
    repo_id = model.source["repo_id"]
    owner, name = repo_id.casefold().split("/", 1)
    listed_owner, listed_name = manifest.repo_id.casefold().split("/", 1)
    if owner != listed_owner or (name != listed_name and not name.startswith(f"{listed_name}-")):
        own = f"`circuitsweep refresh-manifest {repo_id} <file>` (needs the Hub) lists {repo_id}'s own"
        if model.source.get("manifest"):  # named on purpose: a sibling run may publish the same branches
            logger.warning(
                "%s: %s lists the branches of %s; they are read as source.repo_id %s's (%s)",
                key, path, manifest.repo_id, repo_id, own,
            )  # fmt: skip
        else:
            raise ConfigError(
                f"{key}: {path}, the manifest found for {repo_id} by its name, is {manifest.repo_id}'s: its branches, "
                f"steps and tokens are another repository's; {own}, to name in source.manifest"
            )
    return manifest


def available_revisions(model: ModelSettings, root: Path) -> list[Revision]:
    """Every revision the model's source publishes, as far as is known offline.

    Branches named in ``tokens.branches`` (``main``...) take the step and tokens
    stated there, replacing any the source lists under that name.
    """
    stated = [
        Revision(name, int(entry["step"]), int(entry["tokens"]))
        for name, entry in model.tokens.get("branches", {}).items()
    ]
    listed = _source_revisions(model, root)
    return [r for r in listed if r.name not in {s.name for s in stated}] + stated


def _note_unlisted_stated(model: ModelSettings, listed: Sequence[Revision]) -> None:
    """Warn of a ``tokens.branches`` name that the model's manifest (``listed``) does not list and that is not
    ``main`` (which every Hub repository has): a manifest lists the checkpoint branches only, so the name cannot
    be checked offline, and a typo (``mian``) would otherwise surface only when its download fails."""
    names = {revision.name for revision in listed}
    for name in model.tokens.get("branches", {}):
        if name not in names and name != RELEASED_REVISION:
            logger.warning(
                "%s: tokens.branches names %r, which its manifest does not list: it is read as a branch of "
                "that name (check the spelling; a branch that does not exist fails at its download)",
                model.name,
                name,
            )


def _source_revisions(model: ModelSettings, root: Path) -> list[Revision]:
    """The revisions the model's source lists (manifest, branches, folders or toy schedule)."""
    tokens_per_step = model.tokens.get("per_step")
    source = model.source
    if source["type"] == "package":
        return [Revision(PACKAGE_REVISION, 0, 0)]
    if source["type"] == "run_dir":
        pattern, skipped = source.get("pattern", RUN_DIR_PATTERN), []
        try:
            folders = run_dir.list_checkpoints(root / source["path"], pattern, skipped)
        except ConfigError as error:
            raise ConfigError(f"models.{model.name}.{error}") from None
        if skipped:
            shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
            logger.warning(
                "%s: skipped %d entr%s of %s that %s no checkpoint folder named %s: %s",
                model.name,
                len(skipped),
                "y" if len(skipped) == 1 else "ies",
                root / source["path"],
                "is" if len(skipped) == 1 else "are",
                run_dir.pattern_display(pattern),
                shown,
            )
        if not folders:
            raise ConfigError(
                f"models.{model.name}.source: no folder of {root / source['path']} matches the pattern "
                f"{pattern!r}{_run_dir_contents(root / source['path'], pattern)}"
            )
        try:
            return [Revision(name, step, step * (tokens_per_step or 0)) for name, step in folders]
        except ValueError as error:
            raise ConfigError(f"models.{model.name}.source ({root / source['path']}): {error}") from None
    if source["type"] == "hub_repos":
        return sort_revisions(
            Revision(
                repo_revision(repo["repo_id"]), repo["step"], repo.get("tokens", repo["step"] * (tokens_per_step or 0))
            )
            for repo in source["repos"]
        )
    if source["type"] == "toy":
        names = toy_branches(model.toy, tokens_per_step or 0)
    elif source["type"] == "local":
        names = local_hub.list_branches(root / source["path"], source["repo_id"])
        if not names:
            raise ConfigError(
                f"models.{model.name}.source: no branches of {source['repo_id']} under {root / source['path']}"
            )
    else:
        path = manifest_path(model, root)
        problem = _manifest_file_problem(path) if source.get("manifest") else None
        if problem:
            # a mistyped path is refused, never passed over for steps and tokens guessed from the names
            raise ConfigError(f"models.{model.name}.source.manifest: {problem}")
        if model.revisions == [RELEASED_REVISION] and not path.is_file():
            return [Revision(RELEASED_REVISION, 0, 0)]
        if not path.is_file():
            if isinstance(model.revisions, list):
                names = list(model.revisions)
            else:
                raise ConfigError(
                    f"models.{model.name}.revisions: selecting {model.revisions!r} needs the manifest {path}; "
                    f"create it with `circuitsweep refresh-manifest {source['repo_id']} {path}` (needs the Hub) "
                    "or list the revisions explicitly"
                )
        else:
            listed = list(model_manifest(model, path).revisions)
            _note_unlisted_stated(model, listed)
            return listed
    try:
        parsed = parse_branches(names, tokens_per_step=tokens_per_step, pattern=source.get("branch_pattern"))
    except ValueError as error:
        raise ConfigError(f"models.{model.name}: {error}") from error
    if source["type"] == "hub":
        _refuse_unread_names(model, names, parsed)
    return parsed


def _run_dir_contents(folder: Path, pattern: str) -> str:
    """What a run_dir ``folder`` without checkpoint folders holds, for its refusal: `` (it holds a, b, c ...)``, and
    where ``folder`` is itself a checkpoint folder by ``pattern``, that ``path`` is the run's output folder."""
    try:
        names = sorted(entry.name for entry in folder.iterdir() if not entry.name.startswith("."))
    except OSError:
        return ""
    held = f"it holds {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}" if names else "it is empty"
    try:
        siblings = dict(run_dir.list_checkpoints(folder.parent, pattern))
    except (ConfigError, OSError):
        siblings = {}
    if folder.name in siblings:
        held += f"; {folder.name} is itself a checkpoint: give source.path as the run's output folder, {folder.parent}"
    return f" ({held})"


def _refuse_unread_names(model: ModelSettings, names: Sequence[str], parsed: Sequence[Revision]) -> None:
    """Refuse listed branch names that give no step (``main`` among ``stepN`` branches, without a manifest) and
    that ``tokens.branches`` does not place either, naming the key that would: selecting them would fail with
    a bare "unknown revision"."""
    placed = {revision.name for revision in parsed} | set(model.tokens.get("branches", {}))
    unread = [name for name in names if name not in placed]
    if not unread:
        return
    pattern = model.source.get("branch_pattern")
    one = len(unread) == 1
    form = (
        f"{'does' if one else 'do'} not match source.branch_pattern {pattern!r}"
        if pattern
        else f"{'is' if one else 'are'} not of the form stepN or stepN-tokensXB"
    )
    raise ConfigError(
        f"models.{model.name}.revisions: {', '.join(map(repr, unread))} {form}, and without a manifest a "
        f"branch's step and tokens come from its name: state them under models.{model.name}.tokens.branches, "
        f"e.g. {{{unread[0]}: {{step: N, tokens: T}}}}"
    )


@dataclass(frozen=True)
class PartialManifest:
    """A model whose manifest lists ``listed`` of about ``published`` branches (None: unknown)."""

    model: str
    repo_id: str
    path: Path
    listed: int
    published: int | None


@dataclass(frozen=True)
class Plan:
    """Resolved models and the revisions each one sweeps, in training order, with the run's paths and device.

    Besides what is swept it answers what every stage shares: a revision's identity as each job and cache
    records it (:meth:`revision_job`, :meth:`cache_identity`, :meth:`weights`), how a revision is fetched
    (:meth:`fetch_settings`) or a toy trained (:meth:`toy_settings`); what it costs: :mod:`circuitsweep.plan.costs`.
    """

    models: dict[str, ModelSettings]
    revisions: dict[str, list[Revision]]
    device: str
    root: Path
    paths: Paths
    ablation: AblationSettings | None = None
    causal_factor: float = 2.0
    #: One-sided significance level of the causal milestone's paired test, after Holm's adjustment.
    causal_alpha: float = 0.01
    #: Weights fingerprint (sha256) of each planned revision of a run_dir source: model -> revision -> sha256.
    fingerprints: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Every revision each model's source publishes: the fixed grid that primitive selections count on.
    available: dict[str, list[Revision]] = field(default_factory=dict)
    #: The fingerprint of each primitive model's stimuli (``Stimuli.fingerprint``), as its shards record it.
    stimuli_sha256: dict[str, str] = field(default_factory=dict)
    #: The ``refine`` block (None: no refinement); the revisions its rounds added are in ``revisions``.
    refine: RefineSettings | None = None
    #: What this machine lacks for a job that may run elsewhere (a corpus package), said by check-config.
    notes: tuple[str, ...] = ()
    #: K of the final-revision ablation's spectral conditions (``ablation.spectral_top_k``): counts,
    #: shares of the heads or ``"elbow"``, resolved per model once ranked (``heads.spectral.resolve_top_k``).
    spectral_top_k: tuple[int | float | str, ...] = (45, 6)
    #: The bootstrap over probe sequences (``bootstrap:``); None when off (``resamples: 0``).
    bootstrap: BootstrapSettings | None = None

    def revision(self, model: str, name: str) -> Revision:
        for revision in self.revisions[model]:
            if revision.name == name:
                return revision
        raise KeyError(f"{name} is not a planned revision of {model}")

    def toy_settings(self, model: str) -> dict[str, Any]:
        settings = self.models[model]
        return {
            "model": model,
            "architecture": settings.architecture,
            "repo_id": settings.source["repo_id"],
            "tokens_per_step": settings.tokens.get("per_step"),
            "toy": settings.toy,
        }

    def fetch_settings(self, model: str, name: str) -> dict[str, Any]:
        source = dict(self.models[model].source)
        if source["type"] == "toy":
            source["path"] = str(self.paths.toy_hub())
        elif source["type"] == "local":
            source["path"] = str(self.root / source["path"])
        elif source["type"] == "package":
            source["path"] = str(self.paths.package_hub())
        elif source["type"] == "run_dir":
            source["path"] = str(self.root / source["path"])
            source["weights_sha256"] = self.fingerprints[model][name]
            source["hash_cache"] = str(self.paths.run_dir_hashes())
        elif source["type"] == "hub_repos":
            repo_id = next(r["repo_id"] for r in source.pop("repos") if repo_revision(r["repo_id"]) == name)
            source.update(type="hub", repo_id=repo_id)
            return {"model": model, "revision": name, "source": source, "hub_revision": HUB_REPOS_BRANCH}
        return {"model": model, "revision": name, "source": source}

    def weights(self, model: str, name: str) -> dict[str, Any]:
        """A run_dir revision's weights fingerprint: in the measuring rules' params, so overwritten weights rerun."""
        fingerprint = self.fingerprints.get(model, {}).get(name)
        return {} if fingerprint is None else {"weights_sha256": fingerprint}

    def revision_job(self, model: str, name: str) -> dict[str, Any]:
        """What every job that loads one revision needs: its identity, class, dtype, device, first token."""
        settings = self.models[model]
        revision = self.revision(model, name)
        return {
            "model": model,
            "revision": name,
            "step": revision.step,
            "tokens": revision.tokens,
            "architecture": settings.architecture,
            "dtype": settings.dtype,
            "first_token": settings.first_token,
            "device": self.device,
        }

    def final_revision(self, model: str) -> str:
        """The model's final revision: the last swept one by tokens, then step (docs/methods.md)."""
        return sorted(self.revisions[model], key=lambda revision: (revision.tokens, revision.step))[-1].name

    def final_ablation_tokens(self, model: str) -> int:
        """Tokens the final-revision ablation runs through the model, at most (its job's runtime;
        :func:`circuitsweep.plan.passes.final_ablation_tokens`)."""
        ablation = asdict(self.ablation or AblationSettings())
        return passes.final_ablation_tokens(self.models[model].probes.to_dict(), ablation, self.spectral_top_k)

    def cache_identity(self, model: str, name: str) -> dict[str, Any]:
        """Metadata every cache of one revision must carry: identity, dtype, first token, schema version."""
        job = self.revision_job(model, name)
        expected = {key: job[key] for key in ("model", "revision", "step", "tokens", "architecture", "dtype")}
        expected["first_token_policy"] = job["first_token"]["policy"]
        if job["first_token"]["policy"] == "fixed":
            expected["first_token_id"] = job["first_token"]["token_id"]
        # no commit here: a branch moved since the manifest was refreshed would make every
        # rerun fail the same way; statistics and scores are checked to share one commit and weights
        expected[SCHEMA_KEY] = CACHE_SCHEMA_VERSION
        return expected

    def groups(self) -> dict[str, str]:
        """Model -> group of every model with a ``group`` (the seeds of one family)."""
        return {name: model.group for name, model in self.models.items() if model.group is not None}

    def partial_manifests(self) -> list[PartialManifest]:
        """The Hub models that select from a manifest marked partial (``all``, ``every``, ``log_count``): it
        lists only some of the repository's branches, so the selection misses the others."""
        found = []
        for name, model in self.models.items():
            selects = model.source["type"] == "hub" and not isinstance(model.revisions, list)
            path = manifest_path(model, self.root) if selects else None
            if path is None or not path.is_file():
                continue
            manifest = model_manifest(model, path)
            if manifest.partial:
                # as the refresh-manifest command is run: from the workflow folder (a dry run's -d aside)
                inside = os.path.relpath(path, self.root)
                shown = Path(inside) if not inside.startswith("..") else path
                found.append(
                    PartialManifest(name, manifest.repo_id, shown, len(manifest.revisions), manifest.published)
                )
        return found


def stable_selection(swept: list[Revision], available: list[Revision], spec: Any, *, model: str = "") -> list[Revision]:
    """The revisions of ``swept`` that selection ``spec`` chooses, whichever others are swept.

    A rule that counts positions (``every``) or spaces points (``log_count``)
    is applied to ``available``, the source's whole revision grid, and then
    intersected with ``swept``: adding or removing a swept revision never
    changes whether another one is chosen (counted in the swept list it would,
    and the measurement of every revision after it would run again). Names and
    steps (a list) choose from ``swept`` directly.
    """
    if not isinstance(spec, dict):
        return select_revisions(swept, spec, model=model)
    chosen = {revision.name for revision in select_revisions(available, spec, model=model)}
    return [revision for revision in select_revisions(swept, "all") if revision.name in chosen]


def corpus_location(corpus: str, root: Path) -> str:
    """A corpus setting with a file path made absolute against the workflow folder; ``hf:`` names unchanged."""
    if corpus.startswith("hf:"):
        return corpus
    return str((Path(root) / corpus).resolve())


def _corpus_note(corpus: str) -> str | None:
    """A Hugging Face corpus needs the datasets package where its batch is built (maybe not this machine)."""
    import importlib.util

    if corpus.startswith("hf:") and importlib.util.find_spec("datasets") is None:
        return (
            f"natural-text corpus {corpus} is a Hugging Face dataset: the job that builds its batch needs the "
            "datasets package (pip install -e '.[natural]', or pip install datasets), which is not installed here"
        )
    return None


def _corpus_problem(where: str, corpus: str, root: Path) -> str | None:
    """Why the natural-text ``corpus`` (the key ``where``) cannot be read, or None."""
    if corpus.startswith("hf:"):
        return None
    if not Path(corpus_location(corpus, root)).exists():
        return (
            f"{where}: {corpus} does not exist (relative to {root}); point it at a folder of .txt/.jsonl/.parquet "
            "text or hf:<dataset>"
        )
    try:
        corpus_files(corpus_location(corpus, root))
    except DataError as error:
        return f"{where}: {error}"
    return None


def results_paths(config: dict[str, Any], configfiles: Sequence[str | Path] = ()) -> Paths:
    """Where a config's results go (its run folder, :func:`circuitsweep.io.run_folder.run_root`): the one
    place the workflow and ``circuitsweep refine`` take them from."""
    return Paths(run_root(config, configfiles))


def plan_run(
    config: dict[str, Any],
    configfiles: Sequence[str | Path],
    root: Path,
    *,
    keep_hashes: bool = True,
    paths: Paths | None = None,
) -> Plan:
    """What the workflow plans when Snakemake parses it, and what ``check-config`` checks: the sweep, then its
    run folder (its ``outdir`` or ``results/<run>``, unless ``paths`` gives it), refused when another config
    made it. A config's own errors come first, so a copied config reports its typos before the folder.

    ``keep_hashes``: keep the run_dir hash cache in the run folder (False: write nothing).
    """
    paths = paths or results_paths(config, configfiles)
    refusal = run_folder_refusal(paths.root, configfiles)
    plan = plan_sweep(config, root, paths, keep_hashes=keep_hashes and refusal is None)
    if refusal is not None:
        raise refusal
    check_settings_folder(paths.settings_file("any").parent)
    return plan


def _inherits(config: dict[str, Any], name: str, key: str) -> bool:
    """Whether model ``name`` takes probe setting ``key`` (``induction.seq_len``) from the top-level ``probes:``."""
    return setting_key(config, name, "probes", tuple(key.split("."))) == "probes"


def written_where(config: dict[str, Any], found: dict[str, list[str]]) -> list[str]:
    """Every model's problems (``found``: model -> its problems, every model listed), named where written.

    A ``models.<name>.probes.<key>`` problem whose key the model inherits from the top-level ``probes:`` is
    named ``probes.<key>``, once, when every model inheriting that key has it alike (the setting written once
    is what is wrong); where only some do (a toy with a smaller vocabulary), each keeps its model's name.
    """
    lifted: dict[tuple[str, str], str] = {}
    for name, problems in found.items():
        prefix = f"models.{name}.probes."
        for problem in problems:
            rest = problem[len(prefix) :]
            if problem.startswith(prefix) and _inherits(config, name, rest.partition(":")[0]):
                lifted[(name, problem)] = f"probes.{rest}"

    def shared(message: str) -> bool:
        key = message[len("probes.") :].partition(":")[0]
        having = {name for (name, _), lifted_message in lifted.items() if lifted_message == message}
        return having == {name for name in found if _inherits(config, name, key)}

    named = [
        lifted[(name, problem)] if (name, problem) in lifted and shared(lifted[(name, problem)]) else problem
        for name, problems in found.items()
        for problem in problems
    ]
    return list(dict.fromkeys(named))


def plan_sweep(config: dict[str, Any], root: Path, paths: Paths | None = None, *, keep_hashes: bool = True) -> Plan:
    """Validate ``config`` and resolve every model's revisions.

    ``root``: the workflow folder, against which relative source and manifest
    paths resolve; ``paths``: where results go (the workflow's run folder; default ``results/``; given, the
    run_dir hash cache is kept there unless ``keep_hashes`` is False; not given, nothing is written). With a
    ``refine`` block, every model also sweeps the revisions that refinement
    rounds added (``paths.refine_rounds()``).
    """
    models = resolve_config(config)
    # only a run with a results folder keeps the hash cache (check-config writes nothing)
    hash_cache = paths.run_dir_hashes() if paths is not None and keep_hashes else None
    results_given = paths is not None
    paths = paths or Paths()
    refine = None
    revisions, available, stimuli = {}, {}, {}
    problems = []
    try:
        refine = resolve_refine(config)
    except ConfigError as error:
        problems.append(str(error))
    added = read_rounds(paths.refine_rounds()) if refine else []
    found_by_model = {name: model_problems(model) for name, model in models.items()}
    problems += written_where(config, found_by_model)
    problems += shared_toy_repo_problems(models)
    for name, model in models.items():
        if found_by_model[name]:
            continue
        try:
            available[name] = available_revisions(model, Path(root))
            revisions[name] = select_revisions(available[name], model.revisions, model=name)
            revisions[name] = with_added(name, revisions[name], available[name], added, paths.refine_rounds())
            manifest = listed_manifest(model, Path(root))
            problems += revision_problems(model, available[name], revisions[name], manifest=manifest)
            problems += spectral_leave_out_problems(model, revisions[name])
        except (ValueError, ConfigError) as error:
            problems.append(f"models.{name}.revisions: {error}" if not isinstance(error, ConfigError) else str(error))
    inherited: list[tuple[str, str]] = []  # (model, error) of a top-level primitives.revisions that fails for it
    for name, model in models.items():
        if model.primitives["enabled"]:
            try:
                stimuli[name] = load_stimuli(Path(root) / model.primitives["stimuli"]).fingerprint()
            except (ConfigError, OSError) as error:
                problems.append(f"{setting_key(config, name, 'primitives', ('stimuli',))}.stimuli: {error}")
            if name in revisions:
                try:
                    selection = model.primitives.get("revisions", "all")
                    measured = stable_selection(revisions[name], available[name], selection, model=name)
                except ValueError as error:
                    key = setting_key(config, name, "primitives", ("revisions",))
                    if key == "primitives":
                        inherited.append((name, str(error)))
                    else:
                        problems.append(f"{key}.revisions: {error}")
                    continue
                if model.source["type"] == "run_dir":
                    problem = tokenizer_problem(model, Path(root) / model.source["path"], measured)
                    problems += [problem] if problem else []
    if inherited:
        # written once for every model: named once, where it was written, with the models it fails for
        errors = "; ".join(error for _, error in inherited)
        names = ", ".join(name for name, _ in inherited)
        problems.append(f"primitives.revisions: {'' if len(inherited) == 1 else f'fails for {names}: '}{errors}")
    notes = []
    for name, model in models.items():
        if model.probes.natural_text is not None:
            key = setting_key(config, name, "probes", ("natural_text", "corpus"))
            problem = _corpus_problem(f"{key}.natural_text.corpus", model.probes.natural_text.corpus, Path(root))
            if problem:
                problems.append(problem)
            note = _corpus_note(model.probes.natural_text.corpus)
            if note and note not in notes:
                notes.append(note)
    if problems:
        problems = list(dict.fromkeys(problems))  # a top-level setting every model inherits is named once
        raise config_problems(problems)
    if results_given:
        note_gone_checkpoints(models, available, Path(root), paths)
    ablation, causal_factor, causal_alpha = resolve_ablation(config)
    return Plan(
        models=models,
        revisions=revisions,
        device=config.get("device", schema_default("properties", "device")),
        root=Path(root),
        paths=paths,
        ablation=ablation,
        causal_factor=causal_factor,
        causal_alpha=causal_alpha,
        fingerprints=run_dir_fingerprints(models, revisions, Path(root), hash_cache),
        available=available,
        stimuli_sha256=stimuli,
        refine=refine,
        notes=tuple(notes),
        spectral_top_k=resolve_spectral_top_k(config),
        bootstrap=resolve_bootstrap(config),
    )


def gone_checkpoints(model: ModelSettings, available: Sequence[Revision], paths: Paths) -> list[str]:
    """The revisions of run_dir ``model`` measured into ``paths`` (a head cache) whose folders are gone, by step.

    A name counts when the source's pattern takes it for a checkpoint (:func:`run_dir.formats_back`) and
    the source no longer lists it: HF Trainer's ``save_total_limit`` deletes old checkpoints as it trains.
    """
    cache = paths.model_cache(model.name)
    if model.source["type"] != "run_dir" or not cache.is_dir():
        return []
    pattern = model.source.get("pattern", RUN_DIR_PATTERN)
    regex, listed = pattern_regex(pattern), {revision.name for revision in available}
    gone = {}
    for folder in cache.iterdir():
        match = regex.fullmatch(folder.name)
        if match is None or folder.name in listed or not run_dir.formats_back(folder.name, pattern, int(match[1])):
            continue
        if paths.head_scores(model.name, folder.name).is_file():
            gone[folder.name] = int(match[1])
    return sorted(gone, key=lambda name: (gone[name], name))


def note_gone_checkpoints(
    models: dict[str, ModelSettings], available: dict[str, list[Revision]], root: Path, paths: Paths
) -> None:
    """Say, per run_dir model, which measured revisions left the tables because their folders are gone.

    The tables hold the planned revisions only, and a revision is planned when its folder is there; its
    cache is left where it is, so restoring the folder (same weights) puts it back without a measurement.
    """
    for name, model in models.items():
        gone = gone_checkpoints(model, available.get(name, []), paths)
        if not gone:
            continue
        one = len(gone) == 1
        shown = ", ".join(gone[:5]) + (f" and {len(gone) - 5} more" if len(gone) > 5 else "")
        cache = paths.revision_cache(name, gone[0]) if one else paths.model_cache(name)
        logger.warning(
            "%s: %d measured revision%s no longer in %s (%s): %s left out of the tables; %s in %s "
            "(restore the folder%s to bring %s back)",
            name,
            len(gone),
            " is" if one else "s are",
            root / model.source["path"],
            shown,
            "it is" if one else "they are",
            "its cache stays" if one else "their caches stay",
            cache,
            "" if one else "s",
            "it" if one else "them",
        )


def _layout_problem(configs: Mapping[str, Mapping[str, Any]], folder: Path) -> str | None:
    """The first checkpoint whose ``config.json`` gives another layers x heads than the first one's, or None.

    ``configs``: each planned checkpoint's config, in training order. Heads are tracked by (layer, head) across
    revisions, so a run folder reused after the model's size changed would be measured in full and then fail
    the spectral ranking; it is refused before anything is loaded.
    """
    first = None
    for revision_name, config in configs.items():
        layout = (config["num_hidden_layers"], config["num_attention_heads"])
        if first is None:
            first = (revision_name, layout)
        elif layout != first[1]:
            return (
                f"{folder / revision_name / 'config.json'} has {layout[0]} layers x {layout[1]} heads, "
                f"{first[0]} has {first[1][0]} x {first[1][1]}: one model's checkpoints must share one shape "
                "(a run folder reused after the model's size changed?)"
            )
    return None


def run_dir_fingerprints(
    models: dict[str, ModelSettings], revisions: dict[str, list[Revision]], root: Path, hash_cache: Path | None
) -> dict[str, dict[str, str]]:
    """sha256 weights fingerprints of the planned revisions of every run_dir source; logs identical folders.

    Every planned checkpoint folder is checked first, before any file is hashed, as its measuring job
    would find it: a ``config.json`` that sizes the job (:func:`sizing.load_model_config`) and complete
    weight files (:func:`run_dir.check_weights`), then what that ``config.json`` says against the model's
    settings (:func:`checkpoint_problem`: class, context and sliding windows, vocabulary); the first
    problem is refused, naming the file or the key.
    ``hash_cache``: the JSON file remembering file hashes between runs (None: hash afresh, write nothing).
    """
    out = {}
    for name, model in models.items():
        if model.source["type"] != "run_dir":
            continue
        folder = root / model.source["path"]
        try:
            configs = {}
            for revision in revisions[name]:
                configs[revision.name] = sizing.load_model_config(folder / revision.name)
                run_dir.check_weights(folder / revision.name)
        except (ConfigError, SnapshotError) as error:
            raise ConfigError(f"models.{name}.source: {error}") from None
        problem = _layout_problem(configs, folder)
        if problem:
            raise ConfigError(f"models.{name}.source: {problem}")
        for revision_name, model_config in configs.items():
            problem = checkpoint_problem(model, folder / revision_name, model_config)
            if problem:
                raise ConfigError(problem)
        try:
            out[name] = run_dir.fingerprints(folder, list(configs), hash_cache)
        except (ConfigError, SnapshotError) as error:
            raise ConfigError(f"models.{name}.source: {error}") from None
        for group in run_dir.duplicate_groups(out[name]):
            if model.duplicates == "skip":
                kept = "later ones are measured but left out of the emergence curves and milestones (duplicates: skip)"
            else:
                kept = f"later ones are marked duplicate_of {group[0]}"
            logger.warning(
                "%s: checkpoint folders %s of %s hold identical weights; %s", name, ", ".join(group), folder, kept
            )
    return out
