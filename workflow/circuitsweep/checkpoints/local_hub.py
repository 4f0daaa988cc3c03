"""A local folder in the Hugging Face Hub cache layout, used to publish revisions.

The toy suite publishes its checkpoints here as named branches, so that the
very code that reads Hub revisions (``huggingface_hub.snapshot_download`` with
``cache_dir``) reads them too. Layout, as the Hub cache writes it::

    <root>/models--<org>--<name>/
        blobs/<sha256 of the file>          file contents, stored once
        refs/<branch>                       40-hex commit id of the branch
        snapshots/<commit>/<file>           symlink -> ../../blobs/<sha256>
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from circuitsweep.io.atomic import atomic_write_bytes


def repo_folder(root: Path, repo_id: str) -> Path:
    """The cache folder of a model repository, ``models--org--name``."""
    return Path(root) / ("models--" + repo_id.replace("/", "--"))


def hash_file(path: Path, *, git: bool = False, chunk_bytes: int = 1 << 22) -> tuple[str, str | None]:
    """(sha256, git blob sha1 or None) of a file, in one pass over its bytes."""
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(b"blob %d\0" % path.stat().st_size) if git else None
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            sha256.update(chunk)
            if sha1 is not None:
                sha1.update(chunk)
    return sha256.hexdigest(), (sha1.hexdigest() if sha1 is not None else None)


def commit_id(file_hashes: Mapping[str, str]) -> str:
    """A deterministic 40-hex commit id for a set of (file name -> sha256)."""
    text = "\n".join(f"{name} {digest}" for name, digest in sorted(file_hashes.items()))
    return hashlib.sha1(text.encode()).hexdigest()


def publish_revision(root: Path, repo_id: str, branch: str, files: Mapping[str, Path]) -> str:
    """Publish ``files`` (name in the repository -> file on disk) as ``branch``.

    Blobs are content-addressed, so identical files across branches are stored
    once, as on the Hub. The ref is written last and atomically: a branch
    either points at a complete snapshot or does not exist. Returns the commit id.
    """
    folder = repo_folder(root, repo_id)
    hashes: dict[str, str] = {}
    for name, source in files.items():
        digest, _ = hash_file(Path(source))
        hashes[name] = digest
        blob = folder / "blobs" / digest
        if not blob.exists():
            atomic_write_bytes(blob, Path(source).read_bytes())
    commit = commit_id(hashes)
    snapshot = folder / "snapshots" / commit
    for name, digest in hashes.items():
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(folder / "blobs" / digest, link.parent)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    atomic_write_bytes(folder / "refs" / branch, commit.encode())
    return commit


def list_branches(root: Path, repo_id: str) -> list[str]:
    """Branch names published in the local folder, sorted."""
    refs = repo_folder(root, repo_id) / "refs"
    if not refs.is_dir():
        return []
    return sorted(p.name for p in refs.iterdir() if p.is_file() and not p.name.startswith("."))


def branch_file(root: Path, repo_id: str, branch: str, name: str) -> Path | None:
    """The file ``name`` of ``branch`` in the local folder (through its ref and snapshot), or None."""
    folder = repo_folder(root, repo_id)
    try:
        commit = (folder / "refs" / branch).read_text().strip()
    except OSError:
        return None
    path = folder / "snapshots" / commit / name
    return path if path.exists() else None
