"""Off-chain documents shared by requesters and workers (pydantic): the inputs document of a job, the app
metadata document, and the result manifest. They live on IPFS; the chain holds their CIDs."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from .protocol import JobId

CID_RE = re.compile(r"^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{58,})$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
SAFE_PATH_RE = re.compile(r"^(?!/)(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._/-]{1,200}$")

MAX_TASKS_PER_DOC = 100_000
MAX_ARGS = 64
MAX_ARG_LEN = 4096


def is_cid(value: str) -> bool:
    return bool(CID_RE.fullmatch(value))


class InputRef(BaseModel):
    """One input file of a task: where it comes from, and where the app sees it under ``/in``."""

    uri: str = Field(description="ipfs://CID, or http(s)://...#sha256=HEX")
    path: str = Field(description="relative path under /in")
    size: int | None = Field(None, ge=0, description="expected size in bytes, if known")

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        if v.startswith("ipfs://"):
            if not is_cid(v.removeprefix("ipfs://")):
                raise ValueError(f"{v!r} is not ipfs://<CID>")
            return v
        if v.startswith(("http://", "https://")):
            frag = v.partition("#")[2]
            if not frag.startswith("sha256=") or not SHA256_RE.fullmatch(frag.removeprefix("sha256=")):
                raise ValueError(f"{v!r}: an http(s) input needs '#sha256=<64 lowercase hex>' so it can be verified")
            return v
        raise ValueError(f"{v!r}: inputs must be ipfs://CID or http(s)://...#sha256=HEX")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not SAFE_PATH_RE.fullmatch(v):
            raise ValueError(f"{v!r} is not a safe relative path (letters, digits, . _ - /; no '..', no leading '/')")
        return v

    @property
    def cache_key(self) -> str:
        if self.uri.startswith("ipfs://"):
            return self.uri.removeprefix("ipfs://")
        return "sha256:" + self.uri.partition("#sha256=")[2]


class TaskSpec(BaseModel):
    args: list[str] = Field(default_factory=list, max_length=MAX_ARGS)
    inputs: list[InputRef] = Field(default_factory=list, max_length=256)
    env: dict[str, str] = Field(default_factory=dict, max_length=64)

    @field_validator("args")
    @classmethod
    def _args(cls, v: list[str]) -> list[str]:
        for a in v:
            if len(a) > MAX_ARG_LEN or "\0" in a:
                raise ValueError(f"argument too long or contains NUL: {a[:40]!r}...")
        return v


class InputsDocument(BaseModel):
    """The job's inputs, on IPFS. Either an explicit ``tasks`` list, or ``count`` tasks from a template whose
    ``{index}`` placeholders are replaced by the task index (so a bag of 10,000 is a few bytes)."""

    version: Literal[1] = 1
    tasks: list[TaskSpec] | None = Field(None, max_length=MAX_TASKS_PER_DOC)
    count: int | None = Field(None, ge=1, le=MAX_TASKS_PER_DOC)
    template: TaskSpec | None = None
    common_inputs: list[InputRef] = Field(default_factory=list, max_length=256,
                                          description="inputs every task gets (e.g. a scene file)")

    @model_validator(mode="after")
    def _one_form(self) -> InputsDocument:
        if (self.tasks is None) == (self.count is None):
            raise ValueError("give either 'tasks' (a list) or 'count' with a 'template', not both or neither")
        if self.count is not None and self.template is None:
            raise ValueError("'count' needs a 'template'")
        if self.tasks is not None and not self.tasks:
            raise ValueError("'tasks' is empty: a job needs at least one task")
        return self

    @property
    def task_count(self) -> int:
        return len(self.tasks) if self.tasks is not None else int(self.count or 0)

    def largest_inputs(self) -> tuple[int, int]:
        """The announced sizes a worker must accept to run any task of the job: (the largest single input, the
        largest total of one task's inputs), counting inputs of unknown size as 0."""
        per_task = [t.inputs for t in (self.tasks if self.tasks is not None else [self.template] if self.template
                                       else [])]
        sizes = [r.size or 0 for r in self.common_inputs] + [r.size or 0 for refs in per_task for r in refs]
        common = sum(r.size or 0 for r in self.common_inputs)
        totals = [common + sum(r.size or 0 for r in refs) for refs in per_task] or [common]
        return max(sizes, default=0), max(totals)

    def task(self, index: int) -> TaskSpec:
        """The spec of task ``index`` with the common inputs included."""
        if not 0 <= index < self.task_count:
            raise IndexError(f"task index {index} out of range (the job has {self.task_count} tasks)")
        if self.tasks is not None:
            spec = self.tasks[index]
        else:
            assert self.template is not None
            t = self.template
            spec = TaskSpec(args=[a.replace("{index}", str(index)) for a in t.args], inputs=t.inputs,
                            env={k: v.replace("{index}", str(index)) for k, v in t.env.items()})
        return TaskSpec(args=spec.args, inputs=[*self.common_inputs, *spec.inputs], env=spec.env)


class AppMetadata(BaseModel):
    """The app's metadata document (its URI is registered on chain)."""

    name: str
    description: str = ""
    image: str = Field(description="OCI reference, e.g. 127.0.0.1:5000/tasknet/povray@sha256:...")
    image_archive_cid: str | None = Field(None, description="optional `docker save` archive on IPFS")
    command: list[str] = Field(default_factory=list, description="overrides the image's entrypoint/cmd if set")
    deterministic_file: str | None = Field(None, description="path under /out whose sha256 is the result digest")
    category: str | None = None


class ResultManifest(BaseModel):
    """Stored inside each result archive as ``tasknet-result.json``."""

    job_id: JobId
    task_index: int
    worker: str
    exit_code: int
    reason: str
    digest: str
    deterministic_file: str | None = None
    encrypted: bool = False
