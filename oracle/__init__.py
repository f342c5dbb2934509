"""Everything that talks to the chain and IPFS: artifacts, transactions, the devnet file, the requester SDK."""

from ._artifacts import AbiList, abi, load_artifact
from ._chain import (
    DEV_MNEMONIC,
    connect,
    contract_at,
    decode_revert,
    deploy,
    dev_accounts,
    reverted_error,
    send,
)
from ._deploy import Deployment, deploy_all, link_bytecode
from ._log import configure_logging, get_logger
from .client import Client
from .devnet import DevnetInfo
from .exceptions import TasknetError
from .ipfs import IpfsClient

__version__ = "0.1.0"

__all__ = [
    "DEV_MNEMONIC",
    "AbiList",
    "Client",
    "Deployment",
    "DevnetInfo",
    "IpfsClient",
    "TasknetError",
    "abi",
    "configure_logging",
    "connect",
    "contract_at",
    "decode_revert",
    "deploy",
    "deploy_all",
    "dev_accounts",
    "get_logger",
    "link_bytecode",
    "load_artifact",
    "reverted_error",
    "send",
]
