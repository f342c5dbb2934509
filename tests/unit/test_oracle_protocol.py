"""oracle.protocol: task ids, commitments and EIP-712 digests are the bytes the contract checks.

The fixed vectors below were computed once by the deployed ``Marketplace`` itself (``commitmentOf``,
``hashCommit``, ``hashReveal``, ``hashResults`` on anvil, chain 31337, at the address ``deploy_all`` gives the
first deployment of anvil's first dev account); tests/contracts/test_protocol_hashes.py checks the same on random
inputs against a live contract. Here nothing talks to a node.
"""

from __future__ import annotations

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.protocol import (
    Eip712Domain,
    commit_message,
    commitment,
    hash_commit,
    hash_results,
    hash_reveal,
    results_batch,
    results_message,
    reveal_message,
    sign_commit,
    sign_reveal,
    split_task_id,
    task_id,
    task_ids,
)

MARKET = "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9"
DOMAIN = Eip712Domain(chain_id=31337, verifying_contract=MARKET)
WORKER = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"
DIGEST = bytes(range(32))
SALT = bytes(range(32, 64))
TID = task_id(7, 3)

# computed by the contract (see the module docstring)
COMMITMENT = "0xf4a6683eb49b0a8a3db5a3ac8c9db0d4bbf5548f251042d11089629d72327cc6"
HASH_COMMIT = "0xdbed60f30d8c8face263e3511829df57d8c4fed6efbe0825e0fa42fef98fa97d"
HASH_REVEAL = "0x30ec016228e13d17f5c8ce62b2f9975717c166bc748c8830092efc4e0adc4236"  # cid bafkreihello, data 0x0102
HASH_RESULTS = "0x1e3e363cfe864d95b2408d30678027af603eed4ed4ea2e33f68d1359796ddcf1"  # two results, no callback data
HASH_RESULTS_CB = "0xef42b2cb05d7a287617a54a0607cd92fd8c898c349d6a9cdd2c3fb9b13119f22"  # one result, data "cb"

KEY = "0x" + "42" * 32
ACCOUNT = Account.from_key(KEY)

b32 = st.binary(min_size=32, max_size=32)
job_ids = st.integers(min_value=0, max_value=2**224 - 1)
indexes = st.integers(min_value=0, max_value=2**32 - 1)


# -- task ids --------------------------------------------------------------------------------------------
def test_a_task_id_is_the_job_id_shifted_left_32_bits_or_the_index() -> None:
    assert task_id(7, 3) == (7 << 32) | 3 == 30064771075
    assert split_task_id(30064771075) == (7, 3)
    assert task_ids(7, 2, 3) == [task_id(7, 2), task_id(7, 3), task_id(7, 4)]


@given(job_ids, indexes)
def test_splitting_a_task_id_gives_back_its_job_and_index(job_id: int, index: int) -> None:
    assert split_task_id(task_id(job_id, index)) == (job_id, index)


@pytest.mark.parametrize(("job_id", "index", "msg"), [
    (1, 2**32, "outside 0..4294967295"), (1, -1, "outside"), (-1, 0, "job id -1 is negative")])
def test_a_task_id_refuses_an_index_or_job_out_of_range(job_id: int, index: int, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        task_id(job_id, index)


# -- commitments -----------------------------------------------------------------------------------------
def test_the_commitment_equals_the_contracts_commitment_of() -> None:
    assert "0x" + commitment(TID, DIGEST, SALT, WORKER).hex() == COMMITMENT
    # hex strings, with or without 0x, and a lower-case address give the same bytes
    assert commitment(TID, "0x" + DIGEST.hex(), SALT.hex(), WORKER.lower()).hex() == COMMITMENT[2:]


@given(st.integers(min_value=0, max_value=2**256 - 1), b32, b32)
def test_the_commitment_is_keccak_of_the_abi_encoded_tuple(tid: int, digest: bytes, salt: bytes) -> None:
    expected = keccak(abi_encode(["uint256", "bytes32", "bytes32", "address"], [tid, digest, salt, WORKER]))
    assert commitment(tid, digest, salt, WORKER) == expected


def test_a_commitment_binds_every_input() -> None:
    base = commitment(TID, DIGEST, SALT, WORKER)
    other = bytes(31) + b"\x01"
    assert len({base, commitment(TID + 1, DIGEST, SALT, WORKER), commitment(TID, other, SALT, WORKER),
                commitment(TID, DIGEST, other, WORKER), commitment(TID, DIGEST, SALT, ACCOUNT.address)}) == 5


def test_a_digest_or_salt_that_is_not_32_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 32 bytes, got 31"):
        commitment(TID, DIGEST[:31], SALT, WORKER)
    with pytest.raises(ValueError, match="expected 32 bytes, got 33"):
        hash_commit(DOMAIN, TID, "0x" + "00" * 33)


# -- EIP-712 ---------------------------------------------------------------------------------------------
def test_the_eip712_digests_equal_the_contracts() -> None:
    c = bytes.fromhex(COMMITMENT[2:])
    assert "0x" + hash_commit(DOMAIN, TID, c).hex() == HASH_COMMIT
    assert "0x" + hash_reveal(DOMAIN, TID, DIGEST, SALT, "bafkreihello", b"\x01\x02").hex() == HASH_REVEAL
    assert "0x" + hash_results(DOMAIN, TID, TID + 1, [DIGEST, bytes([0xAB] * 32)],
                               ["bafy-one", "bafy-two"]).hex() == HASH_RESULTS
    assert "0x" + hash_results(DOMAIN, TID, TID, [DIGEST], ["bafy-one"], [b"cb"]).hex() == HASH_RESULTS_CB


def test_the_domain_binds_the_chain_and_the_contract() -> None:
    c = bytes.fromhex(COMMITMENT[2:])
    other_chain = Eip712Domain(chain_id=1, verifying_contract=MARKET)
    other_market = Eip712Domain(chain_id=31337, verifying_contract=WORKER)
    assert len({hash_commit(d, TID, c) for d in (DOMAIN, other_chain, other_market)}) == 3


def test_the_domain_separator_is_the_eip712_formula_written_out() -> None:
    type_hash = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    expected = keccak(abi_encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                                 [type_hash, keccak(text="Tasknet Marketplace"), keccak(text="1"), 31337, MARKET]))
    assert DOMAIN.separator() == expected
    assert commit_message(DOMAIN, TID, DIGEST).header == expected  # what eth_account signs under


@given(st.integers(min_value=0, max_value=2**256 - 1), b32)
def test_hash_commit_is_1901_separator_and_struct_hash(tid: int, c: bytes) -> None:
    struct = keccak(abi_encode(["bytes32", "uint256", "bytes32"],
                               [keccak(text="Commit(uint256 taskId,bytes32 commitment)"), tid, c]))
    assert hash_commit(DOMAIN, tid, c) == keccak(b"\x19\x01" + DOMAIN.separator() + struct)


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**64), b32)
def test_a_signed_commit_recovers_to_its_signer(tid: int, c: bytes) -> None:
    sig = sign_commit(ACCOUNT, DOMAIN, tid, c)
    assert len(sig) == 65
    assert Account.recover_message(commit_message(DOMAIN, tid, c), signature=sig) == ACCOUNT.address


@settings(max_examples=25, deadline=None)
@given(b32, b32, st.text(max_size=80), st.binary(max_size=64))
def test_a_signed_reveal_recovers_to_its_signer(digest: bytes, salt: bytes, cid: str, data: bytes) -> None:
    sig = sign_reveal(ACCOUNT, DOMAIN, TID, digest, salt, cid, data)
    assert Account.recover_message(reveal_message(DOMAIN, TID, digest, salt, cid, data), signature=sig) == ACCOUNT.address


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(b32, st.text(max_size=40)), min_size=1, max_size=5))
def test_a_results_batch_carries_its_inputs_and_a_signature_over_them(results: list[tuple[bytes, str]]) -> None:
    digests, cids = [d for d, _ in results], [c for _, c in results]
    start, first, got_digests, got_cids, data, sig = results_batch(ACCOUNT, DOMAIN, TID, TID + 1, digests, cids)
    assert (start, first, got_digests, got_cids, data) == (TID, TID + 1, digests, cids, [])
    message = results_message(DOMAIN, TID, TID + 1, digests, cids)
    assert Account.recover_message(message, signature=sig) == ACCOUNT.address


def test_results_hash_depends_on_order_and_callback_data() -> None:
    a, b = DIGEST, bytes([0xAB] * 32)
    assert hash_results(DOMAIN, TID, TID, [a, b], ["x", "y"]) != hash_results(DOMAIN, TID, TID, [b, a], ["y", "x"])
    assert hash_results(DOMAIN, TID, TID, [a], ["x"]) != hash_results(DOMAIN, TID, TID, [a], ["x"], [b""])
