"""Projector of the registry's events: apps and datasets (registered, updated, deprecated, transferred)."""

from __future__ import annotations

from ._ledger import Ledger, by_event
from ._stream import LogEvent, addr, hex_of


def on_AppRegistered(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    led.rows.apps.create({
        "app_id": int(a["appId"]), "owner": addr(a["owner"]), "image_ref": a["imageRef"],
        "image_digest": hex_of(a["imageDigest"]),
        "metadata_uri": a["metadataURI"], "price": int(a["price"]), "is_public": bool(a["isPublic"]),
        "deterministic_file": a["deterministicFile"], "deprecated": False, "earned": 0, "jobs": 0,
        "registered_at": led.ts})


def on_AppUpdated(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    app = led.rows.apps.edit(int(a["appId"]))
    if app is not None:
        app.update({"metadata_uri": a["metadataURI"], "price": int(a["price"]), "is_public": bool(a["isPublic"])})


def on_AppDeprecated(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    app = led.rows.apps.edit(int(a["appId"]))
    if app is not None:
        app["deprecated"] = True


def on_AppTransferred(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    app = led.rows.apps.edit(int(a["appId"]))
    if app is not None:
        app["owner"] = addr(a["newOwner"])


def on_DatasetRegistered(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    led.rows.datasets.create({
        "dataset_id": int(a["datasetId"]), "owner": addr(a["owner"]), "cid": a["cid"],
        "checksum": hex_of(a["checksum"]),
        "price": int(a["price"]), "any_requester": bool(a["anyRequester"]), "any_app": bool(a["anyApp"]),
        "deprecated": False, "earned": 0, "jobs": 0, "registered_at": led.ts})


def on_DatasetUpdated(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    ds = led.rows.datasets.edit(int(a["datasetId"]))
    if ds is not None:
        ds.update({"price": int(a["price"]), "any_requester": bool(a["anyRequester"]), "any_app": bool(a["anyApp"])})


def on_DatasetDeprecated(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    ds = led.rows.datasets.edit(int(a["datasetId"]))
    if ds is not None:
        ds["deprecated"] = True


def on_DatasetTransferred(led: Ledger, ev: LogEvent) -> None:
    a = ev.args
    ds = led.rows.datasets.edit(int(a["datasetId"]))
    if ds is not None:
        ds["owner"] = addr(a["newOwner"])


HANDLERS = by_event(
    on_AppRegistered,
    on_AppUpdated,
    on_AppDeprecated,
    on_AppTransferred,
    on_DatasetRegistered,
    on_DatasetUpdated,
    on_DatasetDeprecated,
    on_DatasetTransferred,
)
