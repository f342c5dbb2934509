"""Job and task ids on the command line (offline: click parses them before any connection is made): a whole number
that fits the protocol's id, typed JobId/TaskId, or a usage error (exit 2) that says what an id looks like."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from oracle.protocol import TASK_INDEX_BITS, task_id
from tasknet._cli_common import JOB_ID, TASK_ID
from tasknet.cli import cli


@pytest.mark.parametrize(("args", "says"), [
    (["job", "status", "--", "-3"], "-3 is not a job id: job ids run from 0 to 2**224 - 1"),
    (["job", "watch", "abc"], "'abc' is not a job id: give a whole number, like 1"),
    (["result", "get", "1.5"], "'1.5' is not a job id"),
    (["audit", "job", str(1 << (256 - TASK_INDEX_BITS))], "job ids run from 0 to 2**224 - 1"),
    (["audit", "task", "12x"], "'12x' is not a task id: give a whole number, like 4294967296 (job 1's task 0"),
])
def test_a_malformed_id_is_a_usage_error_that_says_what_an_id_is(args: list[str], says: str) -> None:
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 2, out.output
    assert says in " ".join(out.output.split()), out.output


def test_ids_convert_from_decimal_and_hex_to_their_types() -> None:
    assert JOB_ID.convert("7", None, None) == 7 and JOB_ID.convert(" 0x10 ", None, None) == 16
    tid = task_id(3, 5)
    assert TASK_ID.convert(hex(tid), None, None) == tid == TASK_ID.convert(str(tid), None, None)
    assert TASK_ID.convert(2**256 - 1, None, None) == 2**256 - 1
