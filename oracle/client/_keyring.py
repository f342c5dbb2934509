"""The requester's local keyring: X25519 private keys that results are sealed to, in one 0600 JSON file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..archive import generate_keypair
from ..devnet import tasknet_home
from ..exceptions import KeyringError


def default_keyring_path() -> Path:
    return tasknet_home() / "keyring.json"


class Keyring:
    """``{"keys": {public_hex: {"private": hex, "created": unix, "jobs": [ids]}}}`` at ``path`` (mode 0600).

    The private keys never leave this file: losing it means losing access to encrypted results.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_keyring_path()

    def _load(self) -> dict[str, dict[str, object]]:
        if not self.path.exists():
            return {}
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyringError(f"keyring {self.path} is readable by others (mode {oct(mode)}); run "
                               f"'chmod 600 {self.path}' — it holds the private keys of your results")
        try:
            data = json.loads(self.path.read_text())
            keys: dict[str, dict[str, object]] = data["keys"]
            return keys
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"keyring {self.path} is unreadable ({exc}); restore it from a backup") from exc

    def _save(self, keys: dict[str, dict[str, object]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"version": 1, "keys": keys}, fh, indent=2)
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)

    def new_key(self) -> str:
        """Generate a key pair, store it; return the public key as 64 hex digits."""
        private, public = generate_keypair()
        keys = self._load()
        keys[public.hex()] = {"private": private.hex(), "created": int(time.time()), "jobs": []}
        self._save(keys)
        return public.hex()

    def note_job(self, public_hex: str, job_id: int) -> None:
        keys = self._load()
        entry = keys.get(public_hex.lower().removeprefix("0x"))
        if entry is not None:
            jobs = list(entry.get("jobs") or [])  # type: ignore[call-overload]
            entry["jobs"] = sorted({*jobs, job_id})
            self._save(keys)

    def private_key(self, public_hex: str) -> bytes:
        """The private key matching ``public_hex``; :class:`KeyringError` if this keyring does not hold it."""
        pub = public_hex.lower().removeprefix("0x")
        entry = self._load().get(pub)
        if entry is None:
            raise KeyringError(f"the results are sealed to public key {pub[:16]}… but the keyring {self.path} has no "
                               "matching private key; use the keyring of the machine that posted the job "
                               "(--keyring PATH or $TASKNET_HOME)")
        return bytes.fromhex(str(entry["private"]))

    def public_keys(self) -> list[str]:
        return sorted(self._load())
