"""``client.datasets``: upload and register datasets (a file, or a folder packed as a canonical tar), read them
back.

::

    ds = c.datasets.add("scene/", price=10**15, apps=[app.app_id])
    spec = JobSpec(app_id=app.app_id, dataset_id=ds.dataset_id, count=10, args=["{index}"], reward=10**17)
"""

from __future__ import annotations

import builtins
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from web3.logs import DISCARD

from .._log import get_logger
from ..exceptions import ClientError, PinningError, UnknownDataset
from ..market import _struct
from ..pinning import request_pin
from ._models import DatasetInfo
from ._reads import checksum, hex_of, registry_logs
from ._tasks import pack_folder, sha256_of

if TYPE_CHECKING:
    from ._client import Client

log = get_logger("oracle.client")
UploadProgress = Callable[[str, int], None]


class Datasets:
    """The marketplace's datasets: content on IPFS, its checksum and size on chain, a price, access lists."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def add(self, path: str | Path, *, price: int = 0, any_requester: bool = True, any_app: bool = True,
            requesters: Sequence[str] = (), apps: Sequence[int] = (),
            progress: UploadProgress | None = None, remote_wait: float = 60.0) -> DatasetInfo:
        """Upload a file (as is) or a folder (as a canonical tar) to IPFS, checksum it, register it.

        Jobs using the dataset see it at ``/in/dataset`` (:attr:`JobSpec.dataset_path`). When the network names a
        pinning service (``client.pinning``), it is asked to pin the dataset before anything is sent to the chain
        (a refusal, e.g. a bad token, stops here), then polled for up to ``remote_wait`` seconds: the result's
        ``remote_pin`` is its last status.

        Raises :class:`ClientError` when ``path`` does not exist. Emits ``DatasetRegistered``.
        """
        c = self._c
        p = Path(path)
        if not p.exists():
            raise ClientError(f"dataset {p} does not exist; give a file or a folder")
        with tempfile.TemporaryDirectory(prefix="tasknet-dataset-") as tmp:
            blob, kind = p, "file"
            if p.is_dir():
                blob, kind = Path(tmp) / (p.name + ".tar"), "folder"
                pack_folder(p, blob)
            digest = sha256_of(blob)
            size = blob.stat().st_size
            cid = c.ipfs.add_file(blob)
            if progress is not None:
                progress(p.name, size)
        remote = request_pin(c.pinning, c.ipfs, cid, name=f"tasknet dataset {p.name}") \
            if c.pinning is not None else None
        receipt = c._send(c.market.registry.functions.registerDataset(
            cid, bytes.fromhex(digest), size, price, any_requester, any_app))
        ds_id = int(c.market.registry.events.DatasetRegistered().process_receipt(receipt, errors=DISCARD)[0][
            "args"]["datasetId"])
        if requesters:
            c._send(c.market.registry.functions.setDatasetRequesters(
                ds_id, [checksum(a) for a in requesters], True))
        if apps:
            c._send(c.market.registry.functions.setDatasetApps(ds_id, builtins.list(apps), True))
        info = self.get(ds_id)
        if remote is not None and c.pinning is not None:
            try:  # registered already: a service that stops answering now is reported, not raised
                remote = c.pinning.wait(remote.requestid, timeout=remote_wait)
            except PinningError as exc:
                log.warning("dataset_remote_pin_unknown", dataset_id=ds_id, cid=cid, error=str(exc)[:300])
            log.info("dataset_remote_pin", dataset_id=ds_id, cid=cid, status=remote.status)
        return info.model_copy(update={"size": size, "kind": kind, "remote_pin": remote})

    def get(self, dataset_id: int) -> DatasetInfo:
        """The dataset's current state (registry storage + its registration event).

        Raises :class:`UnknownDataset` when there is no such dataset."""
        c = self._c
        raw = _struct(c.market.registry, "getDataset", dataset_id)
        if int(raw["owner"], 16) == 0:
            raise UnknownDataset(f"no dataset {dataset_id} on this marketplace; list them with 'tasknet dataset list'")
        ev = registry_logs(c, "DatasetRegistered", datasetId=dataset_id)
        cid = ev[-1]["args"]["cid"] if ev else ""
        flags = int(raw["flags"])
        return DatasetInfo(dataset_id=dataset_id, owner=raw["owner"], cid=cid, checksum=hex_of(raw["checksum"]),
                           price=int(raw["price"]), any_requester=bool(flags & 1), any_app=bool(flags & 4),
                           deprecated=bool(flags & 2))

    def list(self, owner: str | None = None) -> builtins.list[DatasetInfo]:
        """Every dataset registered (only ``owner``'s when given), oldest first."""
        filters = {"owner": checksum(owner)} if owner else {}
        return [self.get(int(e["args"]["datasetId"]))
                for e in registry_logs(self._c, "DatasetRegistered", **filters)]
