"""The Hub side: list checkpoint branches, download one revision, verify its bytes.

Everything goes through ``huggingface_hub`` (``HfApi`` and ``snapshot_download``),
so ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_OFFLINE`` and ``HF_HOME`` act as they do
there; ``endpoint=``/``token=`` override them per call.

What ``huggingface_hub`` 2.4 does and does not do on its own, and why this
module adds to it:

- it checks a downloaded file's *size* against the Hub's, never its sha256;
  a corrupted but full-length file is cached silently. We hash every file and
  compare with the Hub's record for that commit (LFS sha256 for weights, git
  blob sha1 for small regular files), delete a bad file and fetch it once more;
- it resumes a body cut mid-file (connection or protocol error) up to 5 times,
  but raises on an HTTP 5xx during the download, and its model-info request
  (``/api/models/{repo}/revision/{rev}``) is not retried at all: a 5xx there
  surfaces as ``LocalEntryNotFoundError``. We retry the whole call with
  exponential backoff on transient errors (connection, timeout, protocol,
  408/429/5xx, size mismatch) and never on 401/403/404.

Downloads are pinned to the commit the branch pointed at when we asked, so a
branch moved during the download cannot mix two commits. A weight file's
sha256 is computed over the bytes as they are written (:func:`_streaming_hashes`),
so verifying it does not read the file back from disk.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2
from huggingface_hub import HfApi, constants, file_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import HFValidationError, validate_repo_id
from huggingface_hub.utils._http import default_client_factory, set_client_factory

from circuitsweep.checkpoints.local_hub import hash_file, repo_folder
from circuitsweep.checkpoints.revisions import (
    BranchPattern,
    Manifest,
    Revision,
    lacks_token_count,
    parse_branches,
    read_manifest,
    write_manifest,
)
from circuitsweep.errors import ConfigError, SnapshotError
from circuitsweep.io.atomic import atomic_write_text

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Files a checkpoint needs: config, tokenizer, weights (safetensors or pickles).
DEFAULT_ALLOW_PATTERNS: tuple[str, ...] = (
    "*.json",
    "*.safetensors",
    "pytorch_model*.bin",
    "tokenizer*",
    "chat_template*",  # transformers >= 4.47 saves the chat template beside tokenizer_config.json
    "*.txt",
    "*.model",
    "*.tiktoken",
    "vocab*",
    "merges*",
)
#: Never fetched: training state, other frameworks' weights, files in subfolders.
DEFAULT_IGNORE_PATTERNS: tuple[str, ...] = (
    "*/*",
    "*optim*",
    "*scheduler*",
    "*rng_state*",
    "training_args*",
    "trainer_state*",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.msgpack",
    "*.h5",
    "*.onnx",
    "*.gguf",
    ".gitattributes",
)
#: Weight files, the only files a weights fingerprint covers.
WEIGHT_PATTERNS: tuple[str, ...] = ("*.safetensors", "pytorch_model*.bin")
_PICKLE_PATTERNS: tuple[str, ...] = ("pytorch_model*.bin", "pytorch_model.bin.index.json")

RECORD_FORMAT = "circuitsweep.snapshot/1"
#: Seconds any one Hub request may wait for a connection or for bytes (env CIRCUITSWEEP_HUB_TIMEOUT).
#: A request that times out is a transient error: it is retried and counts against ``retries``.
DEFAULT_TIMEOUT_S = float(os.environ.get("CIRCUITSWEEP_HUB_TIMEOUT") or 30.0)
_MAX_BACKOFF_S = 60.0
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


# ---------------------------------------------------------------------------
# Errors


class HubError(SnapshotError):
    """A Hub operation failed for a reason retrying will not fix (the CLI prints the message alone)."""


class UnknownRepoError(HubError, LookupError):
    """The repository does not exist (or is private/gated without a valid token)."""


class UnknownRevisionError(HubError, LookupError):
    """The repository exists but has no such branch, tag or commit."""


class VerificationError(HubError):
    """A downloaded file's bytes do not match the hash the Hub reports for it."""


class LocalCopyDamaged(VerificationError):
    """A file of a local (offline) copy does not match its recorded hash: a new attempt finds the same bytes."""


@dataclass(frozen=True)
class Mismatch:
    """One file that failed verification: what was expected and what was found."""

    name: str
    kind: str  # "sha256", "git-sha1", "size" or "missing"
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.name}: {self.kind} expected {self.expected}, got {self.actual}"


# ---------------------------------------------------------------------------
# Discovery


def list_revisions(
    repo_id: str,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    tokens_per_step: int | None = None,
    aliases: Mapping[str, int | tuple[int, int]] | None = None,
    retries: int = 4,
    backoff: float = 2.0,
    timeout: float = DEFAULT_TIMEOUT_S,
    skipped: list[str] | None = None,
    pattern: str | None = None,
) -> list[Revision]:
    """Checkpoint branches of ``repo_id`` on the Hub, in training order, with commits.

    Branches only (no tags or PR refs); non-checkpoint names such as ``main``
    are skipped unless ``aliases`` maps them (see ``revisions.parse_branches``);
    with ``pattern`` (``source.branch_pattern``) the checkpoints are the names matching it.
    Branches that look like checkpoints but do not parse, or are not a safe
    file name (``step5/evil``), are skipped too and appended to ``skipped``.
    """
    if tokens_per_step is not None and tokens_per_step < 1:
        raise ConfigError(f"--tokens-per-step must be a positive number of tokens per step, got {tokens_per_step}")
    _use_timeout(timeout)
    api = HfApi(endpoint=endpoint, token=token)
    refs = _with_retries(
        lambda: _map_errors(lambda: api.list_repo_refs(repo_id), repo_id, None, api.endpoint),
        retries=retries,
        backoff=backoff,
        what=f"listing branches of {repo_id}",
    )
    commits = {branch.name: branch.target_commit for branch in refs.branches}
    if tokens_per_step is None and pattern is not None:
        if "tokens" not in BranchPattern(pattern).regex.groupindex:
            raise ConfigError(
                f"{repo_id}: the branch pattern {pattern!r} has no {{tokens}} field: "
                "give --tokens-per-step (tokens per training step) to compute them"
            )
    elif tokens_per_step is None:
        # without a pattern, checkpoint names are recognised by their form; one without tokens needs the rate
        tokenless = sorted(name for name in commits if lacks_token_count(name) and name not in (aliases or {}))
        if tokenless:
            raise ConfigError(
                f"{repo_id}: branches {_shown(tokenless)} have no token count in their names: "
                "give --tokens-per-step (tokens per training step) to compute it"
            )
    usable = {}
    for name, commit in commits.items():
        try:
            parse_branches([name], tokens_per_step=tokens_per_step, aliases=aliases, pattern=pattern)
        except ValueError as error:
            logger.warning("%s: skipping branch %r: %s", repo_id, name, error)
            if skipped is not None:
                skipped.append(name)
            continue
        usable[name] = commit
    return parse_branches(usable, tokens_per_step=tokens_per_step, aliases=aliases, commits=usable, pattern=pattern)


def check_repo_id(repo_id: str) -> None:
    """Refuse a repository id that is not ``owner/name`` of the Hub's characters (``../x``), naming it."""
    try:
        validate_repo_id(repo_id)
        return
    except HFValidationError as error:
        reason = " ".join(str(error).split())
    # raised outside the handler: a huggingface_hub error in its context would make it look transient (retry.py)
    raise ConfigError(f"repository id {repo_id!r} is not a Hub repository: {reason}")


def refresh_manifest(
    repo_id: str,
    path: Path | str,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    tokens_per_step: int | None = None,
    aliases: Mapping[str, int | tuple[int, int]] | None = None,
    note: str = "",
    skipped: list[str] | None = None,
    retries: int = 4,
    backoff: float = 2.0,
    timeout: float = DEFAULT_TIMEOUT_S,
    pattern: str | None = None,
    force: bool = False,
) -> Manifest:
    """Rebuild the manifest at ``path`` from the Hub's branch list (complete, with commits).

        Branches that are not usable checkpoint names are left out and appended to ``skipped``.
        Without ``force``, an empty listing, or one that lacks a revision of the manifest already
        at ``path``, is refused (:class:`ConfigError`) and the manifest is kept.
    A repository id the Hub cannot hold and a ``path`` that is a folder are
        refused before any request.
    """
    check_repo_id(repo_id)
    if Path(path).is_dir():
        raise ConfigError(f"{path} is a folder; give the manifest's file name, e.g. {Path(path) / 'manifest.json'}")
    revisions = list_revisions(
        repo_id,
        endpoint=endpoint,
        token=token,
        tokens_per_step=tokens_per_step,
        aliases=aliases,
        skipped=skipped,
        retries=retries,
        backoff=backoff,
        timeout=timeout,
        pattern=pattern,
    )
    manifest = Manifest(
        repo_id,
        tuple(revisions),
        tokens_per_step=tokens_per_step,
        partial=False,
        source=f"list_repo_refs {HfApi(endpoint=endpoint).endpoint}",
        note=note,
    )
    if not force:
        _refuse_losing_revisions(Path(path), manifest)
    write_manifest(path, manifest)
    return manifest


def _shown(names: Sequence[str], most: int = 5) -> str:
    """``'a', 'b' and 3 more``: a few names for a one-line message."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(map(repr, names[:most])) + more


def _refuse_losing_revisions(path: Path, manifest: Manifest) -> None:
    """Refuse to replace a manifest at ``path`` by one that lacks any of its revisions, or one that is empty."""
    if not manifest.revisions:
        raise ConfigError(f"{path}: {manifest.repo_id} has no checkpoint branches; nothing written")
    if not path.exists():
        return
    try:
        old = read_manifest(path)
    except ValueError as error:  # read_manifest names the file and what is wrong in it
        raise ConfigError(f"{error}; not replaced (pass --force to replace it)") from None
    lost = [name for name in old.names() if name not in set(manifest.names())]
    if lost:
        raise ConfigError(
            f"{path}: {manifest.repo_id} now lists {len(manifest.revisions)} checkpoint branches and lacks "
            f"{len(lost)} of the {len(old.revisions)} this manifest holds ({_shown(lost)}); not replaced "
            "(pass --force to replace it)"
        )


# ---------------------------------------------------------------------------
# Download and verification


@dataclass(frozen=True)
class RemoteFile:
    """What the Hub reports for one file at one commit."""

    name: str
    size: int | None
    git_oid: str | None  # git blob sha1 (of the LFS pointer for LFS files)
    sha256: str | None  # LFS files only


@dataclass(frozen=True)
class Snapshot:
    """A downloaded and verified revision: where it is and the sha256 of each file."""

    repo_id: str
    revision: str
    commit: str
    path: Path
    file_hashes: dict[str, str] = field(hash=False)
    source: str = "hub"  # "hub" (verified against the Hub's hashes) or "local" (against blob names)

    @property
    def fingerprint(self) -> str | None:
        """Fingerprint of the weight files (see :func:`weights_fingerprint`); None without weights."""
        has_weights = any(is_weight_file(name) for name in self.file_hashes)
        return weights_fingerprint(self.file_hashes) if has_weights else None

    def to_json(self) -> dict[str, Any]:
        """The verification record of this snapshot."""
        return {
            "format": RECORD_FORMAT,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "commit": self.commit,
            "path": str(self.path),
            "source": self.source,
            "weights_fingerprint": self.fingerprint,
            "files": dict(sorted(self.file_hashes.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        """Inverse of :meth:`to_json`."""
        return cls(
            data["repo_id"], data["revision"], data["commit"], Path(data["path"]), dict(data["files"]), data["source"]
        )


def download_snapshot(
    repo_id: str,
    revision: str,
    cache_dir: Path | str,
    *,
    allow_patterns: Sequence[str] = DEFAULT_ALLOW_PATTERNS,
    ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS,
    prefer_safetensors: bool = True,
    local_files_only: bool = False,
    endpoint: str | None = None,
    token: str | bool | None = None,
    retries: int = 4,
    backoff: float = 2.0,
    record: Path | str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download (or find) one revision in ``cache_dir``, verify it, return its snapshot folder.

    ``record``: where to write the verified ``{file: sha256}`` map as JSON
    (atomically). See :func:`fetch_verified` for the rest.
    """
    snapshot = fetch_verified(
        repo_id,
        revision,
        cache_dir,
        allow_patterns=allow_patterns,
        ignore_patterns=ignore_patterns,
        prefer_safetensors=prefer_safetensors,
        local_files_only=local_files_only,
        endpoint=endpoint,
        token=token,
        retries=retries,
        backoff=backoff,
        timeout=timeout,
    )
    if record is not None:
        atomic_write_text(record, json.dumps(snapshot.to_json(), indent=1) + "\n")
    return snapshot.path


def fetch_verified(
    repo_id: str,
    revision: str,
    cache_dir: Path | str,
    *,
    allow_patterns: Sequence[str] = DEFAULT_ALLOW_PATTERNS,
    ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS,
    prefer_safetensors: bool = True,
    local_files_only: bool = False,
    endpoint: str | None = None,
    token: str | bool | None = None,
    retries: int = 4,
    backoff: float = 2.0,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Snapshot:
    """Download one revision's config, tokenizer and weight files and verify every byte.

    Online: ask the Hub for the revision's commit and per-file hashes, download
    the selected files pinned to that commit (retrying transient failures
    ``retries`` times, waiting ``backoff`` x 2^attempt seconds), hash them, and
    on a mismatch delete the bad files and fetch them once more before raising
    :class:`VerificationError`. Offline (``local_files_only`` or
    ``HF_HUB_OFFLINE``): read ``cache_dir`` (HF cache or hubfolder layout) and
    verify each file against its content-addressed blob name.

    ``prefer_safetensors``: when a revision has safetensors weights, skip its
    pickled ``pytorch_model*.bin`` duplicates. Raises :class:`UnknownRepoError`,
    :class:`UnknownRevisionError`, :class:`VerificationError` or
    :class:`HubError`. Every request waits at most ``timeout`` seconds for a
    connection or for bytes; a timeout is retried like any transient error.
    """
    if local_files_only or _offline():
        return _fetch_local(repo_id, revision, Path(cache_dir), allow_patterns, ignore_patterns, prefer_safetensors)
    _use_timeout(timeout)
    api = HfApi(endpoint=endpoint, token=token)
    commit, remote = _with_retries(
        lambda: _map_errors(lambda: _remote_files(api, repo_id, revision, timeout), repo_id, revision, api.endpoint),
        retries=retries,
        backoff=backoff,
        what=f"resolving {repo_id}@{revision}",
    )
    names = choose_files(remote, allow_patterns, ignore_patterns, prefer_safetensors=prefer_safetensors)
    if not names:
        raise HubError(f"no file of {repo_id}@{revision} matches the allow/ignore patterns (files: {sorted(remote)})")

    def download() -> Path:
        def attempt() -> Path:
            return _download(repo_id, commit, names, Path(cache_dir), endpoint, token, timeout)

        return _with_retries(
            lambda: _map_errors(attempt, repo_id, revision, api.endpoint),
            retries=retries,
            backoff=backoff,
            what=f"downloading {repo_id}@{revision}",
        )

    expected = {name: remote[name] for name in names}
    with _streaming_hashes() as streamed:
        path = download()
        _write_ref(Path(cache_dir), repo_id, revision, commit)
        hashes, bad = verify_files(path, expected, streamed)
        if bad:
            logger.warning("%s@%s: %s; fetching those files again", repo_id, revision, "; ".join(map(str, bad)))
            for mismatch in bad:
                _delete_cached(path / mismatch.name)
            path = download()
            hashes, bad = verify_files(path, expected, streamed)
        if bad:
            for mismatch in bad:
                _delete_cached(path / mismatch.name)
            raise VerificationError(
                f"{repo_id}@{revision} (commit {commit}) failed verification after a re-download: "
                + "; ".join(map(str, bad))
            )
    return Snapshot(repo_id, revision, commit, path, hashes, "hub")


def choose_files(
    names: Iterable[str],
    allow_patterns: Sequence[str] = DEFAULT_ALLOW_PATTERNS,
    ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS,
    *,
    prefer_safetensors: bool = True,
) -> list[str]:
    """Files to fetch among ``names``: allowed, not ignored, and no pickles when safetensors exist."""
    chosen = [name for name in sorted(names) if _matches(name, allow_patterns) and not _matches(name, ignore_patterns)]
    if prefer_safetensors and any(name.endswith(".safetensors") for name in chosen):
        chosen = [name for name in chosen if not _matches(name, _PICKLE_PATTERNS)]
    return chosen


def verify_files(
    path: Path, expected: Mapping[str, RemoteFile], streamed: Mapping[tuple[int, int, int, int], str] | None = None
) -> tuple[dict[str, str], list[Mismatch]]:
    """Hash each expected file under ``path``; return ({name: sha256}, mismatches).

    LFS files are checked against the Hub's sha256, regular files against their
    git blob sha1; a size difference is reported as such (truncation).
    ``streamed``: sha256 of files hashed while they were downloaded, by
    :func:`_file_key` (device, inode, size, mtime); an LFS file found there is
    not read again (a file changed since has another key and is read).
    """
    hashes: dict[str, str] = {}
    bad: list[Mismatch] = []
    for name, remote in sorted(expected.items()):
        file = path / name
        if not file.is_file():
            bad.append(Mismatch(name, "missing", "a file", "nothing"))
            continue
        stat = file.stat()
        size = stat.st_size
        if remote.size is not None and size != remote.size:
            bad.append(Mismatch(name, "size", f"{remote.size} bytes", f"{size} bytes"))
            continue
        known = (streamed or {}).get(_file_key(stat)) if remote.sha256 is not None else None
        sha256, git_oid = (known, None) if known is not None else hash_file(file, git=remote.sha256 is None)
        hashes[name] = sha256
        if remote.sha256 is not None and sha256 != remote.sha256:
            bad.append(Mismatch(name, "sha256", remote.sha256, sha256))
        elif remote.sha256 is None and remote.git_oid is not None and git_oid != remote.git_oid:
            bad.append(Mismatch(name, "git-sha1", remote.git_oid, git_oid or ""))
    return hashes, bad


def weights_fingerprint(file_hashes: Mapping[str, str]) -> str:
    """sha256 over the sorted (name, sha256) pairs of the weight files only.

    Two revisions serving identical weight files get the same fingerprint,
    whatever their config or tokenizer files (Pythia's step0 and step1 do).
    File names count: the same tensors sharded differently are not detected.
    Raises ``ValueError`` when there is no weight file.
    """
    weights = sorted((name, digest) for name, digest in file_hashes.items() if is_weight_file(name))
    if not weights:
        raise ValueError(f"no weight file among {sorted(file_hashes)}")
    text = "\n".join(f"{name} {digest}" for name, digest in weights)
    return hashlib.sha256(text.encode()).hexdigest()


def is_weight_file(name: str) -> bool:
    """Whether a repository file holds weights (safetensors or pytorch_model pickles)."""
    return _matches(name.rsplit("/", 1)[-1], WEIGHT_PATTERNS)


def read_record(path: Path | str) -> Snapshot:
    """Read a verification record written by :func:`download_snapshot` (``record=``)."""
    path = Path(path)
    if not path.is_file():
        raise HubError(f"{path} is missing: the snapshot was not fetched and verified")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != RECORD_FORMAT:
        raise HubError(f"{path}: not a snapshot record (format {data.get('format')!r})")
    return Snapshot.from_json(data)


# ---------------------------------------------------------------------------
# Online internals


def _remote_files(
    api: HfApi, repo_id: str, revision: str, timeout: float = DEFAULT_TIMEOUT_S
) -> tuple[str, dict[str, RemoteFile]]:
    """(commit, files) of a revision, from one model-info call with file metadata."""
    # huggingface_hub sends model-info with no deadline unless given one: a stalled Hub held it 200 s
    info = api.model_info(repo_id, revision=revision, files_metadata=True, timeout=timeout)
    if not info.sha:
        raise HubError(f"the Hub returned no commit for {repo_id}@{revision}")
    files = {
        s.rfilename: RemoteFile(s.rfilename, s.size, s.blob_id, s.lfs.sha256 if s.lfs is not None else None)
        for s in info.siblings or []
    }
    return info.sha, files


def _download(
    repo_id: str,
    commit: str,
    names: list[str],
    cache_dir: Path,
    endpoint: str | None,
    token: str | bool | None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """``snapshot_download`` of exactly ``names`` at ``commit``; returns the snapshot folder."""
    path = snapshot_download(
        repo_id,
        revision=commit,
        cache_dir=cache_dir,
        allow_patterns=[_escape(name) for name in names],
        endpoint=endpoint,
        token=token,
        etag_timeout=timeout,
    )
    return Path(path)


def _file_key(stat: os.stat_result) -> tuple[int, int, int, int]:
    """What identifies one written state of a file: device, inode, size and modification time (ns)."""
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class _HashingWriter:
    """The download's temporary file, hashing (sha256) the bytes written to it, in order.

    ``huggingface_hub``'s ``http_get`` writes each body chunk once, resumes by
    appending, and rewinds to its start position only when a server ignores a
    Range request (then the hash starts over). Any other seek or truncate
    makes the hash unusable (``valid`` False): verification then reads the file.
    """

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._sha256 = hashlib.sha256()
        self._start = handle.tell()
        self._written = 0
        self.valid = True

    def write(self, data: bytes) -> int:
        written = self._handle.write(data)
        if written is not None and written != len(data):
            self.valid = False  # a raw, unbuffered file wrote part of the chunk; never with huggingface_hub
        self._sha256.update(data)
        self._written += len(data)
        return written

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._handle.seek(offset, whence)
        if position == self._start:
            self._sha256, self._written = hashlib.sha256(), 0
        elif position != self._start + self._written:
            self.valid = False
        return position

    def truncate(self, size: int | None = None) -> int:
        end = self._handle.truncate(size)
        if end != self._start + self._written:
            self.valid = False
        return end

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def finish(self) -> tuple[tuple[int, int, int, int], str] | None:
        """(file key, sha256) of the whole file, once every byte is written; None if the hash is unusable."""
        if not self.valid or self._start != 0:
            return None
        self._handle.flush()  # nothing is written after this: the key's mtime stays the file's
        stat = os.fstat(self._handle.fileno())
        if stat.st_size != self._written:
            return None
        return _file_key(stat), self._sha256.hexdigest()


_streaming_lock = threading.Lock()
_streaming_users = 0
_streamed: dict[tuple[int, int, int, int], str] = {}
_saved_chunk_size: list[int | None] = [None]
_saved_disable_xet: list[bool] = [False]
#: huggingface_hub's per-file download function; None in a release without it (then files are read back).
_original_http_get = getattr(file_download, "http_get", None)


def _hashing_http_get(url: str, temp_file: Any, **kwargs: Any) -> None:
    """``huggingface_hub``'s ``http_get``, recording the sha256 of what it wrote (its resumes call back here)."""
    assert _original_http_get is not None
    if isinstance(temp_file, _HashingWriter) or not hasattr(temp_file, "fileno"):
        return _original_http_get(url, temp_file, **kwargs)
    writer = _HashingWriter(temp_file)
    _original_http_get(url, writer, **kwargs)
    done = writer.finish()
    if done is not None:
        with _streaming_lock:
            _streamed[done[0]] = done[1]


@contextmanager
def _streaming_hashes() -> Iterator[Mapping[tuple[int, int, int, int], str]]:
    """While inside: downloads go through ``http_get`` and record the sha256 of the bytes they write, by file key
    (:func:`_file_key`).

    Verification then needs no second read of a multi-GB file. Body chunks go
    to the file as they arrive (``DOWNLOAD_CHUNK_SIZE`` None: regrouping them
    into 10 MB blocks costs more than the write itself). Xet transfers are
    turned off (``HF_HUB_DISABLE_XET``): hf_xet's own client would bypass the
    deadline, stall bound and retry rules of :func:`_use_timeout` and
    :func:`is_transient`, and the Hub serves the same files over HTTP. These
    settings are ``huggingface_hub`` module globals, restored when the last
    user leaves.
    """
    global _streaming_users
    with _streaming_lock:
        if _streaming_users == 0:
            _saved_disable_xet[0] = constants.HF_HUB_DISABLE_XET
            constants.HF_HUB_DISABLE_XET = True
            if _original_http_get is not None:
                file_download.http_get = _hashing_http_get
                _saved_chunk_size[0] = constants.DOWNLOAD_CHUNK_SIZE
                constants.DOWNLOAD_CHUNK_SIZE = None
        _streaming_users += 1
    try:
        yield _streamed if _original_http_get is not None else {}
    finally:
        with _streaming_lock:
            _streaming_users -= 1
            if _streaming_users == 0:
                constants.HF_HUB_DISABLE_XET = _saved_disable_xet[0]
                if _original_http_get is not None:
                    file_download.http_get = _original_http_get
                    constants.DOWNLOAD_CHUNK_SIZE = _saved_chunk_size[0]
                _streamed.clear()


def _write_ref(cache_dir: Path, repo_id: str, revision: str, commit: str) -> None:
    """Record ``revision -> commit`` in the cache, so offline runs find the branch."""
    if revision == commit:
        return
    ref = repo_folder(cache_dir, repo_id) / "refs" / revision
    if not ref.is_file() or ref.read_text().strip() != commit:
        atomic_write_text(ref, commit)


def _delete_cached(pointer: Path) -> None:
    """Remove a cached file: its blob (the symlink target) and the snapshot symlink."""
    blob = pointer.resolve() if pointer.is_symlink() else None
    for path in (blob, pointer):
        if path is not None and (path.is_symlink() or path.exists()):
            path.unlink()


# ---------------------------------------------------------------------------
# Offline (local folder) internals


def _fetch_local(
    repo_id: str,
    revision: str,
    cache_dir: Path,
    allow_patterns: Sequence[str],
    ignore_patterns: Sequence[str],
    prefer_safetensors: bool,
) -> Snapshot:
    """Find a revision in a local HF-cache/hubfolder directory and verify it by blob names.

    The snapshot is located as huggingface_hub does offline (``refs/<branch>``
    or a commit id, then ``snapshots/<commit>``). When a tree listing of the
    commit is cached (written by an earlier online download), every selected
    file it lists must be present.
    """
    folder = repo_folder(cache_dir, repo_id)
    if not folder.is_dir():
        raise UnknownRepoError(f"repository {repo_id!r} is not in the local folder {cache_dir} (offline)")
    path = _local_snapshot(folder, revision)
    if path is None:
        raise UnknownRevisionError(
            f"revision {revision!r} of repository {repo_id!r} is not in the local folder {cache_dir} (offline)"
        )
    present = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() or p.is_symlink()]
    names = choose_files(present, allow_patterns, ignore_patterns, prefer_safetensors=prefer_safetensors)
    listed = _cached_tree(folder, path.name)
    if listed is not None:
        wanted = choose_files(listed, allow_patterns, ignore_patterns, prefer_safetensors=prefer_safetensors)
        missing = sorted(set(wanted) - set(names))
        if missing:
            raise HubError(f"{repo_id}@{revision} in {path} is incomplete (offline): missing {', '.join(missing)}")
    if not names:
        raise HubError(f"no file of {repo_id}@{revision} in {path} matches the allow/ignore patterns")
    expected = {name: _local_expectation(path, name, listed or {}) for name in names}
    hashes, bad = verify_files(path, expected)
    if bad:
        raise LocalCopyDamaged(f"{repo_id}@{revision} in {path} failed verification: " + "; ".join(map(str, bad)))
    return Snapshot(repo_id, revision, path.name, path, hashes, "local")


def _local_snapshot(folder: Path, revision: str) -> Path | None:
    """Snapshot folder of a branch (``refs/<branch>``) or commit id in a local repository folder."""
    ref = folder / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    snapshot = folder / "snapshots" / commit
    return snapshot if _is_hex(commit, 40) and snapshot.is_dir() else None


def _cached_tree(folder: Path, commit: str) -> dict[str, dict[str, Any]] | None:
    """The tree listing huggingface_hub cached for a commit (``trees/<commit>.json``), if any."""
    tree = folder / "trees" / f"{commit}.json"
    try:
        return dict(json.loads(tree.read_text(encoding="utf-8"))["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _local_expectation(snapshot: Path, name: str, listed: Mapping[str, Mapping[str, Any]]) -> RemoteFile:
    """Expected hash of a local file: its blob name (sha256 or git sha1), else the cached tree listing."""
    link = snapshot / name
    if link.is_symlink():
        blob_name = Path(os.readlink(link)).name
        if _is_hex(blob_name, 64):
            return RemoteFile(name, None, None, blob_name)
        if _is_hex(blob_name, 40):
            return RemoteFile(name, None, blob_name, None)
    entry = listed.get(name)
    if entry:
        size = entry.get("lfs_size") or entry.get("size")
        return RemoteFile(name, size, entry.get("blob_id"), entry.get("lfs_sha256"))
    raise VerificationError(
        f"cannot verify {name} in {snapshot}: it is not a content-addressed blob and no tree listing is cached"
    )


# ---------------------------------------------------------------------------
# Retries and error mapping


def is_transient(error: BaseException) -> bool:
    """Whether retrying may help: connection/timeout/protocol errors, 408/429/5xx, short bodies.

    Never for a missing/gated repository, revision or file, bad credentials
    (401/403), or offline mode. Looks through the exception's causes, since
    ``snapshot_download`` wraps network errors in ``LocalEntryNotFoundError``.
    """
    if _unknown_host(error):
        return False
    for cause in _causes(error):
        if isinstance(
            cause,
            (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError, OfflineModeIsEnabled, HubError),
        ):
            return False
        if isinstance(cause, HfHubHTTPError) and cause.response is not None:
            return cause.response.status_code in _TRANSIENT_STATUS
        if isinstance(cause, (httpx2.TimeoutException, httpx2.NetworkError, httpx2.RemoteProtocolError, HubStalled)):
            return True
        if isinstance(cause, OSError) and "Consistency check failed" in str(cause):
            return True
    return False


def _unknown_host(error: BaseException) -> bool:
    """Whether DNS answered that the host does not exist (a mistyped endpoint, no resolver): retrying cannot help.

    A resolver that only failed this time (``EAI_AGAIN``) stays transient.
    """
    permanent = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}
    return any(isinstance(cause, socket.gaierror) and cause.errno in permanent for cause in _causes(error))


def _causes(error: BaseException) -> list[BaseException]:
    """The exception and its chain of causes/contexts, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _with_retries(call: Callable[[], T], *, retries: int, backoff: float, what: str) -> T:
    """Run ``call``; on a transient error wait ``backoff`` x 2^attempt s (max 60) and retry, ``retries`` times.

    A network failure left after the retries (connection dropped, timeout,
    5xx) and a full disk become a :class:`HubError` whose one line says what
    failed and what to do; our own errors pass unchanged.
    """
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as error:
            if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
                where = f" writing {error.filename}" if error.filename else ""
                raise HubError(f"{what}: no space left on the device{where}; free disk space and rerun") from error
            if attempt >= retries or not is_transient(error):
                final = _as_hub_error(error, what, attempt + 1)
                if final is error:
                    raise
                raise final from error
            delay = min(backoff * 2**attempt, _MAX_BACKOFF_S)
            logger.warning(
                "%s: %s: %s; retry %d/%d in %.2f s", what, type(error).__name__, error, attempt + 1, retries, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def _as_hub_error(error: Exception, what: str, attempts: int) -> Exception:
    """The error to raise when retrying is over: network and HTTP failures as a one-line :class:`HubError`."""
    network = is_transient(error) or isinstance(error, (HfHubHTTPError, httpx2.HTTPError, OSError))
    if isinstance(error, HubError) or not network:
        return error
    detail = " ".join(str(error).split())[:300]
    url = _request_url(error)
    if url and url not in detail:
        detail = f"{detail} ({url})"
    tried = f" after {attempts} attempt{'s' if attempts > 1 else ''}" if is_transient(error) else ""
    if _unknown_host(error):
        detail = f"the host name does not resolve: {detail}"
    advice = (
        "HF_HUB_OFFLINE is set, so only the local cache is read: fetch it where the Hub is reachable "
        "(circuitsweep prefetch) or unset HF_HUB_OFFLINE"
        if _offline()
        else "check the endpoint and the connection (or set HF_HUB_OFFLINE=1 to use the cache) and rerun"
    )
    return HubError(f"{what} failed{tried}: {type(error).__name__}: {detail}; {advice}")


def _request_url(error: BaseException) -> str | None:
    """The URL of the request behind ``error`` or its causes (httpx errors carry it), without its query."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, httpx2.RequestError):
            try:
                return str(current.request.url.copy_with(query=None))
            except RuntimeError:  # an error raised without its request
                pass
        current = current.__cause__ or current.__context__
    return None


def _map_errors(call: Callable[[], T], repo_id: str, revision: str | None, endpoint: str) -> T:
    """Run ``call``, turning huggingface_hub's not-found errors into ours, naming repo and revision."""
    try:
        return call()
    except RevisionNotFoundError as error:
        raise UnknownRevisionError(
            f"revision {revision!r} does not exist in repository {repo_id!r} on {endpoint}"
        ) from error
    except GatedRepoError as error:
        raise HubError(
            f"repository {repo_id!r} on {endpoint} is gated (asked for revision {revision!r}): "
            "accept its terms on the Hub and give a token (HF_TOKEN)"
        ) from error
    except RepositoryNotFoundError as error:
        raise UnknownRepoError(
            f"repository {repo_id!r} was not found on {endpoint} (asked for revision {revision!r}); "
            "it does not exist, or it is private and no valid token (HF_TOKEN) was given"
        ) from error
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status in (401, 403):
            raise HubError(
                f"access to repository {repo_id!r} (revision {revision!r}) on {endpoint} was refused ({status}): "
                "check HF_TOKEN"
            ) from error
        raise


# ---------------------------------------------------------------------------
# Small helpers

_session_timeout: float | None = None


class HubStalled(Exception):
    """A request the Hub did not answer within the timeout: retried by :func:`_with_retries` only.

    Not an httpx error, so huggingface_hub's own backoff (up to 5 more waits
    of the timeout, and sleeps, per request) does not retry it.
    """


class _StallBound(httpx2.BaseTransport):
    """A transport that turns a request's timeout into :class:`HubStalled` naming the request."""

    def __init__(self, inner: httpx2.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            response = self._inner.handle_request(request)
        except httpx2.TimeoutException as error:
            raise _stalled(request, error) from error
        if isinstance(response.stream, httpx2.SyncByteStream):
            response.stream = _StallBoundStream(response.stream, request)
        return response

    def close(self) -> None:
        self._inner.close()


#: The slowest body accepted once it has run :data:`TRICKLE_TIMEOUTS` read timeouts (bytes per second).
MIN_BYTES_PER_S = 16 << 10
TRICKLE_TIMEOUTS = 3


class _StallBoundStream(httpx2.SyncByteStream):
    """A response body whose read timeout (a body that stops arriving) is :class:`HubStalled`.

    So is a body that trickles in (a byte now and then, never idle for a
    whole read timeout): slower than :data:`MIN_BYTES_PER_S` on average once
    it has run :data:`TRICKLE_TIMEOUTS` read timeouts.
    """

    def __init__(self, inner: httpx2.SyncByteStream, request: httpx2.Request) -> None:
        self._inner = inner
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        read_timeout = (self._request.extensions.get("timeout") or {}).get("read")
        grace = None if read_timeout is None else TRICKLE_TIMEOUTS * read_timeout
        started, received = time.monotonic(), 0
        try:
            for chunk in self._inner:
                received += len(chunk)
                elapsed = time.monotonic() - started
                if grace is not None and elapsed > grace and received < MIN_BYTES_PER_S * elapsed:
                    raise HubStalled(
                        f"the Hub sent {received} bytes in {elapsed:.0f} s, slower than {MIN_BYTES_PER_S} bytes/s: "
                        f"{self._request.method} {self._request.url.copy_with(query=None)}"
                    )
                yield chunk
        except httpx2.TimeoutException as error:
            raise _stalled(self._request, error) from error

    def close(self) -> None:
        self._inner.close()


def _stalled(request: httpx2.Request, error: httpx2.TimeoutException) -> HubStalled:
    seconds = (request.extensions.get("timeout") or {}).get("read")
    return HubStalled(
        f"the Hub sent nothing for {seconds} s ({type(error).__name__}): {request.method} "
        f"{request.url.copy_with(query=None)}"
    )


def _use_timeout(timeout: float) -> None:
    """Give every request of huggingface_hub's shared HTTP client a deadline of ``timeout`` seconds.

    Its client has none, and requests such as the branch list and the tree
    listing pass ``timeout=None`` (which overrides a client default); a stalled
    Hub would hold them forever. The deadline bounds the connection and each
    read (every body chunk) of every request.
    """
    global _session_timeout
    if _session_timeout == timeout:
        return

    deadline = httpx2.Timeout(timeout).as_dict()

    def bound(request: httpx2.Request) -> None:
        # huggingface_hub passes timeout=None (no deadline) to some requests, e.g. the file list
        # of snapshot_download, and its own 10 s to downloads: every request gets ours
        request.extensions["timeout"] = deadline

    def factory() -> httpx2.Client:
        client = default_client_factory()
        client.timeout = httpx2.Timeout(timeout)
        client.event_hooks = {**client.event_hooks, "request": [*client.event_hooks["request"], bound]}
        # the transport, and those of the proxies set in the environment
        client._transport = _StallBound(client._transport)
        client._mounts = {k: None if t is None else _StallBound(t) for k, t in client._mounts.items()}
        return client

    set_client_factory(factory)
    _session_timeout = timeout


def _offline() -> bool:
    """Offline mode as huggingface_hub sees it, or HF_HUB_OFFLINE set after it was imported."""
    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _escape(name: str) -> str:
    """An fnmatch pattern matching exactly ``name``."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)
