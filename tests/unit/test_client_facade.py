"""The shape of the SDK (issue #21), offline: ``Client`` is a facade over namespaces, one module each, and no
class of ``oracle.client`` has more than 25 public methods; none of the old flat methods is left as a shim."""

from __future__ import annotations

import inspect

import oracle.client as sdk
from oracle import Client

NAMESPACES = {"account": sdk.Account, "apps": sdk.Apps, "datasets": sdk.Datasets, "jobs": sdk.Jobs,
              "results": sdk.Results, "workers": sdk.Workers}
OLD_METHODS = {"balance", "deposit", "withdraw", "faucet", "build_app", "push_image", "register_app", "update_app",
               "set_app_requesters", "deprecate_app", "app", "add_dataset", "dataset", "quote", "submit_job",
               "job_summary", "task_page", "job", "tasks", "watch", "wait", "cancel", "close_job", "failures",
               "verify", "explain"}


def _public(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if not n.startswith("_") and (callable(v) or isinstance(v, property)
                                                                         or isinstance(v, classmethod))}


def test_every_class_of_the_sdk_has_at_most_25_public_methods() -> None:
    classes = {c for m in (sdk, *(inspect.getmodule(c) for c in NAMESPACES.values()))
               for _, c in inspect.getmembers(m, inspect.isclass) if c.__module__.startswith("oracle.client")}
    assert Client in classes and sdk.Jobs in classes
    assert {c.__name__: len(_public(c)) for c in classes if len(_public(c)) > 25} == {}


def test_the_client_keeps_construction_and_leaves_the_operations_to_its_namespaces() -> None:
    assert _public(Client) == {"from_devnet", "from_settings", "connect", "close", "address", "docker", "chain_time"}
    assert not OLD_METHODS & set(dir(Client))
    for name, cls in NAMESPACES.items():
        assert cls.__module__ == f"oracle.client.{name}"  # one module per namespace
        for method in _public(cls):
            assert inspect.getdoc(getattr(cls, method)), f"{cls.__name__}.{method} has no docstring"
