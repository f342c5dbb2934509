"""oracle.canonical offline: the labels that declare a canonicalise step, the command a user types, and the
canonicalised archive's digest (recomputable from the published archive, blind to the raw part)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oracle.archive import pack_result, unpack_result
from oracle.canonical import (
    LABEL_COMMAND,
    LABEL_IMAGE,
    LABEL_TIMEOUT,
    CanonicalizeInvalid,
    CanonicalizeStep,
    canonical_digest,
    is_canonical_layout,
    pack_canonical,
    parse_command,
    step_from_labels,
)

PIN = "sha256:" + "ab" * 32


def test_an_image_without_the_label_has_no_step() -> None:
    assert step_from_labels(None) is None
    assert step_from_labels({"maintainer": "me"}) is None


def test_labels_round_trip_with_defaults_left_out() -> None:
    step = CanonicalizeStep(command=["/app/canon", "2"])
    assert step.labels() == {LABEL_COMMAND: '["/app/canon", "2"]'}
    full = CanonicalizeStep(command=["canon"], image=f"127.0.0.1:5000/canon@{PIN}", timeout_s=5)
    assert step_from_labels(full.labels()) == full and full.image_digest == PIN


@pytest.mark.parametrize("labels", [
    {LABEL_COMMAND: "/app/canon 2"},  # not JSON
    {LABEL_COMMAND: '{"cmd": 1}'},  # not an array
    {LABEL_COMMAND: "[]"},  # empty
    {LABEL_COMMAND: '[""]'},  # no program
    {LABEL_COMMAND: '["canon"]', LABEL_IMAGE: "canon:latest"},  # a tag, not a digest
    {LABEL_COMMAND: '["canon"]', LABEL_TIMEOUT: "0"},
    {LABEL_COMMAND: '["canon"]', LABEL_TIMEOUT: "99999"},
    {LABEL_IMAGE: PIN},  # an image but no command
])
def test_malformed_labels_are_refused_with_the_fix(labels: dict[str, str]) -> None:
    with pytest.raises(CanonicalizeInvalid) as info:
        step_from_labels(labels)
    assert "org.tasknet.canonicalize" in str(info.value)


def test_a_command_is_typed_as_json_or_as_words() -> None:
    assert parse_command('["python3", "/app/canon.py", "2"]') == ["python3", "/app/canon.py", "2"]
    assert parse_command("python3 /app/canon.py '2 3'") == ["python3", "/app/canon.py", "2 3"]
    for bad in ("", "[1, 2]", "[not json"):
        with pytest.raises(CanonicalizeInvalid):
            parse_command(bad)


def _result(tmp: Path, name: str, raw_value: str) -> tuple[Path, str]:
    """A canonicalised result whose canonical output is the same whatever ``raw_value``; (archive, digest)."""
    root = tmp / name
    (root / "canon").mkdir(parents=True)
    (root / "canon" / "estimate.json").write_text('{"pi": 3.14}\n')
    (root / "raw").mkdir()
    (root / "raw" / "estimate.json").write_text(json.dumps({"pi": float(raw_value)}))
    (root / "status.txt").write_text("reason: ok\nexit_code: 0\n")
    (root / "stdout").write_text(f"pi ~ {raw_value}\n")
    packed = pack_canonical(root / "canon", root / "result.tar", logs={"status.txt": root / "status.txt"},
                            raw_out=root / "raw", raw_logs={"stdout.txt": root / "stdout"})
    assert packed.digest_source == "canonical"
    return packed.archive_path, packed.digest


def test_the_digest_covers_the_canonical_part_only_and_is_recomputed_from_the_published_archive(
        tmp_path: Path) -> None:
    a, digest_a = _result(tmp_path, "a", "3.14159")
    b, digest_b = _result(tmp_path, "b", "3.14172")
    assert digest_a == digest_b  # raw outputs differ, canonical ones agree
    assert a.read_bytes() != b.read_bytes()
    unpack_result(a, tmp_path / "ua")
    assert is_canonical_layout(tmp_path / "ua")
    assert sorted(p.relative_to(tmp_path / "ua").as_posix() for p in (tmp_path / "ua").rglob("*")) == [
        "logs", "logs/status.txt", "output", "output/estimate.json", "raw", "raw/logs", "raw/logs/stdout.txt",
        "raw/output", "raw/output/estimate.json"]
    assert canonical_digest(tmp_path / "ua") == digest_a
    # the canonical archive is what pack_result makes of output/ and logs/ alone
    plain = pack_result(tmp_path / "a" / "canon", tmp_path / "plain.tar",
                        logs={"status.txt": tmp_path / "a" / "status.txt"})
    assert plain.digest == digest_a
