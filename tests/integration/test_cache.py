"""The input cache against a real kubo and a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from oracle import IpfsClient
from worker import InputCache, cache_key
from worker.exceptions import InputCorrupt, InputTooLarge, InputUnavailable, InputUriInvalid


class _Server:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        self.delay = 0.0
        self.trickle = 0.0  # seconds between 1 KiB pieces of a response (a slow but live link)
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, directory=str(root), **kw)

            def do_GET(self) -> None:
                server.requests.append(self.path)
                if server.delay:
                    time.sleep(server.delay)
                if server.trickle:
                    data = (root / self.path.lstrip("/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    for i in range(0, len(data), 1024):
                        time.sleep(server.trickle)
                        self.wfile.write(data[i:i + 1024])
                        self.wfile.flush()
                    return
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, *args: Any) -> None:
                pass  # a client that hangs up on purpose (oversize, timeout) is not an error here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def publish(self, name: str, data: bytes) -> str:
        """Serve ``data`` as ``name``; return its checksummed URI."""
        (self.root / name).write_bytes(data)
        return f"{self.base}/{name}#sha256={hashlib.sha256(data).hexdigest()}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    s = _Server(tmp_path_factory.mktemp("www"))
    yield s
    s.httpd.shutdown()


@pytest.fixture
def cache(tmp_path: Path, ipfs: IpfsClient) -> Iterator[InputCache]:
    with InputCache(tmp_path / "cache", max_bytes=3000, ipfs=ipfs, timeout=10) as c:
        yield c


def _objects(c: InputCache) -> list[str]:
    return sorted(p.name for p in (c.root / "objects").iterdir())


def test_http_input_is_downloaded_once_then_served_from_the_cache(cache: InputCache, server: _Server) -> None:
    uri = server.publish("a.bin", b"a" * 100)
    before = len(server.requests)
    first = cache.fetch(uri)
    second = cache.fetch(uri)
    assert (first.hit, second.hit) == (False, True)
    assert first.path == second.path and first.path.read_bytes() == b"a" * 100
    assert len(server.requests) == before + 1
    assert first.key == cache_key(uri) == "sha256-" + hashlib.sha256(b"a" * 100).hexdigest()
    assert cache.contains(uri)
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries, stats.bytes) == (1, 1, 1, 100)
    assert first.path.stat().st_mode & 0o777 == 0o444


def test_ipfs_input_is_fetched_verified_and_cached(cache: InputCache, ipfs: IpfsClient) -> None:
    data = os.urandom(700)
    cid = ipfs.add_bytes(data)
    first = cache.fetch(f"ipfs://{cid}")
    second = cache.fetch(f"ipfs://{cid}")
    assert (first.hit, second.hit) == (False, True) and first.path.read_bytes() == data
    assert first.key == f"ipfs-{cid}"


def test_least_recently_used_inputs_are_evicted_under_the_cap(cache: InputCache, server: _Server) -> None:
    a, b, c, d = (server.publish(f"lru-{n}", bytes([n]) * 1000) for n in range(4))
    for uri in (a, b, c):
        cache.fetch(uri)
    assert cache.fetch(a).hit  # a is now more recent than b
    cache.fetch(d)
    assert [cache.contains(u) for u in (a, b, c, d)] == [True, False, True, True]
    stats = cache.stats()
    assert stats.bytes == 3000 <= stats.max_bytes and stats.evictions == 1
    assert len(_objects(cache)) == 3


@pytest.mark.reliability(kind="attack", name="input content tampered (HTTP)",
                         how="an HTTP input whose sha256 differs from the one in its URI: refused, nothing cached")
def test_checksum_mismatch_is_refused_and_nothing_is_kept(cache: InputCache, server: _Server) -> None:
    uri = server.publish("tampered", b"good bytes").replace("#sha256=", "#sha256=00")[:-2]
    with pytest.raises(InputCorrupt, match="sha256"):
        cache.fetch(uri)
    assert _objects(cache) == [] and list((cache.root / "incoming").iterdir()) == []
    assert not cache.contains(uri)


@pytest.mark.reliability(kind="attack", name="input content tampered (IPFS)",
                         how="an IPFS node returns other bytes for a CID: refused")
def test_wrong_ipfs_content_is_refused(tmp_path: Path, ipfs: IpfsClient) -> None:
    cid = ipfs.add_bytes(b"the real content")

    class Lying(IpfsClient):
        def cat_to(self, cid: str, dest: str | Path, **kw: Any) -> int:
            Path(dest).write_bytes(b"something else")
            return 14

    liar = Lying(ipfs.api_url)
    try:
        with InputCache(tmp_path / "c", max_bytes=1000, ipfs=liar) as c, pytest.raises(InputCorrupt, match=cid):
            c.fetch(f"ipfs://{cid}")
        assert list((tmp_path / "c" / "objects").iterdir()) == []
    finally:
        liar.close()


def test_unknown_cid_fails_quickly(cache: InputCache, ipfs: IpfsClient) -> None:
    missing = cache._ipfs_hash(_write(cache.root / "probe", os.urandom(64)), cid_version=1)
    started = time.monotonic()
    with pytest.raises(InputUnavailable, match=missing):
        cache.fetch(f"ipfs://{missing}", timeout=2)
    assert time.monotonic() - started < 4
    assert cache.stats().misses == 1


@pytest.mark.reliability(kind="attack", name="input file over the worker's cap",
                         how="HTTP and IPFS inputs larger than the per-input or cache cap: refused, nothing kept")
def test_oversize_inputs_are_refused(tmp_path: Path, ipfs: IpfsClient, server: _Server) -> None:
    big = os.urandom(2000)
    http_uri = server.publish("big", big)
    cid = ipfs.add_bytes(big)
    with InputCache(tmp_path / "c", max_bytes=10_000, max_input_bytes=1500, ipfs=ipfs) as c:
        with pytest.raises(InputTooLarge, match="1500"):
            c.fetch(http_uri)
        with pytest.raises(InputTooLarge, match="1500"):
            c.fetch(f"ipfs://{cid}")
        with pytest.raises(InputTooLarge, match="1000"):
            c.fetch(http_uri, max_bytes=1000)
        assert list((tmp_path / "c" / "objects").iterdir()) == []
        assert list((tmp_path / "c" / "incoming").iterdir()) == []
    with InputCache(tmp_path / "small", max_bytes=1000) as c, pytest.raises(InputTooLarge, match="cache"):
        c.fetch(http_uri)


def test_http_errors_and_slow_servers_fail_with_a_clear_reason(tmp_path: Path, server: _Server) -> None:
    with InputCache(tmp_path / "c", max_bytes=10_000, timeout=1) as c:
        with pytest.raises(InputUnavailable, match="HTTP 404"):
            c.fetch(f"{server.base}/nope#sha256={'0' * 64}")
        uri = server.publish("slow", b"slow")
        server.delay = 2.0
        try:
            started = time.monotonic()
            with pytest.raises(InputUnavailable, match="sent nothing for 1 s"):
                c.fetch(uri)
            assert time.monotonic() - started < 2
        finally:
            server.delay = 0.0


def test_a_slow_download_that_keeps_moving_is_not_a_failure(tmp_path: Path, server: _Server) -> None:
    """The input limit is a stall limit: 4 KiB arriving 1 KiB every 0.4 s takes longer than the 1 s limit in all,
    but never stalls for 1 s, so it is fetched (a large input on a slow link is not the input's fault)."""
    data = os.urandom(4096)
    uri = server.publish("trickle", data)
    server.trickle = 0.4
    try:
        with InputCache(tmp_path / "c", max_bytes=10_000, timeout=1) as c:
            started = time.monotonic()
            entry = c.fetch(uri)
            assert time.monotonic() - started > 1.2  # longer than the stall limit in all
            assert entry.path.read_bytes() == data
    finally:
        server.trickle = 0.0


@pytest.mark.parametrize("uri", ["ftp://x/y", "https://127.0.0.1/file", "https://127.0.0.1/f#sha256=abc",
                                 "ipfs://not-a-cid!", "ipfs://bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy/x"])
def test_malformed_uris_are_refused(cache: InputCache, uri: str) -> None:
    with pytest.raises(InputUriInvalid):
        cache.fetch(uri)


def test_fetch_to_links_a_read_only_copy_into_the_task_folder(cache: InputCache, server: _Server,
                                                              tmp_path: Path) -> None:
    uri = server.publish("linked", b"linked!")
    (tmp_path / "task").mkdir()
    entry = cache.fetch_to(uri, tmp_path / "task" / "input.dat")
    target = tmp_path / "task" / "input.dat"
    assert target.read_bytes() == b"linked!" and os.path.samefile(target, entry.path)
    assert target.stat().st_mode & 0o777 == 0o444


def test_concurrent_fetches_of_one_input_download_it_once(cache: InputCache, server: _Server) -> None:
    uri = server.publish("popular", b"p" * 500)
    server.delay = 0.2
    before = len(server.requests)
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: cache.fetch(uri), range(8)))
    finally:
        server.delay = 0.0
    assert len(server.requests) == before + 1
    assert sorted(r.hit for r in results) == [False] + [True] * 7


def test_processes_sharing_a_cache_folder_keep_it_consistent(tmp_path: Path, server: _Server) -> None:
    uris = [server.publish(f"mp-{i}", bytes([i]) * 400) for i in range(10)]
    script = (
        "import sys\nfrom worker import InputCache\n"
        "c = InputCache(sys.argv[1], max_bytes=2000)\n"
        "for _ in range(3):\n"
        "    for u in sys.argv[2:]:\n"
        "        assert c.fetch(u).path.stat().st_size == 400\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "shared"), *uris[i::2], *uris[::3]])
             for i in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    with InputCache(tmp_path / "shared", max_bytes=2000) as c:
        stats = c.stats()
        files = list((tmp_path / "shared" / "objects").iterdir())
        assert stats.bytes == sum(f.stat().st_size for f in files) <= 2000
        assert stats.entries == len(files) and stats.hits + stats.misses == 2 * 3 * (5 + 4)
        assert list((tmp_path / "shared" / "incoming").iterdir()) == []


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
