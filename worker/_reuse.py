"""Reused task containers: a job's tasks run one after another in one long-lived container (issue #17).

Starting a confined container that joins a slot's network namespace costs this machine about 130 ms of CPU
(runc, the shim, the seccomp filter, the cgroups; measured with a confined ``true``), a ``docker exec`` in a running
one about 56 ms, a line to a process already running in it about 1.5 ms. So the sandbox keeps, beside each output
slot, one *reused* container per app (same image, same limits, same confinement as a fresh one: see
worker/_sandbox.py) whose own process is a *launcher* that starts each of the app's tasks, of one job or several:
nothing of a task reaches the next (below), whichever job it is of. An idle worker makes them ready for the app it
expects next (``Sandbox.prepare``; worker/_daemon.py, ``_warm_app``).

- **The launcher.** The container's PID 1 is ``busybox sh -c LAUNCHER`` as the app's uid, from a copy of the host's
  static busybox (Debian ``busybox-static``) that the container may execute but not read (:func:`exec_only_busybox`,
  mounted read-only at :data:`TOOLS`; the app's image is not changed). Executing a file it cannot read makes a
  process not dumpable: no process of the app's uid may trace it, read its memory, environment or file descriptors,
  or write its /proc files. As its namespace's init it gets no signal from inside it that it has no handler for
  (SIGKILL and SIGSTOP included), so the app can neither stop nor steer it.
- **A run.** The worker writes the task file (:func:`task_file`: argv and environment, every word quoted) in a
  folder mounted read-only at ``/.tasknet/ctl`` and a fresh nonce on the launcher's stdin (the container's attach
  stream). The launcher resolves the app's argv[0] on the task's ``PATH`` as the engine would (not found is a
  failed start, as for a fresh container) and runs it in a subshell with stdin from /dev/null and the container's
  stdout and stderr, in ``/out``, with the environment a fresh container gives (the image's, then the task's; the
  shell's own PWD and SHLVL are taken back). A task whose environment holds a name the shell cannot export gets a
  fresh container.
- **The end of a run.** Once the app exits, the launcher kills every other process of its uid (``kill -9 -1``,
  until /proc shows none alive), empties ``/tmp``, ``/dev/shm`` and ``/dev/mqueue``, and writes its marker: on stdout
  a line with the nonce, the app's exit status and what it could not clean (entries left, System V IPC objects,
  processes), then ``\n<nonce>\n`` on stderr. No process of the app is alive then, and the nonce was only ever in
  the worker's memory and the launcher's, so the app cannot forge the marker; the worker strips both from the
  task's logs.
- **What is reset, and what discards the container.** Nothing of a task reaches the next: its processes are
  killed, its files in ``/tmp``, ``/dev/shm`` and ``/dev/mqueue`` removed, ``/out`` emptied by the slot's holder,
  ``/in`` and ``/checkpoint`` swapped (below). A container is removed, not reused, when a marker is missing or
  reports anything left (System V IPC objects cannot be removed with busybox: an app that makes them costs a fresh
  container), when the run hit a limit (time, memory, processes) or had to be killed (a stop that the app's SIGTERM
  ends keeps it), and when the worker's checks from this host disagree (next item).
- **Checked from outside too.** After each run the worker reads, on this host, the container's cgroup (a process of
  the app's uid besides the launcher) and the launcher's own state (:func:`process_traits`: what a process of the
  same uid may change in another without tracing it, such as its resource limits, nice value, scheduling or CPU
  affinity, which the next task would inherit). Either discards the container. So reused containers need the
  engine on this host; with an engine elsewhere every run gets a fresh container.
- **Inputs and checkpoints.** ``/in`` is a folder of the container's own (:func:`stage`: hard links to the task's
  inputs, copies across file systems), refilled for each task. ``/checkpoint`` is a folder mounted once; for a
  run, the task's checkpoint folder's entries move into it and it is renamed to the task's folder's path, so the
  worker's checkpoint watch and judge see it where they always do; afterwards the entries move back
  (:class:`CheckpointSwap`, renames on one file system).
- **What an app may notice.** It is not PID 1 of its namespace (its parent is the launcher), so it dies of a
  signal it sends itself or of SIGPIPE where PID 1 would not; its pid depends on what ran before in the
  container. Like the kernel version or the CPU model, an app that writes these makes its replicas disagree.

A worker turns reuse off with ``sandbox_reuse = false`` (TASKNET_WORKER_SANDBOX_REUSE); canonicalise steps and
tasks with GPUs always get a fresh container.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
import shutil
import struct
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from oracle import get_logger

log = get_logger(__name__)

#: where the static busybox is mounted (read-only) in a reused container
TOOLS = "/.tasknet/busybox"
#: the host's static busybox (Debian busybox-static), the one the holder image is built from
HOST_BUSYBOX = Path("/bin/busybox")
#: extra processes a reused container holds (its launcher) and RAM for it, beyond the task's limits
LAUNCHER_PIDS = 1
EXTRA_BYTES = 8 << 20

#: variables the shell exports by itself (PWD, SHLVL) or may: the launcher unsets them and gives back the values the
#: task's own environment has (:func:`shell_variables`), so the app sees the environment a fresh container gives
SHELL_SET = ("PWD", "SHLVL", "OLDPWD")
#: the lookup of the app's argv[0] (``_tnw_a``) on the search path ``_tnw_P`` as the engine does it: ``_tnw_p`` is the
#: executable found, or empty
_RESOLVE = r"""case $_tnw_a in
*/*) _tnw_p=$_tnw_a ;;
*) _tnw_p=; _tnw_r=$_tnw_P
   while :; do
     _tnw_d=${_tnw_r%%:*}; [ -n "$_tnw_d" ] || _tnw_d=.
     if [ -f "$_tnw_d/$_tnw_a" ] && [ -x "$_tnw_d/$_tnw_a" ]; then _tnw_p=$_tnw_d/$_tnw_a; break; fi
     case $_tnw_r in *:*) _tnw_r=${_tnw_r#*:} ;; *) break ;; esac
   done ;;
esac
"""
#: the shell functions of the clean-up: ``_tnw_alive`` (a live process of the app's uid ``_tnw_u`` other than this
#: shell: zombies hold nothing and are reaped by the launcher's next wait), ``_tnw_any`` (a folder holds an entry)
_FUNCTIONS = r"""while read -r _tnw_k _tnw_u _tnw_w; do [ "$_tnw_k" != "Uid:" ] || break; done < /proc/self/status
_tnw_alive() {
  for _tnw_q in /proc/[0-9]*/status; do
    [ "$_tnw_q" != "/proc/$$/status" ] || continue
    while read -r _tnw_k _tnw_v _tnw_w; do
      [ "$_tnw_k" != "State:" ] || [ "$_tnw_v" != Z ] || break
      [ "$_tnw_k" = "Uid:" ] || continue
      [ "$_tnw_v" != "$_tnw_u" ] || return 0
      break
    done < "$_tnw_q"
  done
  return 1
}
_tnw_any() {
  for _tnw_f in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    if [ -e "$_tnw_f" ] || [ -L "$_tnw_f" ]; then return 0; fi
  done
  return 1
}
"""
#: the clean-up once the app's process exited (exit status ``_tnw_s``, ``_tnw_x`` 1 when it could not start), then
#: the last line on stdout (see :class:`Marker`)
_CLEANUP = r"""_tnw_i=0
kill -9 -1
while _tnw_alive; do _tnw_i=$((_tnw_i+1)); [ "$_tnw_i" -lt 5000 ] || break; kill -9 -1; usleep 1000; done
_tnw_l=0
for _tnw_d in /tmp /dev/shm /dev/mqueue; do
  _tnw_any "$_tnw_d" || continue
  find "$_tnw_d" -mindepth 1 -maxdepth 1 -exec chmod -R u+rwX {} +
  find "$_tnw_d" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
  if _tnw_any "$_tnw_d"; then _tnw_l=$((_tnw_l+1)); fi
done
_tnw_c=0
for _tnw_f in /proc/sysvipc/shm /proc/sysvipc/msg /proc/sysvipc/sem; do
  [ -r "$_tnw_f" ] || continue
  while read -r _tnw_w; do _tnw_c=$((_tnw_c+1)); done < "$_tnw_f"
done
if _tnw_alive; then _tnw_k=1; else _tnw_k=0; fi
printf '\n%s %d %d %d %d %d\n' "$_tnw_n" "$_tnw_s" "$_tnw_x" "$_tnw_l" "$_tnw_c" "$_tnw_k"
"""
#: where a launcher container's task file is mounted (read-only; see :func:`task_file`)
TASK_FILE = "/.tasknet/ctl/task"
#: the launcher (busybox sh as the container's PID 1, the app's uid): for each nonce read on its stdin it reads the
#: task file, runs the app with stdin from /dev/null and the container's stdout and stderr, cleans up, and ends the
#: run with the marker on stdout and ``\n<nonce>\n`` on stderr. The app gets neither its stdin (the worker's
#: commands) nor the saved stderr (fd 3).
LAUNCHER = r"""exec 3>&2 2>/dev/null
trap : INT
""" + _FUNCTIONS + r"""while read -r _tnw_n; do
  _tnw_a=; _tnw_P=${PATH-}
  . """ + TASK_FILE + "\n" + _RESOLVE + r"""  if [ -n "$_tnw_p" ] && [ -f "$_tnw_p" ] && [ -x "$_tnw_p" ]; then
    ( _tnw_run ) </dev/null 2>&3 3>&-; _tnw_s=$?; _tnw_x=0
  else
    _tnw_s=127; _tnw_x=1
  fi
""" + _CLEANUP + r"""  printf '\n%s\n' "$_tnw_n" >&3
done
"""
#: /proc/sysvipc/{shm,msg,sem} each have a header line: three lines when no object is left
_IPC_HEADERS = 3


class Marker(NamedTuple):
    """The launcher's last line of a run on stdout: the app's exit status, whether it could not start, and what was left (folders of
    /tmp, /dev/shm, /dev/mqueue not empty; lines of /proc/sysvipc/*, three headers when no object is left; a process
    of the app's uid)."""

    status: int
    not_found: bool
    entries_left: int
    ipc_lines: int
    processes_left: bool

    @property
    def clean(self) -> bool:
        return self.entries_left == 0 and self.ipc_lines <= _IPC_HEADERS and not self.processes_left


def new_nonce() -> str:
    return "tasknet-" + uuid.uuid4().hex


def split_marker(tail: bytes, nonce: str) -> tuple[Marker | None, int]:
    """The marker at the end of a run's stdout (its last bytes: ``tail``) and its length in bytes, or (None, 0)
    when it is not there (the container stopped before the launcher wrote it)."""
    key = b"\n" + nonce.encode() + b" "
    at = tail.rfind(key)
    if at < 0 or not tail.endswith(b"\n"):
        return None, 0
    fields = tail[at + len(key):].split()
    try:
        status, not_found, left, ipc, procs = (int(x) for x in fields)
    except ValueError:
        return None, 0
    return Marker(status, bool(not_found), left, ipc, bool(procs)), len(tail) - at


def shell_variables(image_env: list[str], env: dict[str, str]) -> list[str]:
    """``NAME=value`` for each of :data:`SHELL_SET` the task's environment holds (the image's, then the run's)."""
    merged = dict(item.split("=", 1) for item in image_env if "=" in item)
    merged.update(env)
    return [f"{name}={merged[name]}" for name in SHELL_SET if name in merged]


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def shell_names(*envs: Mapping[str, str] | list[str]) -> bool:
    """Whether every variable of ``envs`` (dicts, or ``NAME=value`` lists) has a name the launcher's shell can
    export: a task whose environment holds another (Docker allows any) gets a fresh container."""
    for env in envs:
        names = env.keys() if isinstance(env, Mapping) else [item.split("=", 1)[0] for item in env]
        if not all(_NAME.fullmatch(name) for name in names):
            return False
    return True


def task_file(image_env: list[str], env: dict[str, str], argv: list[str]) -> str:
    """The file the launcher reads for a run (shell, every word quoted): ``_tnw_a`` the app's argv[0], ``_tnw_P``
    the path it is looked up on when the task's environment sets one (else the launcher's, the image's), and
    ``_tnw_run``, which the launcher calls in a subshell: the task's environment exported on the image's (less the
    variables the shell sets itself, given back as the task has them), then the app ``exec``'d with its argv[0]."""
    exports = [f"{name}={value}" for name, value in env.items()] + shell_variables(image_env, env)
    lines = [f"_tnw_a={shlex.quote(argv[0])}"]
    if "PATH" in env:
        lines.append(f"_tnw_P={shlex.quote(env['PATH'])}")
    lines += ["_tnw_run() {", "unset PWD SHLVL OLDPWD"]
    if exports:
        lines.append("export " + " ".join(shlex.quote(item) for item in exports))
    lines += [" ".join(['exec -a "$_tnw_a" "$_tnw_p"', *(shlex.quote(a) for a in argv[1:])]), "}", ""]
    return "\n".join(lines)


def stderr_marker(nonce: str) -> bytes:
    """What the launcher writes on stderr once a run is over (after the stdout marker)."""
    return b"\n" + nonce.encode() + b"\n"


def exec_only_busybox(folder: Path, source: Path = HOST_BUSYBOX) -> Path:
    """A copy of the static busybox in ``folder`` that others may execute but not read (mode 0111). A process that
    executes a file it cannot read is not dumpable: no process of the app's uid may trace it or read its memory,
    environment or file descriptors (ptrace access mode), and its /proc files are root's. The launcher and its
    clean-up's applets run from it."""
    target = folder / "busybox"
    if not target.is_file() or target.stat().st_size != source.stat().st_size:
        tmp = folder / f".busybox-{uuid.uuid4().hex[:8]}"
        shutil.copyfile(source, tmp)
        tmp.chmod(0o111)
        os.replace(tmp, target)
    return target


def process_traits(pid: int) -> tuple[str, ...] | None:
    """What another process of the same uid may change in host process ``pid`` without tracing it, read from this
    host's /proc: its resource limits (prlimit), nice value, scheduling policy and priority, CPU and memory-node
    affinity, and I/O priority (None when it is gone). The launcher's are read when its container starts and after
    each run: any change (an app reached the launcher) discards the container."""
    try:
        limits = Path(f"/proc/{pid}/limits").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    if stat[0] == "Z":
        return None
    allowed = [line for line in status if line.startswith(("Cpus_allowed_list:", "Mems_allowed_list:"))]
    # stat fields (from the state, field 3): 19 nice, 40 rt_priority, 41 policy
    return (limits, stat[16], stat[37], stat[38], *allowed, str(_ioprio(pid)))


def _ioprio(pid: int) -> int:
    """``ioprio_get(IOPRIO_WHO_PROCESS, pid)`` (x86-64 and arm64 syscall numbers; -1 elsewhere or on error)."""
    number = {"x86_64": 252, "aarch64": 31}.get(os.uname().machine)
    if number is None:
        return -1
    return int(_libc().syscall(number, 1, pid))


@functools.cache
def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def static_busybox(path: Path = HOST_BUSYBOX) -> bool:
    """Whether ``path`` is a statically linked ELF executable (no program interpreter): it then runs in any image."""
    try:
        with path.open("rb") as fh:
            head = fh.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only
                return False
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))  # 3: PT_INTERP


def resolve_argv(config: dict[str, object], entrypoint: list[str] | None, command: list[str] | None) -> list[str]:
    """The argv a fresh container would run: the image's ENTRYPOINT and CMD merged with the run's, as the engine
    merges them (an entrypoint given drops the image's CMD)."""
    image_ep = [str(x) for x in config.get("Entrypoint") or []]  # type: ignore[attr-defined]
    image_cmd = [str(x) for x in config.get("Cmd") or []]  # type: ignore[attr-defined]
    ep = entrypoint if entrypoint else (image_ep if entrypoint is None else [])
    if command:
        cmd = command
    elif entrypoint:
        cmd = []
    else:
        cmd = image_cmd
    return [*ep, *cmd]


def clear(folder: Path) -> None:
    """Remove what ``folder`` holds (not the folder)."""
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def stage(src: Path, dst: Path) -> None:
    """Make ``dst`` (empty) hold what ``src`` holds: hard links to its files (copies across file systems), its
    folders and links recreated, modes kept."""
    for root, dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        target = dst if rel == "." else dst / rel
        for name in dirs:
            s = os.path.join(root, name)
            if os.path.islink(s):
                os.symlink(os.readlink(s), target / name)
                continue
            (target / name).mkdir()
            os.chmod(target / name, os.stat(s).st_mode & 0o7777)
        for name in files:
            s = os.path.join(root, name)
            if os.path.islink(s):
                os.symlink(os.readlink(s), target / name)
                continue
            try:
                os.link(s, target / name)
            except OSError:
                shutil.copy2(s, target / name)
    os.chmod(dst, os.stat(src).st_mode & 0o7777)


def _move_entries(src: Path, dst: Path) -> None:
    for entry in os.scandir(src):
        os.rename(entry.path, dst / entry.name)


class CheckpointSwap:
    """Puts a task's checkpoint folder into a reused container's mounted one for a run, and back.

    ``mounted`` is the folder the container has at ``/checkpoint``; ``folder`` the task's. :meth:`enter` moves
    ``folder``'s entries into ``mounted`` and renames ``mounted`` to ``folder``'s path; :meth:`leave` moves them
    back into a new folder at ``folder`` and the mounted one home. Renames only: same file system (see
    :func:`same_device`)."""

    def __init__(self, mounted: Path, folder: Path) -> None:
        self.mounted, self.folder = mounted, folder

    def enter(self) -> None:
        _move_entries(self.folder, self.mounted)
        os.rmdir(self.folder)
        os.rename(self.mounted, self.folder)

    def leave(self) -> None:
        fresh = self.mounted.with_name(self.mounted.name + ".back")
        fresh.mkdir()
        os.chmod(fresh, 0o777)
        _move_entries(self.folder, fresh)
        os.rename(self.folder, self.mounted)
        os.rename(fresh, self.folder)


def same_device(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def cgroup_file(container_id: str, controller: str, name: str) -> Path | None:
    """A container's cgroup file on this host (v1 under ``controller``, else v2's unified tree; cgroupfs or systemd
    driver), or None (a remote engine, or no such file)."""
    root = Path("/sys/fs/cgroup")
    for rel in (f"{controller}/docker/{container_id}", f"{controller}/system.slice/docker-{container_id}.scope",
                f"docker/{container_id}", f"system.slice/docker-{container_id}.scope"):
        path = root / rel / name
        if path.is_file():
            return path
    return None


def oom_kills(container_id: str) -> int | None:
    """How many processes the kernel's OOM killer killed in the container's memory cgroup (None: unknown)."""
    return _cgroup_count(container_id, "memory", "memory.oom_control", "oom_kill")


def pids_hits(container_id: str) -> int | None:
    """How many times the container's processes hit its pids limit (a fork refused), from its pids cgroup on this
    host (None: unknown)."""
    return _cgroup_count(container_id, "pids", "pids.events", "max")


def _cgroup_count(container_id: str, controller: str, name: str, key: str) -> int | None:
    """The number on the ``key`` line of the container's cgroup file ``name`` on this host (None: unknown)."""
    path = cgroup_file(container_id, controller, name)
    if path is None:
        return None
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            if line.startswith(key + " "):
                return int(line.split()[1])
    return None


def processes_left(container_id: str, uid: str) -> bool | None:
    """Whether a process of ``uid`` other than the container's own (its PID 1) is left in the container, read from
    this host's cgroup and /proc (None: they cannot be read here). The launcher's own answer says the same; this
    check does not depend on anything in the container."""
    path = cgroup_file(container_id, "pids", "cgroup.procs")
    if path is None:
        return None
    try:
        pids = path.read_text().split()
    except OSError:
        return None
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                          if ":" in line)
            if fields.get("NSpid", "").split()[-1:] == ["1"] or fields.get("State", "").split()[:1] == ["Z"]:
                continue  # the container's own process (a launcher runs as the app's uid), or a dead one
            if fields.get("Uid", "").split()[:1] == [uid]:
                return True
    return False


def child_ns_pid(host_pid: int) -> int | None:
    """The pid, in its container's namespace, of the first live child of host process ``host_pid`` (the launcher's
    app), read from this host's /proc; None when it cannot be seen."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for task in os.listdir(f"/proc/{host_pid}/task"):
            for child in Path(f"/proc/{host_pid}/task/{task}/children").read_text().split():
                fields = dict(line.split(":", 1) for line in Path(f"/proc/{child}/status").read_text().splitlines()
                              if ":" in line)
                if fields.get("State", "").split()[:1] != ["Z"] and "NSpid" in fields:
                    return int(fields["NSpid"].split()[-1])
    return None
