"""The sweep plan: which revisions of which models, and each job's settings.

Built once when Snakemake parses the workflow, from the config alone (and
bundled or refreshed manifests), so the DAG builds offline and fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from circuitsweep.checkpoints import local_hub
from circuitsweep.config import ModelSettings, resolve_config, schema_default
from circuitsweep.contracts import Paths
from circuitsweep.errors import ConfigError
from circuitsweep.primitives.stimuli import load_stimuli
from circuitsweep.revisions import Revision, parse_branches, read_manifest, select_revisions

#: The one revision of a package source: a released pretrained model whose
#: step and training tokens are not published with it (recorded as 0).
PACKAGE_REVISION = "main"


def toy_branches(toy: dict[str, Any], tokens_per_step: int) -> list[str]:
    """The branch names a toy model publishes: one per step of its schedule."""
    return [
        toy["branch_format"].format(
            step=step, tokens=step * tokens_per_step, ktokens=round(step * tokens_per_step / 1000)
        )
        for step in toy["schedule"]
    ]


def manifest_path(model: ModelSettings, root: Path) -> Path:
    """The manifest of a Hub source: ``source.manifest``, else the bundled ``config/revisions/<name>.json``."""
    given = model.source.get("manifest")
    if given:
        return root / given
    return root / "config" / "revisions" / f"{model.source['repo_id'].split('/')[1].lower()}.json"


def available_revisions(model: ModelSettings, root: Path) -> list[Revision]:
    """Every revision the model's source publishes, as far as is known offline."""
    tokens_per_step = model.tokens.get("per_step")
    source = model.source
    if source["type"] == "package":
        return [Revision(PACKAGE_REVISION, 0, 0)]
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
            return list(read_manifest(path).revisions)
    try:
        return parse_branches(names, tokens_per_step=tokens_per_step)
    except ValueError as error:
        raise ConfigError(f"models.{model.name}: {error}") from error


@dataclass(frozen=True)
class Plan:
    """Resolved models and the revisions each one sweeps, in training order."""

    models: dict[str, ModelSettings]
    revisions: dict[str, list[Revision]]
    device: str
    root: Path
    paths: Paths

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
        return {"model": model, "revision": name, "source": source}

    def _revision_job(self, model: str, name: str) -> dict[str, Any]:
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

    def measure_settings(self, model: str, name: str) -> dict[str, Any]:
        return {**self._revision_job(model, name), "probes": self.models[model].probes.to_dict()}

    def thresholds(self, model: str) -> dict[str, Any]:
        """The classification thresholds (``classify_heads``'s params)."""
        return asdict(self.models[model].thresholds)

    def milestone_thresholds(self, model: str) -> dict[str, Any]:
        """The milestone thresholds (``head_tables``'s params): changing one reclassifies nothing."""
        return asdict(self.models[model].milestones)

    def primitive_models(self) -> list[str]:
        """Models whose primitive gaps are measured (``primitives.enabled``)."""
        return [name for name, model in self.models.items() if model.primitives["enabled"]]

    def primitive_revisions(self, model: str) -> list[Revision]:
        """The swept revisions of ``model`` that get primitive measurements (``primitives.revisions``)."""
        return select_revisions(
            self.revisions[model], self.models[model].primitives.get("revisions", "all"), model=model
        )

    def stimuli(self, model: str) -> Path:
        return self.root / self.models[model].primitives["stimuli"]

    def primitive_settings(self, model: str, name: str) -> dict[str, Any]:
        settings = self.models[model]
        primitives = settings.primitives
        behaviour = {k: v for k, v in primitives["behaviour"].items() if k != "enabled"}
        return {
            **self._revision_job(model, name),
            "token_range": list(settings.probes.token_range),
            "batch_size": primitives["batch_size"],
            "behaviour": behaviour if primitives["behaviour"]["enabled"] else None,
        }

    def primitive_scoring(self, model: str) -> dict[str, Any]:
        return dict(self.models[model].primitives["scoring"])


def plan_sweep(config: dict[str, Any], root: Path, paths: Paths | None = None) -> Plan:
    """Validate ``config`` and resolve every model's revisions.

    ``root``: the workflow folder, against which relative source and manifest
    paths resolve; ``paths``: where results go (default ``results/``).
    """
    models = resolve_config(config)
    revisions = {}
    problems = []
    for name, model in models.items():
        try:
            revisions[name] = select_revisions(available_revisions(model, Path(root)), model.revisions, model=name)
        except (ValueError, ConfigError) as error:
            problems.append(f"models.{name}.revisions: {error}" if not isinstance(error, ConfigError) else str(error))
    for name, model in models.items():
        if model.primitives["enabled"]:
            try:
                load_stimuli(Path(root) / model.primitives["stimuli"])
            except (ConfigError, OSError) as error:
                problems.append(f"models.{name}.primitives.stimuli: {error}")
            if name in revisions:
                try:
                    select_revisions(revisions[name], model.primitives.get("revisions", "all"), model=name)
                except ValueError as error:
                    problems.append(f"models.{name}.primitives.revisions: {error}")
    if problems:
        raise ConfigError("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
    device = config.get("device", schema_default("properties", "device"))
    return Plan(models=models, revisions=revisions, device=device, root=Path(root), paths=paths or Paths())
