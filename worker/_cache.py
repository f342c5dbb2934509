"""A content-addressed cache of task inputs, under a byte cap with LRU eviction, shared by threads and processes.

Layout of the cache folder::

    objects/<key>       verified content only (mode 0444); ``key`` is ``ipfs-<CID>`` or ``sha256-<hex>``
    incoming/<pid>-<n>  downloads in progress (moved into objects/ only once verified)
    locks/<key>.lock    one flock per key: one download per key at a time, no eviction while in use
    cache.lock          flock held while making room and inserting
    index.sqlite3       entries(key, size, last_used, uri) and counters(hits, misses, evictions)

Inputs are ``ipfs://CID`` (fetched through kubo's RPC API, then re-hashed with ``add?only-hash=true`` to check
the CID) and ``http(s)://…#sha256=<64 hex>`` (streamed with httpx, sha256 checked). A file appears under
``objects/`` only after it was checked, by an atomic rename, so a reader never sees partial or unchecked bytes.
Locks are ``flock`` locks, which work between threads (each lock is a fresh open file) and between processes
on one machine; keep the cache on a local file system.

Evicted objects that a task still holds as a hard link (see :meth:`InputCache.fetch_to`) stay on disk until the
task's folder is removed, so disk use can briefly exceed the cap by the inputs of running tasks.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict

from oracle import IpfsClient, get_logger
from oracle.exceptions import ContentNotFound, ContentTooLarge, IpfsError, IpfsUnavailable

from .exceptions import InputCorrupt, InputTooLarge, InputUnavailable, InputUriInvalid

log = get_logger(__name__)

_CID_RE = re.compile(r"^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,}|[zZfFuUmM][A-Za-z0-9+/=_-]{20,})$")
_SHA_RE = re.compile(r"(?:^|&)sha256=([0-9a-fA-F]{64})(?:&|$)")
_CHUNK = 1 << 20
_seq = itertools.count()


class CachedInput(BaseModel):
    """One input, present and verified in the cache."""

    model_config = ConfigDict(frozen=True)

    uri: str
    key: str
    path: Path
    size: int
    hit: bool


class CacheStats(BaseModel):
    """Counters since the cache folder was created (all processes sharing it), and current use."""

    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int
    max_bytes: int


def cache_key(uri: str) -> str:
    """The content address of ``uri``: ``ipfs-<CID>`` or ``sha256-<hex>``; raises :class:`InputUriInvalid`."""
    parts = urlsplit(uri)
    if parts.scheme == "ipfs":
        cid = parts.netloc
        if parts.path not in ("", "/") or parts.query or parts.fragment or not _CID_RE.match(cid):
            raise InputUriInvalid(f"input {uri!r} is not 'ipfs://<CID>' (a bare CID, no path); fix the job's "
                                  "inputs document")
        return f"ipfs-{cid}"
    if parts.scheme in ("http", "https"):
        match = _SHA_RE.search(parts.fragment)
        if not parts.netloc or match is None:
            raise InputUriInvalid(f"input {uri!r} has no '#sha256=<64 hex>' fragment; HTTP inputs must carry the "
                                  "sha256 of their content so the worker can check it")
        return f"sha256-{match.group(1).lower()}"
    raise InputUriInvalid(f"input {uri!r} has unsupported scheme {parts.scheme!r}; use ipfs://CID or "
                          "https://…#sha256=<hex>")


class InputCache:
    """Fetch, verify and keep task inputs under ``root``, using at most ``max_bytes`` for verified objects.

    ``max_input_bytes`` caps one input (default: ``max_bytes``); ``timeout`` is a stall limit: the seconds a
    download may go without receiving a byte (finding the content included), not a limit on the whole download.
    ``ipfs`` is needed for ``ipfs://`` inputs; ``http`` defaults to a new ``httpx.Client``. With ``verify_cid``
    an IPFS input is re-hashed by kubo (``only-hash``, same CID version, default chunker) and must give its CID
    back; turn it off only for CIDs made with other ``add`` options and a kubo you trust.
    """

    def __init__(self, root: str | Path, *, max_bytes: int, ipfs: IpfsClient | None = None,
                 http: httpx.Client | None = None, max_input_bytes: int | None = None, timeout: float = 300.0,
                 verify_cid: bool = True) -> None:
        if max_bytes <= 0:
            raise ValueError(f"cache max_bytes must be positive, got {max_bytes}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.max_input_bytes = min(max_input_bytes or max_bytes, max_bytes)
        self.timeout = timeout
        self.verify_cid = verify_cid
        self._ipfs = ipfs
        self._own_http = http is None
        self._http = http or httpx.Client(follow_redirects=True, timeout=min(timeout, 60.0))
        self._local = threading.local()
        for sub in ("objects", "incoming", "locks"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                       "last_used REAL NOT NULL, uri TEXT NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            db.executemany("INSERT OR IGNORE INTO counters VALUES (?, 0)",
                           [("hits",), ("misses",), ("evictions",)])
        self._remove_stale_incoming()

    def close(self) -> None:
        if self._own_http:
            self._http.close()
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API -----------------------------------------------------------------------------
    def contains(self, uri: str) -> bool:
        """Whether ``uri``'s content is cached (for data-driven scheduling); does not count as a use."""
        return (self.root / "objects" / cache_key(uri)).is_file()

    def fetch(self, uri: str, *, max_bytes: int | None = None, timeout: float | None = None) -> CachedInput:
        """Return ``uri``'s verified content in the cache, downloading it on a miss.

        The returned path may be evicted later by another fetch; use :meth:`fetch_to` to hand a file to a task.
        """
        key = cache_key(uri)
        with self._key_lock(key):
            return self._fetch_locked(uri, key, max_bytes, timeout)

    def fetch_to(self, uri: str, dest: str | Path, *, max_bytes: int | None = None,
                 timeout: float | None = None) -> CachedInput:
        """Like :meth:`fetch`, then hard-link (or copy, across file systems) the content to ``dest``.

        The link is made while the key is locked, so eviction cannot race it; ``dest`` is replaced if present.
        """
        key = cache_key(uri)
        target = Path(dest)
        with self._key_lock(key):
            entry = self._fetch_locked(uri, key, max_bytes, timeout)
            target.unlink(missing_ok=True)
            try:
                os.link(entry.path, target)
            except OSError:
                shutil.copyfile(entry.path, target)
                target.chmod(0o444)
        return entry

    def stats(self) -> CacheStats:
        with self._db() as db:
            counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
            entries, used = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries").fetchone()
        return CacheStats(hits=counters.get("hits", 0), misses=counters.get("misses", 0),
                          evictions=counters.get("evictions", 0), entries=entries, bytes=used,
                          max_bytes=self.max_bytes)

    # -- plumbing -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.root / "index.sqlite3", timeout=60.0, isolation_level=None)
            _enable_wal(db)
            self._local.db = db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextlib.contextmanager
    def _flock(self, path: Path, *, blocking: bool = True) -> Iterator[bool]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        with self._flock(self.root / "locks" / f"{key}.lock"):
            yield

    def _count(self, db: sqlite3.Connection, name: str, n: int = 1) -> None:
        db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (n, name))

    def _fetch_locked(self, uri: str, key: str, max_bytes: int | None, timeout: float | None) -> CachedInput:
        obj = self.root / "objects" / key
        now = time.time()
        if obj.is_file():
            size = obj.stat().st_size
            with self._db() as db:
                db.execute("INSERT INTO entries VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                           "last_used = excluded.last_used", (key, size, now, uri))
                self._count(db, "hits")
            log.debug("input_cache_hit", uri=uri, key=key, size=size)
            return CachedInput(uri=uri, key=key, path=obj, size=size, hit=True)
        with self._db() as db:
            db.execute("DELETE FROM entries WHERE key = ?", (key,))  # a row whose object vanished
            self._count(db, "misses")
        cap = min(max_bytes or self.max_input_bytes, self.max_input_bytes)
        tmp = self.root / "incoming" / f"{os.getpid()}-{threading.get_ident()}-{next(_seq)}"
        started = time.monotonic()
        try:
            if key.startswith("ipfs-"):
                size = self._download_ipfs(uri, key.removeprefix("ipfs-"), tmp, cap, timeout or self.timeout)
            else:
                size = self._download_http(uri, key.removeprefix("sha256-"), tmp, cap, timeout or self.timeout)
            tmp.chmod(0o444)
            self._insert(uri, key, tmp, size)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("input_fetched", uri=uri, key=key, size=size, seconds=round(time.monotonic() - started, 3))
        return CachedInput(uri=uri, key=key, path=obj, size=size, hit=False)

    def _insert(self, uri: str, key: str, tmp: Path, size: int) -> None:
        """Make room for ``size`` bytes by evicting least-recently-used idle entries, then publish ``tmp``."""
        if size > self.max_bytes:
            raise InputTooLarge(f"input {uri} has {size} bytes, more than the whole cache ({self.max_bytes}); "
                                "raise the worker's cache cap to run this job")
        with self._flock(self.root / "cache.lock"), self._db() as db:
            used = db.execute("SELECT COALESCE(SUM(size), 0) FROM entries").fetchone()[0]
            if used + size > self.max_bytes:
                victims = db.execute("SELECT key, size FROM entries WHERE key != ? ORDER BY last_used, rowid",
                                     (key,)).fetchall()
                for victim, victim_size in victims:
                    if used + size <= self.max_bytes:
                        break
                    with self._flock(self.root / "locks" / f"{victim}.lock", blocking=False) as free:
                        if not free:
                            continue  # being fetched or linked right now
                        (self.root / "objects" / victim).unlink(missing_ok=True)
                        db.execute("DELETE FROM entries WHERE key = ?", (victim,))
                        self._count(db, "evictions")
                        used -= victim_size
                        log.info("input_evicted", key=victim, size=victim_size)
                if used + size > self.max_bytes:
                    raise InputTooLarge(
                        f"input {uri} ({size} bytes) does not fit in the cache ({used} of {self.max_bytes} bytes "
                        "held by inputs in use); raise the cache cap or run fewer tasks at once")
            os.replace(tmp, self.root / "objects" / key)
            db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?)", (key, size, time.time(), uri))

    def _download_ipfs(self, uri: str, cid: str, tmp: Path, cap: int, timeout: float) -> int:
        if self._ipfs is None:
            raise InputUnavailable(f"input {uri} is on IPFS but this cache has no IPFS client; configure the "
                                   "worker's IPFS API URL")
        try:
            # ``timeout`` bounds each wait for the next bytes (a stall), not the whole download: a large input
            # on a slow link takes as long as it needs while bytes keep arriving
            size = self._ipfs.cat_to(cid, tmp, max_bytes=cap, timeout=timeout)
        except ContentTooLarge as exc:
            raise InputTooLarge(self._too_large(uri, "is larger than", cap)) from exc
        except ContentNotFound as exc:
            raise InputUnavailable(f"input {uri} cannot be fetched from IPFS: {exc}") from exc
        except IpfsUnavailable:
            raise  # the worker's own kubo is down: not the input's fault, retry later
        except IpfsError as exc:
            raise InputUnavailable(f"input {uri} cannot be fetched from IPFS: {exc}") from exc
        if self.verify_cid:
            actual = self._ipfs_hash(tmp, cid_version=0 if cid.startswith("Qm") else 1)
            if actual != cid:
                raise InputCorrupt(f"input {uri}: the {size} bytes received re-hash to {actual}, not {cid}; the "
                                   "IPFS endpoint served wrong content (or the CID was made with non-default add "
                                   "options: then set verify_cid=False for a trusted node)")
        return size

    def _ipfs_hash(self, path: Path, *, cid_version: int) -> str:
        """The CID kubo gives ``path`` without storing it (``add?only-hash=true``)."""
        import json

        assert self._ipfs is not None
        params = {"only-hash": "true", "pin": "false", "cid-version": str(cid_version), "quieter": "true"}
        with path.open("rb") as fh:
            r = self._ipfs._post("/add", params=params,
                                 files={"file": ("input", fh, "application/octet-stream")})
        return str(json.loads(r.text.strip().splitlines()[-1])["Hash"])

    def _download_http(self, uri: str, sha256_hex: str, tmp: Path, cap: int, timeout: float) -> int:
        url = uri.split("#", 1)[0]
        h = hashlib.sha256()
        n = 0
        try:
            with self._http.stream("GET", url, timeout=timeout) as r:  # a stall limit: per wait, not in all
                if r.status_code >= 400:
                    raise InputUnavailable(f"input {uri}: HTTP {r.status_code} from {url}; check the URL in the "
                                           "job's inputs document")
                declared = r.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > cap:
                    raise InputTooLarge(self._too_large(uri, f"announces {declared} bytes, more than", cap))
                with tmp.open("wb") as fh:
                    for chunk in r.iter_bytes(_CHUNK):
                        n += len(chunk)
                        if n > cap:
                            raise InputTooLarge(self._too_large(uri, "is larger than", cap))
                        h.update(chunk)
                        fh.write(chunk)
        except httpx.TimeoutException as exc:
            raise InputUnavailable(f"input {uri}: {url} sent nothing for {timeout:.0f} s "
                                   f"({exc.__class__.__name__}); the server is down or stalled") from exc
        except httpx.HTTPError as exc:
            raise InputUnavailable(f"input {uri}: cannot download {url} ({exc.__class__.__name__}: {exc})") from exc
        if h.hexdigest() != sha256_hex:
            raise InputCorrupt(f"input {uri}: the {n} bytes downloaded have sha256 {h.hexdigest()}, not "
                               f"{sha256_hex}; the server changed the file or the job's checksum is wrong")
        return n

    def _too_large(self, uri: str, what: str, cap: int) -> str:
        return (f"input {uri} {what} the cap of {cap} bytes per input (this worker's cache holds "
                f"{self.max_bytes} bytes in all); the job asks for more than this worker accepts — raise the "
                "worker's input or cache cap to take it")

    def _remove_stale_incoming(self) -> None:
        """Drop partial downloads left by processes that died."""
        for leftover in (self.root / "incoming").iterdir():
            pid = leftover.name.split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                leftover.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _enable_wal(db: sqlite3.Connection, attempts: int = 100) -> None:
    """Switch to WAL (readers never block the one writer). The switch takes an exclusive lock without waiting
    on SQLite's busy handler, so two processes opening a fresh cache at once can see 'database is locked':
    retry with a bounded back-off (about 10 s in all)."""
    for attempt in range(attempts):
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(min(0.01 * 2**attempt, 0.2))
