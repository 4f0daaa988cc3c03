"""Pre-stage every Hub revision a config sweeps into the shared Hub cache.

For clusters whose compute nodes have no internet and whose login nodes must not
run hours of downloads: run ``circuitsweep prefetch CONFIG`` on a transfer node
(or as a job on a transfer partition); it downloads and verifies (sha256) each
planned revision into the standard Hub cache (``HF_HOME``/``HF_HUB_CACHE``, on the
shared filesystem). The sweep then runs with ``HF_HUB_OFFLINE=1`` and finds every
file there. Only models with ``source.cache: shared`` read that cache, so the
command refuses configs whose Hub models keep per-revision caches.
"""

from __future__ import annotations

import logging
from pathlib import Path

from circuitsweep.config.load import load_config
from circuitsweep.errors import ConfigError
from circuitsweep.plan.sweep import plan_sweep

log = logging.getLogger(__name__)


def prefetch(config_path: Path, root: Path, models: list[str] | None = None) -> int:
    """Download every planned revision of the config's Hub models (or of ``models``); return how many.

    Already cached, verified revisions are not downloaded again (the Hub client
    skips files whose hash it has).
    """
    from huggingface_hub import constants

    from circuitsweep.checkpoints.hub import download_snapshot

    plan = plan_sweep(load_config(config_path), Path(root))
    hub_models = [name for name, model in plan.models.items() if model.source["type"] == "hub"]
    unknown = sorted(set(models or []) - set(plan.models))
    if unknown:
        raise ConfigError(f"{config_path}: no model named {', '.join(unknown)}")
    not_hub = [name for name in models or [] if name not in hub_models]
    if not_hub:
        kinds = ", ".join(f"{name} ({plan.models[name].source['type']})" for name in not_hub)
        raise ConfigError(f"{config_path}: only Hub models are prefetched, not {kinds}")
    chosen = [name for name in hub_models if not models or name in models]
    for name in chosen:
        if plan.models[name].source.get("cache", "revision") != "shared":
            raise ConfigError(
                f"{config_path}: models.{name}.source.cache must be 'shared' for prefetched files to be used "
                "(with 'revision' every job downloads its own copy)"
            )
    folder = Path(constants.HF_HUB_CACHE)
    count = 0
    for name in chosen:
        source = plan.models[name].source
        for revision in plan.revisions[name]:
            log.info("prefetch %s %s into %s", source["repo_id"], revision.name, folder)
            download_snapshot(source["repo_id"], revision.name, folder, endpoint=source.get("endpoint"))
            count += 1
    print(f"prefetched {count} revisions of {len(chosen)} models into {folder}")
    return count
