"""Canonical result archives: byte-stable packing, digests, safe unpacking, sealed-box encryption (offline)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

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
from oracle.archive import extract_tar
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
