"""The warm worker: a job forked from a warm process behaves as the same command run in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from circuitsweep import warm_worker
from circuitsweep.plan.resources import suits

#: The command line's function, as the command line names itself to the worker.
ENTRY = "circuitsweep.cli:main"

WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"


def _client(folder: Path, *argv: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m circuitsweep argv`` forwarded to the warm worker in ``folder`` (any command, for the test)."""
    code = (
        "import sys; from circuitsweep import warm_worker; "
        f"code = warm_worker.run_warm(sys.argv[1:], {str(folder)!r}, {ENTRY!r}); sys.exit(99 if code is None else code)"
    )
    environment = {**os.environ, "PYTHONPATH": str(WORKFLOW), **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("warm")


def test_job_runs_in_the_clients_folder_and_writes_to_its_output(folder, tmp_path):
    """The child takes the client's folder, output and exit code: a relative path resolves where the job started."""
    (tmp_path / "cache.parquet").write_bytes(b"12345")
    argv = ["block-record", "--block", "m.0", "--files", "cache.parquet", "--output", "m.json"]
    done = _client(folder, *argv, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "m.json").read_text())["files"] == {"cache.parquet": 5}
    assert "block m.0: 1 files recorded in m.json" in done.stdout


def test_a_failing_job_gives_its_one_line_error_and_exit_code(folder, tmp_path):
    """A user error in the job reaches the client's stderr as one line, with its exit code, as in-process."""
    (tmp_path / "bad.yaml").write_text("models: 3\n")
    done = _client(folder, "check-config", "bad.yaml", cwd=tmp_path)
    in_process = subprocess.run(
        [sys.executable, "-m", "circuitsweep", "check-config", "bad.yaml"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(WORKFLOW)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == in_process.returncode != 0
    assert done.stderr == in_process.stderr
    assert "circuitsweep check-config: error:" in done.stderr
    assert "Traceback" not in done.stderr


def test_no_worker_means_the_command_runs_in_process(tmp_path):
    """A folder where no socket can be made makes run_warm step aside (None) with one line saying why."""
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    done = _client(blocked / "sub", "block-record", "--block", "b", "--output", "b.json", cwd=tmp_path)
    assert done.returncode == 99
    assert "warm worker unavailable" in done.stderr


def test_an_idle_server_exits_and_removes_its_socket(tmp_path):
    """With no job for idle_seconds the server exits; the next client would start a fresh one."""
    path = tmp_path / "idle.sock"
    script = f"import pathlib; from circuitsweep.warm_worker import serve; serve(pathlib.Path({str(path)!r}), 0.5, ())"
    server = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(WORKFLOW)})
    assert server.wait(timeout=30) == 0
    assert not path.exists()


def test_the_server_key_changes_with_the_source_and_import_time_environment(tmp_path):
    """A server never serves a job of other code or of another HF/torch environment."""
    key = warm_worker.server_key({"HF_HOME": "/a"})
    assert warm_worker.server_key({"HF_HOME": "/a", "SOME_JOB_VARIABLE": "1"}) == key
    assert warm_worker.server_key({"HF_HOME": "/b"}) != key
    source = Path(warm_worker.__file__)
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    try:
        assert warm_worker.server_key({"HF_HOME": "/a"}) != key
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_killing_the_client_stops_its_job(tmp_path):
    """Snakemake cancels a job by killing its process: the forked child must stop too, not run on unseen."""
    folder = tmp_path / "warm"
    slow = {
        "CIRCUITSWEEP_TEST_MEASURE": '{"sleep": 60}',
        "PYTHONPATH": f"{WORKFLOW}:{WORKFLOW.parent / 'tests' / 'slowmeasure'}",
    }
    code = (
        "import sys; from circuitsweep import warm_worker; "
        f"sys.exit(warm_worker.run_warm(sys.argv[1:], {str(folder)!r}, {ENTRY!r}) or 0)"
    )
    argv = ["measure-revision", "--settings", '{"revision": "r"}', "--snapshot", "s", "--stats", "a", "--scores", "b"]
    (tmp_path / "s").mkdir()  # the command line is checked before the job runs
    client = subprocess.Popen([sys.executable, "-c", code, *argv], cwd=tmp_path, env={**os.environ, **slow})

    def jobs() -> list[str]:
        listing = subprocess.run(["pgrep", "-f", f"warm_worker {folder}"], capture_output=True, text=True).stdout
        return listing.split()

    deadline = time.monotonic() + 60
    while len(jobs()) < 2 and time.monotonic() < deadline:  # the server and its forked job
        time.sleep(0.2)
    assert len(jobs()) == 2
    client.kill()
    client.wait()
    deadline = time.monotonic() + 10
    while len(jobs()) > 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(jobs()) == 1
    assert not (tmp_path / "a").exists()
    for pid in jobs():
        os.kill(int(pid), 15)


def test_only_cpu_jobs_fork_from_the_warm_worker(tmp_path):
    """A CUDA or ROCm context cannot be used after fork: device auto forks only where no GPU device node exists."""
    assert suits("cpu", tmp_path) and suits("auto", tmp_path)
    assert not suits("cuda", tmp_path)
    (tmp_path / "nvidia0").touch()
    assert not suits("auto", tmp_path) and suits("cpu", tmp_path)
    (tmp_path / "nvidia0").unlink()
    (tmp_path / "kfd").touch()
    assert not suits("auto", tmp_path)


def test_a_socket_folder_others_can_write_is_refused(tmp_path):
    """Jobs hand the server their environment (tokens) and output: a folder others can write is not trusted."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    done = _client(shared, "block-record", "--block", "b", "--output", "b.json", cwd=tmp_path)
    assert done.returncode == 99 and "is not private to this user" in done.stderr


def test_a_stopped_server_does_not_hold_its_client(tmp_path):
    """A server stopped with SIGSTOP never answers: the client gives up after the handshake bound and runs the
    job itself (None), and the server, once resumed, does not run the job a second time."""
    import signal

    folder = tmp_path / "warm"
    folder.mkdir(mode=0o700)
    env = {**os.environ, "PYTHONPATH": str(WORKFLOW), "CIRCUITSWEEP_WARM_HANDSHAKE_S": "1"}
    path = folder / f"{warm_worker.server_key(env)}.sock"
    script = f"import pathlib; from circuitsweep.warm_worker import serve; serve(pathlib.Path({str(path)!r}), 60, ())"
    server = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        os.kill(server.pid, signal.SIGSTOP)
        (tmp_path / "cache.parquet").write_bytes(b"12345")
        argv = ["block-record", "--block", "m.0", "--files", "cache.parquet", "--output", "m.json"]
        code = (
            "import sys; from circuitsweep import warm_worker; "
            f"code = warm_worker.run_warm(sys.argv[1:], {str(folder)!r}, {ENTRY!r}); "
            "sys.exit(99 if code is None else code)"
        )
        started = time.monotonic()
        # to files, not pipes: the stopped server holds the descriptors the client sent it (pipes would never close)
        with open(tmp_path / "out", "w") as out, open(tmp_path / "err", "w") as err:
            client = subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, env=env, stdout=out, stderr=err,
                                    timeout=60)  # fmt: skip
        assert time.monotonic() - started < 20
        stderr = (tmp_path / "err").read_text()
        assert client.returncode == 99, stderr
        assert "did not take the job" in stderr and "no answer within 1 s" in stderr
        os.kill(server.pid, signal.SIGCONT)
        time.sleep(3)
        assert not (tmp_path / "m.json").exists()
        assert server.poll() is None
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.terminate()
        server.wait(timeout=30)
