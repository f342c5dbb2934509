"""``tasknet network …``: network profiles (deploy, add, list, show, use, remove)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

out = Console()
err = Console(stderr=True)

HELP_NETWORK = """Network profiles: where a Tasknet network is (chain, contracts, IPFS peers). Every command of every role
takes --network NAME (env TASKNET_NETWORK); 'tasknet network use NAME' sets the default. The devnet is the
profile 'devnet'."""
HELP_DEPLOY = """Deploy the Tasknet contracts on any EVM chain by its JSON-RPC URL, check them, and write a network
profile others can join with (plus Truffle artifacts with networks[chainId] filled, beside it).

The payment token is an existing ERC-20 (--token ADDRESS) or a test token with a faucet (--test-token). After
deploying it waits for --confirmations blocks and checks the code at every address; a deploy that fails writes
no profile.

\b
Example:
  TASKNET_PASSWORD=... tasknet network deploy --name lab --rpc-url http://10.0.0.1:8545 \\
      --keystore ~/.tasknet/keys/owner.json --test-token --confirmations 2 --ipfs-peer /ip4/10.0.0.2/tcp/4001/p2p/12D3...
"""
HELP_ADD = """Install the network profile FILE (shared by the network's operator) under NAME.

\b
Example:
  tasknet network add lab ./lab.json
"""


@click.group(help=HELP_NETWORK)
def network() -> None:
    pass


@network.command("deploy", help=HELP_DEPLOY)
@click.option("--name", required=True, help="the profile's name (lowercase letters, digits, '.', '_', '-')")
@click.option("--rpc-url", required=True, multiple=True, help="JSON-RPC URL (repeat for fallbacks)")
@click.option("--keystore", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="the deployer's encrypted keystore (it becomes the marketplace's owner)")
@click.option("--private-key", default=None, help="raw key: development chains only (env TASKNET_PRIVATE_KEY)")
@click.option("--token", default=None, help="the payment token: an existing ERC-20's address")
@click.option("--test-token", is_flag=True, help="deploy a test token with a faucet as the payment token")
@click.option("--treasury", default=None, help="where slashed stake and fees go (default: the deployer)")
@click.option("--confirmations", type=click.IntRange(0, 1000), default=1, show_default=True,
              help="blocks to wait over the last deployment, and the profile's confirmations for every role")
@click.option("--ipfs-peer", "ipfs_peers", multiple=True, help="a bootstrap IPFS node's multiaddr with /p2p/ID "
              "(repeatable): every participant's node connects to these")
@click.option("--swarm-key", default=None, help="a private IPFS network's key (64 hex digits)")
@click.option("--image-registry", default=None, help="host:port of the network's image registry")
@click.option("--pinning-service", default=None, help="an IPFS Pinning Service API endpoint for results and data")
@click.option("--pinning-token-env", default="TASKNET_PINNING_TOKEN", show_default=True,
              help="the environment variable each participant keeps the pinning service's token in")
@click.option("--force", is_flag=True, help="replace an installed profile of the same name")
def deploy(name: str, rpc_url: tuple[str, ...], keystore: Path | None, private_key: str | None, token: str | None,
           test_token: bool, treasury: str | None, confirmations: int, ipfs_peers: tuple[str, ...],
           swarm_key: str | None, image_registry: str | None, pinning_service: str | None, pinning_token_env: str,
           force: bool) -> None:
    import os

    from web3 import Web3

    from oracle import connect, deploy_all
    from oracle.exceptions import ProfileError
    from oracle.network import NetworkProfile, PinningService, artifacts_dir, profile_path, save_profile
    from oracle.settings import Settings

    from ._cli_common import _ask_password
    from ._devnet import write_network_artifacts

    if (token is None) == (not test_token):
        raise click.UsageError("choose the payment token: --token ADDRESS (an existing ERC-20) or --test-token")
    if profile_path(name).exists() and not force:
        raise ProfileError(f"a network profile named {name!r} is installed already; choose another --name, or "
                           "--force to replace it")
    w3 = connect(rpc_url[0])
    chain_id = int(w3.eth.chain_id)
    key = private_key or os.environ.get("TASKNET_PRIVATE_KEY")
    settings = Settings(keystore=keystore, private_key=key)
    deployer = settings.account(chain_id, prompt=_ask_password)
    if token is not None and (not Web3.is_address(token)
                              or not bytes(w3.eth.get_code(Web3.to_checksum_address(token)))):
        raise ProfileError(f"there is no contract at the token address {token} on chain {chain_id}; give the "
                           "ERC-20's address on this chain, or --test-token")
    profile = NetworkProfile(  # validated before anything is sent: a bad value costs no gas
        name=name, chain_id=chain_id, rpc_urls=list(rpc_url), contracts={"Marketplace": "0x" + "00" * 20},
        confirmations=confirmations, ipfs_peers=list(ipfs_peers), swarm_key=swarm_key, image_registry=image_registry,
        pinning_service=PinningService(endpoint=pinning_service, token_env=pinning_token_env) if pinning_service
        else None)
    with err.status("deploying") as status:
        deployment = deploy_all(w3, deployer, treasury=treasury, token=token,
                                progress=lambda what: status.update(f"deploying {what}"))
        status.update(f"waiting for {confirmations} confirmation(s)")
        last = w3.eth.block_number
        while w3.eth.block_number < last + confirmations:
            time.sleep(0.5)
    missing = [n for n, a in deployment.contracts.items() if not bytes(w3.eth.get_code(Web3.to_checksum_address(a)))]
    if missing:
        raise ProfileError(f"after {confirmations} confirmation(s) there is no code at {', '.join(missing)}: a reorg "
                           "dropped them; deploy again (no profile was written)")
    profile = profile.model_copy(update={"contracts": deployment.contracts, "deploy_block": deployment.deploy_block,
                                         "token": token or deployment.contracts["TestToken"]})
    path = save_profile(profile)
    write_network_artifacts(artifacts_dir(name), chain_id, deployment.contracts)
    out.print(f"network {name!r} deployed on chain {chain_id} from block {deployment.deploy_block}; profile {path}")
    for contract, address in deployment.contracts.items():
        out.print(f"  {contract:<20} {address}")
    out.print(f"share the profile; others join with 'tasknet network add {name} {path.name}'")


@network.command("add", help=HELP_ADD)
@click.argument("name")
@click.argument("file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--force", is_flag=True, help="replace an installed profile of the same name")
def add(name: str, file: Path, force: bool) -> None:
    from oracle.exceptions import ProfileError
    from oracle.network import profile_path, read_profile, save_profile

    profile = read_profile(file).model_copy(update={"name": name})
    profile = type(profile).model_validate(profile.model_dump())  # the new name is checked too
    if profile_path(name).exists() and not force:
        raise ProfileError(f"a network profile named {name!r} is installed already; --force replaces it")
    out.print(f"network {name!r} installed: {save_profile(profile)}")


@network.command("list", help="""The installed network profiles; * marks the current one.

\b
Example:
  tasknet network list --json
""")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json: bool) -> None:
    from oracle.network import current_network, list_profiles, load_profile

    current = current_network()
    rows = [load_profile(n) for n in list_profiles()]
    if as_json:
        click.echo(json.dumps([{"name": p.name, "chain_id": p.chain_id, "rpc_url": p.rpc_url,
                                "current": p.name == current} for p in rows]))
        return
    table = Table("", "name", "chain", "RPC", "marketplace")
    for p in rows:
        table.add_row("*" if p.name == current else "", p.name, str(p.chain_id), p.rpc_url, p.contracts.get(
            "Marketplace", ""))
    out.print(table)


@network.command("show", help="""Print a profile (default: the current network's) as JSON: the file to share with the
network's participants.

\b
Example:
  tasknet network show lab > lab.json
""")
@click.argument("name", required=False)
def show(name: str | None) -> None:
    from oracle.exceptions import ProfileError
    from oracle.network import current_network, load_profile

    name = name or current_network()
    if name is None:
        raise ProfileError("no network profile is installed; 'tasknet up' (the devnet), 'tasknet network add' or "
                           "'tasknet network deploy'")
    click.echo(load_profile(name).model_dump_json(indent=2, exclude_none=True))


@network.command("use", help="""Make NAME the network every command uses by default (--network and TASKNET_NETWORK
still choose another).

\b
Example:
  tasknet network use lab
""")
@click.argument("name")
def use(name: str) -> None:
    from oracle.network import use_network

    use_network(name)
    out.print(f"commands now use the network {name!r} unless --network or TASKNET_NETWORK says otherwise")


@network.command("remove", help="""Uninstall the profile NAME (nothing on the chain changes).

\b
Example:
  tasknet network remove lab
""")
@click.argument("name")
def remove(name: str) -> None:
    from oracle.exceptions import ProfileError
    from oracle.network import remove_profile

    if not remove_profile(name):
        raise ProfileError(f"no network profile named {name!r}")
    out.print(f"network {name!r} removed")


def register(cli: click.Group) -> None:
    """Add the ``network`` group to the ``tasknet`` CLI."""
    cli.add_command(network)
