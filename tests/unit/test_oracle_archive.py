"""Canonical result archives: byte-stable packing, digests, safe unpacking, sealed-box encryption (offline)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from oracle.archive import MAX_DEPTH, MAX_PATH_BYTES, ExtractStats, escape_name, extract_tar, unsafe_name
from worker import (
    decrypt_file,
    decrypt_with,
    encrypt_file,
    encrypt_for,
    generate_keypair,
    pack_result,
    sha256_file,
    unpack_result,
)
from worker.exceptions import ArchiveError, UnsafeArchive


def _make_output(root: Path, *, umask_mode: int = 0o600, mtime: int = 1_700_000_000) -> Path:
    out = root / "out"
    (out / "sub" / "deeper").mkdir(parents=True)
    (out / "b.txt").write_bytes(b"bee\n")
    (out / "a.txt").write_bytes(b"ay\n")
    (out / "sub" / "run.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    (out / "sub" / "deeper" / "z").write_bytes(b"z" * 5000)
    (out / "empty").mkdir()
    (out / ("n" * 150)).write_bytes(b"long name")  # needs a pax record
    for path in out.rglob("*"):
        if path.is_file():
            path.chmod(umask_mode)
        os.utime(path, (mtime, mtime))
    (out / "sub" / "run.sh").chmod(0o700)
    return out


def _logs(root: Path) -> dict[str, Path]:
    (root / "stdout").write_bytes(b"hello\n")
    (root / "stderr").write_bytes(b"")
    return {"stdout": root / "stdout", "stderr": root / "stderr"}


def test_same_output_gives_the_same_bytes_whatever_the_times_modes_and_creation_order(tmp_path: Path) -> None:
    first = pack_result(_make_output(tmp_path / "one"), tmp_path / "one.tar", logs=_logs(tmp_path / "one"))
    second_root = tmp_path / "two"
    second_root.mkdir()
    out = _make_output(second_root, umask_mode=0o664, mtime=42)
    (out / "sub" / "run.sh").chmod(0o755)
    second = pack_result(out, tmp_path / "two.tar", logs=_logs(second_root))
    assert first.archive_path.read_bytes() == second.archive_path.read_bytes()
    assert first.digest == second.digest == first.archive_sha256
    assert first.digest_source == "archive"
    assert first.files == 7 and first.skipped == []


def test_archive_format_is_pinned_by_a_golden_digest(tmp_path: Path) -> None:
    """Honest workers must produce these exact bytes (checked identical on CPython 3.10-3.13); a change here
    breaks consensus between old and new workers."""
    packed = pack_result(_make_output(tmp_path), tmp_path / "r.tar", logs=_logs(tmp_path))
    assert packed.digest == "b1c0f76bee700ff2649765f4d26e0fff825287c3b22448f05fd7cb0dce4664e2"


def test_members_are_sorted_with_fixed_owner_time_and_normalised_modes(tmp_path: Path) -> None:
    packed = pack_result(_make_output(tmp_path), tmp_path / "r.tar", logs=_logs(tmp_path))
    with tarfile.open(packed.archive_path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == ["output", "output/a.txt", "output/b.txt", "output/empty", "output/" + "n" * 150, "output/sub",
                     "output/sub/deeper", "output/sub/deeper/z", "output/sub/run.sh", "logs", "logs/stderr",
                     "logs/stdout"]
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
        assert m.mode == (0o755 if m.isdir() or m.name.endswith("run.sh") else 0o644)


def test_symlinks_are_skipped_and_reported_never_followed(tmp_path: Path) -> None:
    out = _make_output(tmp_path)
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    (out / "leak").symlink_to(secret)
    (out / "sub" / "dirlink").symlink_to(tmp_path)
    packed = pack_result(out, tmp_path / "r.tar")
    assert len(packed.skipped) == 2 and all("symbolic link" in s for s in packed.skipped)
    data = packed.archive_path.read_bytes()
    assert b"host secret" not in data
    with tarfile.open(packed.archive_path) as tar:
        assert not any(m.issym() or m.islnk() for m in tar.getmembers())
        assert "output/leak" not in tar.getnames()


def test_fifo_is_skipped(tmp_path: Path) -> None:
    out = _make_output(tmp_path)
    os.mkfifo(out / "pipe")
    packed = pack_result(out, tmp_path / "r.tar")
    assert len(packed.skipped) == 1 and packed.skipped[0].startswith("output/pipe: not a regular file")


def test_digest_is_the_declared_deterministic_file_when_the_app_names_one(tmp_path: Path) -> None:
    out = _make_output(tmp_path)
    packed = pack_result(out, tmp_path / "r.tar", deterministic_file="sub/deeper/z")
    assert packed.digest == hashlib.sha256(b"z" * 5000).hexdigest() != packed.archive_sha256
    assert packed.digest_source == "file" and len(packed.digest_bytes) == 32
    (out / "a.txt").write_text("non-deterministic noise")
    again = pack_result(out, tmp_path / "r2.tar", deterministic_file="sub/deeper/z")
    assert again.digest == packed.digest and again.archive_sha256 != packed.archive_sha256


@pytest.mark.parametrize("bad", ["missing.txt", "../secret", "/etc/passwd", "sub", "leak"])
def test_a_bad_deterministic_file_is_refused_with_a_clear_message(tmp_path: Path, bad: str) -> None:
    out = _make_output(tmp_path)
    (out / "leak").symlink_to(out / "a.txt")
    with pytest.raises(ArchiveError, match="deterministic file"):
        pack_result(out, tmp_path / "r.tar", deterministic_file=bad)


def test_pack_then_unpack_round_trips(tmp_path: Path) -> None:
    out = _make_output(tmp_path)
    packed = pack_result(out, tmp_path / "r.tar", logs=_logs(tmp_path))
    stats = unpack_result(packed.archive_path, tmp_path / "un")
    assert (tmp_path / "un" / "output" / "sub" / "deeper" / "z").read_bytes() == b"z" * 5000
    assert (tmp_path / "un" / "logs" / "stdout").read_bytes() == b"hello\n"
    assert os.access(tmp_path / "un" / "output" / "sub" / "run.sh", os.X_OK)
    assert stats.files == 7 and stats.bytes == sum(p.stat().st_size for p in (tmp_path / "un").rglob("*")
                                                   if p.is_file())


def _tar_with(tmp_path: Path, *entries: tarfile.TarInfo, data: bytes = b"x") -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        for info in entries:
            if info.isfile():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


@pytest.mark.parametrize("name", ["../escape", "/abs/path", "output/../../escape", "./../x"])
@pytest.mark.reliability(kind="attack", name="result archive escapes the destination",
                         how="archives with ../, absolute or nested traversal names: refused on unpack")
def test_unpack_refuses_path_traversal(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeArchive, match="outside"):
        unpack_result(_tar_with(tmp_path, tarfile.TarInfo(name)), tmp_path / "dest")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "x").exists()


@pytest.mark.reliability(kind="attack", name="result archive carries links or devices",
                         how="symlink and device members: refused on unpack")
def test_unpack_refuses_links_and_devices(tmp_path: Path) -> None:
    link = tarfile.TarInfo("output/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        unpack_result(_tar_with(tmp_path, link), tmp_path / "dest")
    dev = tarfile.TarInfo("output/dev")
    dev.type = tarfile.CHRTYPE
    with pytest.raises(UnsafeArchive, match="special file"):
        unpack_result(_tar_with(tmp_path, dev), tmp_path / "dest2")


@pytest.mark.reliability(kind="attack", name="symlink planted in the unpack destination",
                         how="the destination holds a symlink: unpack refuses to write through it")
def test_unpack_does_not_write_through_a_symlink_planted_in_the_destination(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "output").symlink_to(tmp_path)
    with pytest.raises(UnsafeArchive):
        unpack_result(_tar_with(tmp_path, tarfile.TarInfo("output")), dest)


@pytest.mark.reliability(kind="attack", name="huge result archive on unpack",
                         how="an archive over the byte or file-count cap: refused")
def test_unpack_enforces_size_and_count_caps(tmp_path: Path) -> None:
    big = tarfile.TarInfo("output/big")
    archive = _tar_with(tmp_path, big, data=b"y" * 10_000)
    with pytest.raises(UnsafeArchive, match="cap"):
        unpack_result(archive, tmp_path / "dest", max_bytes=9_999)
    with pytest.raises(UnsafeArchive, match="cap"):
        unpack_result(archive, tmp_path / "dest2", max_files=0)


def test_lenient_extraction_skips_links_and_stops_at_the_cap(tmp_path: Path) -> None:
    link = tarfile.TarInfo("l")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    archive = _tar_with(tmp_path, link, tarfile.TarInfo("a"), tarfile.TarInfo("b"), data=b"12345")
    with tarfile.open(archive) as tar:
        stats = extract_tar(tar, tmp_path / "dest", max_bytes=7, strict=False)
    assert stats.files == 1 and stats.over_cap and stats.skipped[0].startswith("l: symbolic link")
    assert not (tmp_path / "dest" / "l").exists() and not (tmp_path / "dest" / "b").exists()


def test_unpack_of_garbage_says_what_to_do(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(os.urandom(3000))
    with pytest.raises(ArchiveError, match="decrypted"):
        unpack_result(junk, tmp_path / "dest")


def test_sealed_box_round_trip_and_wrong_key(tmp_path: Path) -> None:
    sk, pk = generate_keypair()
    sealed = encrypt_for(pk, b"result bytes")
    assert sealed != encrypt_for(pk, b"result bytes")  # ephemeral sender key: digest the plaintext, not this
    assert decrypt_with(sk, sealed) == b"result bytes"
    assert decrypt_with("0x" + sk.hex(), encrypt_for(pk.hex(), b"hex keys work")) == b"hex keys work"
    other_sk, _ = generate_keypair()
    with pytest.raises(ArchiveError, match="another key"):
        decrypt_with(other_sk, sealed)
    with pytest.raises(ArchiveError, match="32 bytes"):
        encrypt_for(b"short", b"x")
    with pytest.raises(ArchiveError, match="not hex"):
        encrypt_for("zz" * 32, b"x")


def test_encrypted_archive_decrypts_to_the_same_digest(tmp_path: Path) -> None:
    sk, pk = generate_keypair()
    packed = pack_result(_make_output(tmp_path), tmp_path / "r.tar")
    encrypt_file(packed.archive_path, tmp_path / "r.tar.sealed", pk)
    decrypt_file(tmp_path / "r.tar.sealed", tmp_path / "back.tar", sk)
    assert sha256_file(tmp_path / "back.tar") == packed.digest


def test_unpack_does_not_write_through_a_symlinked_parent_folder(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "output").symlink_to(outside)
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        unpack_result(_tar_with(tmp_path, tarfile.TarInfo("output/x")), dest)
    assert list(outside.iterdir()) == []


def test_lenient_extraction_copies_hard_links_to_files_it_already_wrote(tmp_path: Path) -> None:
    link = tarfile.TarInfo("second")
    link.type, link.linkname = tarfile.LNKTYPE, "first"
    outside = tarfile.TarInfo("third")
    outside.type, outside.linkname = tarfile.LNKTYPE, "/etc/passwd"
    archive = _tar_with(tmp_path, tarfile.TarInfo("first"), link, outside, data=b"shared")
    with tarfile.open(archive) as tar:
        stats = extract_tar(tar, tmp_path / "dest", strict=False)
    assert (tmp_path / "dest" / "second").read_bytes() == b"shared"
    assert not (tmp_path / "dest" / "second").is_symlink() and (tmp_path / "dest" / "second").stat().st_nlink == 1
    assert stats.files == 2 and stats.skipped and stats.skipped[0].startswith("third: hard link")


# --- hostile outputs: names, depth, caps (issue #20) ------------------------------------------------
def _stream(*members: tuple[str, bytes | None], linkname: str = "") -> io.BytesIO:
    """An in-memory tar of (name, data) members: data None makes a folder, b"->..." a symbolic link."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif data.startswith(b"->"):
                info.type, info.linkname = tarfile.SYMTYPE, data[2:].decode()
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _lenient(buf: io.BytesIO, dest: Path, **kw: object) -> ExtractStats:
    with tarfile.open(fileobj=buf, mode="r|", encoding="utf-8", errors="surrogateescape") as tar:
        return extract_tar(tar, dest, strict=False, max_depth=MAX_DEPTH, max_path_bytes=MAX_PATH_BYTES,
                           **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "shown", "why"), [
    ("a\\b", "a\\\\b", "a backslash"),
    ("evil\x1b[2Jname", "evil\\x1b[2Jname", "control character"),
    ("bell\x07", "bell\\x07", "control character"),
    ("del\x7f", "del\\x7f", "control character"),
    ("csi\x9b", "csi\\x9b", "control character"),
    ("bad\udcff\udcfe", "bad\\xff\\xfe", "not UTF-8"),
    ("sub/new\nline", "sub/new\\nline", "control character"),
])
@pytest.mark.reliability(kind="attack", name="output entry with a name that is not portable",
                         how="a backslash, control characters (C0, DEL, C1) or bytes that are not UTF-8 in a "
                             "name: the output is refused (output-unsafe) naming the entry escaped, nothing raised")
def test_a_name_that_is_not_portable_refuses_the_output_without_raising(tmp_path: Path, name: str, shown: str,
                                                                         why: str) -> None:
    stats = _lenient(_stream(("ok.txt", b"fine"), ("sub", None), (name, b"x"), ("zz.txt", b"late")), tmp_path / "d")
    assert stats.problem is not None and stats.problem.reason == "output-unsafe"
    assert stats.problem.entry == shown and f"'{shown}'" in stats.problem.sentence and why in stats.problem.sentence
    assert stats.problem.sentence.isprintable()
    assert not (tmp_path / "d" / "zz.txt").exists()  # nothing is written once the output is refused
    assert all(unsafe_name(p.name) is None for p in (tmp_path / "d").rglob("*"))


def test_escape_name_shows_every_byte_and_control_as_text() -> None:
    assert escape_name("plain name.txt") == "plain name.txt"
    assert escape_name("a\\b\x1b\n\t\x7f\x9b\u202e\udc80") == "a\\\\b\\x1b\\n\\t\\x7f\\x9b\\u202e\\x80"
    assert escape_name("\U000e0001").isprintable()


def test_the_reported_problem_does_not_depend_on_the_order_of_the_members(tmp_path: Path) -> None:
    """Two replicas may read the same output in another order: the reason and the entry named are the same."""
    members = [("b\x01", b"1"), ("a\\x", b"2"), ("c" + "/c" * 130, None), ("ok", b"3")]
    problems = set()
    for i, order in enumerate((members, members[::-1], members[1:] + members[:1])):
        stats = _lenient(_stream(*order), tmp_path / str(i))
        assert stats.problem is not None
        problems.add(stats.problem)
    assert len(problems) == 1 and next(iter(problems)).reason == "output-too-deep"
    unsafe = {_lenient(_stream(*order), tmp_path / f"u{i}").problem
              for i, order in enumerate((members[:2], members[1::-1]))}
    assert len(unsafe) == 1 and next(iter(unsafe)).entry == "a\\\\x"  # type: ignore[union-attr]


def _chain(depth: int, prefix: str = "") -> list[tuple[str, bytes | None]]:
    path, members = prefix, []
    for _ in range(depth):
        path = f"{path}/d" if path else "d"
        members.append((path, None))
    members.append((f"{path}/leaf", b"bottom"))
    return members


@pytest.mark.reliability(kind="attack", name="output nested 2,000 folders deep",
                         how="a chain of 2,000 folders: refused as output-too-deep at level 129, nothing deeper is "
                             "created, no exception (it used to cost quadratic time and ENAMETOOLONG)")
def test_two_thousand_nested_folders_are_refused_at_the_depth_limit_before_anything_deeper_exists(
        tmp_path: Path) -> None:
    stats = _lenient(_stream(*_chain(2000)), tmp_path / "d")
    assert stats.problem is not None and stats.problem.reason == "output-too-deep"
    assert stats.problem.entry == "/".join(["d"] * (MAX_DEPTH + 1))
    assert f"{MAX_DEPTH} levels" in stats.problem.sentence and stats.entries == 2001
    deepest = max(len(p.relative_to(tmp_path / "d").parts) for p in (tmp_path / "d").rglob("*"))
    assert deepest == MAX_DEPTH and stats.dirs == MAX_DEPTH
    ok = _lenient(_stream(*_chain(MAX_DEPTH - 1)), tmp_path / "ok")
    assert ok.problem is None and ok.files == 1 and ok.dirs == MAX_DEPTH - 1


def test_a_path_longer_than_the_limit_is_too_deep_even_when_shallow(tmp_path: Path) -> None:
    name = "n" * 250
    stats = _lenient(_stream(*[("/".join([name] * k), None) for k in range(1, 18)]), tmp_path / "d")
    assert stats.problem is not None and stats.problem.reason == "output-too-deep"
    assert f"{MAX_PATH_BYTES} bytes" in stats.problem.sentence


class _Syscalls:
    """Counts the file-system calls an extraction makes, and the path components each one names."""

    NAMES = ("open", "mkdir", "stat", "lstat", "chmod", "fchmod", "listdir", "scandir", "readlink", "unlink")

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.components = 0
        for fn in self.NAMES:
            monkeypatch.setattr(os, fn, self._counting(getattr(os, fn)))

    def _counting(self, fn):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kw):  # type: ignore[no-untyped-def]
            self.calls += 1
            if args and isinstance(args[0], str | bytes | os.PathLike):
                self.components += len(os.fspath(args[0]).split("/" if isinstance(os.fspath(args[0]), str)
                                                                 else b"/"))
            return fn(*args, **kw)
        return wrapper


def _count(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, depth: int) -> tuple[int, int]:
    data = _stream(*_chain(depth)).getvalue()
    with monkeypatch.context() as m:
        counter = _Syscalls(m)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            stats = extract_tar(tar, tmp_path / f"d{depth}", max_depth=10_000, max_path_bytes=1 << 20)
    assert stats.dirs == depth and stats.files == 1
    return counter.calls, counter.components


def test_extraction_is_linear_in_the_depth(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """1,000 then 2,000 nested folders: the file-system calls (and the path components they name) double, not
    quadruple. (The old extraction re-walked every member's path: ~2,000,000 lstat calls for 2,000 levels.)"""
    calls_1k, parts_1k = _count(monkeypatch, tmp_path, 1000)
    calls_2k, parts_2k = _count(monkeypatch, tmp_path, 2000)
    assert calls_2k <= 2.1 * calls_1k and parts_2k <= 2.1 * parts_1k
    assert calls_2k <= 4 * 2001  # a handful of calls per member: mkdirat, openat, fchmod (and the file's)
    assert parts_2k <= 2 * calls_2k  # one name per call (openat-style), never a whole path


def test_unpack_result_is_linear_in_the_depth_too(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    counts = []
    for depth in (MAX_DEPTH // 2 - 1, MAX_DEPTH - 1):
        archive = tmp_path / f"r{depth}.tar"
        archive.write_bytes(_stream(("output", None), *_chain(depth, "output")).getvalue())
        with monkeypatch.context() as m:
            counter = _Syscalls(m)
            unpack_result(archive, tmp_path / f"u{depth}")
        counts.append(counter.calls)
    assert counts[1] <= 2.1 * counts[0]


@pytest.mark.parametrize("name", ["output/a\\b", "output/evil\x1b[2Jname", "output/bad\udcff",
                                  "output/" + "/".join(["d"] * (MAX_DEPTH + 1))])
@pytest.mark.reliability(kind="attack", name="hostile worker publishes names no honest worker writes",
                         how="a result archive with a backslash, an escape sequence, bytes that are not UTF-8 or "
                             "129 levels: unpack_result refuses it, the name escaped in the message")
def test_unpack_refuses_names_no_honest_worker_publishes(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "hostile.tar"
    archive.write_bytes(_stream(("output", None), (name, b"x")).getvalue())
    with pytest.raises(UnsafeArchive) as info:
        unpack_result(archive, tmp_path / "dest")
    assert str(info.value).isprintable() and "\x1b" not in str(info.value)
    assert all(unsafe_name(p.name) is None for p in (tmp_path / "dest").rglob("*"))


@pytest.mark.parametrize("strict", [True, False])
def test_an_output_exactly_at_the_byte_cap_is_accepted_and_one_byte_more_is_not(tmp_path: Path,
                                                                                strict: bool) -> None:
    cap = 10_000
    at = _stream(("a", b"x" * 4000), ("b", b"y" * 6000))
    over = _stream(("a", b"x" * 4000), ("b", b"y" * 6001))
    if strict:
        with tarfile.open(fileobj=at, mode="r|") as tar:
            assert extract_tar(tar, tmp_path / "at", max_bytes=cap).bytes == cap
        with pytest.raises(UnsafeArchive, match="cap"), tarfile.open(fileobj=over, mode="r|") as tar:
            extract_tar(tar, tmp_path / "over", max_bytes=cap)
    else:
        stats = _lenient(at, tmp_path / "at", max_bytes=cap)
        assert stats.problem is None and stats.bytes == cap and not stats.over_cap
        stats = _lenient(over, tmp_path / "over", max_bytes=cap)
        assert stats.over_cap and stats.problem is not None and stats.problem.reason == "output-too-large"
        assert "cap" in stats.problem.sentence and str(cap) not in stats.problem.sentence  # no worker numbers


def test_too_many_entries_is_a_problem_and_exactly_the_cap_is_not(tmp_path: Path) -> None:
    five = [(f"f{i}", b"") for i in range(4)] + [("d", None)]
    assert _lenient(_stream(*five), tmp_path / "at", max_files=5).problem is None
    stats = _lenient(_stream(*five, ("g", b"")), tmp_path / "over", max_files=5)
    assert stats.problem is not None and stats.problem.reason == "output-too-many-files"


def test_skipped_entries_are_listed_escaped_in_byte_order(tmp_path: Path) -> None:
    stats = _lenient(_stream(("z-link", b"->/etc/passwd"), ("a-link", b"->\x1b[31m"), ("f", b"1")), tmp_path / "d")
    assert stats.problem is None and stats.files == 1
    assert stats.skipped == ["a-link: symbolic link to '\\x1b[31m', not copied",
                             "z-link: symbolic link to '/etc/passwd', not copied"]


def test_pack_and_unpack_handle_paths_longer_than_path_max_below_a_long_folder(tmp_path: Path) -> None:
    """128 levels of long names (a 3,800-byte path) below a deep task folder: the full path passes PATH_MAX, yet
    packing (fd-relative) and unpacking work."""
    base = tmp_path / ("t" * 200) / ("u" * 200)
    members = [("/".join(["n" * 29] * k), None) for k in range(1, 128)] + [("/".join(["n" * 29] * 127) + "/f", b"z")]
    stats = _lenient(_stream(*members), base / "out")
    assert stats.problem is None and stats.files == 1
    packed = pack_result(base / "out", tmp_path / "r.tar")
    assert packed.files == 1
    assert unpack_result(packed.archive_path, base / "un").files == 1
