"""Homogeneous redundancy from the requester's CLI on a devnet of real components (anvil, kubo, Docker):
``tasknet job submit --homogeneous`` posts archMask bit 7, ``job explain`` says the task will be bound, and
replication 1 is refused before anything is spent."""

from __future__ import annotations

from pathlib import Path

import test_client_helpers as helpers
from test_client_helpers import E18, as_json, client, register_echo_app, tasknet

from oracle.protocol import ARCH_AMD64, ARCH_HOMOGENEOUS

app_image = helpers.app_image
devnet_file = helpers.devnet_file
image_registry = helpers.image_registry


def test_submit_homogeneous_sets_bit_7_and_explain_names_it(devnet_file: Path, app_image: str) -> None:
    app_id = str(register_echo_app(devnet_file, app_image))
    c = client(devnet_file, fund=10 * E18)
    job = as_json("job", "submit", "--app", app_id, "--count", "2", "--arg", "{index}", "--reward", "1",
                  "--replication", "2", "--arch", "amd64", "--homogeneous")["job_id"]
    assert int(c.market.job_record(job).arch_mask) == ARCH_HOMOGENEOUS | ARCH_AMD64
    reasons = {r["code"]: r for r in as_json("job", "explain", str(job))["reasons"]}
    assert "will bind" in reasons["homogeneous"]["message"]
    nonce = c.w3.eth.get_transaction_count(c.address)
    refused = tasknet("job", "submit", "--app", app_id, "--reward", "1", "--homogeneous", code=1)
    assert "replication 1 has one replica" in refused.stderr
    assert c.w3.eth.get_transaction_count(c.address) == nonce
