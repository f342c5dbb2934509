"""``client.apps``: build, push and register app images; update, restrict and deprecate them; read them back.

::

    image = c.apps.build("examples/povray", "tasknet/povray:1")
    app = c.apps.register(image, name="povray", price=10**16, deterministic_file="frame.bmp")
    c.apps.allow(app.app_id, ["0x…"])            # a private app admits the requesters it lists
"""

from __future__ import annotations

import builtins
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from web3.logs import DISCARD

from .._log import get_logger
from ..canonical import CanonicalizeStep, add_step, canonical_tag, read_step
from ..exceptions import ClientError, UnknownApp
from ..market import _struct
from ..models import AppMetadata
from ._models import AppInfo, TxInfo
from ._reads import app_range, checksum, hex_of, registry_logs, tx_info

if TYPE_CHECKING:
    from ._client import Client

log = get_logger("oracle.client")


class Apps:
    """The marketplace's apps: a container image pinned by its digest, a price, an access list."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def build(self, context_dir: str | Path, tag: str, *, dockerfile: str = "Dockerfile") -> str:
        """``docker build`` an app (no network, FROM a local base image); return the image id."""
        from ..images import build_app_image

        return build_app_image(self._c.docker, context_dir, tag, dockerfile=dockerfile)

    def push(self, image: str) -> str:
        """Push local image ``image`` to the image registry; return the pinned ``host/repo@sha256:…``.

        Raises :class:`ClientError` when no registry is configured."""
        from ..images import push_to_registry

        if not self._c.image_registry:
            raise ClientError("no image registry configured; pass image_registry='host:port' (the devnet has one)")
        return push_to_registry(self._c.docker, image, self._c.image_registry)

    def register(self, image: str, *, name: str, price: int = 0, public: bool = True,
                 requesters: Sequence[str] = (), deterministic_file: str | None = None, description: str = "",
                 category: str | None = None, command: Sequence[str] = (), push: bool = True,
                 ipfs_archive: bool = False, canonicalize: CanonicalizeStep | None = None) -> AppInfo:
        """Register local image ``image`` as an app: pushed to the registry (``push``), pinned by its image id,
        with a metadata document on IPFS. A private app (``public=False``) admits ``requesters`` only.

        With ``ipfs_archive`` a ``docker save`` archive of the image (untagged) is added to IPFS too and named in
        the metadata: workers load it when the registry cannot serve them. Without a registry push the app's
        image reference is then ``ipfs://CID`` itself, and workers need no registry at all.

        ``canonicalize`` declares the app's canonicalise step (:mod:`oracle.canonical`): unless ``image`` declares
        exactly that step already, a thin image adding its labels is built on top (tagged by
        :func:`oracle.canonical.canonical_tag`) and registered instead: its id is the app's digest.

        Emits ``AppRegistered`` (and ``AppRequestersSet`` with ``requesters``); returns the app as registered."""
        from ..images import image_digest, save_image

        c = self._c
        if canonicalize is not None and read_step(c.docker, image) != canonicalize:
            tag = canonical_tag(image)
            add_step(c.docker, image, canonicalize, tag)
            image = tag

        digest = image_digest(c.docker, image)
        ref = image
        if push and c.image_registry and "@sha256:" not in image:
            ref = self.push(image)
        archive_cid = None
        if ipfs_archive:
            with tempfile.TemporaryDirectory(prefix="tasknet-image-") as tmp:
                save_image(c.docker, digest, Path(tmp) / "image.tar")
                archive_cid = c.ipfs.add_file(Path(tmp) / "image.tar")
            if ref == image:
                ref = f"ipfs://{archive_cid}"
        meta = AppMetadata(name=name, description=description, image=ref, command=list(command),
                           deterministic_file=deterministic_file, category=category, image_archive_cid=archive_cid)
        meta_uri = "ipfs://" + c.ipfs.add_json(meta.model_dump(mode="json", exclude_none=True))
        receipt = c._send(c.market.registry.functions.registerApp(
            ref, bytes.fromhex(digest.removeprefix("sha256:")), meta_uri, price, public, deterministic_file or ""))
        app_id = int(c.market.registry.events.AppRegistered().process_receipt(receipt, errors=DISCARD)[0][
            "args"]["appId"])
        if requesters:
            self.allow(app_id, requesters)
        log.info("app_registered", app_id=app_id, ref=ref, digest=digest)
        return self.get(app_id)

    def update(self, app_id: int, *, price: int | None = None, public: bool | None = None,
               metadata_uri: str | None = None) -> AppInfo:
        """Change the app's price, visibility or metadata document (the owner only; ``None`` keeps the current
        value). Returns the app as updated."""
        c = self._c
        cur = self.get(app_id)
        c._send(c.market.registry.functions.updateApp(
            app_id, cur.metadata_uri if metadata_uri is None else metadata_uri,
            cur.price if price is None else price, cur.public if public is None else public))
        return self.get(app_id)

    def allow(self, app_id: int, requesters: Sequence[str], allowed: bool = True) -> TxInfo:
        """Admit ``requesters`` to private app ``app_id`` (``allowed=False``: revoke them). The owner only.

        Raises :class:`ClientError` for a string that is not an address (nothing is sent)."""
        c = self._c
        addrs = [checksum(a) for a in requesters]
        return tx_info(c._send(c.market.registry.functions.setAppRequesters(app_id, addrs, allowed)))

    def deprecate(self, app_id: int) -> TxInfo:
        """Deprecate the app (the owner only): no new job may use it; jobs already posted run on."""
        c = self._c
        return tx_info(c._send(c.market.registry.functions.deprecateApp(app_id)))

    def get(self, app_id: int) -> AppInfo:
        """The app's current state (registry storage + its registration and update events).

        Raises :class:`UnknownApp` when there is no such app."""
        c = self._c
        raw = _struct(c.market.registry, "getApp", app_id)
        if int(raw["owner"], 16) == 0:
            raise UnknownApp(f"no app {app_id} on this marketplace ({app_range(c)}); list them with "
                             "'tasknet app list'")
        reg = registry_logs(c, "AppRegistered", appId=app_id)
        if not reg:
            raise UnknownApp(f"app {app_id} exists but its AppRegistered event is not found after block "
                             f"{c.deploy_block}; is the deploy block right?")
        a = reg[-1]["args"]
        updates = registry_logs(c, "AppUpdated", appId=app_id)
        meta = updates[-1]["args"]["metadataURI"] if updates else a["metadataURI"]
        return AppInfo(app_id=app_id, owner=raw["owner"], image_ref=a["imageRef"],
                       image_digest="sha256:" + hex_of(raw["imageDigest"]), metadata_uri=meta,
                       price=int(raw["price"]), public=bool(raw["flags"] & 1), deprecated=bool(raw["flags"] & 2),
                       deterministic_file=a["deterministicFile"])

    def list(self, owner: str | None = None) -> builtins.list[AppInfo]:
        """Every app registered (only ``owner``'s when given), oldest first."""
        filters = {"owner": checksum(owner)} if owner else {}
        return [self.get(int(e["args"]["appId"])) for e in registry_logs(self._c, "AppRegistered", **filters)]
