"""A warm worker for local runs: measurement jobs forked from a process that has torch and transformers imported.

Every job of a local Snakemake run is a fresh ``python -m circuitsweep``, and
importing torch and transformers costs seconds: more than a toy revision's
forward passes, and paid once per revision (the Hub client that fetches a
snapshot costs more than fetching a toy revision, too). Like a build system's
persistent workers, a server imports them once; a job command
(:data:`WARM_COMMANDS`) then connects to it, hands over its argv, working
folder, environment and its stdin, stdout and stderr, and exits with the exit
code of a child process the server forks for it. Each job still runs in a
process of its own (own memory, threads, exit), writing to its own log, so a
crash takes nothing else down.

Safety of the fork: the server imports modules but runs no torch operation,
so no OpenMP thread pool and no CUDA context exist before it forks. It serves
only jobs of the same interpreter, source tree and import-time environment
(its socket is named by a hash of them), forks at most one job per
connection, and exits after :data:`IDLE_SECONDS` without jobs. A job whose
client dies (Snakemake cancelled it) is stopped. When no server can be reached
or started, or it does not take the job within :data:`HANDSHAKE_SECONDS` (a
stopped server), the command runs in-process as usual, after one line saying
why; the child runs a job only once its client has confirmed it still waits.

Enabled by ``CIRCUITSWEEP_WARM_WORKER`` (a folder for the socket, or ``1`` for
the default one); the workflow sets it for local runs (``warm_worker`` in the
config) whose jobs compute on the CPU (``plan.resources.suits``): a CUDA or ROCm context
cannot be used in a child forked after the driver was touched, and a GPU job's
imports are a small share of a 1B-scale load anyway.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

#: Environment variable that enables the warm worker: a folder for its socket, or "1" for the default folder.
ENV = "CIRCUITSWEEP_WARM_WORKER"
#: Set in a forked job, so that its command runs in-process rather than being forwarded again.
CHILD_ENV = "CIRCUITSWEEP_WARM_CHILD"
#: The commands worth forking from a warm process: those that load a model, and the snapshot fetch, whose
#: Hub client imports (about 0.4 s) cost more than fetching a toy revision.
WARM_COMMANDS = frozenset({"measure-revision", "natural-batch", "final-ablation", "fetch-snapshot"})
#: What the server imports before serving: everything the warm commands import.
PRELOAD = (
    "torch",
    "transformers",
    "circuitsweep.checkpoints.loading",
    "circuitsweep.checkpoints.snapshots",
    "circuitsweep.revision_stage",
    "circuitsweep.heads.stage",
    "circuitsweep.heads.measure",
    "circuitsweep.heads.natural_text",
    "circuitsweep.heads.final_ablation",
    "circuitsweep.heads.ablation",
    "circuitsweep.primitives.stage",
    "circuitsweep.primitives.measure",
    "circuitsweep.io.stats",
)
#: Seconds the server waits for a job before it exits.
IDLE_SECONDS = 120.0
#: Seconds a client waits for a server it started to listen.
START_SECONDS = 60.0
#: Seconds a client waits for the server to take its job (a stopped or hung server must not hold it).
HANDSHAKE_SECONDS = float(os.environ.get("CIRCUITSWEEP_WARM_HANDSHAKE_S", "30"))
#: Environment variables read when modules are imported: a server serves only jobs that agree on them.
_IMPORT_TIME_ENV = (
    "HF_", "HUGGINGFACE", "TRANSFORMERS", "TORCH", "PYTORCH", "CUDA", "OMP_", "MKL_", "PYTHON", "LD_", "CIRCUITSWEEP_",
)  # fmt: skip
#: Installed packages whose upgrade must start a new server.
_PACKAGES = ("torch", "transformers", "huggingface-hub", "safetensors", "numpy")
_HEADER = struct.Struct("!Q")


def server_key(environ: dict[str, str] | None = None) -> str:
    """A hash of what the server's imported modules depend on: interpreter, source files, import-time environment."""
    environ = dict(os.environ if environ is None else environ)
    digest = hashlib.sha256()
    digest.update(f"{sys.executable}\0{sys.version}\0".encode())
    for name in sorted(environ):
        if name.startswith(_IMPORT_TIME_ENV) and name not in (CHILD_ENV, ENV):
            digest.update(f"{name}={environ[name]}\0".encode())
    for package in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            digest.update(f"{package}=={metadata.version(package)}\0".encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        stat = path.stat()
        digest.update(f"{path.relative_to(package)}:{stat.st_mtime_ns}:{stat.st_size}\0".encode())
    return digest.hexdigest()[:20]


def worker_folder(setting: str) -> Path:
    """The folder of the server's socket: ``setting``, or a private folder under the temporary directory for "1"."""
    if setting.strip() in ("1", "true", "yes"):
        return Path(tempfile.gettempdir()) / f"circuitsweep-warm-{os.getuid()}"
    return Path(setting)


def run_warm(argv: Sequence[str], setting: str, entry: str) -> int | None:
    """Run ``entry(argv)`` in a child of the warm worker; its exit code, or None if no worker can serve it.

    ``entry`` names the command line's function as ``module:function`` (the caller's own ``main``): the
    worker imports it in the child, so the worker itself knows no command line.
    """
    folder = worker_folder(setting)
    try:
        connection = _connect_or_start(folder, server_key())
    except OSError as error:
        print(f"circuitsweep: warm worker unavailable ({error}); running in this process", file=sys.stderr)
        return None
    with connection:
        request = {"argv": list(argv), "entry": entry, "cwd": os.getcwd(), "env": dict(os.environ)}
        request = json.dumps(request).encode()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            connection.settimeout(HANDSHAKE_SECONDS)
            socket.send_fds(connection, [_HEADER.pack(len(request))], [0, 1, 2])
            connection.sendall(request)
            reply = _read_line(connection)
            if reply == b"started\n":
                # only now may the child run the job: a client that gave up never sends this
                connection.sendall(b"go\n")
                connection.settimeout(None)
                reply += _read_all(connection)
        except TimeoutError:
            reply = f"no answer within {HANDSHAKE_SECONDS:g} s".encode()
        except OSError as error:
            reply = f"unsent {error}".encode()
    if not reply.startswith(b"started"):
        print(f"circuitsweep: the warm worker did not take the job ({reply[:80]!r}); running in this process",
              file=sys.stderr)  # fmt: skip
        return None
    if b"exit " not in reply:
        print("circuitsweep: the warm worker's job process ended without an exit status", file=sys.stderr)
        return 1
    return int(reply.split(b"exit ")[1].split()[0])


def _read_line(connection: socket.socket) -> bytes:
    """Bytes up to and including the first newline (or the end of the stream)."""
    line = b""
    while not line.endswith(b"\n") and (byte := connection.recv(1)):
        line += byte
    return line


def _read_all(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def _connect(path: Path) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:
        connection.close()
        raise
    return connection


def _connect_or_start(folder: Path, key: str) -> socket.socket:
    """A connection to the server of ``key`` in ``folder``, starting it (once, under a lock) if none listens."""
    path = folder / f"{key}.sock"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_private(folder)
    with contextlib.suppress(OSError):
        return _connect(path)
    with open(folder / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(OSError):
            return _connect(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with open(folder / f"{key}.log", "a") as log:
            subprocess.Popen(
                [sys.executable, "-m", "circuitsweep.warm_worker", str(path), str(IDLE_SECONDS)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                env={k: v for k, v in os.environ.items() if k != CHILD_ENV},
            )
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                return _connect(path)
            except OSError:
                if time.monotonic() > deadline:
                    raise OSError(f"no warm worker listened at {path} within {START_SECONDS:.0f} s") from None
                time.sleep(0.05)


def _check_private(folder: Path) -> None:
    """Refuse a socket folder that another user owns or can write: jobs hand it their environment and output."""
    stat = folder.stat()
    if stat.st_uid != os.getuid() or stat.st_mode & 0o077:
        raise OSError(f"{folder} is not private to this user (owner {stat.st_uid}, mode {oct(stat.st_mode & 0o777)})")


def serve(path: Path, idle_seconds: float = IDLE_SECONDS, preload: Sequence[str] = PRELOAD) -> None:
    """Listen at ``path``, import ``preload``, then fork one child per connection until idle for ``idle_seconds``."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(64)
    for module in preload:
        importlib.import_module(module)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError("CUDA was initialised while importing; a forked job could not use it")
    children: set[int] = set()
    last_job = time.monotonic()
    while True:
        children = {pid for pid in children if os.waitpid(pid, os.WNOHANG) == (0, 0)}
        if select.select([listener], [], [], 1.0)[0]:
            children.add(_fork_job(listener))
            last_job = time.monotonic()
        elif not children and time.monotonic() - last_job > idle_seconds:
            break
    # no new client can connect once the path is gone; one that connected just before is still served
    path.unlink()
    while select.select([listener], [], [], 0)[0]:
        _fork_job(listener)
    listener.close()
    with contextlib.suppress(OSError):  # an empty server log says nothing (the lock file stays: clients lock it)
        if path.with_suffix(".log").stat().st_size == 0:
            path.with_suffix(".log").unlink()


def _fork_job(listener: socket.socket) -> int:
    """Accept one client and fork the child that runs its job; the child's pid."""
    connection, _ = listener.accept()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            listener.close()
            code = _run_child(connection)
        finally:  # never back into the server's loop, whatever happened
            os._exit(code)
    connection.close()
    return pid


def _run_child(connection: socket.socket) -> int:
    """In a forked child: take over the client's descriptors, folder and environment; run its command."""
    code = 1
    try:
        header, fds, _flags, _address = socket.recv_fds(connection, _HEADER.size, 3)
        (length,) = _HEADER.unpack(header)
        payload = b""
        while len(payload) < length:
            chunk = connection.recv(min(1 << 20, length - len(payload)))
            if not chunk:
                return 1
            payload += chunk
        request = json.loads(payload)
        connection.sendall(b"started\n")
        if _read_line(connection) != b"go\n":
            return 1  # the client gave up waiting (a stopped server) and runs the job itself
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[CHILD_ENV] = "1"
        threading.Thread(target=_stop_when_client_leaves, args=(connection,), daemon=True).start()
        module, _, function = request["entry"].partition(":")
        main = getattr(importlib.import_module(module), function)
        try:
            code = main(request["argv"])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException as error:  # the job's own traceback goes to its log, as it would in-process
            import traceback

            traceback.print_exception(error)
            code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            connection.sendall(f"exit {code}\n".encode())
    return code


def _stop_when_client_leaves(connection: socket.socket) -> None:
    """End the job when its client goes away (Snakemake cancelled it): nothing else would stop it."""
    poller = select.poll()
    poller.register(connection, select.POLLIN | select.POLLHUP)
    poller.poll()
    os._exit(143)


if __name__ == "__main__":
    serve(Path(sys.argv[1]), float(sys.argv[2]))
