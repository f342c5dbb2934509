"""requirements-lock.txt, what scripts/setup and CI install: in step with pyproject.toml, every pin hashed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements-lock.txt"


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) for every entry of the lock (one ``name==version \\`` line, then its hashes)."""
    entries: dict[str, tuple[str, list[str]]] = {}
    text = LOCK.read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", block)
        if m:
            entries[canonicalize_name(m[1])] = (m[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return entries


def test_every_requirement_of_pyproject_is_locked_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked()
    stale = []
    for line in [*project["dependencies"], *project["optional-dependencies"]["test"]]:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        pin = pins.get(canonicalize_name(req.name))
        if pin is None or not req.specifier.contains(pin[0], prereleases=True):
            stale.append(f"{line} (locked: {pin[0] if pin else 'nothing'})")
    assert not stale, f"requirements-lock.txt is stale against pyproject.toml: {stale}; run 'scripts/lock'"


def test_every_pin_carries_hashes_and_the_lock_says_how_it_was_made() -> None:
    pins = locked()
    assert len(pins) > 20
    assert [name for name, (_version, hashes) in pins.items() if not hashes] == []
    assert "#    scripts/lock" in LOCK.read_text().splitlines()[:6]
