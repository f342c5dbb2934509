"""The kubo answers the IPFS client reads into models (``/id``, ``/files/stat``), against a real kubo node."""

from __future__ import annotations

from oracle.ipfs import FileStat, IpfsClient, NodeIdentity


def test_identity_and_stat_are_typed(ipfs: IpfsClient) -> None:
    me = ipfs.id()
    assert isinstance(me, NodeIdentity) and me.id and me.agent_version.startswith("kubo")
    assert ipfs.multiaddrs() == me.addresses and all(a.endswith("/p2p/" + me.id) for a in me.addresses)
    data = b"typed kubo answers\n" * 10
    cid = ipfs.add_bytes(data)
    stat = ipfs.stat(cid)
    assert isinstance(stat, FileStat) and stat.hash == cid and stat.type == "file" and stat.size == len(data)
