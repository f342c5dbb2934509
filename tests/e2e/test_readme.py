"""README.md, run as written: every command of the ```sh blocks of "Using it, by role" and "The embedded
devnet" is run as a real process, so the README and the CLI cannot drift apart.

How a block is read: one command a line (a line ending in ``\\`` continues on the next), ``# comments``
dropped, ``a && b`` run as two commands (the second only if the first exits 0), ``NAME=value`` before a
command set for that command, ``export NAME=value`` set for the commands after it. Any other shell syntax
(pipes, redirections, ``;``, ``$``, subshells) fails the test: write the README so a user can paste it.
``tasknet`` is the venv's (its ``bin`` comes first on PATH); the commands run in a temporary folder that
links the repository's top-level entries (``examples``, ``.venv``...), as in a clone, so ``./frames``,
``worker.toml`` and keystores are written there; ``TASKNET_HOME`` is a private temporary folder.

Every command must exit 0. The daemons (``tasknet worker run``, ``relayer run``, ``indexer run|serve``, and a
static file server ``python3 -m http.server [PORT]``) are started in the background, waited for until ready (a
server's port accepting connections, a worker's ``worker_started`` log line) and must still be running at the
end, when they get SIGTERM (the file server SIGINT, its Ctrl-C) (latest started first) and must exit 0.
tests/e2e/test_dapp_readme.py reads examples/dapp/README.md with the same functions.

Order (each block's commands in README order; blocks in README order within a step):
  1. the devnet block, all but ``tasknet down``: ``tasknet up`` brings up a devnet of our own;
  2. the blocks that start worker or relayer daemons: the resource providers' (worker-1, and the settings-file
     worker: worker-3), then the relayer's (the relayer and the relayed worker-2), so they are up when
  3. the other role blocks run: the requester's (build, register, submit, ``job watch``, get and verify
     results), then the auditors' (the indexer, ``tasknet audit job 1``);
  4. the daemons are stopped, then the devnet block's ``tasknet down``, always (in a ``finally``), after which
     no process, devnet file or sandbox container of this test is left.

About 95 s on 2 cores (the requester's 24 frames × 2 replicas take ~35 s of it), plus ~50 s the first time
``tasknet image base --povray`` builds the POV-Ray base image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SECTIONS = ("Using it, by role", "The embedded devnet")
VENV_BIN = Path(sys.executable).parent
#: commands that serve until stopped: started in the background
DAEMONS = {("worker", "run"), ("relayer", "run"), ("indexer", "run"), ("indexer", "serve")}
#: daemons whose blocks must run before the others (they serve the requester's job)
SERVING = {("worker", "run"), ("relayer", "run")}
COMMAND_TIMEOUT = 300.0  # seconds a foreground command may take (job watch included)
READY_TIMEOUT = 90.0  # seconds a daemon may take to be ready
STOP_TIMEOUT = 90.0  # seconds a daemon may take to drain and exit after SIGTERM
PORT_WAIT = 180.0  # seconds to wait for a port the README names (8545...) that another program holds
UNSUPPORTED = {"|", "||", ";", "&", ">", ">>", "<", "(", ")", "<<", ">&", "&>", "|&"}


# -- reading the README ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Command:
    text: str  # as written in the README (one part of an && chain)
    argv: list[str]
    env: dict[str, str]  # NAME=value before the command
    line: int  # README line number
    block: int  # index of its block in the README
    export: bool = False  # an `export NAME=value` line
    source: str = "README.md"  # the file it was read from, as its messages name it

    @property
    def words(self) -> tuple[str, ...]:
        """The tasknet sub-command words (``("worker", "run")``), or () for another program."""
        if not self.argv or Path(self.argv[0]).name != "tasknet":
            return ()
        return tuple(a for a in self.argv[1:] if not a.startswith("-"))[:2]

    @property
    def serves_files(self) -> int | None:
        """The port of a static file server, ``python3 -m http.server [options] [PORT]`` (8000 by default), or
        None for another command."""
        if len(self.argv) < 3 or not Path(self.argv[0]).name.startswith("python") or \
                self.argv[1:3] != ["-m", "http.server"]:
            return None
        args, port = self.argv[3:], 8000
        while args:
            arg = args.pop(0)
            if arg in ("-d", "--directory", "-b", "--bind", "--protocol"):
                args = args[1:]
            elif arg.isdigit():
                port = int(arg)
        return port

    @property
    def is_daemon(self) -> bool:
        return self.words in DAEMONS or self.serves_files is not None

    def __str__(self) -> str:
        return f"{self.source} line {self.line}: `{self.text}`"


@dataclasses.dataclass
class Block:
    section: str
    index: int
    commands: list[Command]

    @property
    def serving(self) -> bool:
        return any(c.words in SERVING for c in self.commands)


def readme_blocks(text: str, sections: tuple[str, ...] = SECTIONS, source: str = "README.md") -> list[Block]:
    """The ```sh blocks of the README's ``sections`` (``## `` headings), parsed into commands."""
    blocks: list[Block] = []
    section = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        if line.strip() == "```sh" and section in sections:
            start = i + 1
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            blocks.append(Block(section, len(blocks), parse_block(lines[start:i], start + 1, len(blocks), source)))
        i += 1
    return blocks


def python_blocks(text: str, sections: tuple[str, ...] = SECTIONS) -> list[tuple[int, str]]:
    """The ```python blocks of the README's ``sections``: (first line number, code)."""
    out: list[tuple[int, str]] = []
    section = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("## "):
            section = line[3:].strip()
        if line.strip() == "```python" and section in sections:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            out.append((i + 2, "\n".join(lines[i + 1:end]) + "\n"))
    return out


def parse_block(lines: list[str], first_line: int, block: int, source: str = "README.md") -> list[Command]:
    commands: list[Command] = []
    pending, at = "", first_line
    for n, raw in enumerate(lines, first_line):
        if not pending:
            at = n
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1].strip() + " "
            continue
        commands += parse_line(pending + raw.strip(), at, block, source)
        pending = ""
    assert not pending, f"{source} line {at}: a command continues past the end of its block"
    return commands


def parse_line(line: str, number: int, block: int, source: str = "README.md") -> list[Command]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    tokens = list(lexer)
    parts: list[list[str]] = [[]]
    for tok in tokens:
        if tok == "&&":
            parts.append([])
        elif tok in UNSUPPORTED or "$" in tok or "`" in tok:
            raise AssertionError(f"{source} line {number}: `{line.strip()}` uses shell syntax ({tok!r}) that this "
                                 "test does not run; keep the README's commands plain (see the test's docstring)")
        else:
            parts[-1].append(tok)
    texts = [t.strip() for t in line.split("#", 1)[0].split("&&")] if "#" in line else \
        [t.strip() for t in line.split("&&")]
    out: list[Command] = []
    for k, words in enumerate(parts):
        if not words:
            if len(parts) > 1:
                raise AssertionError(f"{source} line {number}: an empty command in `{line.strip()}`")
            continue
        export = words[0] == "export"
        if export:
            words = words[1:]
        env: dict[str, str] = {}
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        if export and words:
            raise AssertionError(f"{source} line {number}: `export` takes NAME=value only")
        text = texts[k] if k < len(texts) else " ".join(words)
        out.append(Command(text=text, argv=words, env=env, line=number, block=block, export=export, source=source))
    return out


def plan(blocks: list[Block]) -> tuple[list[Command], list[Command]]:
    """The commands in the order they run, and the devnet's ``tasknet down`` (run last, always)."""
    devnet = [b for b in blocks if b.section == "The embedded devnet"]
    roles = [b for b in blocks if b.section != "The embedded devnet"]
    downs = [c for b in devnet for c in b.commands if c.words[:1] == ("down",)]
    first = [c for b in devnet for c in b.commands if c.words[:1] != ("down",)]
    ordered = [b for b in roles if b.serving] + [b for b in roles if not b.serving]
    return first + [c for b in ordered for c in b.commands], downs


# -- running it ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Daemon:
    command: Command
    proc: subprocess.Popen[bytes]
    log: Path


class Runner:
    """Runs README commands in ``cwd`` with ``env``; keeps each command's output in ``logs``."""

    def __init__(self, cwd: Path, env: dict[str, str], logs: Path) -> None:
        self.cwd, self.env, self.logs = cwd, env, logs
        self.daemons: list[Daemon] = []
        self.count = 0

    def _log_path(self, cmd: Command) -> Path:
        self.count += 1
        name = re.sub(r"[^A-Za-z0-9]+", "-", " ".join(cmd.argv[:4]))[:60].strip("-")
        return self.logs / f"{self.count:02d}-{name}.log"

    def run(self, cmd: Command) -> None:
        if cmd.export:
            self.env.update(cmd.env)
            return
        if cmd.is_daemon:
            self.start(cmd)
            return
        log = self._log_path(cmd)
        t0 = time.monotonic()
        with log.open("wb") as fh:
            try:
                rc = subprocess.run(cmd.argv, cwd=self.cwd, env={**self.env, **cmd.env}, stdout=fh,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT,
                                    check=False).returncode
            except subprocess.TimeoutExpired:
                pytest.fail(f"{cmd} did not finish within {COMMAND_TIMEOUT:.0f} s; its output ends with:\n"
                            f"{tail(log)}{self.daemon_tails()}", pytrace=False)
        print(f"[{time.monotonic() - t0:6.1f} s] {cmd.text}")
        if rc != 0:
            pytest.fail(f"{cmd} exited {rc}; its output ends with:\n{tail(log)}{self.daemon_tails()}",
                        pytrace=False)

    def run_python(self, line: int, code: str) -> str:
        """Run a README python block as a script of its own, in a folder of its own (``sdk-LINE``); its output."""
        where = self.cwd / f"sdk-{line}"
        where.mkdir()
        script = where / "readme_block.py"
        script.write_text(code)
        t0 = time.monotonic()
        try:
            proc = subprocess.run([str(VENV_BIN / "python"), str(script)], cwd=where, env=self.env, text=True,
                                  capture_output=True, stdin=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            pytest.fail(f"README.md:{line}: the python block did not finish within {COMMAND_TIMEOUT:.0f} s"
                        f"{self.daemon_tails()}", pytrace=False)
        print(f"[{time.monotonic() - t0:6.1f} s] README.md:{line} (python)")
        if proc.returncode != 0:
            pytest.fail(f"README.md:{line}: the python block exited {proc.returncode}:\n{proc.stdout[-3000:]}"
                        f"{proc.stderr[-3000:]}{self.daemon_tails()}", pytrace=False)
        return proc.stdout

    def start(self, cmd: Command) -> None:
        log = self._log_path(cmd)
        env = {**self.env, **cmd.env, "TASKNET_DIE_WITH_PARENT": str(os.getpid())}  # never outlive the test
        with log.open("wb") as fh:
            proc = subprocess.Popen(cmd.argv, cwd=self.cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_ctrl_c_default)
        daemon = Daemon(cmd, proc, log)
        self.daemons.append(daemon)
        t0 = time.monotonic()
        port = listens_on(cmd)
        while not (port_open(port) if port else "worker_started" in log.read_text(errors="replace")):
            if proc.poll() is not None:
                pytest.fail(f"{cmd} (a daemon) exited {proc.returncode} while starting; its output ends with:\n"
                            f"{tail(log)}", pytrace=False)
            if time.monotonic() - t0 > READY_TIMEOUT:
                pytest.fail(f"{cmd} (a daemon) was not ready within {READY_TIMEOUT:.0f} s; its output ends "
                            f"with:\n{tail(log)}", pytrace=False)
            time.sleep(0.2)
        print(f"[{time.monotonic() - t0:6.1f} s] {cmd.text} (in the background, ready)")

    def check_daemons(self) -> None:
        for d in self.daemons:
            if d.proc.poll() is not None:
                pytest.fail(f"{d.command} (a daemon) exited {d.proc.returncode} before the end; its output ends "
                            f"with:\n{tail(d.log)}", pytrace=False)

    def stop_daemons(self) -> list[str]:
        """SIGTERM each daemon, latest started first, and wait; return what went wrong (killed, exit code)."""
        problems = []
        for d in reversed(self.daemons):
            if d.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):  # a file server stops on Ctrl-C, exit 0
                    d.proc.send_signal(signal.SIGINT if d.command.serves_files else signal.SIGTERM)
                try:
                    d.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(d.proc.pid, signal.SIGKILL)
                    d.proc.wait(10)
                    problems.append(f"{d.command} did not stop within {STOP_TIMEOUT:.0f} s of SIGTERM (killed); "
                                    f"its output ends with:\n{tail(d.log)}")
                    continue
            if d.proc.returncode != 0:
                problems.append(f"{d.command} (a daemon) exited {d.proc.returncode}; its output ends with:\n"
                                f"{tail(d.log)}")
        self.daemons.clear()
        return problems

    def daemon_tails(self) -> str:
        return "".join(f"\n--- {d.command} (running in the background) ends with:\n{tail(d.log, 8)}"
                       for d in self.daemons)


def _ctrl_c_default() -> None:
    """In the daemon's child, before exec: Ctrl-C (SIGINT) back to its default. A test run started in the
    background by a non-interactive shell (CI: `cmd &`) inherits SIGINT ignored, and a Python started with SIGINT
    ignored never raises KeyboardInterrupt: the file server would not stop on its Ctrl-C (seen once in CI)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def tail(log: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a command's output, each cut at 400 characters."""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(line if len(line) <= 400 else line[:400] + "…" for line in text)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def cli_params(cmd: Command) -> dict[str, Any]:
    """The options of a ``tasknet`` command as the CLI itself parses them (defaults included)."""
    from tasknet.cli import cli

    command: Any = cli
    name, args = "tasknet", cmd.argv[1:]
    while isinstance(command, click.Group):
        while args and args[0].startswith("-"):  # the group's own flags (-v, --json-logs)
            args = args[1:]
        name, command, args = command.resolve_command(click.Context(command), args)
    params: dict[str, Any] = command.make_context(name, list(args), resilient_parsing=True).params
    return params


def listens_on(cmd: Command) -> int | None:
    """The port a ``tasknet`` daemon or ``tasknet up`` listens on (``--port``, ``--rpc-port`` or their
    default), or a static file server's, else None."""
    if cmd.serves_files is not None:
        return cmd.serves_files
    if not (cmd.is_daemon or cmd.words[:1] == ("up",)):
        return None
    params = cli_params(cmd)
    port = params.get("port") or params.get("rpc_port")
    return int(port) if port else None


def wait_for_ports(ports: set[int]) -> None:
    deadline = time.monotonic() + PORT_WAIT
    while busy := sorted(p for p in ports if port_open(p)):
        if time.monotonic() > deadline:
            pytest.fail(f"port(s) {busy} on 127.0.0.1 stayed in use by another program for {PORT_WAIT:.0f} s; "
                        "the README's commands listen there", pytrace=False)
        time.sleep(2)


def workspace(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A working folder that looks like a clone (links to the repository's entries) and the environment."""
    cwd = tmp_path / "clone"
    cwd.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in (".git",):
            (cwd / entry.name).symlink_to(entry)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKNET_")}
    env.update(TASKNET_HOME=str(tmp_path / "home"), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
               COLUMNS="200")
    return cwd, env


def sandbox_leftovers(home: Path, devnet_accounts: list[str]) -> list[Any]:
    """Containers and volumes in the engine labelled as a sandbox of a worker of this test (any devnet
    account, any state folder under ``home`` or named by a settings file there)."""
    import docker

    from worker._sandbox import sandbox_owner

    folders = {p for p in home.glob("devnet/workers/*") if p.is_dir()}
    owners = {sandbox_owner(a, f) for a in devnet_accounts for f in folders}
    client = docker.from_env()
    try:
        found: list[Any] = []
        for owner in owners:
            selector = {"label": f"tasknet.sandbox={owner}"}
            found += client.containers.list(all=True, filters=selector)
            found += client.volumes.list(filters=selector)
        return found
    finally:
        client.close()


# -- the tests -------------------------------------------------------------------------------------------
def test_readme_blocks_parse_into_plain_commands_in_a_runnable_order() -> None:
    """Every role block and the devnet block parse; up runs first, the serving daemons before job watch,
    down last."""
    blocks = readme_blocks(README.read_text())
    assert {b.section for b in blocks} == set(SECTIONS) and all(b.commands for b in blocks)
    commands, downs = plan(blocks)
    assert commands[0].words == ("up",) and [c.words for c in downs] == [("down",)]
    words = [c.words for c in commands]
    assert words.index(("job", "watch")) > max(i for i, w in enumerate(words) if w in SERVING)
    result_get = next(c for c in commands if c.words == ("result", "get"))
    assert result_get.argv[1:] == ["result", "get", "1", "./frames"]  # issue #13: as a user types it


def test_a_failing_command_fails_the_test_with_its_line_exit_code_and_output(tmp_path: Path) -> None:
    """What a README line that no longer works looks like: its line, its exit code, the tail of its output."""
    (cmd,) = parse_line("tasknet result get 1 --out  # a user's typo", 7, 0)
    cwd, env = workspace(tmp_path)
    with pytest.raises(pytest.fail.Exception) as failed:
        Runner(cwd, env, tmp_path).run(cmd)
    text = str(failed.value)
    assert text.startswith("README.md line 7: `tasknet result get 1 --out` exited 2;") and "requires an argument" in text
    with pytest.raises(AssertionError, match="line 3: .* uses shell syntax"):
        parse_line("tasknet job list | head", 3, 0)


def test_every_readme_command_runs_as_written(tmp_path: Path, docker_client: Any) -> None:
    commands, downs = plan(readme_blocks(README.read_text()))
    wait_for_ports({p for c in commands if (p := listens_on(c))})
    logs = tmp_path / "logs"
    logs.mkdir()
    t0 = time.monotonic()
    cwd, env = workspace(tmp_path)
    runner = Runner(cwd, env, logs)
    home = Path(env["TASKNET_HOME"])
    devnet_file = home / "devnet" / "devnet.json"
    accounts: list[str] = []
    try:
        for cmd in commands:
            runner.run(cmd)
            if not accounts and devnet_file.exists():
                accounts = [a["address"] for a in json.loads(devnet_file.read_text())["accounts"]]
            runner.check_daemons()
        # the SDK block: the same job from Python, against the same devnet and workers
        (line, code), = python_blocks(README.read_text())
        printed = runner.run_python(line, code).splitlines()
        assert any(p.startswith(("ResultRevealed ", "TaskFinalized ")) for p in printed), printed[-20:]
        frames = sorted((cwd / f"sdk-{line}" / "frames").rglob("frame.bmp"))
        assert len(frames) == 24, f"the SDK block downloaded {len(frames)} frames: {frames[:5]}"
        runner.check_daemons()
    finally:
        problems = clean_up(runner, downs, home, accounts)
        print(f"README run in {time.monotonic() - t0:.0f} s", *problems, sep="\n\n")  # shown on a failure
    assert not problems, "\n\n".join(problems)


def clean_up(runner: Runner, downs: list[Command], home: Path, accounts: list[str]) -> list[str]:
    """Stop the daemons, run ``tasknet down``, remove what the workers left in the engine; return what was
    wrong."""
    problems = runner.stop_daemons()
    for cmd in downs or [Command("tasknet down", ["tasknet", "down"], {}, 0, 0)]:
        try:
            runner.run(cmd)
        except BaseException as exc:  # noqa: BLE001 - pytest.fail: reported with the rest
            problems.append(str(exc))
    devnet_file = home / "devnet" / "devnet.json"
    if devnet_file.exists():
        problems.append(f"the devnet file {devnet_file} is still there after `tasknet down`")
    left = sandbox_leftovers(home, accounts) if accounts else []
    for thing in left:
        with contextlib.suppress(Exception):
            thing.remove(force=True)
    if left:
        problems.append(f"{len(left)} sandbox container(s)/volume(s) of this test's workers were left in the engine "
                        "(removed now)")
    return problems
