"""Talking to an EVM JSON-RPC endpoint: connecting, signing and sending, deploying, decoding reverts."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import requests
import requests.adapters
import requests.utils
from eth_abi.abi import decode as abi_decode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_account.types import TransactionDictType
from eth_typing import URI, ABIComponent, HexStr
from eth_utils.abi import function_signature_to_4byte_selector
from web3 import Web3
from web3._utils.http import DEFAULT_HTTP_TIMEOUT
from web3._utils.http_session_manager import HTTPSessionManager
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.middleware import ExtraDataToPOAMiddleware
from web3.types import RPCEndpoint, TxParams, TxReceipt, Wei

from ._artifacts import AbiList, load_artifact
from ._artifacts import abi as artifact_abi
from .exceptions import ChainError, RpcUnavailable, TransactionReverted

Account.enable_unaudited_hdwallet_features()

#: anvil's well-known development mnemonic: its keys are public, never use them with real value.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def dev_accounts(n: int = 10, mnemonic: str = DEV_MNEMONIC) -> list[LocalAccount]:
    """The first ``n`` accounts of ``mnemonic`` on the standard path m/44'/60'/0'/0/i (anvil's)."""
    return [Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}") for i in range(n)]


def connect(rpc_url: str, *, timeout: float = 30.0) -> Web3:
    """A Web3 for ``rpc_url`` with a short receipt poll (anvil mines right after the send returns)."""
    # eth_chainId is asked before every call and transaction by web3's validation: an endpoint's chain id does
    # not change, so it is cached (nothing else is: blocks and receipts must be read fresh, reorgs happen).
    session = rpc_session(rpc_url)
    provider = Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}, session=session,
                                 cache_allowed_requests=True, cacheable_requests={"eth_chainId"})
    provider._request_session_manager = _LeanPosts(session)
    w3 = Web3(provider)
    try:
        _ = w3.eth.chain_id  # the first request: is anything there?
        head = w3.provider.make_request(RPCEndpoint("eth_getBlockByNumber"), ["latest", False]).get("result") or {}
    except Exception as exc:  # requests/aiohttp raise many types; all mean "unreachable"
        raise RpcUnavailable(
            f"cannot reach the JSON-RPC endpoint {rpc_url}: {exc}; check the URL or run 'tasknet up'"
        ) from exc
    if is_proof_of_authority(head):
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def rpc_session(rpc_url: str) -> requests.Session:
    """The HTTP session of one JSON-RPC endpoint, shared by every thread (urllib3's connection pool is
    thread-safe). What the environment says about this URL (its proxy or ``NO_PROXY``, a CA bundle in
    ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE``, credentials in ``~/.netrc``) is read once, here: with
    ``trust_env`` on, requests reads all of it again for every request, about a third of the CPU a call took in
    the worker (py-spy; BENCHMARKS.md, "Time to results")."""
    session = requests.Session()
    session.proxies.update(requests.utils.get_environ_proxies(rpc_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.auth = requests.utils.get_netrc_auth(rpc_url)
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=32)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class BlockHead(NamedTuple):
    """The fields of a block header the daemons follow the chain by."""

    number: int
    hash: bytes
    parent_hash: bytes
    timestamp: int
    gas_limit: int
    base_fee: int | None  # None on a chain without EIP-1559


def block_head(w3: Web3, ident: int | str = "latest") -> BlockHead | None:
    """Block ``ident``'s header (a number, or a tag such as ``latest``), or None when the node has no such block.

    Read as a raw ``eth_getBlockByNumber``: web3's ``get_block`` runs its result formatters over every field of
    the block, about 5 ms of CPU a call, and the daemons read the head several times a second (the worker's
    event stream, its chain clock, its fee cache: a fifth of the worker's CPU in the POV-Ray bag, yappi).
    Transport errors are the provider's, as for any call; an error answer raises :class:`Web3RPCError`."""
    tag = hex(ident) if isinstance(ident, int) else ident
    raw = rpc_result(w3, "eth_getBlockByNumber", [tag, False])
    if raw is None:
        return None
    base = raw.get("baseFeePerGas")
    return BlockHead(number=int(raw["number"], 16), hash=bytes.fromhex(raw["hash"][2:]),
                     parent_hash=bytes.fromhex(raw["parentHash"][2:]), timestamp=int(raw["timestamp"], 16),
                     gas_limit=int(raw.get("gasLimit") or "0x0", 16), base_fee=None if base is None else int(base, 16))


def latest_head(w3: Web3) -> BlockHead:
    """The latest block's header (:func:`block_head`); a node that has none raises :class:`ChainError`."""
    head = block_head(w3)
    if head is None:
        raise ChainError("the node answered no latest block; is it still syncing?")
    return head


def rpc_result(w3: Web3, method: str, params: list[Any]) -> Any:
    """The ``result`` of a raw JSON-RPC call, without web3's result formatters; an error answer raises
    :class:`Web3RPCError` (transport errors are the provider's, as for any call)."""
    answer = w3.provider.make_request(RPCEndpoint(method), params)
    if "error" in answer:
        raise Web3RPCError(f"{method} failed: {answer['error']}")
    return answer.get("result")


class _LeanPosts(HTTPSessionManager):
    """web3's HTTP session manager, with the JSON-RPC POSTs sent straight through the session's adapter.

    ``Session.post`` prepares every request from scratch (its URL parsed and quoted, the session's headers,
    cookies and auth merged in) and runs the session's hooks: a third of the CPU a call cost the worker (yappi).
    The request to an endpoint differs only by its body, so it is prepared once and copied. Proxies, the CA
    bundle and credentials are the session's (:func:`rpc_session`); a redirect, a streamed answer or other
    headers than the first request's go through ``Session.post`` as before."""

    def __init__(self, session: requests.Session) -> None:
        super().__init__(explicit_session=session)
        self._session = session
        self._templates: dict[tuple[str, tuple[tuple[str, str], ...]], requests.PreparedRequest] = {}

    def make_post_request(self, endpoint_uri: URI, data: bytes | dict[str, Any], **kwargs: Any) -> bytes:
        headers = kwargs.get("headers") or {}
        if kwargs.get("stream") or not isinstance(data, bytes) or set(kwargs) - {"headers", "timeout"}:
            return super().make_post_request(endpoint_uri, data, **kwargs)
        key = (str(endpoint_uri), tuple(sorted(headers.items())))
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = self._session.prepare_request(
                requests.Request("POST", endpoint_uri, headers=headers, data=b"{}"))
        prepared = template.copy()
        prepared.body = data
        prepared.headers["Content-Length"] = str(len(data))
        session = self._session
        response = session.get_adapter(str(endpoint_uri)).send(
            prepared, timeout=kwargs.get("timeout", DEFAULT_HTTP_TIMEOUT), proxies=session.proxies,
            verify=session.verify, cert=session.cert, stream=False)
        with response:
            if response.is_redirect:
                return super().make_post_request(endpoint_uri, data, **kwargs)
            response.raise_for_status()
            return response.content


def is_proof_of_authority(block: Mapping[str, object]) -> bool:
    """Whether a raw block (as the node sent it) carries more than the 32 bytes of extra data Ethereum allows:
    proof-of-authority chains (geth clique, BSC, Polygon PoS) put the signer's seal there, and web3 refuses such
    blocks unless its proof-of-authority middleware moves it aside."""
    extra = str(block.get("extraData") or "0x")
    return len(extra.removeprefix("0x")) > 64


def _error_selectors(abis: Iterable[AbiList]) -> dict[bytes, tuple[str, Sequence[ABIComponent]]]:
    table: dict[bytes, tuple[str, Sequence[ABIComponent]]] = {}
    for entries in abis:
        for item in entries:
            if item.get("type") != "error":
                continue
            types = ",".join(_canonical_type(i) for i in item["inputs"])
            table[function_signature_to_4byte_selector(f"{item['name']}({types})")] = (item["name"], item["inputs"])
    return table


def _canonical_type(param: ABIComponent) -> str:
    t: str = param["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_canonical_type(c) for c in param["components"]) + ")" + t[len("tuple"):]
    return t


def decode_revert(data: bytes | str | None, abis: Iterable[AbiList]) -> tuple[str, dict[str, Any]]:
    """Decode revert ``data`` into (error name, named arguments) using the custom errors of ``abis``.

    Falls back to ``Error(string)``, ``Panic(uint256)`` and ``"unknown"`` with the raw hex.
    """
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x"))
    if not data:
        return "unknown", {"data": "0x"}
    selector, body = data[:4], data[4:]
    if selector == function_signature_to_4byte_selector("Error(string)"):
        return "Error", {"message": abi_decode(["string"], body)[0]}
    if selector == function_signature_to_4byte_selector("Panic(uint256)"):
        return "Panic", {"code": abi_decode(["uint256"], body)[0]}
    table = _error_selectors(abis)
    if selector in table:
        name, inputs = table[selector]
        values = abi_decode([_canonical_type(i) for i in inputs], body)
        return name, {i["name"] or f"arg{n}": _plain(v) for n, (i, v) in enumerate(zip(inputs, values, strict=True))}
    return "unknown", {"data": "0x" + data.hex()}


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v


def format_error(name: str, args: Mapping[str, object]) -> str:
    return f"{name}(" + ", ".join(f"{k}={v}" for k, v in args.items()) + ")"


def _revert_data(exc: Exception) -> str | None:
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return data
    if isinstance(data, dict):
        inner = data.get("data")
        if isinstance(inner, str):
            return inner
    if exc.args and isinstance(exc.args[0], dict):
        inner = exc.args[0].get("data")
        if isinstance(inner, str):
            return inner
    return None


def reverted_error(exc: Exception, abis: list[AbiList], what: str, tx_hash: str | None = None
              ) -> TransactionReverted:
    name, args = decode_revert(_revert_data(exc), abis)
    said = format_error(name, args)
    if name == "unknown" and args == {"data": "0x"}:  # no error data: the node's own words are all there is
        node = getattr(exc, "message", None) or str(exc)
        said = f"no error data (the node said: {str(node)[:300]})"
    return TransactionReverted(f"{what} reverted with {said}", error_name=name, error_args=args, tx_hash=tx_hash)


def contract_at(w3: Web3, name: str, address: str) -> Contract:
    """A web3 contract object for the deployed contract ``name`` at ``address``."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact_abi(name))


def send(w3: Web3, fn: ContractFunction, sender: LocalAccount, *, value: int = 0, gas: int | None = None,
         extra_abis: Iterable[AbiList] = (), timeout: float = 120.0) -> TxReceipt:
    """Sign ``fn`` as ``sender``, send it, wait for the receipt; raise :class:`TransactionReverted` on revert.

    The call is simulated first (``eth_estimateGas`` on the pending block, the one the transaction will land in)
    so a revert is reported with its decoded custom error and no gas is spent on a transaction that would fail.
    """
    abis = [fn.contract_abi, *extra_abis]
    what = f"{fn.fn_name} from {sender.address}"
    params: TxParams = {"from": sender.address, "value": Wei(value)}
    try:
        params["gas"] = gas or int(fn.estimate_gas(params, "pending") * 1.2) + 10_000
    except (ContractLogicError, Web3RPCError) as exc:
        raise reverted_error(exc, abis, what) from exc
    params["nonce"] = w3.eth.get_transaction_count(sender.address, "pending")
    params["chainId"] = w3.eth.chain_id
    tx = fn.build_transaction(params)
    signed = sender.sign_transaction(_signable(tx))
    return _send_raw(w3, signed.raw_transaction, abis, what, timeout)


def _send_raw(w3: Web3, raw: bytes, abis: list[AbiList], what: str, timeout: float) -> TxReceipt:
    try:
        tx_hash = w3.eth.send_raw_transaction(raw)
    except (ContractLogicError, Web3RPCError) as exc:
        raise reverted_error(exc, abis, what) from exc
    receipt = wait_receipt(w3, tx_hash.hex(), timeout=timeout)
    if receipt["status"] != 1:
        raise TransactionReverted(f"{what} reverted on chain (tx {tx_hash.hex()})", tx_hash=tx_hash.hex())
    return receipt


def wait_receipt(w3: Web3, tx_hash: str, *, timeout: float = 120.0, poll: float = 0.005) -> TxReceipt:
    """Poll for a receipt with a short interval that backs off to 0.5 s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            pass
        if time.monotonic() > deadline:
            raise ChainError(f"transaction {tx_hash} not mined after {timeout:.0f} s; is the chain producing blocks?")
        time.sleep(poll)
        poll = min(poll * 2, 0.5)


def deploy(w3: Web3, name: str, *args: Any, sender: LocalAccount, timeout: float = 120.0,
           bytecode: str | None = None) -> Contract:
    """Deploy the compiled contract ``name`` with constructor ``args`` from ``sender``; return the contract.
    ``bytecode`` overrides the artifact's (e.g. with its libraries linked)."""
    art = load_artifact(name)
    factory = w3.eth.contract(abi=art["abi"], bytecode=bytecode or art["bytecode"])
    params: TxParams = {
        "from": sender.address,
        "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        "chainId": w3.eth.chain_id,
    }
    ctor = factory.constructor(*args)
    try:
        params["gas"] = int(ctor.estimate_gas({"from": sender.address}) * 1.2) + 50_000
    except (ContractLogicError, Web3RPCError) as exc:
        raise reverted_error(exc, [art["abi"]], f"deploying {name}") from exc
    signed = sender.sign_transaction(ctor.build_transaction(params))
    receipt = _send_raw(w3, signed.raw_transaction, [art["abi"]], f"deploying {name}", timeout)
    address = receipt["contractAddress"]
    if address is None:
        raise ChainError(f"deploying {name}: the receipt has no contract address")
    return w3.eth.contract(address=address, abi=art["abi"])


#: the name the transaction sender uses
_reverted = reverted_error


def _signable(tx: TxParams) -> TransactionDictType:
    """A transaction web3 built, as eth-account signs it: every field web3 fills in is an int or a hex string
    (an address, the call data)."""
    out: TransactionDictType = {}
    for key, value in tx.items():
        if isinstance(value, bytes):
            out[key] = HexStr("0x" + value.hex())
        elif isinstance(value, int | str):
            out[key] = value if isinstance(value, int) else HexStr(value)
        else:
            raise TypeError(f"transaction field {key} = {value!r}: expected an int or a hex string")
    return out

