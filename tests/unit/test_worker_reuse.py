"""Reused containers, offline: the launcher's last line, the argv the engine would run, the task file, the
static-busybox check, staging inputs and swapping a checkpoint folder (see worker/_reuse.py). The real runs, on the
Docker engine, are in tests/integration/test_sandbox.py."""

from __future__ import annotations

import os
from pathlib import Path

from worker import _reuse


def test_the_marker_is_the_last_line_and_only_the_nonce_s() -> None:
    nonce = _reuse.new_nonce()
    out = b"app said " + nonce.encode() + b" 1 2 3 4 5\nno newline" + f"\n{nonce} 3 0 0 3 0\n".encode()
    marker, size = _reuse.split_marker(out[-4096:], nonce)
    assert marker == _reuse.Marker(3, False, 0, 3, False) and marker.clean
    assert out[:-size] == b"app said " + nonce.encode() + b" 1 2 3 4 5\nno newline"  # the app's bytes, whole
    assert _reuse.split_marker(b"x\n" + nonce.encode() + b" 0 0 0 3 0", nonce) == (None, 0)  # cut short
    assert _reuse.split_marker(f"\n{_reuse.new_nonce()} 0 0 0 3 0\n".encode(), nonce) == (None, 0)  # another's
    dirty, _ = _reuse.split_marker(f"\n{nonce} 0 0 1 4 1\n".encode(), nonce)
    assert dirty is not None and not dirty.clean and dirty.processes_left


def test_argv_merges_entrypoint_and_cmd_as_the_engine_does() -> None:
    config = {"Entrypoint": ["/bin/render"], "Cmd": ["--default"]}
    assert _reuse.resolve_argv(config, None, None) == ["/bin/render", "--default"]
    assert _reuse.resolve_argv(config, None, ["7"]) == ["/bin/render", "7"]
    assert _reuse.resolve_argv(config, ["python3"], None) == ["python3"]  # an entrypoint given drops the CMD
    assert _reuse.resolve_argv(config, ["python3"], ["x.py"]) == ["python3", "x.py"]
    assert _reuse.resolve_argv({"Cmd": ["sh"]}, None, None) == ["sh"]
    assert _reuse.resolve_argv({}, None, None) == []


def test_the_task_file_quotes_every_word_and_exports_only_shell_names(tmp_path: Path) -> None:
    """What the launcher sources, run here by the same static busybox: the app gets its argv and environment as
    written (quotes, spaces, empty words), the image's PATH unless the task sets one, and no PWD the shell made."""
    import subprocess

    def run(env: dict[str, str], argv: list[str]) -> str:
        task = tmp_path / "task"
        task.write_text(_reuse.task_file(["PATH=/bin", "SHLVL=3"], env, argv))
        script = f'_tnw_P=$PATH; . {task}; echo "P=$_tnw_P"; _tnw_p={_reuse.HOST_BUSYBOX}; ( _tnw_run )'
        return subprocess.run([str(_reuse.HOST_BUSYBOX), "sh", "-c", script], capture_output=True, text=True,
                              env={"PATH": "/bin"}, cwd=tmp_path, check=True).stdout

    assert run({}, ["printf", "%s|", "a b", "$HOME", "'\"", ""]) == "P=/bin\na b|$HOME|'\"||"
    out = run({"A": "x y", "Q": "$(id)\nz", "PATH": "/usr/bin:/bin"}, ["env"]).split("\n")
    assert out[0] == "P=/usr/bin:/bin"
    assert sorted(out[1:]) == ["", "A=x y", "PATH=/usr/bin:/bin", "Q=$(id)", "SHLVL=3", "z"]
    assert _reuse.shell_names(["PATH=/bin"], {"A_1": "1"}) and not _reuse.shell_names({"A-B": "1"})
    assert not _reuse.shell_names(["1X=2"])


def test_only_a_static_elf_counts_as_a_static_busybox(tmp_path: Path) -> None:
    assert _reuse.static_busybox()  # Debian's busybox-static, which the holder image is built from too
    assert not _reuse.static_busybox(Path("/usr/bin/env"))  # dynamically linked
    (tmp_path / "text").write_text("#!/bin/sh\n")
    assert not _reuse.static_busybox(tmp_path / "text")
    assert not _reuse.static_busybox(tmp_path / "missing")


def test_staging_links_files_and_recreates_folders_and_links(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_text("a")
    (src / "sub" / "b").write_text("b")
    os.symlink("a", src / "link")
    src.chmod(0o755)
    dst.mkdir()
    _reuse.stage(src, dst)
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*")) == ["a", "link", "sub", "sub/b"]
    assert os.stat(dst / "a").st_ino == os.stat(src / "a").st_ino  # a hard link, not a copy
    assert os.readlink(dst / "link") == "a" and dst.stat().st_mode & 0o777 == 0o755
    _reuse.clear(dst)
    assert list(dst.iterdir()) == [] and (src / "a").read_text() == "a"


def test_a_checkpoint_swap_puts_the_mounted_folder_at_the_tasks_path_and_back(tmp_path: Path) -> None:
    mounted, folder = tmp_path / "reuse" / "checkpoint", tmp_path / "ckpt" / "1-0"
    mounted.mkdir(parents=True)
    folder.mkdir(parents=True)
    (folder / "state").write_text("1")
    mounted_inode = mounted.stat().st_ino
    swap = _reuse.CheckpointSwap(mounted, folder)
    swap.enter()
    assert folder.stat().st_ino == mounted_inode and (folder / "state").read_text() == "1" and not mounted.exists()
    (folder / "new").write_text("2")  # what the app writes at /checkpoint
    swap.leave()
    assert mounted.stat().st_ino == mounted_inode and list(mounted.iterdir()) == []
    assert sorted(p.name for p in folder.iterdir()) == ["new", "state"] and folder.stat().st_mode & 0o777 == 0o777
    assert _reuse.same_device(mounted, folder)


def test_the_launcher_gives_back_only_the_shell_variables_the_task_has() -> None:
    assert _reuse.shell_variables(["PATH=/bin", "SHLVL=3"], {"PWD": "/x", "A": "1"}) == ["PWD=/x", "SHLVL=3"]
    assert _reuse.shell_variables(["PATH=/bin"], {}) == []
