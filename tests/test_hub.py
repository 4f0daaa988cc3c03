"""Hub side: discovery, download, retries, verification and fingerprints, against the loopback Hub."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx2
import pytest
from hubserver import HubServer
from huggingface_hub import constants
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import close_session

from circuitsweep.checkpoints import hub
from circuitsweep.checkpoints.local_hub import publish_revision
from circuitsweep.checkpoints.revisions import Revision, read_manifest
from circuitsweep.errors import ConfigError

REPO = "toy-org/toy-model"
BRANCHES = ["step0-tokens0M", "step1-tokens4M", "step2-tokens8M", "step4-tokens16M"]
FAST = {"retries": 4, "backoff": 0.01}


@pytest.fixture(autouse=True)
def hf_env(tmp_path, monkeypatch):
    """Keep huggingface_hub in tmp dirs, on plain HTTP (no Xet, no shared blobs), online."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_ENABLE_HF_TRANSFER", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_SHARED_BLOBS", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_PROGRESS_BARS", True)
    yield
    close_session()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, dict[str, Path]]:
    """Per branch: repository file name -> source file. step0 and step1 share their weights."""
    base = tmp_path_factory.mktemp("sources")
    rng = random.Random(0)
    weights = {b: _write(base / b / "model.safetensors", rng.randbytes(300_000)) for b in BRANCHES}
    weights["step1-tokens4M"] = weights["step0-tokens0M"]
    out: dict[str, dict[str, Path]] = {}
    for branch in BRANCHES:
        files = {
            "config.json": _write(base / branch / "config.json", json.dumps({"branch": branch}).encode()),
            "tokenizer.json": _write(base / "tokenizer.json", b'{"model": "toy"}'),
            "model.safetensors": weights[branch],
            "optimizer.pt": _write(base / branch / "optimizer.pt", rng.randbytes(50_000)),
        }
        if branch == "step4-tokens16M":
            files["pytorch_model.bin"] = _write(base / branch / "pytorch_model.bin", rng.randbytes(100_000))
        out[branch] = files
    out["main"] = out["step4-tokens16M"]
    return out


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory, sources) -> Path:
    """A hubfolder with the toy repository's branches (main = step4)."""
    root = tmp_path_factory.mktemp("hub")
    for branch, files in sources.items():
        publish_revision(root, REPO, branch, files)
    return root


@pytest.fixture(scope="module")
def running_server(hub_root):
    with HubServer(hub_root) as server:
        yield server


@pytest.fixture
def server(running_server):
    """The module's server with no pending faults and an empty request log."""
    running_server.clear_faults()
    running_server.log.clear()
    yield running_server
    assert running_server.errors == []


def _fetch(server: HubServer, cache: Path, revision: str = "step2-tokens8M", **kwargs) -> hub.Snapshot:
    return hub.fetch_verified(REPO, revision, cache, endpoint=server.endpoint, **{**FAST, **kwargs})


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _expected(sources, revision: str, names=("config.json", "model.safetensors", "tokenizer.json")) -> dict[str, str]:
    return {name: _sha(sources[revision][name]) for name in names}


# -- discovery -------------------------------------------------------------------


def test_list_revisions_gives_steps_tokens_and_commits(server, hub_root) -> None:
    """Discovery lists checkpoint branches with steps and tokens from their names, commits from the refs."""
    revisions = hub.list_revisions(REPO, endpoint=server.endpoint)
    assert revisions == [
        Revision("step0-tokens0M", 0, 0),
        Revision("step1-tokens4M", 1, 4_000_000),
        Revision("step2-tokens8M", 2, 8_000_000),
        Revision("step4-tokens16M", 4, 16_000_000),
    ]
    refs = hub_root / "models--toy-org--toy-model" / "refs"
    assert all(r.commit == (refs / r.name).read_text() for r in revisions)
    with_main = hub.list_revisions(REPO, endpoint=server.endpoint, aliases={"main": (4, 16_000_000)})
    assert Revision("main", 4, 16_000_000) in with_main and len(with_main) == 5


def test_refresh_manifest_writes_the_full_branch_list(server, tmp_path) -> None:
    """refresh_manifest rebuilds a complete (non-partial) manifest with commits from the Hub."""
    path = tmp_path / "toy.json"
    written = hub.refresh_manifest(REPO, path, endpoint=server.endpoint)
    back = read_manifest(path)
    assert not back.partial and back.names() == BRANCHES == written.names()
    assert all(len(r.commit or "") == 40 for r in back.revisions)


def test_hf_endpoint_environment_variable_is_respected(running_server) -> None:
    """With HF_ENDPOINT set (read by huggingface_hub at import), no endpoint argument is needed."""
    code = f"from circuitsweep.checkpoints.hub import list_revisions; print([r.name for r in list_revisions({REPO!r})])"
    env = dict(os.environ, HF_ENDPOINT=running_server.endpoint, HF_HUB_DISABLE_XET="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == repr(BRANCHES)


# -- download and verification ---------------------------------------------------


def test_fetch_downloads_needed_files_and_records_hashes(server, sources, tmp_path) -> None:
    """A fetch takes config, tokenizer and weights (not optimizer state), verifies them and records sha256s."""
    record = tmp_path / "record.json"
    path = hub.download_snapshot(
        REPO, "step2-tokens8M", tmp_path / "cache", endpoint=server.endpoint, record=record, **FAST
    )
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert server.count(filename="optimizer.pt") == 0
    snapshot = hub.read_record(record)
    assert snapshot.file_hashes == _expected(sources, "step2-tokens8M")
    assert snapshot.commit == path.name and snapshot.revision == "step2-tokens8M" and snapshot.path == path
    ref = tmp_path / "cache" / "models--toy-org--toy-model" / "refs" / "step2-tokens8M"
    assert ref.read_text() == path.name


def test_safetensors_preferred_over_pickles(server, tmp_path) -> None:
    """When a revision has safetensors, its pytorch_model.bin is not downloaded unless asked for."""
    snap = _fetch(server, tmp_path / "a", "step4-tokens16M")
    assert "pytorch_model.bin" not in snap.file_hashes and "model.safetensors" in snap.file_hashes
    both = _fetch(server, tmp_path / "b", "step4-tokens16M", prefer_safetensors=False)
    assert {"pytorch_model.bin", "model.safetensors"} <= set(both.file_hashes)


def test_connection_dropped_mid_file_is_survived(server, sources, tmp_path, monkeypatch) -> None:
    """A weight download cut mid-body is resumed (Range) and ends with the same bytes as a clean run."""
    clean = _fetch(server, tmp_path / "clean")
    server.log.clear()
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)  # so bytes before the cut reach the disk
    server.drop("model.safetensors", times=1, after_bytes=100_000)
    snap = _fetch(server, tmp_path / "dropped")
    assert server.count("cdn", status=0) == 1  # one body was really cut
    resumed = [r for r in server.log if r.route == "cdn" and r.status == 206]
    assert len(resumed) == 1 and resumed[0].range.startswith("bytes=") and resumed[0].range != "bytes=0-"
    assert snap.file_hashes == clean.file_hashes == _expected(sources, "step2-tokens8M")
    assert (snap.path / "model.safetensors").read_bytes() == sources["step2-tokens8M"]["model.safetensors"].read_bytes()


@pytest.mark.parametrize(("route", "status", "times"), [("info", 503, 2), ("download", 500, 1), ("info", 429, 1)])
def test_transient_http_errors_are_retried(server, sources, tmp_path, route, status, times) -> None:
    """5xx and 429 replies (on the revision info or on a file body) are retried with backoff."""
    server.fail(route, filename="model.safetensors" if route == "download" else None, status=status, times=times)
    snap = _fetch(server, tmp_path / "cache")
    assert server.count(status=status) == times
    assert snap.file_hashes == _expected(sources, "step2-tokens8M")


def test_retries_are_bounded(server, tmp_path) -> None:
    """A Hub that keeps failing makes the fetch fail after `retries` retries, not hang."""
    server.fail("info", status=503, times=-1)
    with pytest.raises(hub.HubError) as info:
        _fetch(server, tmp_path / "cache", retries=2)
    assert hub.is_transient(info.value.__cause__) and "after 3 attempts" in str(info.value)
    assert server.count("info") == 3


def test_corrupted_file_is_fetched_again_once(server, sources, tmp_path) -> None:
    """A file whose bytes do not match the Hub's sha256 is deleted and downloaded once more."""
    server.corrupt("model.safetensors", times=1)
    snap = _fetch(server, tmp_path / "cache")
    assert snap.file_hashes == _expected(sources, "step2-tokens8M")
    assert server.count("cdn", filename="model.safetensors") == 2


def test_persistently_corrupted_file_fails_naming_file_and_hashes(server, sources, tmp_path) -> None:
    """If the bytes stay wrong, the error names the file, the expected and the actual sha256."""
    server.corrupt("model.safetensors", times=-1)
    with pytest.raises(hub.VerificationError) as info:
        _fetch(server, tmp_path / "cache")
    message = str(info.value)
    expected = _sha(sources["step2-tokens8M"]["model.safetensors"])
    assert "model.safetensors" in message and expected in message and "step2-tokens8M" in message
    actual = message.split("got ")[1].split(";")[0].strip()
    assert len(actual) == 64 and actual != expected
    assert not list((tmp_path / "cache").rglob("snapshots/*/model.safetensors"))  # the bad file is not kept


def _count_reads(monkeypatch) -> dict[str, int]:
    """Count, per file name, the files verification reads back from disk (``hub.hash_file``)."""
    reads: dict[str, int] = {}

    def counting(path, **kwargs):
        reads[Path(path).name] = reads.get(Path(path).name, 0) + 1
        return real(path, **kwargs)

    real = hub.hash_file
    monkeypatch.setattr(hub, "hash_file", counting)
    return reads


def test_weights_are_hashed_while_downloading_not_read_back(server, sources, tmp_path, monkeypatch) -> None:
    """A weight file's sha256 comes from the bytes as they were written: verification reads no weight file again."""
    reads = _count_reads(monkeypatch)
    chunk_size = constants.DOWNLOAD_CHUNK_SIZE
    snap = _fetch(server, tmp_path / "cache")
    assert snap.file_hashes == _expected(sources, "step2-tokens8M")
    assert "model.safetensors" not in reads  # hashed in passing, never re-read
    assert reads == {"config.json": 1, "tokenizer.json": 1}  # small non-LFS files: git sha1, read once
    assert chunk_size == constants.DOWNLOAD_CHUNK_SIZE  # huggingface_hub's settings are restored
    assert hub.file_download.http_get is hub._original_http_get


def test_downloads_never_take_the_xet_client_that_no_deadline_bounds(server, sources, tmp_path, monkeypatch) -> None:
    """With hf_xet installed, huggingface_hub fetches Xet-backed files through hf_xet's own client, which none of
    our deadlines, stall bounds or retry rules reach: while circuitsweep downloads, Xet is off (every file comes
    over HTTP, hashed as it arrives), and huggingface_hub's setting is restored afterwards."""
    from huggingface_hub.utils._runtime import is_xet_available

    seen = []
    download = hub.snapshot_download

    def recording(*args, **kwargs):
        seen.append((constants.HF_HUB_DISABLE_XET, is_xet_available()))
        return download(*args, **kwargs)

    monkeypatch.setattr(hub, "snapshot_download", recording)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    snap = _fetch(server, tmp_path / "cache")
    assert snap.file_hashes == _expected(sources, "step2-tokens8M")
    assert seen and all(disabled and not available for disabled, available in seen), seen
    assert constants.HF_HUB_DISABLE_XET is False


def test_corruption_is_caught_by_the_hash_taken_while_downloading(server, sources, tmp_path, monkeypatch) -> None:
    """Corrupted bytes are refused by the streamed sha256 itself (no read-back), after one re-download."""
    reads = _count_reads(monkeypatch)
    server.corrupt("model.safetensors", times=-1)
    with pytest.raises(hub.VerificationError, match="model.safetensors: sha256"):
        _fetch(server, tmp_path / "cache")
    assert "model.safetensors" not in reads and server.count("cdn", filename="model.safetensors") == 2
    assert not list((tmp_path / "cache").rglob("snapshots/*/model.safetensors"))


def test_file_cut_after_its_bytes_were_hashed_is_read_back_and_refused(server, tmp_path, monkeypatch) -> None:
    """A file shorter on disk than the bytes hashed (truncated behind the download's back) is not trusted."""
    real = hub._original_http_get

    def truncating(url, temp_file, **kwargs):
        real(url, temp_file, **kwargs)
        temp_file.flush()
        os.truncate(temp_file.name, 1000)

    monkeypatch.setattr(hub, "_original_http_get", truncating)
    with pytest.raises(hub.VerificationError, match="model.safetensors: size expected 300000 bytes, got 1000"):
        _fetch(server, tmp_path / "cache")


def test_hashing_writer_gives_up_when_the_file_is_rewritten_elsewhere(tmp_path) -> None:
    """A rewind to the start restarts the hash (server ignored Range); any other seek makes it unusable."""
    with open(tmp_path / "a", "wb") as handle:
        writer = hub._HashingWriter(handle)
        writer.write(b"stale")
        writer.seek(0)
        writer.truncate()
        writer.write(b"fresh bytes")
        key, digest = writer.finish()
    assert digest == hashlib.sha256(b"fresh bytes").hexdigest() and key[2] == len(b"fresh bytes")
    with open(tmp_path / "b", "wb") as handle:
        writer = hub._HashingWriter(handle)
        writer.write(b"0123456789")
        writer.seek(3)
        writer.write(b"xx")
        assert writer.finish() is None


def test_corrupted_regular_file_is_caught_by_git_blob_id(server, tmp_path) -> None:
    """Small non-LFS files (config.json) are checked against their git blob sha1."""
    server.corrupt("config.json", times=-1)
    with pytest.raises(hub.VerificationError, match="config.json: git-sha1"):
        _fetch(server, tmp_path / "cache")


def test_truncated_cached_file_is_detected_and_replaced(server, sources, tmp_path) -> None:
    """A cached weight file truncated after download is found by its size and fetched again."""
    snap = _fetch(server, tmp_path / "cache")
    blob = (snap.path / "model.safetensors").resolve()
    blob.write_bytes(blob.read_bytes()[:1000])
    again = _fetch(server, tmp_path / "cache")
    assert again.file_hashes == _expected(sources, "step2-tokens8M")
    assert server.count("cdn", filename="model.safetensors") == 2


def test_unknown_revision_names_repo_and_revision(server, tmp_path) -> None:
    """An unknown branch fails at once with UnknownRevisionError naming the repository and the revision."""
    with pytest.raises(hub.UnknownRevisionError, match=r"'step3-tokens12M'.*'toy-org/toy-model'") as info:
        _fetch(server, tmp_path / "cache", "step3-tokens12M")
    assert isinstance(info.value.__cause__, RevisionNotFoundError)
    assert server.count("info") == 1  # not retried


def test_unknown_repository_names_it(server, tmp_path) -> None:
    """An unknown repository fails at once with UnknownRepoError (not a revision error) naming it."""
    with pytest.raises(hub.UnknownRepoError, match="'toy-org/missing'"):
        hub.fetch_verified("toy-org/missing", "step1-tokens4M", tmp_path / "cache", endpoint=server.endpoint, **FAST)
    with pytest.raises(hub.UnknownRepoError, match="'toy-org/missing'"):
        hub.list_revisions("toy-org/missing", endpoint=server.endpoint)
    assert server.count("info") == 1 and server.count("refs") == 1


def test_unauthorized_is_not_retried(server, tmp_path) -> None:
    """A 401 (private repository, no or bad token) fails at once and is never retried."""
    server.fail("info", status=401, times=-1)
    with pytest.raises(hub.HubError, match="'toy-org/toy-model'"):
        _fetch(server, tmp_path / "cache")
    assert server.count("info") == 1


def test_hf_token_is_sent_to_the_hub_but_not_to_the_cdn(server, tmp_path, monkeypatch) -> None:
    """HF_TOKEN authenticates Hub requests; it is not forwarded to the CDN origin."""
    monkeypatch.setenv("HF_TOKEN", "hf_loopback_test")
    _fetch(server, tmp_path / "cache")
    hub_requests = [r for r in server.log if r.route != "cdn"]
    cdn_requests = [r for r in server.log if r.route == "cdn"]
    assert hub_requests and all(r.authorization == "Bearer hf_loopback_test" for r in hub_requests)
    assert cdn_requests and all(r.authorization is None for r in cdn_requests)


def test_identical_weights_share_a_fingerprint(server, tmp_path) -> None:
    """Two branches serving the same weight bytes (step0 == step1) get the same fingerprint; others differ."""
    snaps = {b: _fetch(server, tmp_path / "cache", b) for b in ("step0-tokens0M", "step1-tokens4M", "step2-tokens8M")}
    assert snaps["step0-tokens0M"].commit != snaps["step1-tokens4M"].commit  # configs differ
    assert snaps["step0-tokens0M"].fingerprint == snaps["step1-tokens4M"].fingerprint
    assert snaps["step0-tokens0M"].fingerprint != snaps["step2-tokens8M"].fingerprint
    assert hub.weights_fingerprint({"model.safetensors": "a", "config.json": "b"}) == hub.weights_fingerprint(
        {"model.safetensors": "a", "config.json": "c"}
    )


# -- offline sources -------------------------------------------------------------


def test_local_hubfolder_is_verified_by_blob_names(hub_root, sources, tmp_path) -> None:
    """local_files_only reads a hubfolder directly and checks every file against its sha256 blob name."""
    snap = hub.fetch_verified(REPO, "step2-tokens8M", hub_root, local_files_only=True)
    assert snap.source == "local" and snap.file_hashes == _expected(sources, "step2-tokens8M")
    copy = tmp_path / "hub"
    shutil.copytree(hub_root, copy, symlinks=True)
    blob = copy / "models--toy-org--toy-model" / "blobs" / snap.file_hashes["model.safetensors"]
    blob.write_bytes(b"x" + blob.read_bytes()[1:])
    with pytest.raises(hub.LocalCopyDamaged, match="model.safetensors: sha256"):
        hub.fetch_verified(REPO, "step2-tokens8M", copy, local_files_only=True)


def test_a_damaged_toy_checkpoint_names_what_to_delete_to_train_it_again(hub_root, sources, tmp_path) -> None:
    """A toy's published file whose bytes changed fails the fetch job in one line that says which two paths to
    delete so that the next run trains the toy again; the local copy will not mend, so no attempt is retried."""
    from circuitsweep.checkpoints.snapshots import fetch_snapshot
    from circuitsweep.plan import retry

    toyhub = tmp_path / "results" / "toyhub"
    shutil.copytree(hub_root, toyhub, symlinks=True)
    snap = hub.fetch_verified(REPO, "step2-tokens8M", toyhub, local_files_only=True)
    blob = toyhub / "models--toy-org--toy-model" / "blobs" / snap.file_hashes["model.safetensors"]
    blob.write_bytes(b"x" + blob.read_bytes()[1:])
    settings = {
        "model": "toy-m",
        "revision": "step2-tokens8M",
        "source": {"type": "toy", "repo_id": REPO, "path": str(toyhub)},
    }
    with pytest.raises(hub.LocalCopyDamaged) as info:
        fetch_snapshot(settings, tmp_path / "snapshot")
    message = str(info.value)
    assert "model.safetensors: sha256" in message and "\n" not in message
    assert message.endswith(
        f"; delete {toyhub / 'models--toy-org--toy-model'} and {toyhub / 'published' / 'toy-m.json'}, "
        "then run again: the toy is trained again"
    )
    assert retry.is_deterministic(info.value)


def test_local_unknown_repo_and_revision(hub_root) -> None:
    """Offline, an unknown repository and an unknown revision are told apart and named."""
    with pytest.raises(hub.UnknownRepoError, match="'toy-org/missing'"):
        hub.fetch_verified("toy-org/missing", "main", hub_root, local_files_only=True)
    with pytest.raises(hub.UnknownRevisionError, match=r"'step9-tokens1M'.*'toy-org/toy-model'"):
        hub.fetch_verified(REPO, "step9-tokens1M", hub_root, local_files_only=True)


def test_offline_rerun_uses_the_downloaded_cache(server, sources, tmp_path, monkeypatch) -> None:
    """After one online fetch, HF_HUB_OFFLINE=1 finds the branch in the cache (git-sha1 and sha256 blobs)."""
    online = _fetch(server, tmp_path / "cache")
    server.log.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = hub.fetch_verified(REPO, "step2-tokens8M", tmp_path / "cache", endpoint=server.endpoint)
    assert offline.source == "local" and offline.file_hashes == online.file_hashes
    assert server.count() == 0


# -- pieces ----------------------------------------------------------------------


def test_transient_error_classification() -> None:
    """Connection errors, 5xx and 429 are transient; 404/401 and offline mode are not."""
    request = httpx2.Request("GET", "http://127.0.0.1/x")

    def http_error(status: int) -> HfHubHTTPError:
        return HfHubHTTPError("boom", response=httpx2.Response(status, request=request))

    assert hub.is_transient(httpx2.ConnectError("refused"))
    assert hub.is_transient(httpx2.RemoteProtocolError("cut"))
    assert hub.is_transient(http_error(502)) and hub.is_transient(http_error(429))
    assert not hub.is_transient(http_error(404)) and not hub.is_transient(http_error(401))
    wrapped = LocalEntryNotFoundError("no cache")
    wrapped.__cause__ = http_error(503)
    assert hub.is_transient(wrapped)
    assert not hub.is_transient(LocalEntryNotFoundError("local_files_only"))


def test_a_host_that_does_not_resolve_fails_at_once_in_one_line() -> None:
    """A mistyped endpoint used to be retried for 30 s before its error: DNS saying the host does not exist is
    final, so the call fails on its first attempt with a line naming the URL; a resolver that only failed this
    time (EAI_AGAIN) is still retried."""
    import socket

    def connect_error(code: int) -> httpx2.ConnectError:
        request = httpx2.Request("GET", "https://hub.exmaple.org/api/models/x")
        error = httpx2.ConnectError("[Errno -2] Name or service not known", request=request)
        error.__context__ = socket.gaierror(code, "Name or service not known")
        return error

    calls = []

    def call() -> None:
        calls.append(1)
        raise connect_error(socket.EAI_NONAME)

    with pytest.raises(hub.HubError) as info:
        hub._with_retries(call, retries=4, backoff=5.0, what="listing x")
    message = str(info.value)
    assert len(calls) == 1 and "after" not in message and "\n" not in message
    assert "does not resolve" in message and "https://hub.exmaple.org/api/models/x" in message
    assert hub.is_transient(connect_error(socket.EAI_AGAIN))


def test_choose_files_filters_junk() -> None:
    """Default patterns keep config/tokenizer/weights and drop optimizer, training args and subfolders."""
    names = [
        "config.json",
        "model-00001-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "merges.txt",
        "optimizer.pt",
        "training_args.bin",
        "trainer_state.json",
        "onnx/model.onnx",
        "pytorch_model.bin",
        "README.md",
        ".gitattributes",
        "special_tokens_map.json",
    ]
    assert hub.choose_files(names) == [
        "config.json",
        "merges.txt",
        "model-00001-of-00002.safetensors",
        "model.safetensors.index.json",
        "special_tokens_map.json",
        "tokenizer.json",
    ]
    assert "pytorch_model.bin" in hub.choose_files(names, prefer_safetensors=False)


def test_server_serves_ranges_and_lfs_redirects(server, sources) -> None:
    """The loopback Hub honours Range requests and sends LFS files through a CDN redirect with their sha256."""
    data = sources["step2-tokens8M"]["model.safetensors"].read_bytes()
    url = f"{server.endpoint}/{REPO}/resolve/step2-tokens8M/model.safetensors"

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(urllib.request.Request(url, method="HEAD"))
    headers = info.value.headers
    assert info.value.code == 302 and headers["X-Linked-Etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert int(headers["X-Linked-Size"]) == len(data) and headers["Location"].startswith(server.cdn_endpoint)
    request = urllib.request.Request(headers["Location"], headers={"Range": "bytes=1000-1999"})
    with urllib.request.urlopen(request) as reply:
        assert reply.status == 206 and reply.read() == data[1000:2000]
        assert reply.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"


# -- timeouts, exhausted retries and odd branches (issue 12, cases 5-7) ------------


def test_stalled_model_info_times_out_and_is_retried(server, sources, tmp_path, caplog) -> None:
    """A model-info request the Hub never answers times out, counts as one try, and the retry succeeds."""
    server.stall("info", seconds=60, times=1)
    started = time.monotonic()
    snap = _fetch(server, tmp_path / "cache", timeout=0.5)
    assert time.monotonic() - started < 15
    assert "Timeout" in caplog.text and "retry 1/4" in caplog.text
    assert server.count("info", status=200) == 1  # the stalled one never got an answer
    assert snap.file_hashes == _expected(sources, "step2-tokens8M")


def test_stalled_branch_list_is_bounded_by_the_retry_budget(server) -> None:
    """A branch list that always stalls fails after retries x timeout, as a one-line HubError."""
    server.stall("refs", seconds=60, times=-1)
    started = time.monotonic()
    with pytest.raises(hub.HubError, match=r"listing branches of .* failed after 2 attempts: .*Timeout"):
        hub.list_revisions(REPO, endpoint=server.endpoint, retries=1, backoff=0.01, timeout=0.3)
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(
    ("stall", "url"),
    [
        (lambda server: server.stall("tree", seconds=60, times=-1), "/api/models/toy-org/toy-model/tree/"),
        (lambda server: server.stall_body("model.safetensors", seconds=60, times=-1), "/cdn/"),
        (lambda server: server.trickle("model.safetensors", seconds=0.5, times=-1), "/cdn/"),
    ],
    ids=["file-list", "file-body", "trickling-body"],
)
def test_a_stalled_file_list_or_download_fails_in_bounded_time_naming_the_url(server, tmp_path, stall, url) -> None:
    """The file-list request (which huggingface_hub sends with no deadline), a download whose body stops and one
    that trickles in (a byte each half timeout) fail after about retries x timeout (x 3 for the trickle), as one
    line naming the URL, never waiting on the Hub's own limits."""
    stall(server)
    started = time.monotonic()
    with pytest.raises(hub.HubError) as info:
        _fetch(server, tmp_path / "cache", retries=1, timeout=1.0)
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert elapsed < 12, elapsed
    assert "\n" not in message and "failed after 2 attempts" in message
    assert f"{server.endpoint if url.startswith('/api') else server.cdn_endpoint}{url}" in message


@pytest.mark.parametrize("fault", ["hang_up", "fail"])
def test_exhausted_retries_are_one_line_naming_the_repository(server, tmp_path, fault) -> None:
    """A connection dropped with no reply, or a 500, on every try ends in one line naming repo, revision and fix."""
    getattr(server, fault)("info", times=-1)
    with pytest.raises(hub.HubError) as info:
        _fetch(server, tmp_path / "cache", retries=2)
    message = str(info.value)
    assert "\n" not in message and f"resolving {REPO}@step2-tokens8M failed after 3 attempts" in message
    assert "rerun" in message and server.count("info") == 3


def test_full_disk_is_a_one_line_error(server, tmp_path, monkeypatch) -> None:
    """No space left while downloading is not retried and says to free disk space."""

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cache" / "blob"))

    monkeypatch.setattr(hub, "snapshot_download", full)
    with pytest.raises(hub.HubError, match=r"no space left on the device writing .*blob; free disk space"):
        _fetch(server, tmp_path / "cache")


def test_refresh_manifest_skips_and_lists_non_checkpoint_branches(sources, tmp_path) -> None:
    """Branches such as step5/evil or step7-tokensX are left out and listed; the rest is written."""
    root = tmp_path / "hub"
    for branch in ("step0-tokens0M", "step1-tokens4M", "step5/evil", "step7-tokensX", "main"):
        publish_revision(root, REPO, branch, sources["step0-tokens0M"])
    with HubServer(root) as local:
        path = tmp_path / "manifest.json"
        env = dict(os.environ, HF_HUB_DISABLE_XET="1")
        cli = [sys.executable, "-m", "circuitsweep", "refresh-manifest", REPO, str(path), "--endpoint", local.endpoint]
        out = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert read_manifest(path).names() == ["step0-tokens0M", "step1-tokens4M"]
    assert "skipped 2 branches" in out.stdout and "'step5/evil'" in out.stdout and "'step7-tokensX'" in out.stdout


def test_prefetch_fills_the_shared_cache_that_offline_jobs_read(server, tmp_path, monkeypatch) -> None:
    """`circuitsweep prefetch` downloads the planned revisions; a fetch_snapshot with
    HF_HUB_OFFLINE=1 and source.cache: shared then needs no request to the Hub."""
    from circuitsweep.checkpoints.snapshots import fetch_snapshot
    from circuitsweep.plan.prefetch import prefetch

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "shared"))
    config = tmp_path / "c.yaml"
    config.write_text(
        f"models:\n  toy:\n    architecture: GPTNeoXForCausalLM\n"
        f"    source: {{type: hub, repo_id: {REPO}, cache: shared, endpoint: '{server.endpoint}'}}\n"
        "    revisions: [step0-tokens0M, step2-tokens8M]\n    tokens: {from_name: true}\n"
        "    primitives: {enabled: false}\n"
    )
    assert prefetch(config, tmp_path) == 2
    server.log.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    source = {"type": "hub", "repo_id": REPO, "cache": "shared", "endpoint": server.endpoint}
    snapshot = fetch_snapshot({"model": "toy", "revision": "step2-tokens8M", "source": source}, tmp_path / "snap")
    assert snapshot.source == "local" and "model.safetensors" in snapshot.file_hashes
    assert server.count() == 0


def _refresh_cli(endpoint: str, path: Path, *extra: str) -> subprocess.CompletedProcess:
    cli = [sys.executable, "-m", "circuitsweep", "refresh-manifest", REPO, str(path), "--endpoint", endpoint, *extra]
    env = dict(os.environ, HF_HUB_DISABLE_XET="1")
    return subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)


def test_refresh_manifest_never_shrinks_or_empties_a_manifest_without_force(sources, tmp_path) -> None:
    """Issue 22: branches named stepN without --tokens-per-step are refused with one line asking for it (not
    "skipped as unusable names" leaving an empty manifest over a 3-revision one); a negative or zero
    --tokens-per-step is refused; a listing that would drop revisions of an existing manifest needs --force."""
    root = tmp_path / "hub"
    for branch in ("step0", "step1", "step2"):
        publish_revision(root, REPO, branch, sources["step0-tokens0M"])
    path = tmp_path / "keep.json"
    with HubServer(root) as local:
        assert _refresh_cli(local.endpoint, path, "--tokens-per-step", "1000").returncode == 0
        kept = path.read_text()
        assert read_manifest(path).names() == ["step0", "step1", "step2"]

        missing = _refresh_cli(local.endpoint, path)
        assert missing.returncode == 3, missing.stderr
        assert "--tokens-per-step" in missing.stderr and "'step0'" in missing.stderr
        assert "not usable checkpoint name" not in missing.stdout + missing.stderr
        assert len([line for line in missing.stderr.splitlines() if "error:" in line]) == 1
        assert "Traceback" not in missing.stderr
        for bad in ("-5", "0"):
            refused = _refresh_cli(local.endpoint, path, "--tokens-per-step", bad)
            assert refused.returncode == 3 and "--tokens-per-step" in refused.stderr, refused.stderr
        assert path.read_text() == kept

        shutil.rmtree(root)
        publish_revision(root, REPO, "step0", sources["step0-tokens0M"])
        shrunk = _refresh_cli(local.endpoint, path, "--tokens-per-step", "1000")
        assert shrunk.returncode == 3 and "--force" in shrunk.stderr and "'step2'" in shrunk.stderr, shrunk.stderr
        assert path.read_text() == kept
        forced = _refresh_cli(local.endpoint, path, "--tokens-per-step", "1000", "--force")
        assert forced.returncode == 0, forced.stderr
        assert read_manifest(path).names() == ["step0"]


def test_a_damaged_manifest_is_named_with_its_fault_before_it_is_replaced(tmp_path) -> None:
    """refresh-manifest keeps an existing manifest it cannot read (without --force) and says what is wrong in
    it, where it used to give only the exception's class name."""
    from circuitsweep.checkpoints.revisions import Manifest, Revision
    from circuitsweep.errors import ConfigError

    path = tmp_path / "old.json"
    path.write_text('{"format": "circuitsweep.revisions/1", "repo_id": "o/r", "revisions": [{"name": "step1"}]}')
    fresh = Manifest(repo_id="o/r", revisions=(Revision("step1", 1, 10),))
    with pytest.raises(ConfigError, match=r"old\.json: revision 'step1': no 'step'; not replaced \(pass --force"):
        hub._refuse_losing_revisions(path, fresh)


def test_requests_through_a_proxy_are_bounded_too(monkeypatch) -> None:
    """With a proxy in the environment requests go through its transport: that one is wrapped as well."""
    from huggingface_hub.utils import get_session

    previous = hub._session_timeout
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setattr(hub, "_session_timeout", None)
    hub._use_timeout(1.0)
    try:
        client = get_session()
        assert client._mounts and all(isinstance(t, hub._StallBound) for t in client._mounts.values() if t)
        assert isinstance(client._transport, hub._StallBound)
    finally:
        close_session()
        if previous is not None:  # the next test's client keeps the deadline its module set
            hub._use_timeout(previous)


def test_a_network_failure_under_hf_hub_offline_does_not_advise_setting_it(monkeypatch):
    """With HF_HUB_OFFLINE already set, a failed request's one line says that only the cache is read and how to
    fill it, instead of advising to set HF_HUB_OFFLINE=1; without it, the advice stays."""
    error = ConnectionError("cannot reach huggingface.co")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = str(hub._as_hub_error(error, "listing refs of EleutherAI/pythia-14m", 1))
    assert "HF_HUB_OFFLINE is set, so only the local cache is read" in offline and "set HF_HUB_OFFLINE=1" not in offline
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub.constants, "is_offline_mode", lambda: False, raising=False)
    assert "set HF_HUB_OFFLINE=1 to use the cache" in str(hub._as_hub_error(error, "listing refs", 1))


def test_a_branch_pattern_decides_which_branches_need_a_token_rate(monkeypatch) -> None:
    """With a branch pattern, a stray tokenless branch the pattern skips (step100 beside OLMo 2's stage1 names) no
    longer refuses the listing; a pattern without {tokens} and no --tokens-per-step is refused up front, naming
    the flag, instead of skipping every branch and reporting "no checkpoint branches"."""
    from types import SimpleNamespace

    names = ["main", "step100", "stage1-step1000-tokens2B", "stage1-step3000-tokens6B"]

    class FakeApi:
        def __init__(self, **_: object) -> None:
            self.endpoint = "https://hub.example"

        def list_repo_refs(self, repo_id: str) -> SimpleNamespace:
            return SimpleNamespace(
                branches=[SimpleNamespace(name=n, target_commit=f"{i:040d}") for i, n in enumerate(names)]
            )

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    listed = hub.list_revisions("org/olmo2", pattern="stage1-step{step}-tokens{tokens}B")
    assert [(r.name, r.step, r.tokens) for r in listed] == [
        ("stage1-step1000-tokens2B", 1000, 2 * 10**9),
        ("stage1-step3000-tokens6B", 3000, 6 * 10**9),
    ]
    with pytest.raises(
        ConfigError,
        match=r"^org/olmo2: the branch pattern 'iter_\{step\}' has no \{tokens\} field: give --tokens-per-step",
    ):
        hub.list_revisions("org/olmo2", pattern="iter_{step}")
    with pytest.raises(ConfigError, match=r"branches 'step100' have no token count"):
        hub.list_revisions("org/olmo2")  # without a pattern, names are recognised by their form
