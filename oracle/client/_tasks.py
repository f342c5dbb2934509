"""Bags of tasks from files, and the inputs document a job points to (local files uploaded to IPFS).

Per-task arguments files:

* ``.json``: a list; each item is a list of arguments, or ``{"args": [...], "inputs": {"path": "file-or-uri"},
  "env": {...}}``;
* ``.csv``: a header row, then one task per row; column ``args`` is split like a shell line, columns ``arg1``,
  ``arg2``... are single arguments in that order, ``in:PATH`` columns name an input file placed at ``/in/PATH``
  and ``env:NAME`` columns set environment variables;
* anything else (``.txt``): one task per non-empty line (``#`` starts a comment), split like a shell line.

Relative input paths are resolved against the arguments file's folder.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shlex
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..exceptions import InvalidJobSpec
from ..ipfs import IpfsClient
from ..models import SAFE_PATH_RE, InputRef, InputsDocument, TaskSpec, is_cid
from ._models import TaskInput

Progress = Callable[[str, int], None]  # (what, bytes) after each upload


def load_tasks(path: str | Path) -> list[TaskInput]:
    """Read a per-task arguments file (JSON, CSV or text); raise :class:`InvalidJobSpec` with the line."""
    p = Path(path)
    if not p.is_file():
        raise InvalidJobSpec(f"arguments file {p} does not exist; pass a .json, .csv or .txt file with one task "
                             "per entry")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidJobSpec(f"cannot read arguments file {p} ({exc}); it must be UTF-8 text") from exc
    suffix = p.suffix.lower()
    tasks = _from_json(p, text) if suffix == ".json" else _from_csv(p, text) if suffix == ".csv" else \
        _from_lines(p, text)
    if not tasks:
        raise InvalidJobSpec(f"arguments file {p} holds no task; add at least one entry")
    base = p.resolve().parent
    for t in tasks:
        t.inputs = {k: _resolve(v, base) for k, v in t.inputs.items()}
    return tasks


def _resolve(value: str, base: Path) -> str:
    if value.startswith(("ipfs://", "http://", "https://")):
        return value
    q = Path(value).expanduser()
    return str(q if q.is_absolute() else base / q)


def _from_json(p: Path, text: str) -> list[TaskInput]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidJobSpec(f"{p} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if not isinstance(data, list):
        raise InvalidJobSpec(f"{p} must hold a JSON list of tasks (each a list of arguments or an object with "
                             f"'args', 'inputs', 'env'), not a {type(data).__name__}")
    out: list[TaskInput] = []
    for i, item in enumerate(data):
        try:
            if isinstance(item, list):
                out.append(TaskInput(args=[_arg(a, p, i) for a in item]))
            elif isinstance(item, dict):
                out.append(TaskInput.model_validate(item))
            else:
                raise InvalidJobSpec(f"{p}: task {i} is a {type(item).__name__}; use a list of arguments or an "
                                     "object with 'args', 'inputs', 'env'")
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InvalidJobSpec(f"{p}: task {i}: {err['msg']} at {'.'.join(map(str, err['loc']))}; expected "
                                 "{'args': [str], 'inputs': {path: file}, 'env': {name: value}}") from exc
    return out


def _arg(value: Any, p: Path, i: int) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidJobSpec(f"{p}: task {i}: argument {value!r} must be a string or a number")
    return str(value)


def _from_csv(p: Path, text: str) -> list[TaskInput]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return []
    header = [h.strip() for h in header]
    known = [h for h in header if h == "args" or h.startswith(("arg", "in:", "env:"))]
    if len(known) != len(header):
        bad = [h for h in header if h not in known]
        raise InvalidJobSpec(f"{p}: unknown CSV columns {bad}; use 'args', 'arg1'.., 'in:PATH' (input file put at "
                             "/in/PATH) and 'env:NAME'")
    out: list[TaskInput] = []
    for row in reader:
        if not any(c.strip() for c in row):
            continue
        line = reader.line_num
        if len(row) != len(header):
            raise InvalidJobSpec(f"{p} line {line}: {len(row)} fields, the header has {len(header)}")
        t = TaskInput()
        for name, cell in zip(header, row, strict=True):
            if name == "args":
                t.args += _split(cell, p, line)
            elif name.startswith("in:"):
                if cell.strip():
                    t.inputs[name[3:]] = cell.strip()
            elif name.startswith("env:"):
                t.env[name[4:]] = cell
            else:
                t.args.append(cell)
        out.append(t)
    return out


def _split(line: str, p: Path, n: int) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise InvalidJobSpec(f"{p} line {n}: cannot split {line.strip()!r} into arguments ({exc}); check quotes"
                             ) from exc


def _from_lines(p: Path, text: str) -> list[TaskInput]:
    out: list[TaskInput] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        out.append(TaskInput(args=_split(line, p, n)))
    return out


# -- the inputs document -------------------------------------------------------------------------------
def check_inputs(tasks: list[TaskInput], common: dict[str, str]) -> list[Path]:
    """Validate every input (safe /in path, existing local file or valid URI) before anything is uploaded."""
    local: list[Path] = []
    entries = [("common inputs", k, v) for k, v in common.items()]
    entries += [(f"task {i}", k, v) for i, t in enumerate(tasks) for k, v in t.inputs.items()]
    for where, dest, source in entries:
        if not SAFE_PATH_RE.fullmatch(dest):
            raise InvalidJobSpec(f"{where}: {dest!r} is not a safe path under /in (letters, digits, . _ - /; no "
                                 "'..', no leading '/')")
        if source.startswith(("ipfs://", "http://", "https://")):
            try:
                InputRef(uri=source, path=dest, size=None)
            except ValidationError as exc:
                raise InvalidJobSpec(f"{where}: {exc.errors()[0]['msg']}") from exc
            continue
        f = Path(source)
        if not f.is_file():
            raise InvalidJobSpec(f"{where}: input file {f} does not exist (for /in/{dest}); fix the path or give "
                                 "an ipfs://CID or https://...#sha256=HEX URI")
        local.append(f)
    return local


def build_inputs(ipfs: IpfsClient, tasks: list[TaskInput] | None, count: int | None, template_args: list[str],
                 common: dict[str, str], extra_common: list[InputRef], progress: Progress | None = None
                 ) -> tuple[InputsDocument, str]:
    """Upload local input files (each once), write the inputs document to IPFS; return it and its CID."""
    uploaded: dict[Path, InputRef] = {}

    def ref(dest: str, source: str) -> InputRef:
        if source.startswith(("ipfs://", "http://", "https://")):
            return InputRef(uri=source, path=dest, size=None)
        f = Path(source).resolve()
        if f not in uploaded:
            cid = ipfs.add_file(f)
            size = f.stat().st_size
            uploaded[f] = InputRef(uri=f"ipfs://{cid}", path=dest, size=size)
            if progress is not None:
                progress(f.name, size)
        return InputRef(uri=uploaded[f].uri, path=dest, size=uploaded[f].size)

    commons = extra_common + [ref(k, v) for k, v in common.items()]
    try:
        if tasks is not None:
            doc = InputsDocument(tasks=[TaskSpec(args=t.args, env=t.env, inputs=[ref(k, v) for k, v in t.inputs.items()])
                                        for t in tasks], common_inputs=commons, count=None)
        else:
            doc = InputsDocument(count=count or 1, template=TaskSpec(args=template_args), common_inputs=commons,
                                 tasks=None)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidJobSpec(f"the inputs document is invalid: {err['msg']} at {'.'.join(map(str, err['loc']))}"
                             ) from exc
    cid = ipfs.add_json(doc.model_dump(mode="json", exclude_none=True))
    return doc, cid


# -- datasets --------------------------------------------------------------------------------------------
def pack_folder(folder: Path, dest: Path) -> int:
    """A canonical tar of ``folder`` (sorted names, mtime 0, uid 0, fixed modes; regular files and folders only).

    Returns the number of files. The same folder gives the same bytes on every machine, hence the same CID.
    """
    files = 0
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, names in os.walk(folder):
            dirs.sort()
            rel_root = Path(root).relative_to(folder)
            for name in sorted(dirs) + sorted(names):
                path = Path(root) / name
                st = path.lstat()
                info = tarfile.TarInfo(str(rel_root / name) if str(rel_root) != "." else name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if stat.S_ISDIR(st.st_mode):
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                elif stat.S_ISREG(st.st_mode):
                    info.size, info.mode = st.st_size, 0o755 if st.st_mode & 0o111 else 0o644
                    with path.open("rb") as fh:
                        tar.addfile(info, fh)
                    files += 1
    return files


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def cid_or_none(value: str) -> str | None:
    v = value.removeprefix("ipfs://")
    return v if is_cid(v) else None
