"""Apps and datasets: registration, updates, allow-lists, deprecation, transfer; access checks at posting."""

from __future__ import annotations

from market_helpers import Env, reverts

ZERO = "0x" + "00" * 20


def test_register_app_stores_and_emits_everything(env: Env) -> None:
    receipt = env.tx(env.registry.functions.registerApp("reg/app:1", b"\x11" * 32, "ipfs://m", 7, False,
                                                        "out/result.ppm"), env.app_owner)
    ev = env.events(receipt, "AppRegistered", env.registry)[0]
    assert ev == {"appId": 1, "owner": env.app_owner.address, "imageRef": "reg/app:1", "imageDigest": b"\x11" * 32,
                  "metadataURI": "ipfs://m", "price": 7, "isPublic": False, "deterministicFile": "out/result.ppm"}
    assert env.registry.functions.getApp(1).call() == (env.app_owner.address, 7, 0, b"\x11" * 32)
    assert env.registry.functions.appCount().call() == 1


def test_update_app_changes_price_and_visibility(env: Env) -> None:
    app = env.app(price=1, public=False)
    receipt = env.tx(env.registry.functions.updateApp(app, "ipfs://m2", 9, True), env.app_owner)
    assert env.events(receipt, "AppUpdated", env.registry)[0]["price"] == 9
    assert env.registry.functions.getApp(app).call()[1:3] == (9, 1)
    assert env.registry.functions.appAllows(app, env.outsider.address).call()


def test_app_functions_fail_for_unknown_app_or_non_owner(env: Env) -> None:
    app = env.app()
    f = env.registry.functions
    for fn in (f.updateApp(app, "", 1, True), f.setAppRequesters(app, [], True), f.deprecateApp(app),
               f.transferApp(app, env.outsider.address)):
        reverts(env, fn, env.outsider, "MarketplaceNotAppOwner", {"appId": app, "caller": env.outsider.address})
    reverts(env, f.deprecateApp(99), env.app_owner, "MarketplaceUnknownApp", {"appId": 99})
    reverts(env, f.transferApp(app, ZERO), env.app_owner, "MarketplaceZeroAddress", {})


def test_private_app_admits_only_allowed_requesters(env: Env) -> None:
    app = env.app(public=False)
    env.fund(env.requester, 10**20)
    reverts(env, env.market.functions.postJob(env.job_params(app)), env.requester, "MarketplaceAppAccessDenied",
            {"appId": app, "requester": env.requester.address})
    receipt = env.tx(env.registry.functions.setAppRequesters(app, [env.requester.address], True), env.app_owner)
    assert env.events(receipt, "AppRequestersSet", env.registry)[0]["requesters"] == [env.requester.address]
    env.post(app)
    env.tx(env.registry.functions.setAppRequesters(app, [env.requester.address], False), env.app_owner)
    assert not env.registry.functions.appAllows(app, env.requester.address).call()


def test_deprecated_app_takes_no_new_job(env: Env) -> None:
    app = env.app()
    env.fund(env.requester, 10**20)
    env.tx(env.registry.functions.deprecateApp(app), env.app_owner)
    reverts(env, env.market.functions.postJob(env.job_params(app)), env.requester, "MarketplaceAppDeprecated",
            {"appId": app})


def test_unknown_app_takes_no_job(env: Env) -> None:
    env.fund(env.requester, 10**20)
    reverts(env, env.market.functions.postJob(env.job_params(42)), env.requester, "MarketplaceUnknownApp",
            {"appId": 42})


def test_transfer_app_moves_ownership_and_future_earnings(env: Env) -> None:
    app = env.app()
    receipt = env.tx(env.registry.functions.transferApp(app, env.outsider.address), env.app_owner)
    assert env.events(receipt, "AppTransferred", env.registry)[0] == {
        "appId": app, "previousOwner": env.app_owner.address, "newOwner": env.outsider.address}
    assert env.registry.functions.owners(app, 0).call() == [env.outsider.address, ZERO]


def test_register_dataset_and_update(env: Env) -> None:
    ds = env.dataset(price=3, any_requester=False, any_app=False)
    assert env.registry.functions.getDataset(ds).call() == (env.dataset_owner.address, 3, 0, b"\x22" * 32)
    receipt = env.tx(env.registry.functions.updateDataset(ds, 4, True, True), env.dataset_owner)
    assert env.events(receipt, "DatasetUpdated", env.registry)[0] == {
        "datasetId": ds, "price": 4, "anyRequester": True, "anyApp": True}
    assert env.registry.functions.getDataset(ds).call()[1:3] == (4, 1 | 4)


def test_dataset_functions_fail_for_unknown_dataset_or_non_owner(env: Env) -> None:
    ds = env.dataset()
    f = env.registry.functions
    for fn in (f.updateDataset(ds, 1, True, True), f.setDatasetRequesters(ds, [], True),
               f.setDatasetApps(ds, [], True), f.deprecateDataset(ds), f.transferDataset(ds, env.outsider.address)):
        reverts(env, fn, env.outsider, "MarketplaceNotDatasetOwner",
                {"datasetId": ds, "caller": env.outsider.address})
    reverts(env, f.deprecateDataset(9), env.dataset_owner, "MarketplaceUnknownDataset", {"datasetId": 9})
    reverts(env, f.transferDataset(ds, ZERO), env.dataset_owner, "MarketplaceZeroAddress", {})


def test_dataset_access_needs_both_requester_and_app(env: Env) -> None:
    app = env.app()
    ds = env.dataset(price=2, any_requester=False, any_app=False)
    env.fund(env.requester, 10**20)
    denied = {"datasetId": ds, "appId": app, "requester": env.requester.address}
    post = env.market.functions.postJob(env.job_params(app, datasetId=ds))
    reverts(env, post, env.requester, "MarketplaceDatasetAccessDenied", denied)
    env.tx(env.registry.functions.setDatasetRequesters(ds, [env.requester.address], True), env.dataset_owner)
    reverts(env, post, env.requester, "MarketplaceDatasetAccessDenied", denied)
    receipt = env.tx(env.registry.functions.setDatasetApps(ds, [app], True), env.dataset_owner)
    assert env.events(receipt, "DatasetAppsSet", env.registry)[0]["appIds"] == [app]
    assert env.registry.functions.datasetAllows(ds, app, env.requester.address).call()
    job = env.post(app, datasetId=ds)
    assert env.view("getJobExtras", job)["datasetPrice"] == 2


def test_deprecated_or_unknown_dataset_takes_no_job(env: Env) -> None:
    app = env.app()
    ds = env.dataset()
    env.fund(env.requester, 10**20)
    receipt = env.tx(env.registry.functions.deprecateDataset(ds), env.dataset_owner)
    assert env.events(receipt, "DatasetDeprecated", env.registry) == [{"datasetId": ds}]
    reverts(env, env.market.functions.postJob(env.job_params(app, datasetId=ds)), env.requester,
            "MarketplaceDatasetDeprecated", {"datasetId": ds})
    reverts(env, env.market.functions.postJob(env.job_params(app, datasetId=77)), env.requester,
            "MarketplaceUnknownDataset", {"datasetId": 77})


def test_transfer_dataset(env: Env) -> None:
    ds = env.dataset()
    env.tx(env.registry.functions.transferDataset(ds, env.outsider.address), env.dataset_owner)
    assert env.registry.functions.owners(0, ds).call()[1] == env.outsider.address
