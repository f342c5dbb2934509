"""Canonical result archives, their digest, safe extraction, and encryption to the requester's key.

The archive is what two honest workers must produce byte for byte from the same output, so every field a
file system or a tool could vary is fixed:

* members are ``output/…`` (the app's output folder) then ``logs/…`` (stdout/stderr), each tree walked in
  sorted order of path components (UTF-8 bytes), directories before their contents;
* regular files and directories only. Symbolic links, hard links, devices, fifos and sockets are **skipped**
  (never followed) and listed in :attr:`PackedResult.skipped`; so are names that are not valid UTF-8;
* mtime 0, uid/gid 0, empty uname/gname, mode 0755 for directories and for files with any execute bit,
  0644 for other files; POSIX pax format (a pax record only for names longer than ustar allows).

The digest is the sha256 of the app's declared deterministic file (a path inside the output folder) when it
has one, else of the archive bytes. Encryption (PyNaCl ``SealedBox`` to the requester's X25519 public key)
happens after digesting, so every replica's digest agrees even though each ciphertext is different.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from pydantic import BaseModel, ConfigDict

from .exceptions import ArchiveError, UnsafeArchive

OUTPUT_PREFIX = "output"
LOGS_PREFIX = "logs"
_CHUNK = 1 << 20
_DEFAULT_MAX_BYTES = 4 << 30
_DEFAULT_MAX_FILES = 100_000


class PackedResult(BaseModel):
    """What :func:`pack_result` produced."""

    model_config = ConfigDict(frozen=True)

    archive_path: Path
    archive_size: int
    archive_sha256: str
    digest: str  # 64 lowercase hex digits: the value committed on chain (as bytes32)
    digest_source: Literal["archive", "file"]
    deterministic_file: str | None = None
    files: int
    skipped: list[str]

    @property
    def digest_bytes(self) -> bytes:
        return bytes.fromhex(self.digest)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# -- packing ---------------------------------------------------------------------------------------
def _walk(root: Path, prefix: str, skipped: list[str]) -> Iterator[tuple[str, Path, os.stat_result]]:
    """Yield (archive name, path, lstat) for ``root``'s tree in canonical order; record what is skipped."""
    def key(name: str) -> bytes:
        return name.encode("utf-8", "surrogateescape")

    for name in sorted(os.listdir(root), key=key):
        path = root / name
        arcname = f"{prefix}/{name}"
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            skipped.append(f"{arcname!r}: name is not valid UTF-8")
            continue
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            skipped.append(f"{arcname}: symbolic link to {os.readlink(path)!r}, not followed")
        elif stat.S_ISDIR(st.st_mode):
            yield arcname, path, st
            yield from _walk(path, arcname, skipped)
        elif stat.S_ISREG(st.st_mode):
            yield arcname, path, st
        else:
            skipped.append(f"{arcname}: not a regular file or directory (mode {oct(st.st_mode)})")


def _tarinfo(arcname: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.type = tarfile.REGTYPE
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    return info


def _add_tree(tar: tarfile.TarFile, root: Path, prefix: str, skipped: list[str]) -> int:
    tar.addfile(_tarinfo(prefix, os.stat(root)))
    files = 0
    for arcname, path, st in _walk(root, prefix, skipped):
        info = _tarinfo(arcname, st)
        if info.isdir():
            tar.addfile(info)
            continue
        with path.open("rb") as fh:
            if os.fstat(fh.fileno()).st_size != st.st_size:
                raise ArchiveError(f"{path} changed size while being archived; pack only a finished output folder")
            tar.addfile(info, fh)
        files += 1
    return files


def pack_result(output_dir: str | Path, dest: str | Path, *, logs: Mapping[str, str | Path] | None = None,
                deterministic_file: str | None = None) -> PackedResult:
    """Write the canonical archive of ``output_dir`` (plus ``logs``: archive name -> file) to ``dest``.

    ``deterministic_file`` is a path relative to the output folder (as the app's metadata declares it); when
    given, the digest is that file's sha256 and the file must exist as a regular file.
    """
    out = Path(output_dir)
    if not out.is_dir():
        raise ArchiveError(f"output folder {out} does not exist; run the task before packing its result")
    det_path: Path | None = None
    if deterministic_file is not None:
        rel = PurePosixPath(deterministic_file)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts or rel.parts == (".",):
            raise ArchiveError(f"deterministic file {deterministic_file!r} must be a relative path inside the "
                               "output folder (no '..', not absolute); fix the app's metadata")
        det_path = out.joinpath(*rel.parts)
        if det_path.is_symlink() or not det_path.is_file():
            raise ArchiveError(f"the app declares {deterministic_file!r} as its deterministic file but the output "
                               f"has no such regular file (looked for {det_path}); the task failed to produce it")
    skipped: list[str] = []
    target = Path(dest)
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        files = _add_tree(tar, out, OUTPUT_PREFIX, skipped)
        if logs:
            tar.addfile(_tarinfo(LOGS_PREFIX, os.stat(out)))
            for name in sorted(logs, key=lambda n: n.encode()):
                if "/" in name or name in ("", ".", ".."):
                    raise ArchiveError(f"log name {name!r} must be a plain file name")
                log_path = Path(logs[name])
                st = os.stat(log_path)
                with log_path.open("rb") as fh:
                    tar.addfile(_tarinfo(f"{LOGS_PREFIX}/{name}", st), fh)
                files += 1
    archive_sha = sha256_file(target)
    digest = sha256_file(det_path) if det_path is not None else archive_sha
    return PackedResult(archive_path=target, archive_size=target.stat().st_size, archive_sha256=archive_sha,
                        digest=digest, digest_source="file" if det_path is not None else "archive",
                        deterministic_file=deterministic_file, files=files, skipped=skipped)


# -- extraction ------------------------------------------------------------------------------------
class ExtractStats(BaseModel):
    """What :func:`extract_tar` wrote, and what it left out."""

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    block_bytes: int = 0  # file sizes rounded up to 4 KiB blocks: what a tmpfs holding them had allocated
    skipped: list[str] = []
    over_cap: bool = False  # stopped because ``max_bytes`` or ``max_files`` was exceeded (non-strict mode)


_STRIP = re.compile(r"^(\./)+")


def _member_path(dest: Path, name: str) -> tuple[str, Path]:
    clean = _STRIP.sub("", name).rstrip("/")
    rel = PurePosixPath(clean)
    if rel.is_absolute() or ".." in rel.parts or "\\" in clean or "\x00" in clean:
        raise UnsafeArchive(f"archive member {name!r} would be written outside {dest}; the archive is hostile or "
                            "corrupt — do not use it")
    return clean, dest.joinpath(*rel.parts) if rel.parts and clean != "." else dest


def _no_links_between(root: Path, path: Path, name: str) -> None:
    """Refuse to write through a symbolic link planted anywhere between ``root`` and ``path``."""
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink():
            raise UnsafeArchive(f"archive member {name!r} would be written through the symbolic link {current}; "
                                "extract into a fresh folder")


def extract_tar(tar: tarfile.TarFile, dest: str | Path, *, max_bytes: int = _DEFAULT_MAX_BYTES,
                max_files: int = _DEFAULT_MAX_FILES, strict: bool = True) -> ExtractStats:
    """Extract regular files and directories of ``tar`` (may be a stream, ``r|``) under ``dest`` safely.

    Never creates links or devices and never follows any. Modes become 0644/0755; owners and times are the
    extracting user's. A member escaping ``dest`` always raises :class:`UnsafeArchive`. With ``strict``, links,
    devices and going over ``max_bytes``/``max_files`` raise too; otherwise they are skipped and reported (the
    first overflow stops the extraction and sets ``over_cap``).
    """
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    stats = ExtractStats()
    written: set[Path] = set()
    for member in tar:
        name, path = _member_path(root, member.name)
        if member.isdir():
            _no_links_between(root, path, name)
            if path != root:
                path.mkdir(mode=0o755, parents=True, exist_ok=True)
                stats.dirs += 1
            continue
        copy_from: Path | None = None
        if member.islnk() and not strict:
            # A second name for a file extracted earlier (Docker's tar stores hard links this way): copy it.
            try:
                target: Path | None = _member_path(root, member.linkname)[1]
            except UnsafeArchive:
                target = None  # points outside: skipped below
            if target in written:
                copy_from = target
                member = copy.copy(member)
                member.type, member.size = tarfile.REGTYPE, target.stat().st_size
        if not member.isfile():
            kind = ("symbolic link to " + repr(member.linkname) if member.issym() else
                    "hard link to " + repr(member.linkname) if member.islnk() else "special file")
            if strict:
                raise UnsafeArchive(f"archive member {name!r} is a {kind}; result archives hold regular files only")
            stats.skipped.append(f"{name}: {kind}, not copied")
            continue
        if stats.bytes + member.size > max_bytes or stats.files + 1 > max_files:
            message = (f"archive member {name!r} takes the extraction past its cap ({stats.bytes + member.size} "
                       f"bytes > {max_bytes} or more than {max_files} files)")
            if strict:
                raise UnsafeArchive(message + "; raise the cap if the result is legitimately this large")
            stats.over_cap = True
            stats.skipped.append(message)
            break
        if path == root:
            raise UnsafeArchive(f"archive member {member.name!r} is a file in place of the destination folder")
        _no_links_between(root, path.parent, name)
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        if path.is_symlink() or path.is_dir():
            raise UnsafeArchive(f"archive member {name!r} collides with an existing link or folder at {path}")
        source = copy_from.open("rb") if copy_from is not None else tar.extractfile(member)
        if source is None:  # pragma: no cover - isfile() members always have data
            continue
        with source, open(path, "wb") as fh:
            shutil.copyfileobj(source, fh, _CHUNK)
        path.chmod(0o755 if member.mode & 0o111 else 0o644)
        written.add(path)
        stats.files += 1
        stats.bytes += member.size
        stats.block_bytes += -(-member.size // 4096) * 4096
    return stats


def unpack_result(archive: str | Path, dest: str | Path, *, max_bytes: int = _DEFAULT_MAX_BYTES,
                  max_files: int = _DEFAULT_MAX_FILES) -> ExtractStats:
    """Unpack a (decrypted) result archive into ``dest``, refusing traversal, links, devices and oversize."""
    try:
        with tarfile.open(archive, "r:") as tar:
            return extract_tar(tar, dest, max_bytes=max_bytes, max_files=max_files, strict=True)
    except tarfile.TarError as exc:
        raise ArchiveError(f"{archive} is not a valid result archive ({exc}); was it decrypted first?") from exc


def open_tar_stream(stream: IO[bytes]) -> tarfile.TarFile:
    """A streaming (``r|``) reader over ``stream``, for :func:`extract_tar`."""
    return tarfile.open(fileobj=stream, mode="r|")


# -- encryption ------------------------------------------------------------------------------------
def _key_bytes(key: bytes | str, what: str) -> bytes:
    if isinstance(key, str):
        text = key.removeprefix("0x")
        try:
            raw = bytes.fromhex(text)
        except ValueError as exc:
            raise ArchiveError(f"{what} {key!r} is not hex; pass 32 raw bytes or 64 hex digits") from exc
    else:
        raw = bytes(key)
    if len(raw) != 32:
        raise ArchiveError(f"{what} must be 32 bytes (an X25519 key), got {len(raw)}; check the key the job "
                           "was posted with")
    return raw


def generate_keypair() -> tuple[bytes, bytes]:
    """A fresh X25519 ``(private_key, public_key)`` pair for a requester (32 bytes each)."""
    from nacl.public import PrivateKey

    sk = PrivateKey.generate()
    return bytes(sk), bytes(sk.public_key)


def encrypt_for(public_key: bytes | str, data: bytes) -> bytes:
    """Seal ``data`` to the requester's X25519 ``public_key`` (anonymous sender, PyNaCl ``SealedBox``)."""
    from nacl.public import PublicKey, SealedBox

    return bytes(SealedBox(PublicKey(_key_bytes(public_key, "requester public key"))).encrypt(data))


def decrypt_with(private_key: bytes | str, data: bytes) -> bytes:
    """Open a sealed box with the requester's X25519 ``private_key``."""
    from nacl.exceptions import CryptoError
    from nacl.public import PrivateKey, SealedBox

    try:
        return bytes(SealedBox(PrivateKey(_key_bytes(private_key, "private key"))).decrypt(data))
    except CryptoError as exc:
        raise ArchiveError("cannot decrypt the result: it was sealed to another key or is corrupt; use the "
                           "private key matching the public key the job was posted with") from exc


def encrypt_file(src: str | Path, dest: str | Path, public_key: bytes | str) -> int:
    """Seal the file ``src`` into ``dest``; return the ciphertext size (the file is read into memory)."""
    data = encrypt_for(public_key, Path(src).read_bytes())
    Path(dest).write_bytes(data)
    return len(data)


def decrypt_file(src: str | Path, dest: str | Path, private_key: bytes | str) -> int:
    """Open the sealed file ``src`` into ``dest``; return the plaintext size."""
    data = decrypt_with(private_key, Path(src).read_bytes())
    Path(dest).write_bytes(data)
    return len(data)
