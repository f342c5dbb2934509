"""docs/FORMATS.md is enough to implement the result archive: scripts/result_archive.js, written from it with
Node's built-in modules only, makes the same bytes as the worker's own packing (``oracle.archive.pack_result``)
from the same folders, hence the same digest."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oracle.archive import pack_result
from oracle.status import format_status

ROOT = Path(__file__).resolve().parents[2]
NODE_PACKER = ROOT / "scripts" / "result_archive.js"


def node(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["node", str(NODE_PACKER), *args], input=None if stdin is None else stdin.encode(),
                          capture_output=True, timeout=120, check=False)


def node_pack(output: Path, logs: Path | None, dest: Path, deterministic_file: str | None = None) -> dict[str, Any]:
    args = ["pack", "--output", str(output), "--write", str(dest)]
    if logs is not None:
        args += ["--logs", str(logs)]
    if deterministic_file is not None:
        args += ["--deterministic-file", deterministic_file]
    done = node(*args)
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def logs_of(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir()} if folder.is_dir() else {}


def assert_same_bytes(python: Path, js: Path) -> None:
    a, b = python.read_bytes(), js.read_bytes()
    if a != b:
        at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        pytest.fail(f"archives differ from byte {at} (block {at // 512}, offset {at % 512}): python "
                    f"{a[at - at % 512:at - at % 512 + 512]!r} / node {b[at - at % 512:at - at % 512 + 512]!r}")


def make_tricky_output(out: Path) -> None:
    """Nested folders, an executable, an empty file, non-ASCII names, names around the 100-byte ustar limit,
    sizes around the 512-byte block, and what is never archived (a link, a fifo, names that are not portable)."""
    (out / "a" / "b" / "c").mkdir(parents=True)
    (out / "a" / "b" / "c" / "f.txt").write_text("deep\n")
    (out / "a-b").mkdir()  # '-' sorts before '/': per-folder order puts a/ and its contents before a-b/
    (out / "a-b" / "x").write_text("x")
    (out / "empty").write_bytes(b"")
    (out / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(out / "run.sh", 0o750)
    (out / "group-exec").write_text("any execute bit makes 0755\n")
    os.chmod(out / "group-exec", 0o610)
    (out / "café.txt").write_text("é")
    (out / ("é" * 60)).write_text("60 characters, 120 bytes")
    (out / "🙂").write_text("one astral character, one '?' in the ustar name")
    (out / ("L" * 93)).write_text("'output/' + 93 = exactly 100 bytes: no pax header")
    (out / ("M" * 94)).write_text("101 bytes: a pax header")
    (out / ("D" * 92)).mkdir()  # 'output/' + 92 + '/' = 100 bytes
    (out / ("E" * 93)).mkdir()  # 101 bytes with its '/': a pax header
    (out / ("n" * 60)).mkdir()
    (out / ("n" * 60) / ("m" * 60)).write_bytes(os.urandom(1000))
    (out / "block").write_bytes(b"b" * 512)
    (out / "block+1").write_bytes(b"b" * 513)
    (out / "big").write_bytes(os.urandom(70_000))  # crosses several 10,240-byte records
    (out / "Upper").write_text("sorts before lowercase")
    os.symlink("a/b", out / "link")
    os.mkfifo(out / "fifo")
    (out / "back\\slash").write_text("not portable")
    os.close(os.open(bytes(out) + b"/bad\xff", os.O_CREAT | os.O_WRONLY, 0o644))
    (out / "tab\there").write_text("not portable")


def make_logs(logs: Path, status: str = "reason: ok\nexit_code: 0\n") -> None:
    logs.mkdir()
    (logs / "status.txt").write_text(status)
    (logs / "stdout.txt").write_text("hi\n")
    (logs / "stderr.txt").write_bytes(b"")
    (logs / "skipped.txt").write_text("link: symbolic link to 'a/b', not copied\n")


def test_node_packs_the_same_bytes_as_the_worker(tmp_path: Path) -> None:
    out, logs = tmp_path / "out", tmp_path / "logs"
    out.mkdir()
    make_tricky_output(out)
    make_logs(logs)
    packed = pack_result(out, tmp_path / "py.tar", logs=logs_of(logs))
    js = node_pack(out, logs, tmp_path / "js.tar")
    assert_same_bytes(packed.archive_path, tmp_path / "js.tar")
    assert js["archive_sha256"] == packed.archive_sha256 == js["digest"] == packed.digest
    assert js["digest_source"] == "archive" and js["archive_size"] == packed.archive_size
    assert js["files"] == packed.files and js["skipped"] == packed.skipped
    assert packed.archive_size % 10240 == 0
    with tarfile.open(packed.archive_path) as tar:  # what the test meant to cover is really there
        members = {m.name: m for m in tar.getmembers()}
        assert members["output/run.sh"].mode == members["output/group-exec"].mode == 0o755
        assert members["output/empty"].size == 0 and members["output/" + "é" * 60].size == 24
        assert "output/" + "M" * 94 in members and "output/🙂" in members
    raw = packed.archive_path.read_bytes()
    assert raw.count(b"././@PaxHeader") == 6  # café.txt, é*60, 🙂 (not ASCII); M*94, E*93/, n*60/m*60 (long)


def test_an_empty_output_without_logs_is_one_folder_and_the_end_blocks(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    packed = pack_result(tmp_path / "out", tmp_path / "py.tar")
    js = node_pack(tmp_path / "out", None, tmp_path / "js.tar")
    assert_same_bytes(packed.archive_path, tmp_path / "js.tar")
    assert js["archive_size"] == 10240 and js["files"] == 0


def test_the_digest_of_a_deterministic_file_is_its_sha256(tmp_path: Path) -> None:
    out, logs = tmp_path / "out", tmp_path / "logs"
    (out / "frames").mkdir(parents=True)
    (out / "frames" / "pixels.ppm").write_bytes(b"P6 1 1 255\n\x00\x00\x00")
    (out / "frame.png").write_bytes(os.urandom(64))  # not reproducible: the digest does not cover it
    make_logs(logs)
    packed = pack_result(out, tmp_path / "py.tar", logs=logs_of(logs), deterministic_file="frames/pixels.ppm")
    js = node_pack(out, logs, tmp_path / "js.tar", deterministic_file="frames/pixels.ppm")
    assert js["digest"] == packed.digest == hashlib.sha256(b"P6 1 1 255\n\x00\x00\x00").hexdigest()
    assert js["digest_source"] == packed.digest_source == "file"
    assert js["archive_sha256"] == packed.archive_sha256 != packed.digest
    for bad in ("../etc/passwd", "/etc/passwd", "missing.txt", "frames", "."):
        assert node("pack", "--output", str(out), "--deterministic-file", bad).returncode == 1, bad


@pytest.mark.parametrize(("reason", "exit_code", "error"), [
    ("ok", 0, None),
    ("nonzero-exit", 3, "the app exited with code 3"),
    ("timeout", 137, "the app ran longer than its wall-clock limit of 60 s and was killed"),
    ("input-error", None, "InputCorrupt: a line\nbreak and a\rreturn"),
    ("output-unsafe", 0, ("the output entry 'evil\\x1b[2Jname' has a name that is not portable (the control "
                          "character \\x1b)")),
])
def test_a_failure_archive_and_its_status_file_are_made_alike(tmp_path: Path, reason: str, exit_code: int | None,
                                                              error: str | None) -> None:
    text = format_status(reason, exit_code, error)
    done = node("status", reason, "" if exit_code is None else str(exit_code), *([error] if error else []))
    assert done.returncode == 0 and done.stdout == text.encode()
    # a failure archive of an output the worker refused: output/ empty, logs/status.txt only
    (tmp_path / "no-output").mkdir()
    make_logs(tmp_path / "logs", status=text)
    for extra in ("stdout.txt", "stderr.txt", "skipped.txt"):
        (tmp_path / "logs" / extra).unlink()
    packed = pack_result(tmp_path / "no-output", tmp_path / "py.tar", logs=logs_of(tmp_path / "logs"))
    js = node_pack(tmp_path / "no-output", tmp_path / "logs", tmp_path / "js.tar")
    assert_same_bytes(packed.archive_path, tmp_path / "js.tar")
    assert js["digest"] == packed.digest
    with tarfile.open(packed.archive_path) as tar:
        assert tar.getnames() == ["output", "logs", "logs/status.txt"]


# -- any tree, any header ------------------------------------------------------------------------------------
# Characters assigned in Python's Unicode database only (14.0.0 for Python 3.11): whether a character is
# printable, hence how a name is escaped in a skipped line, depends on the Unicode version (FORMATS.md, "Escaped
# names"), and Node's is newer.
_NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cn"), blacklist_characters="/\x00")
_NAMES = st.text(_NAME_CHARS, min_size=1, max_size=70).filter(
    lambda n: n not in (".", "..") and len(n.encode()) <= 255)
_FILE = st.tuples(st.binary(max_size=1500), st.sampled_from([0o644, 0o600, 0o755, 0o700, 0o640, 0o604]))
_TREE = st.recursive(_FILE, lambda children: st.dictionaries(_NAMES, children, max_size=5), max_leaves=14)


def _write(folder: Path, tree: Any) -> None:
    for name, node_ in tree.items():
        path = folder / name
        if isinstance(node_, dict):
            path.mkdir()
            _write(path, node_)
        else:
            path.write_bytes(node_[0])
            os.chmod(path, node_[1])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(tree=st.dictionaries(_NAMES, _TREE, max_size=6))
def test_any_tree_packs_alike(tmp_path_factory: pytest.TempPathFactory, tree: dict[str, Any]) -> None:
    """Random names (any Unicode but '/' and NUL: astral characters, control characters, long names), contents
    and modes: the same bytes and the same skipped entries."""
    tmp = tmp_path_factory.mktemp("tree")
    out = tmp / "out"
    out.mkdir()
    _write(out, tree)
    packed = pack_result(out, tmp / "py.tar")
    js = node_pack(out, None, tmp / "js.tar")
    assert_same_bytes(packed.archive_path, tmp / "js.tar")
    assert js["skipped"] == packed.skipped


_SIZES = st.one_of(st.integers(0, 1 << 20), st.sampled_from([8**11 - 1, 8**11, 8**11 + 1, 1 << 40, 10**15]))


@settings(max_examples=25, deadline=None)
@given(members=st.lists(st.tuples(st.text(_NAME_CHARS.filter(lambda c: c != "\\"), min_size=1, max_size=130),
                                  _SIZES, st.booleans(), st.booleans()), min_size=1, max_size=20))
def test_any_header_is_written_alike(members: list[tuple[str, int, bool, bool]]) -> None:
    """Header blocks for names of any length and script and for sizes no test disk should hold (a pax ``size``
    record from 8 GiB on), compared with Python's tarfile as the worker calls it."""
    lines, expected = [], []
    for text, size, is_dir, executable in members:
        name = "output/" + text
        info = tarfile.TarInfo(name)
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
        if is_dir:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
        else:
            info.type, info.size, info.mode = tarfile.REGTYPE, size, 0o755 if executable else 0o644
        expected.append(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape").hex())
        lines.append(json.dumps({"name": name.encode().hex(), "size": 0 if is_dir else size,
                                 "type": "5" if is_dir else "0", "mode": info.mode}))
    done = node("headers", stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == expected
