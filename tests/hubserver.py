"""A loopback stand-in for the Hugging Face Hub, serving a hubfolder-layout directory.

It speaks the part of the Hub protocol that ``huggingface_hub`` 2.4 uses to list
branches, resolve a revision, list a tree and download files, so that the real
download code runs unchanged against it (``endpoint=server.endpoint``):

- ``GET  /api/models/{repo}/refs``                     branches (= ``refs/`` of the folder)
- ``GET  /api/models/{repo}[/revision/{rev}]``         model info: ``sha``, ``siblings``
  (with ``blobs=true``: size, blobId and LFS sha256 per file)
- ``GET  /api/models/{repo}/tree/{rev}[/{path}]``      ``recursive``, ``expand``, ``cursor`` pages (Link header)
- ``POST /api/models/{repo}/paths-info/{rev}``         form fields ``paths`` (repeated), ``expand``
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``            regular files: 200 with ``ETag`` (git blob sha1),
  ``X-Repo-Commit``, ``Content-Length``, ``Range`` -> 206; LFS files: 302 to a second
  listener (the "CDN", another origin, as on the Hub) with ``X-Linked-Etag`` (sha256),
  ``X-Linked-Size`` and ``X-Repo-Commit``
- ``HEAD|GET {cdn}/cdn/{sha256}?path=...``             the LFS bytes, with ``Range`` support

Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``) as the Hub's do, which ``huggingface_hub`` maps to its typed
errors. No Xet headers are ever sent, so clients use plain HTTP downloads.

Faults, set by a test, apply to matching requests a given number of times:
``fail`` (reply with a status, e.g. 503), ``drop`` (close the connection after
part of a file's body), ``stall_body`` (hold the connection after part of a
file's body), ``corrupt`` (flip bytes of a file while reporting its true hash),
``stall`` (hold the request before answering, a hung Hub), ``hang_up`` (close
the connection with no reply). Every request is logged and
can be counted.

Routes used in faults and counts: ``refs``, ``info``, ``tree``, ``paths-info``,
``head`` (HEAD on resolve), ``get`` (GET on resolve), ``cdn`` (GET/HEAD on the
CDN), and ``download`` in faults for any request that serves file bytes.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

#: Patterns stored with git LFS by the Hub's default .gitattributes (subset).
DEFAULT_LFS_PATTERNS = (
    "*.bin",
    "*.safetensors",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.h5",
    "*.msgpack",
    "*.onnx",
    "*.npy",
    "*.npz",
    "*.model",
    "*.pkl",
    "*.zip",
    "*.gz",
    "*.tar",
    "*.parquet",
    "*.arrow",
)
#: Files at least this large are LFS whatever their name (the Hub's rule is 10 MB).
LFS_MIN_SIZE = 10 * 1024 * 1024
_DATE = "2024-07-01T00:00:00.000Z"
_CHUNK = 64 * 1024


def git_blob_sha1(data: bytes) -> str:
    """Git's object id of a blob: sha1 over ``b"blob <size>\\0" + data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-LFS pointer file committed in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class FileEntry:
    """One file of a commit, with the ids the Hub reports for it."""

    path: str
    blob: Path
    size: int
    sha256: str
    git_oid: str  # blob sha1 of the content (regular) or of the LFS pointer (LFS)
    lfs: bool
    pointer_size: int = 0

    def tree_json(self) -> dict:
        """The entry as ``/tree`` and ``/paths-info`` return it."""
        entry: dict = {"type": "file", "oid": self.git_oid, "size": self.size, "path": self.path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return entry

    def sibling_json(self) -> dict:
        """The entry as model info's ``siblings`` lists it with ``blobs=true``."""
        entry: dict = {"rfilename": self.path, "size": self.size, "blobId": self.git_oid}
        if self.lfs:
            entry["lfs"] = {"sha256": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return entry


@dataclass
class Fault:
    """A failure injected into matching requests, ``times`` times (negative: always)."""

    kind: str  # "status" | "drop" | "corrupt" | "stall" | "hangup"
    route: str | None = None
    filename: str | None = None  # fnmatch pattern on the path in the repository
    times: int = 1
    status: int = 503
    after_bytes: int | None = None  # drop: body bytes sent before closing (default: half)
    seconds: float = 0.0  # stall: how long to hold the request before answering; drop: before closing

    def matches(self, route: str, filename: str | None, serves_bytes: bool) -> bool:
        """Whether this fault applies to a request of ``route`` for ``filename``."""
        if self.times == 0:
            return False
        route_ok = self.route in (None, route) or (self.route == "download" and serves_bytes)
        name_ok = self.filename is None or (filename is not None and fnmatch.fnmatchcase(filename, self.filename))
        return route_ok and name_ok


@dataclass(frozen=True)
class RequestRecord:
    """One request, logged when its status line is written (status 0: body cut by a drop fault,
    499: no reply sent)."""

    method: str
    route: str
    repo_id: str | None
    revision: str | None
    filename: str | None
    status: int
    range: str | None
    authorization: str | None = None


class RepoStore:
    """Read-only view of a hubfolder (HF-cache layout) directory as Hub repositories."""

    def __init__(self, root: Path, lfs_patterns: tuple[str, ...] = DEFAULT_LFS_PATTERNS) -> None:
        self.root = Path(root)
        self.lfs_patterns = lfs_patterns
        self._hashes: dict[tuple[str, int, int], tuple[str, str]] = {}
        self._lock = threading.Lock()

    def folder(self, repo_id: str) -> Path:
        """``models--org--name`` folder of a repository."""
        return self.root / ("models--" + repo_id.replace("/", "--"))

    def exists(self, repo_id: str) -> bool:
        """Whether the repository has been published in the folder."""
        return (self.folder(repo_id) / "refs").is_dir() or (self.folder(repo_id) / "snapshots").is_dir()

    def branches(self, repo_id: str) -> dict[str, str]:
        """Branch name -> commit id, from ``refs/`` (nested names allowed)."""
        refs = self.folder(repo_id) / "refs"
        out: dict[str, str] = {}
        if refs.is_dir():
            for path in sorted(refs.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    out[path.relative_to(refs).as_posix()] = path.read_text().strip()
        return out

    def resolve(self, repo_id: str, revision: str) -> str | None:
        """Commit id of a branch name or of a commit id that has a snapshot; None if unknown."""
        commit = self.branches(repo_id).get(revision)
        if commit is None and (self.folder(repo_id) / "snapshots" / revision).is_dir():
            commit = revision
        return commit

    def files(self, repo_id: str, commit: str) -> dict[str, FileEntry]:
        """Files of a commit, keyed by their path in the repository."""
        snapshot = self.folder(repo_id) / "snapshots" / commit
        out: dict[str, FileEntry] = {}
        for dirpath, _dirs, names in os.walk(snapshot):
            for name in names:
                link = Path(dirpath) / name
                path = link.relative_to(snapshot).as_posix()
                out[path] = self._entry(path, link.resolve())
        return dict(sorted(out.items()))

    def _entry(self, path: str, blob: Path) -> FileEntry:
        """Describe one file; its hashes are computed once per (blob, size, mtime)."""
        stat = blob.stat()
        sha256, content_oid = self._hash(blob, stat.st_size, stat.st_mtime_ns)
        lfs = stat.st_size >= LFS_MIN_SIZE or any(fnmatch.fnmatchcase(path, p) for p in self.lfs_patterns)
        if not lfs:
            return FileEntry(path, blob, stat.st_size, sha256, content_oid, False)
        pointer = lfs_pointer(sha256, stat.st_size)
        return FileEntry(path, blob, stat.st_size, sha256, git_blob_sha1(pointer), True, len(pointer))

    def _hash(self, blob: Path, size: int, mtime_ns: int) -> tuple[str, str]:
        """(sha256, git blob sha1) of a file's bytes, cached."""
        key = (str(blob), size, mtime_ns)
        with self._lock:
            if key in self._hashes:
                return self._hashes[key]
        sha256 = hashlib.sha256()
        sha1 = hashlib.sha1(b"blob %d\0" % size)
        with open(blob, "rb") as handle:
            while chunk := handle.read(1 << 20):
                sha256.update(chunk)
                sha1.update(chunk)
        value = (sha256.hexdigest(), sha1.hexdigest())
        with self._lock:
            self._hashes[key] = value
        return value

    def find_blob(self, sha256: str) -> Path | None:
        """A blob with this sha256 in any repository (hubfolder blobs are named by it)."""
        for folder in self.root.glob("models--*"):
            candidate = folder / "blobs" / sha256
            if candidate.is_file():
                return candidate
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    hub: HubServer
    is_cdn: bool


class HubServer:
    """The loopback Hub: a Hub listener and a CDN listener on free ports of 127.0.0.1."""

    def __init__(self, root: Path, *, lfs_patterns: tuple[str, ...] = DEFAULT_LFS_PATTERNS, page_size: int = 1000):
        self.store = RepoStore(root, lfs_patterns)
        self.page_size = page_size
        self.faults: list[Fault] = []
        self.log: list[RequestRecord] = []
        self.errors: list[Exception] = []  # unexpected exceptions in handlers (server bugs)
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # wakes stalled handlers on stop()
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> HubServer:
        """Start both listeners in daemon threads."""
        self._stopping.clear()
        for is_cdn in (False, True):
            server = _Server(("127.0.0.1", 0), _Handler)
            server.hub, server.is_cdn = self, is_cdn
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop both listeners (stalled requests are released first)."""
        self._stopping.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """Base URL of the Hub listener, for ``HF_ENDPOINT`` or ``endpoint=``."""
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn_endpoint(self) -> str:
        """Base URL of the CDN listener (another origin, as a real CDN is)."""
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    # -- faults and counts -----------------------------------------------------

    def fail(self, route: str | None = None, *, filename: str | None = None, status: int = 503, times: int = 1) -> None:
        """Reply ``status`` to the next ``times`` matching requests."""
        self._add(Fault("status", route, filename, times, status=status))

    def drop(self, filename: str, *, times: int = 1, after_bytes: int | None = None) -> None:
        """Close the connection after ``after_bytes`` (default half) of the body of ``filename``."""
        self._add(Fault("drop", "download", filename, times, after_bytes=after_bytes))

    def stall_body(
        self, filename: str, *, seconds: float = 600.0, times: int = 1, after_bytes: int | None = None
    ) -> None:
        """Send ``after_bytes`` (default half) of the body of ``filename``, then hold the connection ``seconds``."""
        self._add(Fault("drop", "download", filename, times, after_bytes=after_bytes, seconds=seconds))

    def stall(self, route: str | None = None, *, seconds: float = 600.0, times: int = 1) -> None:
        """Hold the next ``times`` matching requests ``seconds`` before answering (a hung Hub)."""
        self._add(Fault("stall", route, None, times, seconds=seconds))

    def hang_up(self, route: str | None = None, *, times: int = 1) -> None:
        """Close the connection of the next ``times`` matching requests without any reply."""
        self._add(Fault("hangup", route, None, times))

    def corrupt(self, filename: str, *, times: int = -1) -> None:
        """Serve ``filename`` with flipped bytes (same length, true hash still reported)."""
        self._add(Fault("corrupt", "download", filename, times))

    def clear_faults(self) -> None:
        """Remove all pending faults."""
        with self._lock:
            self.faults.clear()

    def count(
        self,
        route: str | None = None,
        *,
        method: str | None = None,
        filename: str | None = None,
        status: int | None = None,
    ) -> int:
        """Number of logged requests matching every given filter."""
        with self._lock:
            records = list(self.log)
        return sum(
            1
            for r in records
            if (route is None or r.route == route)
            and (method is None or r.method == method)
            and (filename is None or r.filename == filename)
            and (status is None or r.status == status)
        )

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def take_fault(
        self,
        kind: str,
        route: str,
        filename: str | None,
        serves_bytes: bool,
        applies: Callable[[Fault], bool] = lambda fault: True,
    ) -> Fault | None:
        """Consume one use of the first pending fault of ``kind`` matching the request."""
        with self._lock:
            for fault in self.faults:
                if fault.kind == kind and fault.matches(route, filename, serves_bytes) and applies(fault):
                    if fault.times > 0:
                        fault.times -= 1
                    return fault
        return None

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self.log.append(record)


class _HubError(Exception):
    """An error reply: status, Hub error code and message."""

    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit


@dataclass
class _Request:
    """What routing found out about a request (kept for the log)."""

    route: str = "unknown"
    repo_id: str | None = None
    revision: str | None = None
    filename: str | None = None
    extra: dict = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 10

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    # -- entry points ------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        hub = self.server.hub
        req = self._req = _Request()
        self._recorded = False
        self._dropping = False
        try:
            self._read_body_if_any(req)
            handler = self._route(method, req)
            serves_bytes = bool(req.extra.get("serves_bytes"))
            stall = hub.take_fault("stall", req.route, req.filename, serves_bytes)
            if stall is not None:
                hub._stopping.wait(stall.seconds)
            if hub.take_fault("hangup", req.route, req.filename, serves_bytes) is not None:
                self.close_connection = True
                self._record(499)
                return
            fault = hub.take_fault("status", req.route, req.filename, serves_bytes)
            if fault is not None:
                raise _HubError(fault.status, None, f"injected {fault.status}")
            handler(method, req)
        except _HubError as error:
            self._send_error(error, head=method == "HEAD")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:  # a server bug: reply 500 and keep it for the test to see
            hub.errors.append(error)
            self._send_error(_HubError(500, None, f"server error: {error!r}"), head=method == "HEAD")
        if not self._recorded:  # the client went away before any reply
            self._record(499)

    def send_response(self, code: int, message: str | None = None) -> None:
        """Log the request when its status line is written: before the client can see any reply."""
        self._record(0 if getattr(self, "_dropping", False) else code)
        super().send_response(code, message)

    def _record(self, status: int) -> None:
        req = getattr(self, "_req", None) or _Request()
        self._recorded = True
        self.server.hub.record(
            RequestRecord(
                self.command,
                req.route,
                req.repo_id,
                req.revision,
                req.filename,
                status,
                self.headers.get("Range"),
                self.headers.get("Authorization"),
            )
        )

    def _read_body_if_any(self, req: _Request) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        req.extra["body"] = self.rfile.read(length) if length else b""

    # -- routing -----------------------------------------------------------------

    def _route(self, method: str, req: _Request):
        url = urlsplit(self.path)
        segments = [unquote(s) for s in url.path.split("/")[1:]]
        req.extra["query"] = parse_qs(url.query)
        if self.server.is_cdn:
            return self._route_cdn(method, segments, req)
        if segments[:2] == ["api", "models"]:
            return self._route_api(method, segments[2:], req)
        if method in ("GET", "HEAD"):
            return self._route_resolve(method, segments, req)
        raise _HubError(404, None, f"no route for {method} {url.path}")

    def _split_repo(self, segments: list[str], keywords: tuple[str, ...]) -> tuple[str, list[str]]:
        """(repo_id, rest) from path segments: a known repository, else the first two segments."""
        store = self.server.hub.store
        for n in (2, 1):
            repo_id = "/".join(segments[:n])
            if len(segments) >= n and store.exists(repo_id):
                return repo_id, segments[n:]
        for n in (2, 1):
            if len(segments) > n and segments[n] in keywords:
                return "/".join(segments[:n]), segments[n:]
        return "/".join(segments[:2]), segments[2:]

    def _route_api(self, method: str, segments: list[str], req: _Request):
        repo_id, rest = self._split_repo(segments, ("refs", "revision", "tree", "paths-info"))
        req.repo_id = repo_id
        keyword = rest[0] if rest else ""
        req.route = {"": "info", "revision": "info"}.get(keyword, keyword)
        if not self.server.hub.store.exists(repo_id):
            raise _HubError(404, "RepoNotFound", "Repository not found")
        if keyword == "refs" and method == "GET":
            return self._refs
        if keyword in ("", "revision") and method == "GET":
            req.revision = rest[1] if len(rest) > 1 else "main"
            return self._info
        if keyword == "tree" and method == "GET" and len(rest) > 1:
            req.revision, req.extra["path"] = rest[1], "/".join(rest[2:])
            return self._tree
        if keyword == "paths-info" and method == "POST" and len(rest) > 1:
            req.revision = rest[1]
            return self._paths_info
        raise _HubError(404, None, f"no route for {method} {self.path}")

    def _route_resolve(self, method: str, segments: list[str], req: _Request):
        repo_id, rest = self._split_repo(segments, ("resolve",))
        req.repo_id = repo_id
        req.route = "head" if method == "HEAD" else "get"
        if not rest or rest[0] != "resolve" or len(rest) < 3:
            raise _HubError(404, None, f"no route for {method} {self.path}")
        req.revision, req.filename = rest[1], "/".join(rest[2:])
        if not self.server.hub.store.exists(repo_id):
            raise _HubError(404, "RepoNotFound", "Repository not found")
        commit = self._commit(req)
        entry = self.server.hub.store.files(repo_id, commit).get(req.filename)
        if entry is None:
            raise _HubError(404, "EntryNotFound", f"{req.filename} does not exist at {req.revision}", commit)
        req.extra.update(commit=commit, entry=entry, serves_bytes=method == "GET" and not entry.lfs)
        return self._resolve

    def _route_cdn(self, method: str, segments: list[str], req: _Request):
        req.route = "cdn"
        req.filename = (req.extra["query"].get("path") or [None])[0]
        blob = self.server.hub.store.find_blob(segments[1]) if len(segments) == 2 and segments[0] == "cdn" else None
        if blob is None:
            raise _HubError(404, None, "no such object")
        req.extra.update(blob=blob, sha256=segments[1], serves_bytes=method == "GET")
        return self._cdn

    def _commit(self, req: _Request) -> str:
        """Commit of the request's revision, or a RevisionNotFound reply."""
        commit = self.server.hub.store.resolve(req.repo_id or "", req.revision or "")
        if commit is None:
            raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {req.revision}")
        return commit

    # -- API endpoints -----------------------------------------------------------

    def _refs(self, method: str, req: _Request) -> int:
        branches = [
            {"name": name, "ref": f"refs/heads/{name}", "targetCommit": commit}
            for name, commit in self.server.hub.store.branches(req.repo_id or "").items()
        ]
        return self._send_json({"branches": branches, "tags": [], "converts": [], "pullRequests": []})

    def _info(self, method: str, req: _Request) -> int:
        commit = self._commit(req)
        files = self.server.hub.store.files(req.repo_id or "", commit)
        blobs = _truthy(req.extra["query"].get("blobs"))
        siblings = [f.sibling_json() if blobs else {"rfilename": f.path} for f in files.values()]
        info = {
            "_id": hashlib.sha1((req.repo_id or "").encode()).hexdigest()[:24],
            "id": req.repo_id,
            "modelId": req.repo_id,
            "author": (req.repo_id or "").split("/")[0],
            "sha": commit,
            "lastModified": _DATE,
            "createdAt": _DATE,
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "library_name": "transformers",
            "siblings": siblings,
        }
        return self._send_json(info)

    def _tree(self, method: str, req: _Request) -> int:
        commit = self._commit(req)
        query = req.extra["query"]
        recursive, expand = _truthy(query.get("recursive")), _truthy(query.get("expand"))
        files = self.server.hub.store.files(req.repo_id or "", commit)
        base = req.extra["path"].strip("/")
        entries = _tree_entries(files, base, recursive)
        if base and not entries and base not in _directories(files):
            raise _HubError(404, "EntryNotFound", f"{base} does not exist at {req.revision}", commit)
        if expand:
            entries = [dict(e, lastCommit=_last_commit(commit, req.revision)) for e in entries]
        page = self.server.hub.page_size if not expand else min(50, self.server.hub.page_size)
        start = int((query.get("cursor") or ["0"])[0])
        headers = {}
        if start + page < len(entries):
            params = urlencode({"recursive": str(recursive), "expand": str(expand), "cursor": start + page})
            headers["Link"] = f'<{self._own_base()}{urlsplit(self.path).path}?{params}>; rel="next"'
        return self._send_json(entries[start : start + page], headers=headers)

    def _paths_info(self, method: str, req: _Request) -> int:
        commit = self._commit(req)
        form = parse_qs(req.extra["body"].decode())
        expand = _truthy(form.get("expand"))
        files = self.server.hub.store.files(req.repo_id or "", commit)
        directories = _directories(files)
        out = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in files:
                out.append(files[path].tree_json())
            elif path in directories:
                out.append({"type": "directory", "oid": _tree_oid(files, path), "size": 0, "path": path})
            else:
                continue
            if expand:
                out[-1]["lastCommit"] = _last_commit(commit, req.revision)
        return self._send_json(out)

    # -- file endpoints ----------------------------------------------------------

    def _resolve(self, method: str, req: _Request) -> int:
        entry: FileEntry = req.extra["entry"]
        headers = {"X-Repo-Commit": req.extra["commit"], "Accept-Ranges": "bytes"}
        if entry.lfs:
            cdn = f"{self.server.hub.cdn_endpoint}/cdn/{entry.sha256}?{urlencode({'path': entry.path})}"
            headers.update(
                {
                    "ETag": f'"{entry.git_oid}"',
                    "X-Linked-Etag": f'"{entry.sha256}"',
                    "X-Linked-Size": str(entry.size),
                    "Location": cdn,
                }
            )
            return self._send(302, b"", headers, head=method == "HEAD")
        headers["ETag"] = f'"{entry.git_oid}"'
        return self._send_file(method, req, entry.blob, entry.size, headers)

    def _cdn(self, method: str, req: _Request) -> int:
        blob: Path = req.extra["blob"]
        headers = {"ETag": f'"{req.extra["sha256"]}"', "Accept-Ranges": "bytes"}
        return self._send_file(method, req, blob, blob.stat().st_size, headers)

    def _send_file(self, method: str, req: _Request, blob: Path, size: int, headers: dict[str, str]) -> int:
        """Send a file, honouring Range and the drop/corrupt faults."""
        start, end = self._range(size)
        status = 206 if self.headers.get("Range") else 200
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers.update({"Content-Length": str(end - start), "Content-Type": "application/octet-stream"})
        hub = self.server.hub
        corrupt = drop = None
        if method == "GET":
            corrupt = hub.take_fault("corrupt", req.route, req.filename, serves_bytes=True)
            drop = hub.take_fault(
                "drop",
                req.route,
                req.filename,
                serves_bytes=True,
                applies=lambda f: _cut_at(f, end - start) < end - start,
            )
        self._dropping = drop is not None
        self._start(status, headers)
        if method == "HEAD":
            return status
        limit = end - start if drop is None else _cut_at(drop, end - start)
        if corrupt is None:  # the kernel copies the bytes, as a CDN would (Python chunks would compete for the CPU)
            self.wfile.flush()
            with open(blob, "rb") as handle:
                self.connection.sendfile(handle, start, limit)
        else:
            for chunk in _read_range(blob, start, start + limit, size):
                self.wfile.write(chunk)
        self.wfile.flush()
        if drop is not None:
            if drop.seconds:
                hub._stopping.wait(drop.seconds)
            self._drop()
            return 0
        return status

    def _range(self, size: int) -> tuple[int, int]:
        """[start, end) of the requested byte range; the whole file without a Range header."""
        header = self.headers.get("Range")
        if not header:
            return 0, size
        try:
            unit, _, spec = header.partition("=")
            first, _, last = spec.strip().partition("-")
            if unit.strip() != "bytes" or "," in spec:
                raise ValueError
            if first == "":
                start, end = max(0, size - int(last)), size
            else:
                start, end = int(first), (min(int(last) + 1, size) if last else size)
            if start >= end:
                raise ValueError
        except ValueError:
            raise _HubError(416, None, f"unsatisfiable range {header}") from None
        return start, end

    def _drop(self) -> None:
        """Close the connection abruptly, mid-body."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- low-level replies -------------------------------------------------------

    def _own_base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _start(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _send(self, status: int, body: bytes, headers: dict[str, str], *, head: bool = False) -> int:
        headers = dict(headers, **{"Content-Length": str(len(body))})
        self._start(status, headers)
        if not head and body:
            self.wfile.write(body)
        return status

    def _send_json(self, data: object, *, headers: dict[str, str] | None = None) -> int:
        body = json.dumps(data).encode()
        return self._send(
            200, body, dict(headers or {}, **{"Content-Type": "application/json"}), head=self.command == "HEAD"
        )

    def _send_error(self, error: _HubError, *, head: bool) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": error.message}
        if error.code:
            headers["X-Error-Code"] = error.code
        if error.commit:
            headers["X-Repo-Commit"] = error.commit
        self._send(error.status, json.dumps({"error": error.message}).encode(), headers, head=head)


def _cut_at(fault: Fault, length: int) -> int:
    """Body bytes a drop fault lets through before closing: ``after_bytes``, default half."""
    return fault.after_bytes if fault.after_bytes is not None else length // 2


def _truthy(values: list[str] | None) -> bool:
    """Query/form flag: ``true``, ``True``, ``1``."""
    return bool(values) and values[0].lower() in ("true", "1", "yes")


def _directories(files: dict[str, FileEntry]) -> set[str]:
    """All directory paths implied by the file paths."""
    out: set[str] = set()
    for path in files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            out.add("/".join(parts[:i]))
    return out


def _tree_oid(files: dict[str, FileEntry], directory: str) -> str:
    """A stable stand-in for a directory's git tree id."""
    inner = "\n".join(f"{p} {e.git_oid}" for p, e in files.items() if p.startswith(directory + "/"))
    return hashlib.sha1(inner.encode()).hexdigest()


def _tree_entries(files: dict[str, FileEntry], base: str, recursive: bool) -> list[dict]:
    """Tree listing under ``base``: children, or all descendants when recursive."""
    prefix = base + "/" if base else ""
    depth = prefix.count("/")
    dirs = [d for d in sorted(_directories(files)) if d.startswith(prefix) and (recursive or d.count("/") == depth)]
    names = [p for p in files if p.startswith(prefix) and (recursive or p.count("/") == depth)]
    out = [{"type": "directory", "oid": _tree_oid(files, d), "size": 0, "path": d} for d in dirs]
    return out + [files[p].tree_json() for p in names]


def _last_commit(commit: str, revision: str | None) -> dict:
    return {"id": commit, "title": f"publish {revision}", "date": _DATE}


def _read_range(blob: Path, start: int, end: int, corrupt_size: int | None) -> Iterator[bytes]:
    """Bytes [start, end) of ``blob`` in chunks; with ``corrupt_size``, flip 3 fixed bytes."""
    flips = {0, corrupt_size // 2, corrupt_size - 1} if corrupt_size else set()
    with open(blob, "rb") as handle:
        handle.seek(start)
        offset = start
        while offset < end:
            chunk = bytearray(handle.read(min(_CHUNK, end - offset)))
            if not chunk:
                return
            for position in flips:
                if offset <= position < offset + len(chunk):
                    chunk[position - offset] ^= 0xFF
            yield bytes(chunk)
            offset += len(chunk)
