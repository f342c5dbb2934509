"""Result CIDs pinned in the background while a job is watched (``client.jobs.watch(pin=True)``)."""

from __future__ import annotations

from .._log import get_logger
from ..exceptions import TasknetError
from ..ipfs import IpfsClient
from ..pinning import PinningClient, RemotePins, request_pin

log = get_logger("oracle.client")


class ResultPinner:
    """Pins result CIDs on the requester's node in the background (a few at a time): each pin fetches the
    result from whichever node provides it, then keeps it. With a ``remote`` pinning service, each result is then
    also asked of the service (``POST /pins``, this node's addresses as origins). ``close`` waits for the pins
    under way (and up to ``remote_wait`` seconds for the service to report them pinned or failed) and returns
    ``(pinned, failed)`` on this node; :attr:`remote` holds the service's tally. A failure is logged with its CID
    and reason, and never stops the watch."""

    def __init__(self, ipfs: IpfsClient, *, workers: int = 4, timeout: float = 300.0,
                 remote: PinningClient | None = None, remote_wait: float = 60.0) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.ipfs, self.timeout = ipfs, timeout
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tasknet-pin")
        self._seen: set[str] = set()
        self.pinned: list[str] = []
        self.failed: dict[str, str] = {}
        self._remote, self._remote_wait = remote, remote_wait
        self._requests: dict[str, str] = {}  # requestid -> CID
        self._origins: list[str] | None = None
        self.remote: RemotePins | None = RemotePins(endpoint=remote.endpoint) if remote is not None else None

    def add(self, cid: str, name: str | None = None) -> None:
        if cid and cid not in self._seen:
            self._seen.add(cid)
            self._pool.submit(self._pin, cid, name)

    def _pin(self, cid: str, name: str | None) -> None:
        try:
            self.ipfs.pin(cid, timeout=self.timeout)
            self.pinned.append(cid)
        except TasknetError as exc:
            self.failed[cid] = str(exc)
            log.warning("result_pin_failed", cid=cid, error=str(exc)[:300])
        if self._remote is not None:
            self._ask_service(self._remote, cid, name)

    def _ask_service(self, remote: PinningClient, cid: str, name: str | None) -> None:
        assert self.remote is not None
        try:
            if self._origins is None:
                self._origins = self.ipfs.multiaddrs()
            status = request_pin(remote, self.ipfs, cid, name=name, origins=self._origins)
            self._requests[status.requestid] = cid
        except TasknetError as exc:
            self.remote.failed[cid] = str(exc)
            log.warning("remote_pin_failed", cid=cid, endpoint=remote.endpoint, error=str(exc)[:300])

    def close(self) -> tuple[int, int]:
        self._pool.shutdown(wait=True)
        if self._remote is not None and self.remote is not None and self._requests:
            for rid, status in self._remote.wait_all(self._requests, timeout=self._remote_wait).items():
                cid = self._requests[rid]
                if isinstance(status, TasknetError):
                    self.remote.pending.append(cid)  # asked, and not known to have failed
                elif status.status == "pinned":
                    self.remote.pinned.append(cid)
                elif status.status == "failed":
                    self.remote.failed[cid] = f"the service reports request {rid} failed"
                else:
                    self.remote.pending.append(cid)
        return len(self.pinned), len(self.failed)
