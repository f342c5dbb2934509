"""The compile pipeline (node + solc-js): `--check` fails on stale artifacts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compile_check_fails_when_a_source_changes(tmp_path: Path) -> None:
    for sub in ("scripts", "contracts"):
        shutil.copytree(ROOT / sub, tmp_path / sub)
    shutil.copytree(ROOT / "oracle" / "artifacts", tmp_path / "oracle" / "artifacts")
    (tmp_path / "node_modules").symlink_to(ROOT / "node_modules")
    ok = subprocess.run(["node", "scripts/compile.js", "--check"], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    token = tmp_path / "contracts" / "test" / "TestToken.sol"
    token.write_text(token.read_text().replace("1_000_000 ether", "2_000_000 ether"))
    stale = subprocess.run(["node", "scripts/compile.js", "--check"], cwd=tmp_path, capture_output=True, text=True)
    assert stale.returncode == 1
    assert "stale" in stale.stderr and "TestToken.json" in stale.stderr
