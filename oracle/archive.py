"""Canonical result archives, their digest, safe extraction, and encryption to the requester's key.

The archive is what two honest workers must produce byte for byte from the same output, so every field a
file system or a tool could vary is fixed:

* members are ``output/…`` (the app's output folder) then ``logs/…`` (stdout/stderr), each tree walked in
  sorted order of path components (UTF-8 bytes), directories before their contents;
* regular files and directories only. Symbolic links, hard links, devices, fifos and sockets are **skipped**
  (never followed) and listed in :attr:`PackedResult.skipped`; so are names that are not portable
  (:func:`unsafe_name`: a backslash, a control character, bytes that are not UTF-8);
* mtime 0, uid/gid 0, empty uname/gname, mode 0755 for directories and for files with any execute bit,
  0644 for other files; POSIX pax format (a pax record only for names longer than ustar allows).

Extraction (:func:`extract_tar`) makes only folders and regular files, one name at a time from the parent
folder's descriptor (``mkdirat``/``openat`` with ``O_NOFOLLOW``): it never follows a link, never builds a path
longer than one name, and costs a few system calls per member whatever the depth. A worker copying an app's
output uses it leniently: what the output holds never raises, it becomes an :class:`OutputProblem` (a reason
of :data:`oracle.status.OUTPUT_REASONS`) that does not depend on the order of the members. A requester
(:func:`unpack_result`) uses it strictly: anything an honest worker never publishes is refused.

The digest is the sha256 of the app's declared deterministic file (a path inside the output folder) when it
has one, else of the archive bytes. Encryption (PyNaCl ``SealedBox`` to the requester's X25519 public key)
happens after digesting, so every replica's digest agrees even though each ciphertext is different.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Literal

from pydantic import BaseModel, ConfigDict

from .exceptions import ArchiveError, UnsafeArchive
from .status import OUTPUT_REASONS, OUTPUT_TOO_DEEP, OUTPUT_TOO_LARGE, OUTPUT_TOO_MANY_FILES, OUTPUT_UNSAFE

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
    digest_source: Literal["archive", "file", "canonical"]
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
def _walk(dir_fd: int, prefix: str, skipped: list[str]) -> Iterator[tuple[str, int, str, os.stat_result]]:
    """Yield (archive name, parent folder's descriptor, name, lstat) for the tree below ``dir_fd`` in canonical
    order; record what is skipped. Folders are opened one name at a time (``O_NOFOLLOW``), so no link is followed
    and no path grows toward PATH_MAX however deep the tree."""
    for name in sorted(os.listdir(dir_fd), key=_raw):
        arcname = f"{prefix}/{name}"
        why = unsafe_name(name)
        if why is not None:
            skipped.append(f"{escape_name(arcname)}: name not portable ({why}), not archived")
            continue
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(name, dir_fd=dir_fd)
            skipped.append(f"{escape_name(arcname)}: symbolic link to {_shown(target)}, not followed")
        elif stat.S_ISDIR(st.st_mode):
            yield arcname, dir_fd, name, st
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                yield from _walk(fd, arcname, skipped)
            finally:
                os.close(fd)
        elif stat.S_ISREG(st.st_mode):
            yield arcname, dir_fd, name, st
        else:
            skipped.append(f"{escape_name(arcname)}: not a regular file or directory (mode {oct(st.st_mode)})")


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
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for arcname, parent_fd, name, st in _walk(root_fd, prefix, skipped):
            info = _tarinfo(arcname, st)
            if info.isdir():
                tar.addfile(info)
                continue
            with os.fdopen(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd), "rb") as fh:
                if os.fstat(fh.fileno()).st_size != st.st_size:
                    raise ArchiveError(f"{root}/{escape_name(arcname)} changed size while being archived; pack "
                                       "only a finished output folder")
                tar.addfile(info, fh)
            files += 1
    finally:
        os.close(root_fd)
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


# -- names -----------------------------------------------------------------------------------------
#: levels an output entry may be nested below the output folder (``a`` is 1, ``a/b`` is 2)
MAX_DEPTH = 128
#: bytes an output entry's path below the output folder may take (a holder's tar cannot archive paths near
#: PATH_MAX, 4,096 bytes, so a longer one could never be published whole)
MAX_PATH_BYTES = 4000
#: bytes of one name (a path component), as on Linux file systems
NAME_MAX = 255

_UNSAFE_CHAR = re.compile("[\x00-\x1f\x7f-\x9f\\\\\ud800-\udfff]")
_SHORT_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _raw(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def escape_name(name: str) -> str:
    r"""``name`` safe to print or to write on one line: bytes that are not UTF-8 as ``\xNN``, control and other
    non-printable characters as ``\n``, ``\xNN`` or ``\uNNNN``, a backslash doubled; the rest as it is."""
    if name.isprintable() and "\\" not in name:
        return name
    out = []
    for ch in name:
        code = ord(ch)
        if ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode and tarfile carry it
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def unsafe_name(path: str) -> str | None:
    """Why the relative ``path`` (names separated by ``/``) may not be published, or None when it may. Refused:
    a backslash, a control character (C0, DEL, C1), bytes that are not UTF-8, a name longer than NAME_MAX bytes."""
    bad = _UNSAFE_CHAR.search(path)
    if bad is not None:
        ch = bad.group()
        return ("a backslash" if ch == "\\" else "bytes that are not UTF-8" if "\ud800" <= ch <= "\udfff"
                else f"the control character {escape_name(ch)}")
    if len(path) > NAME_MAX // 4 and any(len(_raw(part)) > NAME_MAX for part in path.split("/")):
        return f"a name longer than {NAME_MAX} bytes"
    return None


# -- extraction ------------------------------------------------------------------------------------
class OutputProblem(BaseModel):
    """Why an output cannot be published as it is: one of :data:`oracle.status.OUTPUT_REASONS`, the entry it is
    about (escaped, relative to the extraction root) when there is one, and one sentence that says it all and
    holds nothing specific to the worker (it goes into the digested ``status.txt``)."""

    model_config = ConfigDict(frozen=True)

    reason: str
    entry: str | None = None
    sentence: str


class ExtractStats(BaseModel):
    """What :func:`extract_tar` wrote, and what it left out."""

    files: int = 0
    dirs: int = 0  # folders created
    entries: int = 0  # members read (files, folders, links, specials), the root excepted
    bytes: int = 0  # apparent bytes of the files (sparse or not, hard links counted again)
    block_bytes: int = 0  # file sizes rounded up to 4 KiB blocks: what a tmpfs holding them had allocated
    skipped: list[str] = []  # "escaped name: why", in byte order of the names
    over_cap: bool = False  # stopped reading at ``max_bytes`` / ``max_files`` (non-strict): the rest was not read
    problem: OutputProblem | None = None  # non-strict: why the output is refused (nothing more was written)


_STRIP = re.compile(r"^(\./)+")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _Refused(Exception):
    """A member that cannot be extracted (:func:`extract_tar` turns it into UnsafeArchive or a problem)."""

    def __init__(self, reason: str, entry: str | None, sentence: str) -> None:
        super().__init__(sentence)
        self.problem = OutputProblem(reason=reason, entry=entry, sentence=sentence)


class _Dirs:
    """The folders under an extraction root, reached one name at a time from open descriptors (``mkdirat`` and
    ``openat`` with ``O_NOFOLLOW``): no path is ever resolved as a whole, so no link is followed, PATH_MAX does
    not matter, and each member costs a few system calls whatever its depth. A stack holds the descriptors of
    the current folder's chain; members of a tar come folder by folder, so moving to the next one opens only the
    names that differ."""

    def __init__(self, root_fd: int) -> None:
        self.fds = [root_fd]
        self.path = ""  # the chain of self.fds[1:], "a/b/c"
        self.parts: list[str] = []
        self.created = 0

    def enter(self, path: str) -> int:
        """A descriptor of the folder ``path`` ("" for the root), made (mode 0755) where missing."""
        if path == self.path:
            return self.fds[-1]
        if self.path and path.startswith(self.path + "/"):
            keep, rest = len(self.parts), path[len(self.path) + 1:].split("/")
        else:
            parts = path.split("/") if path else []
            keep = 0
            while keep < min(len(parts), len(self.parts)) and parts[keep] == self.parts[keep]:
                keep += 1
            rest = parts[keep:]
        while len(self.parts) > keep:
            os.close(self.fds.pop())
            self.parts.pop()
        try:
            for name in rest:
                self.fds.append(self._child(self.fds[-1], name))
                self.parts.append(name)
        finally:
            self.path = "/".join(self.parts)
        return self.fds[-1]

    def _child(self, parent: int, name: str) -> int:
        made = True
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
        except FileExistsError:
            made = False
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:  # a symbolic link (ENOTDIR or ELOOP), a file (ENOTDIR)
            is_link = exc.errno == errno.ELOOP or stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False)
                                                                .st_mode)
            kind = "a symbolic link" if is_link else "not a folder"
            where = "/".join([*self.parts, name])
            raise _Refused(OUTPUT_UNSAFE, escape_name(where), f"the archive would write through {_shown(where)}, "
                           f"which is {kind} in the destination") from None
        if made:
            os.fchmod(fd, 0o755)
            self.created += 1
        return fd

    def close(self) -> None:
        while len(self.fds) > 1:
            os.close(self.fds.pop())
        self.parts, self.path = [], ""


def _clean(name: str) -> str:
    return _STRIP.sub("", name).rstrip("/")


def _shown(path: str, limit: int = 200) -> str:
    """``path`` escaped and quoted for a message, cut after ``limit`` characters."""
    text = escape_name(path)
    return f"'{text[:limit]}...'" if len(text) > limit else f"'{text}'"


def _cap_problem(reason: str) -> OutputProblem:
    """The problem of an output over a cap (no numbers: caps may differ between workers, the sentence may not)."""
    return OutputProblem(reason=reason, sentence="the output is larger than the output cap allows"
                         if reason == OUTPUT_TOO_LARGE else "the output holds more entries than the output cap allows")


class _Extraction:
    """State of one :func:`extract_tar` call."""

    def __init__(self, root_fd: int, strict: bool, max_bytes: int, max_files: int, max_depth: int,
                 max_path_bytes: int) -> None:
        self.dirs = _Dirs(root_fd)
        self.strict = strict
        self.max_bytes, self.max_files = max_bytes, max_files
        self.max_depth, self.max_path_bytes = max_depth, max_path_bytes
        self.stats = ExtractStats()
        self.written: dict[str, tuple[int, int]] = {}  # files written: path -> (size, mode), for hard links
        self.skipped: list[tuple[bytes, str]] = []
        self.found: dict[str, tuple[bytes, OutputProblem]] = {}  # reason -> its first entry in byte order

    def refuse(self, refused: _Refused, key: str) -> None:
        """Raise (strict) or remember the problem (the first entry in byte order per reason)."""
        problem = refused.problem
        if self.strict:
            raise UnsafeArchive(problem.sentence + "; the archive is hostile or corrupt — do not use it")
        current = self.found.get(problem.reason)
        if current is None or _raw(key) < current[0]:
            self.found[problem.reason] = (_raw(key), problem)

    def over(self, name: str, size: int) -> bool:
        """Count a member against the caps; True when the reading must stop here."""
        s = self.stats
        s.entries += 1
        if s.bytes + size > self.max_bytes:
            reason, what = OUTPUT_TOO_LARGE, f"{s.bytes + size} bytes, over the cap of {self.max_bytes}"
        elif s.entries > self.max_files and (self.strict or s.entries > 2 * self.max_files + 16):
            # non-strict: counted past the cap (finish() reports it); the reading stops only far beyond it
            reason, what = OUTPUT_TOO_MANY_FILES, f"{s.entries} entries, over the cap of {self.max_files}"
        else:
            return False
        if self.strict:
            raise UnsafeArchive(f"archive member {_shown(name)} takes the extraction past its cap ({what}); raise "
                                "the cap if the result is legitimately this large")
        s.over_cap = True
        self.found[reason] = (b"", _cap_problem(reason))
        return True

    def check(self, clean: str, name: str) -> bool:
        """Check a member's name: False (and a problem remembered) when it may not be extracted."""
        parts = clean.split("/")
        if clean.startswith("/") or ".." in parts or "\x00" in clean:
            self.refuse(_Refused(OUTPUT_UNSAFE, escape_name(name), f"the archive member {_shown(name)} would be "
                                 "written outside the destination"), clean)
            return False
        size = len(_raw(clean))
        if len(parts) > self.max_depth or size > self.max_path_bytes:
            self.refuse(_Refused(OUTPUT_TOO_DEEP, escape_name(clean), f"the output entry {_shown(clean)} is "
                                 f"{len(parts)} levels deep in a path of {size} bytes, more than the "
                                 f"{self.max_depth} levels and {self.max_path_bytes} bytes allowed"), clean)
            return False
        if OUTPUT_TOO_DEEP in self.found:
            return False  # refused already for a reason stronger than a name: names need no more checks
        why = unsafe_name(clean)
        if why is not None:
            self.refuse(_Refused(OUTPUT_UNSAFE, escape_name(clean), f"the output entry {_shown(clean)} has a name "
                                 f"that is not portable ({why})"), clean)
            return False
        return True

    def other(self, name: str, kind: str) -> bool:
        """An entry the stream does not hold (a holder's tar ignores sockets): counted, checked, listed as skipped."""
        clean = _clean(name)
        if self.over(clean, 0):
            return False
        if self.check(clean, name):
            if self.strict:
                raise UnsafeArchive(f"entry {_shown(clean)} is a {kind}; result archives hold regular files and "
                                    "folders only")
            self.skipped.append((_raw(clean), f"{escape_name(clean)}: {kind}, not copied"))
        return True

    def member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> bool:
        """Extract (or only count) one member; False to stop reading."""
        clean = _clean(member.name)
        if clean in ("", "."):
            if not member.isdir():
                self.refuse(_Refused(OUTPUT_UNSAFE, None, f"the archive member {_shown(member.name)} is not a "
                                     "folder but stands for the destination folder"), "")
            return True
        copy_from: str | None = None
        if member.islnk() and not self.strict and _clean(member.linkname) in self.written:
            copy_from = _clean(member.linkname)  # a second name for a file extracted earlier: copied
        size = self.written[copy_from][0] if copy_from is not None else member.size if member.isfile() else 0
        if self.over(clean, size):
            return False
        if not self.check(clean, member.name):
            return True
        if copy_from is None and not member.isfile() and not member.isdir():
            kind = (f"symbolic link to {_shown(member.linkname)}" if member.issym() else
                    f"hard link to {_shown(member.linkname)}" if member.islnk() else
                    "special file (a fifo)" if member.isfifo() else "special file (a device)" if member.isdev()
                    else "special file")
            if self.strict:
                raise UnsafeArchive(f"archive member {_shown(clean)} is a {kind}; result archives hold regular "
                                    "files and folders only — do not use it")
            self.skipped.append((_raw(clean), f"{escape_name(clean)}: {kind}, not copied"))
            return True
        if not self.found:  # once the output is refused, members are only counted
            try:
                self.write(tar, member, clean, copy_from, size)
            except _Refused as refused:
                self.refuse(refused, clean)
        return True

    def write(self, tar: tarfile.TarFile, member: tarfile.TarInfo, clean: str, copy_from: str | None,
              size: int) -> None:
        if member.isdir():
            self.dirs.enter(clean)
            return
        parent, _, name = clean.rpartition("/")
        if copy_from is not None:
            mode = self.written[copy_from][1]
            source: IO[bytes] | None = os.fdopen(_open_below(self.dirs.fds[0], copy_from), "rb")
        else:
            mode = 0o755 if member.mode & 0o111 else 0o644
            source = tar.extractfile(member)
        if source is None:  # pragma: no cover - isfile() members always have data
            return
        with source:
            parent_fd = self.dirs.enter(parent)
            try:
                fd = os.open(name, _FILE_FLAGS, 0o600, dir_fd=parent_fd)
            except FileExistsError:
                raise _Refused(OUTPUT_UNSAFE, escape_name(clean), f"the archive member {_shown(clean)} appears "
                               "twice or collides with a folder") from None
            try:
                with os.fdopen(fd, "wb", closefd=False) as fh:
                    shutil.copyfileobj(source, fh, _CHUNK)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
        self.written[clean] = (size, mode)
        s = self.stats
        s.files += 1
        s.bytes += size
        s.block_bytes += -(-size // 4096) * 4096

    def finish(self) -> ExtractStats:
        s = self.stats
        s.dirs = self.dirs.created
        s.skipped = [text for _, text in sorted(self.skipped)]
        if s.entries > self.max_files and OUTPUT_TOO_MANY_FILES not in self.found:
            self.found[OUTPUT_TOO_MANY_FILES] = (b"", _cap_problem(OUTPUT_TOO_MANY_FILES))
        s.problem = next((self.found[r][1] for r in OUTPUT_REASONS if r in self.found), None)
        return s


def _open_below(root_fd: int, path: str) -> int:
    """Open the regular file ``path`` below ``root_fd`` for reading, one name at a time, following no link."""
    fds: list[int] = []
    try:
        parent = root_fd
        *folders, name = path.split("/")
        for folder in folders:
            parent = os.open(folder, _DIR_FLAGS, dir_fd=parent)
            fds.append(parent)
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    finally:
        for fd in fds:
            os.close(fd)


def extract_tar(tar: tarfile.TarFile, dest: str | Path, *, max_bytes: int = _DEFAULT_MAX_BYTES,
                max_files: int = _DEFAULT_MAX_FILES, max_depth: int = MAX_DEPTH + 1,
                max_path_bytes: int = MAX_PATH_BYTES + len(OUTPUT_PREFIX) + 1, strict: bool = True,
                others: Iterable[tuple[str, str]] = ()) -> ExtractStats:
    """Extract regular files and folders of ``tar`` (may be a stream, ``r|``) under ``dest`` safely.

    Never creates links or devices and never follows any: every file and folder is made with ``openat``/
    ``mkdirat`` and ``O_NOFOLLOW`` from the descriptor of its parent, so the work is a few system calls per
    member whatever the depth (linear in the number of members). Modes become 0644/0755; owners and times are the
    extracting user's. The defaults of ``max_depth`` and ``max_path_bytes`` fit a result archive (``output/``
    then the output's entries, at most :data:`MAX_DEPTH` levels and :data:`MAX_PATH_BYTES` bytes below it).

    With ``strict`` (a requester unpacking a result: anything an honest worker never publishes is hostile) a
    member escaping ``dest``, a name that is not portable (:func:`unsafe_name`), a member too deep, a link, a
    device, or going over ``max_bytes``/``max_files`` raises :class:`UnsafeArchive`.

    Without it (a worker copying an app's output) nothing the members hold raises: links and specials are
    skipped and listed; an unsafe, too deep or colliding name, or going over a cap, sets ``problem`` (the
    strongest of :data:`oracle.status.OUTPUT_REASONS`; per reason the first entry in byte order). From the first
    problem on nothing more is written, but the members are still counted, so the reason does not depend on
    their order; going over ``max_bytes`` stops the reading at once (``over_cap``: a sparse file may claim
    terabytes), as does going far over ``max_files``. Errors of the destination's own file system (a full disk)
    still raise ``OSError``.

    ``others`` are (name, kind) of entries the output had but the stream does not carry (a holder's tar ignores
    sockets): they are counted against ``max_files``, checked like members and listed as skipped.
    """
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    job = _Extraction(os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), strict, max_bytes, max_files,
                      max_depth, max_path_bytes)
    try:
        if all(job.other(name, kind) for name, kind in others):
            for member in tar:
                if not job.member(tar, member):
                    break
    finally:
        job.dirs.close()
        os.close(job.dirs.fds[0])
    return job.finish()


def unpack_result(archive: str | Path, dest: str | Path, *, max_bytes: int = _DEFAULT_MAX_BYTES,
                  max_files: int = _DEFAULT_MAX_FILES) -> ExtractStats:
    """Unpack a (decrypted) result archive into ``dest``, refusing what no honest worker publishes: traversal,
    names that are not portable, more than :data:`MAX_DEPTH` levels below ``output/`` (or ``raw/output/`` in a
    canonicalised result, see :mod:`oracle.canonical`), links, devices, oversize (:class:`UnsafeArchive`, naming
    the member with its name escaped)."""
    try:
        with tarfile.open(archive, "r:", encoding="utf-8", errors="surrogateescape") as tar:
            for member in tar:  # raw/output/ is one level deeper than output/: each is held to its own depth
                parts = _clean(member.name).split("/")
                if len(parts) - (parts[0] == "raw") > MAX_DEPTH + 1:
                    raise UnsafeArchive(f"{archive} holds {escape_name(member.name)[:200]!r}, nested deeper than "
                                        f"{MAX_DEPTH} levels below its output folder: no honest worker publishes "
                                        "it; do not use this result")
            return extract_tar(tar, dest, max_bytes=max_bytes, max_files=max_files, strict=True,
                               max_depth=MAX_DEPTH + 2, max_path_bytes=MAX_PATH_BYTES + len("raw/output/"))
    except tarfile.TarError as exc:
        raise ArchiveError(f"{archive} is not a valid result archive ({exc}); was it decrypted first?") from exc


def open_tar_stream(stream: IO[bytes]) -> tarfile.TarFile:
    """A streaming (``r|``) reader over ``stream``, for :func:`extract_tar` (names decoded as UTF-8, other bytes
    kept as surrogates so that they can be told apart and escaped)."""
    return tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape")


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
