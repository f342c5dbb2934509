"""oracle.protocol computes exactly the hashes the contract checks (random inputs, real contract)."""

from __future__ import annotations

from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from market_helpers import Env

from oracle.protocol import (
    Eip712Domain,
    commitment,
    hash_commit,
    hash_results,
    hash_reveal,
    sign_commit,
    split_task_id,
    task_id,
    task_ids,
)

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
b32 = st.binary(min_size=32, max_size=32)
uint256 = st.integers(min_value=0, max_value=2**256 - 1)
address = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
cids = st.text(min_size=0, max_size=80)
blobs = st.binary(max_size=100)


@SETTINGS
@given(tid=uint256, digest=b32, salt=b32, worker=address)
def test_commitment_matches_contract(env: Env, tid: int, digest: bytes, salt: bytes, worker: str) -> None:
    expected = env.market.functions.commitmentOf(tid, digest, salt, env.w3.to_checksum_address(worker)).call()
    assert commitment(tid, digest, salt, worker) == expected


@SETTINGS
@given(tid=uint256, c=b32)
def test_commit_typed_hash_matches_contract(env: Env, tid: int, c: bytes) -> None:
    assert hash_commit(env.domain, tid, c) == env.market.functions.hashCommit(tid, c).call()


@SETTINGS
@given(tid=uint256, digest=b32, salt=b32, cid=cids, data=blobs)
def test_reveal_typed_hash_matches_contract(env: Env, tid: int, digest: bytes, salt: bytes, cid: str,
                                            data: bytes) -> None:
    assert hash_reveal(env.domain, tid, digest, salt, cid, data) == \
        env.market.functions.hashReveal(tid, digest, salt, cid, data).call()


@SETTINGS
@given(start=uint256, first=uint256, items=st.lists(st.tuples(b32, cids, blobs), max_size=6),
       with_data=st.booleans())
def test_results_typed_hash_matches_contract(env: Env, start: int, first: int,
                                             items: list[tuple[bytes, str, bytes]], with_data: bool) -> None:
    digests = [d for d, _, _ in items]
    cid_list = [c for _, c, _ in items]
    data = [x for _, _, x in items] if with_data else []
    assert hash_results(env.domain, start, first, digests, cid_list, data) == \
        env.market.functions.hashResults(start, first, digests, cid_list, data).call()


def test_domain_separator_matches_erc5267_fields(env: Env) -> None:
    fields = env.market.functions.eip712Domain().call()
    assert fields[1:5] == ["Tasknet Marketplace", "1", env.w3.eth.chain_id, env.market.address] or \
        list(fields[1:5]) == ["Tasknet Marketplace", "1", env.w3.eth.chain_id, env.market.address]
    other = Eip712Domain(chain_id=env.w3.eth.chain_id + 1, verifying_contract=env.market.address)
    assert hash_commit(other, 1, b"\0" * 32) != env.market.functions.hashCommit(1, b"\0" * 32).call()


def test_signature_recovers_to_the_signer(env: Env) -> None:
    acct = Account.create()
    sig = sign_commit(acct, env.domain, 5, b"\x01" * 32)
    digest = hash_commit(env.domain, 5, b"\x01" * 32)
    assert Account._recover_hash(digest, signature=sig) == acct.address


@given(job=st.integers(min_value=0, max_value=2**64), index=st.integers(min_value=0, max_value=2**32 - 1))
def test_task_id_roundtrip(job: int, index: int) -> None:
    assert split_task_id(task_id(job, index)) == (job, index)
    assert task_ids(job, index, 1) == [task_id(job, index)]
