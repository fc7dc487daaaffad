"""The fake Hub must satisfy the real huggingface_hub client, end to end and offline."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import httpx2
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder

from tests.fixtures.hf_hub import FakeHub, hf_fast_retries, hf_hub  # noqa: F401

CARD = "---\nlicense: mit\nlanguage: en\ntags: [chat]\n---\n# Tiny llama\n"
CONFIG = json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}).encode()


def blob(size: int, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


WEIGHTS = blob(300 * 1024, seed=1)


@pytest.fixture
def hub(hf_hub: FakeHub) -> FakeHub:  # noqa: F811
    hf_hub.lfs_threshold = 100 * 1024
    hf_hub.add_model(
        "acme/tiny-llama",
        {"config.json": CONFIG, "model.safetensors": blob(2048), "notes/a.txt": b"hello"},
        tags=["llama"],
        pipeline_tag="text-generation",
        library_name="transformers",
        downloads=500,
        likes=10,
        card=CARD,
        last_modified=datetime(2024, 3, 1, tzinfo=UTC),
    )
    hf_hub.add_model(
        "acme/big-gguf",
        {"weights/model-q4.gguf": WEIGHTS, "weights/big.raw": WEIGHTS[::-1], "README.md": b"hi"},
        library_name="gguf",
        downloads=1000,
        likes=5,
        last_modified=datetime(2024, 1, 5, tzinfo=UTC),
    )
    hf_hub.add_model(
        "other/small-bert",
        {"config.json": b"{}"},
        pipeline_tag="fill-mask",
        downloads=50,
        likes=50,
        last_modified=datetime(2024, 6, 1, tzinfo=UTC),
    )
    hf_hub.add_model(
        "acme/gated-model", {"w.bin": b"secret"}, gated=True, card={"license": "other"}
    )
    return hf_hub


@pytest.fixture
def api(hub: FakeHub) -> HfApi:
    return HfApi(endpoint=hub.url, token=False)


def ids(models: object) -> list[str]:
    return [m.id for m in models]  # type: ignore[attr-defined]


def get_paths(hub: FakeHub, prefix: str) -> list[str]:
    return [r.path for r in hub.requests if r.path.startswith(prefix)]


def test_list_models_search_filter_sort_limit(hub: FakeHub, api: HfApi) -> None:
    assert ids(api.list_models(search="LLAMA")) == ["acme/tiny-llama"]
    assert ids(api.list_models(filter="gguf")) == ["acme/big-gguf"]  # library folds into tags
    assert ids(api.list_models(filter=["chat", "license:mit"])) == ["acme/tiny-llama"]
    assert ids(api.list_models(pipeline_tag="fill-mask")) == ["other/small-bert"]
    assert ids(api.list_models(author="acme", gated=True)) == ["acme/gated-model"]
    by_downloads = ["acme/big-gguf", "acme/tiny-llama", "other/small-bert", "acme/gated-model"]
    assert ids(api.list_models(sort="downloads")) == by_downloads
    assert ids(api.list_models(sort="last_modified", limit=2)) == [
        "other/small-bert",
        "acme/tiny-llama",
    ]
    hub.requests.clear()
    assert ids(api.list_models(sort="likes", limit=2)) == ["other/small-bert", "acme/tiny-llama"]
    assert len(hub.requests) == 1  # islice(limit) never asks for the next page


def test_list_models_paginates_with_link_header(hub: FakeHub, api: HfApi) -> None:
    hub.page_size = 3
    hub.requests.clear()
    models = list(api.list_models(search="a"))
    assert ids(models) == [
        "acme/tiny-llama",
        "acme/big-gguf",
        "other/small-bert",
        "acme/gated-model",
    ]
    pages = get_paths(hub, "/api/models")
    assert len(pages) == 2
    assert "cursor=" in pages[1]
    assert "search=a" in pages[1]  # the next link keeps the query
    # The compact listing, as on the Hub, has no sha/lastModified/siblings...
    assert models[0].sha is None
    assert models[0].siblings is None
    assert models[0].downloads == 500
    # ...until asked for.
    full = next(iter(api.list_models(search="tiny", full=True, cardData=True)))
    assert full.sha == hub.repos["acme/tiny-llama"].sha
    assert full.last_modified == datetime(2024, 3, 1, tzinfo=UTC)
    assert [s.rfilename for s in full.siblings or []][:2] == ["README.md", "config.json"]
    assert full.card_data is not None
    assert full.card_data.license == "mit"
    expanded = next(iter(api.list_models(search="tiny", expand=["sha", "likes"])))
    assert (expanded.sha, expanded.likes, expanded.downloads) == (full.sha, 10, None)


def test_model_info_files_metadata_and_card(hub: FakeHub, api: HfApi) -> None:
    info = api.model_info("acme/tiny-llama", files_metadata=True)
    repo = hub.repos["acme/tiny-llama"]
    assert info.sha == repo.sha
    assert len(info.sha) == 40
    assert info.author == "acme"
    assert info.pipeline_tag == "text-generation"
    assert info.library_name == "transformers"
    assert {"llama", "transformers", "chat", "license:mit"} <= set(info.tags or [])
    assert info.config == {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    assert info.card_data is not None
    assert info.card_data.license == "mit"
    assert info.card_data.language == "en"
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert siblings["config.json"].size == len(CONFIG)
    assert siblings["config.json"].lfs is None
    weights = siblings["model.safetensors"]
    assert weights.size == 2048
    assert weights.lfs is not None
    assert weights.lfs.sha256 == hashlib.sha256(blob(2048)).hexdigest()
    assert api.model_info("acme/tiny-llama").siblings[0].size is None  # type: ignore[index]
    # A revision pinned to the commit, and an unknown one.
    assert api.model_info("acme/tiny-llama", revision=repo.sha).sha == repo.sha
    assert api.repo_info("acme/tiny-llama", expand=["sha"]).sha == repo.sha  # type: ignore[arg-type]
    with pytest.raises(RevisionNotFoundError):
        api.model_info("acme/tiny-llama", revision="v9")
    # The commit sha is stable for the same content and changes with it.
    assert (
        hub.add_model("acme/tiny-llama", {"x": b"1"}).sha
        == FakeHub().add_model("acme/tiny-llama", {"x": b"1"}).sha
    )
    assert hub.add_model("acme/tiny-llama", {"x": b"2"}).sha != repo.sha


def test_list_repo_files_and_tree(hub: FakeHub, api: HfApi) -> None:
    files = api.list_repo_files("acme/big-gguf")
    assert files == ["README.md", "weights/big.raw", "weights/model-q4.gguf"]
    root = list(api.list_repo_tree("acme/big-gguf"))
    assert [(type(e).__name__, e.path) for e in root] == [
        ("RepoFile", "README.md"),
        ("RepoFolder", "weights"),
    ]
    sub = {e.path: e for e in api.list_repo_tree("acme/big-gguf", path_in_repo="weights")}
    gguf = sub["weights/model-q4.gguf"]
    assert isinstance(gguf, RepoFile)
    assert gguf.size == len(WEIGHTS)
    assert gguf.lfs is not None
    assert gguf.lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert gguf.xet_hash is None  # never advertise Xet: downloads must stay plain HTTP
    # Paginated, recursive and expanded listings.
    hub.page_size = 1
    hub.requests.clear()
    deep = list(api.list_repo_tree("acme/big-gguf", recursive=True, expand=True))
    assert len(hub.requests) == 4
    assert [e.path for e in deep] == ["README.md", "weights", *files[1:]]
    assert all(e.last_commit is not None for e in deep)
    assert isinstance(deep[0], RepoFile)
    assert deep[0].security is not None
    assert deep[0].security.safe
    infos = api.get_paths_info("acme/big-gguf", ["weights", "README.md", "missing"])
    assert [type(i) for i in infos] == [RepoFolder, RepoFile]
    assert api.file_exists("acme/big-gguf", "weights/big.raw")
    assert not api.file_exists("acme/big-gguf", "nope.bin")
    assert not api.file_exists("nobody/nothing", "README.md")
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree("acme/big-gguf", path_in_repo="nope"))


def test_hf_hub_download_small_file(hub: FakeHub, tmp_path: Path) -> None:
    path = hf_hub_download(
        "acme/tiny-llama", "config.json", cache_dir=tmp_path, endpoint=hub.url, token=False
    )
    assert Path(path).read_bytes() == CONFIG
    repo = hub.repos["acme/tiny-llama"]
    assert Path(path).parent.name == repo.sha  # X-Repo-Commit names the snapshot
    assert Path(path).resolve().name == repo.files["config.json"].git_oid  # the ETag names the blob
    assert [(r.method, r.path) for r in hub.requests] == [
        ("HEAD", "/acme/tiny-llama/resolve/main/config.json"),
        ("GET", "/acme/tiny-llama/resolve/main/config.json"),
    ]
    # Nested path, then a cache hit that only re-checks the ETag.
    nested = hf_hub_download("acme/tiny-llama", "notes/a.txt", cache_dir=tmp_path, endpoint=hub.url)
    assert Path(nested).read_bytes() == b"hello"
    hub.requests.clear()
    hf_hub_download("acme/tiny-llama", "config.json", cache_dir=tmp_path, endpoint=hub.url)
    assert [r.method for r in hub.requests] == ["HEAD"]


def test_hf_hub_download_large_file_follows_cdn_redirect(hub: FakeHub, tmp_path: Path) -> None:
    name = "weights/big.raw"  # LFS by size, not by suffix
    path = hf_hub_download(
        "acme/big-gguf", name, cache_dir=tmp_path, endpoint=hub.url, token="hf_x"
    )
    assert Path(path).read_bytes() == WEIGHTS[::-1]
    assert Path(path).resolve().name == hashlib.sha256(WEIGHTS[::-1]).hexdigest()
    head, get = hub.requests
    assert (head.method, head.path) == ("HEAD", f"/acme/big-gguf/resolve/main/{name}")
    assert head.headers["authorization"] == "Bearer hf_x"
    assert get.method == "GET"
    assert get.path.startswith("/cdn-lfs/")
    assert get.headers["host"].startswith("localhost:")
    assert "authorization" not in get.headers  # never leaks the token to the "CDN"
    assert hub.bytes_sent[("acme/big-gguf", name)] == len(WEIGHTS)


def test_snapshot_download_exact_bytes(hub: FakeHub, tmp_path: Path) -> None:
    folder = Path(snapshot_download("acme/big-gguf", cache_dir=tmp_path / "a", endpoint=hub.url))
    assert folder.name == hub.repos["acme/big-gguf"].sha
    got = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert got == {f.path: f.data for f in hub.repos["acme/big-gguf"].files.values()}
    hub.requests.clear()
    only_json = Path(
        snapshot_download(
            "acme/tiny-llama",
            cache_dir=tmp_path / "b",
            endpoint=hub.url,
            allow_patterns=["*.json", "notes/*"],
        )
    )
    got = {str(p.relative_to(only_json)) for p in only_json.rglob("*") if p.is_file()}
    assert got == {"config.json", "notes/a.txt"}
    assert (only_json / "config.json").read_bytes() == CONFIG
    assert not any("model.safetensors" in r.path for r in hub.requests)


def test_range_requests_are_served(hub: FakeHub) -> None:
    small = f"{hub.url}/acme/tiny-llama/resolve/main/config.json"
    with httpx.Client(follow_redirects=True) as client:
        r = client.get(small, headers={"Range": "bytes=10-"})
        assert r.status_code == 206
        assert r.content == CONFIG[10:]
        assert r.headers["content-range"] == f"bytes 10-{len(CONFIG) - 1}/{len(CONFIG)}"
        assert client.get(small, headers={"Range": "bytes=2-4"}).content == CONFIG[2:5]
        assert client.get(small, headers={"Range": "bytes=-3"}).content == CONFIG[-3:]
        bad = client.get(small, headers={"Range": f"bytes={len(CONFIG)}-"})
        assert bad.status_code == 416
        assert bad.headers["content-range"] == f"bytes */{len(CONFIG)}"
        head = client.head(small)
        assert head.headers["accept-ranges"] == "bytes"
        assert head.headers["content-length"] == str(len(CONFIG))
        assert head.headers["x-repo-commit"] == hub.repos["acme/tiny-llama"].sha
        big = f"{hub.url}/acme/big-gguf/resolve/main/weights/model-q4.gguf"
        redirect = client.head(big, follow_redirects=False)
        assert redirect.status_code == 302
        assert redirect.headers["x-linked-size"] == str(len(WEIGHTS))
        assert redirect.headers["x-linked-etag"] == f'"{hashlib.sha256(WEIGHTS).hexdigest()}"'
        tail = client.get(big, headers={"Range": "bytes=1000-"})
        assert tail.status_code == 206
        assert tail.content == WEIGHTS[1000:]


def test_interrupted_download_resumes_with_range(
    hub: FakeHub,
    hf_fast_retries: list[float],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client only resumes from whole chunks it has flushed; make those small.
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    hub.interrupt_next(after_bytes=100 * 1024)
    name = "weights/model-q4.gguf"
    path = hf_hub_download("acme/big-gguf", name, cache_dir=tmp_path, endpoint=hub.url)
    assert Path(path).read_bytes() == WEIGHTS
    gets = [r for r in hub.requests if r.method == "GET"]
    assert len(gets) == 2
    assert "range" not in gets[0].headers
    assert gets[1].headers["range"] == f"bytes={64 * 1024}-"
    assert hub.bytes_sent[("acme/big-gguf", name)] == 100 * 1024 + len(WEIGHTS) - 64 * 1024
    assert hf_fast_retries == [1]


def test_throttled_download_can_be_cancelled(hub: FakeHub) -> None:
    hub.throttle_bps = 200_000
    url = f"{hub.url}/acme/big-gguf/resolve/main/weights/big.raw"
    started = time.monotonic()
    with httpx.Client(follow_redirects=True) as client, client.stream("GET", url) as r:
        first = next(r.iter_bytes())
        assert first == WEIGHTS[::-1][: len(first)]
    assert hub.wait_idle(2)
    assert time.monotonic() - started < 1  # a whole body would take 1.5 s at this rate
    sent = hub.bytes_sent[("acme/big-gguf", "weights/big.raw")]
    assert 0 < sent < len(WEIGHTS) // 2


def test_errors_map_to_client_exceptions(hub: FakeHub, api: HfApi, tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("nobody/nothing")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/nothing", "x", cache_dir=tmp_path, endpoint=hub.url, token=False)
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("acme/tiny-llama", "nope.txt", cache_dir=tmp_path, endpoint=hub.url)
    # Gated: metadata is public, files need a token.
    assert api.model_info("acme/gated-model").gated == "auto"
    with pytest.raises(GatedRepoError) as gated:
        hf_hub_download(
            "acme/gated-model", "w.bin", cache_dir=tmp_path, endpoint=hub.url, token=False
        )
    assert gated.value.response.status_code == 401
    got = hf_hub_download(
        "acme/gated-model", "w.bin", cache_dir=tmp_path, endpoint=hub.url, token="t"
    )
    assert Path(got).read_bytes() == b"secret"
    hub.authorized_tokens = {"good"}
    with pytest.raises(GatedRepoError) as refused:
        hf_hub_download(
            "acme/gated-model", "w.bin", cache_dir=tmp_path / "2", endpoint=hub.url, token="bad"
        )
    assert refused.value.response.status_code == 403


def test_outages_raise_or_retry(
    hub: FakeHub,
    api: HfApi,
    hf_fast_retries: list[float],  # noqa: F811
    tmp_path: Path,
) -> None:
    hub.down = True
    with pytest.raises(HfHubHTTPError) as down:
        api.model_info("acme/tiny-llama")
    assert down.value.response.status_code == 503
    hub.requests.clear()
    with pytest.raises(LocalEntryNotFoundError) as no_cache:
        hf_hub_download("acme/tiny-llama", "config.json", cache_dir=tmp_path, endpoint=hub.url)
    assert isinstance(no_cache.value.__cause__, HfHubHTTPError)
    assert len(hub.requests) == 7  # one quick HEAD, then six with back-off
    hub.down = False
    hf_fast_retries.clear()
    hub.fail_next(2, status=500)
    assert ids(api.list_models(search="bert")) == ["other/small-bert"]
    assert hf_fast_retries == [1, 2]


def test_start_is_fast_and_stop_closes_keep_alive_connections() -> None:
    started = time.monotonic()
    hub = FakeHub().start()
    assert time.monotonic() - started < 0.5
    hub.add_model("a/b", {"f": b"x"})
    with httpx.Client() as client:
        assert client.get(f"{hub.url}/api/models/a/b").json()["id"] == "a/b"
        assert client.get(f"{hub.url}/api/models?cursor=%21").status_code == 400
        assert client.get(f"{hub.url}/api/datasets/a/b").status_code == 404
        hub.stop()  # the pooled connection is still open here
        with pytest.raises(httpx.TransportError):
            client.get(f"{hub.url}/api/models/a/b")
    assert not hub.errors


def test_stop_cuts_a_throttled_transfer_short() -> None:
    hub = FakeHub().start()
    hub.add_model("a/b", {"w.raw": blob(100_000)})
    hub.throttle_bps = 10_000  # ten seconds for the whole body
    errors: list[Exception] = []

    def download() -> None:
        with httpx.Client() as client:
            try:
                client.get(f"{hub.url}/a/b/resolve/main/w.raw").read()
            except httpx.HTTPError as exc:
                errors.append(exc)

    worker = threading.Thread(target=download)
    worker.start()
    while not hub.bytes_sent:
        time.sleep(0.01)
    started = time.monotonic()
    hub.stop()
    worker.join(2)
    assert time.monotonic() - started < 1
    assert [type(e) for e in errors] == [httpx.RemoteProtocolError]
    assert not hub.errors


def test_unreachable_hub_raises_httpx2_errors(hub: FakeHub, api: HfApi) -> None:
    # huggingface_hub 2.4 talks through httpx2, whose errors are not httpx's nor OSError.
    hub.stop()
    with pytest.raises(httpx2.ConnectError) as exc:
        api.model_info("acme/tiny-llama")
    assert not isinstance(exc.value, httpx.HTTPError | OSError)
