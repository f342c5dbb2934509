"""packages/contracts (@tasknet/contracts) as a Dapp developer gets it: ``npm pack``, then the tarball installed
into a throwaway project (only the npm registry is reachable) where

* solc-js compiles a consumer contract importing ``TasknetClient.sol`` and ``IMarketplace.sol`` from the package
  (and deploys it on the session anvil, bound to the marketplace);
* ``tsc`` type-checks a TypeScript file using the typed ABIs with viem (``@ts-expect-error`` lines prove the types
  are precise: a wrong argument type or an unknown function must be a type error);
* node runs the error decoder, the network helpers and the Hardhat artifacts;
* the built-in devnet addresses are the ones ``deploy_all`` gives on a fresh anvil (the session's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from oracle._deploy import link_bytecode

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "packages" / "contracts"
NPM = shutil.which("npm")
NODE = shutil.which("node")
VIEM, TYPESCRIPT = "2.58.8", "5.9.3"  # the versions of the repository's package.json

pytestmark = pytest.mark.skipif(NPM is None or NODE is None, reason="node and npm are needed")

CONSUMER_SOL = """// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IMarketplace, ITaskCallback} from "@tasknet/contracts/contracts/IMarketplace.sol";
import {TasknetClient} from "@tasknet/contracts/contracts/client/TasknetClient.sol";

contract PriceOracle is TasknetClient {
    mapping(uint256 requestId => bytes32) public answers;
    mapping(uint256 requestId => FailureReason) public failures;

    constructor(IMarketplace m) TasknetClient(m) {}

    function ask(uint256 requestId, IMarketplace.JobParams memory p) external returns (uint256 jobId) {
        (jobId,) = _postJob(requestId, p);
    }

    function _onResult(uint256 requestId, uint256, bytes32 digest, bytes calldata) internal override {
        answers[requestId] = digest;
    }

    function _onFailure(uint256 requestId, uint256, uint256, ITaskCallback.FailureReason reason) internal override {
        failures[requestId] = reason;
    }
}
"""

COMPILE_JS = """
const fs = require("fs"), path = require("path");
const solc = require(process.env.SOLC_PATH);
const here = process.cwd();
const input = { language: "Solidity", sources: { "PriceOracle.sol": { content: fs.readFileSync("PriceOracle.sol", "utf8") } },
  settings: { optimizer: { enabled: true, runs: 200 }, viaIR: true, evmVersion: "cancun",
              outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } } };
const find = (p) => { const f = path.join(here, "node_modules", p);
  return fs.existsSync(f) ? { contents: fs.readFileSync(f, "utf8") } : { error: "not found: " + p }; };
const out = JSON.parse(solc.compile(JSON.stringify(input), { import: find }));
const errors = (out.errors || []).filter((e) => e.severity === "error");
if (errors.length) { for (const e of errors) console.error(e.formattedMessage); process.exit(1); }
const c = out.contracts["PriceOracle.sol"].PriceOracle;
fs.writeFileSync("PriceOracle.json", JSON.stringify({ abi: c.abi, bytecode: "0x" + c.evm.bytecode.object }));
console.log("compiled", solc.version());
"""

CHECK_TS = """import { encodeFunctionData, decodeFunctionResult, type Address } from "viem";
import {
  marketplaceAbi, fileHasherAbi, tasknetClientAbi, networks, describeError, decodeTasknetError, networkFromProfile,
  taskId, FailureReason, type TasknetNetwork,
} from "@tasknet/contracts";
import { iTaskCallbackAbi } from "@tasknet/contracts/abis";

const market: Address = networks.devnet.contracts.Marketplace;
const data = encodeFunctionData({ abi: marketplaceAbi, functionName: "cancelTasks", args: [1n, 0n, 5n] });
const request = encodeFunctionData({ abi: fileHasherAbi, functionName: "request", args: ["bafyinputs"] });
const ended = encodeFunctionData({
  abi: iTaskCallbackAbi, functionName: "onTasksEnded", args: [1n, 0n, 3n, FailureReason.Expired],
});
const job = decodeFunctionResult({ abi: marketplaceAbi, functionName: "getJob", data: "0x" });
const deadline: number = job.deadline;     // uint32 -> number
const reward: bigint = job.reward;         // uint96 -> bigint
const requester: Address = job.requester;
const retry = encodeFunctionData({ abi: tasknetClientAbi, functionName: "retryFailure", args: [taskId(1n, 0), 1n, 2] });

// @ts-expect-error cancelTasks takes bigints, not strings
encodeFunctionData({ abi: marketplaceAbi, functionName: "cancelTasks", args: ["1", 0n, 5n] });
// @ts-expect-error the marketplace has no such function
encodeFunctionData({ abi: marketplaceAbi, functionName: "withdrawEverything", args: [] });
// @ts-expect-error request takes one string
encodeFunctionData({ abi: fileHasherAbi, functionName: "request", args: [1n] });

const lab: TasknetNetwork = networkFromProfile({ name: "lab", chain_id: 7, rpc_urls: ["http://x"], contracts: {} });
const line: string = describeError(new Error("x"));
const decoded = decodeTasknetError("0x");
export const used = [market, data, request, ended, deadline, reward, requester, retry, lab, line, decoded];
"""

RUN_MJS = """import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describeError, errorTable, networks, networkFromProfile } from "@tasknet/contracts";
const require = createRequire(import.meta.url);
const selector = Object.entries(errorTable).find(([, e]) => e.name === "TasknetClientAppDeprecated")[0];
const revert = selector + (7n).toString(16).padStart(64, "0");
const viemLike = { shortMessage: "The contract function reverted.", cause: { name: "ContractFunctionRevertedError",
  raw: revert } };
const hh = require("@tasknet/contracts/artifacts/hardhat/contracts/Marketplace.sol/Marketplace.json");
const truffle = require("@tasknet/contracts/artifacts/truffle/Marketplace.json");
const profile = JSON.parse(readFileSync("profile.json", "utf8"));
console.log(JSON.stringify({
  described: describeError(viemLike),
  devnet: networks.devnet.contracts,
  hardhat: { format: hh._format, links: Object.keys(hh.linkReferences).sort(), abiMatches:
             JSON.stringify(hh.abi) === JSON.stringify(truffle.abi) },
  profile: networkFromProfile(profile),
}));
"""


def run(cmd: list[str], cwd: Path, **env: str) -> str:
    proc = subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env, "npm_config_audit": "false", "npm_config_fund": "false",
                               "npm_config_update_notifier": "false"})
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packed tarball installed, with viem and typescript, into a fresh project."""
    out = tmp_path_factory.mktemp("pack")
    run([str(NPM), "pack", "--pack-destination", str(out)], PKG)
    tarball = next(out.glob("tasknet-contracts-*.tgz"))
    app = tmp_path_factory.mktemp("dapp-project")
    (app / "package.json").write_text(json.dumps({"name": "dapp-project", "private": True, "type": "module"}))
    run([str(NPM), "install", "--prefer-offline", str(tarball), f"viem@{VIEM}", f"typescript@{TYPESCRIPT}"], app)
    return app


def test_the_tarball_ships_abis_types_sources_and_both_artifact_formats(project: Path) -> None:
    pkg = project / "node_modules" / "@tasknet" / "contracts"
    for rel in ("dist/index.js", "dist/index.d.ts", "dist/generated/abis.d.ts", "contracts/IMarketplace.sol",
                "contracts/IMarketplaceRegistry.sol", "contracts/client/TasknetClient.sol",
                "artifacts/truffle/Marketplace.json",
                "artifacts/hardhat/contracts/client/TasknetClient.sol/TasknetClient.json", "networks/devnet.json", "bin/tasknet-network.mjs"):
        assert (pkg / rel).is_file(), rel
    assert (project / "node_modules" / "@openzeppelin" / "contracts" / "token" / "ERC20" / "IERC20.sol").is_file()
    types = (pkg / "dist" / "generated" / "abis.d.ts").read_text()
    assert 'export declare const marketplaceAbi: readonly [' in types and 'readonly name: "postJob";' in types


def test_tsc_type_checks_typed_calls_and_rejects_wrong_ones(project: Path) -> None:
    (project / "check.ts").write_text(CHECK_TS)
    (project / "tsconfig.json").write_text(json.dumps({"compilerOptions": {
        "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext", "strict": True, "noEmit": True,
        "skipLibCheck": True}, "files": ["check.ts"]}))
    run([str(project / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.json"], project)
    # and the same file without a @ts-expect-error marker fails: the ABI types are precise, not `any`
    (project / "bad.ts").write_text(CHECK_TS.replace("// @ts-expect-error cancelTasks takes bigints", "// "))
    (project / "tsconfig.bad.json").write_text(json.dumps({"extends": "./tsconfig.json", "files": ["bad.ts"]}))
    proc = subprocess.run([str(project / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.bad.json"], check=False,
                          cwd=project, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "bad.ts" in proc.stdout and "string" in proc.stdout, proc.stdout


def test_solc_compiles_a_consumer_against_the_interfaces_and_it_deploys(project: Path, w3: Web3, accounts: list[Any],
                                                                        deployment: dict[str, Any]) -> None:
    (project / "PriceOracle.sol").write_text(CONSUMER_SOL)
    (project / "compile.cjs").write_text(COMPILE_JS)
    out = run([str(NODE), "compile.cjs"], project, SOLC_PATH=str(ROOT / "node_modules" / "solc"))
    assert "0.8.37" in out
    art = json.loads((project / "PriceOracle.json").read_text())
    names = {i.get("name") for i in art["abi"]}
    assert {"ask", "onTaskResult", "onTaskFailed", "onTasksEnded", "retryResult"} <= names
    assert "_onResult" not in names
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    market = deployment["Marketplace"].address
    tx = factory.constructor(market).build_transaction({
        "from": accounts[0].address, "nonce": w3.eth.get_transaction_count(accounts[0].address),
        "gas": 3_000_000, "chainId": w3.eth.chain_id})
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(accounts[0].sign_transaction(tx).raw_transaction))
    oracle = w3.eth.contract(address=receipt["contractAddress"], abi=art["abi"])
    assert oracle.functions.marketplace().call() == market


def test_node_decodes_errors_reads_hardhat_artifacts_and_profiles(project: Path, _deployed: dict[str, str],
                                                                  w3: Web3) -> None:
    (project / "profile.json").write_text(json.dumps({
        "version": 1, "name": "lab", "chain_id": 1337, "rpc_urls": ["http://10.0.0.1:8545"], "deploy_block": 42,
        "contracts": _deployed, "token": _deployed["TestToken"], "ipfs_gateway": "http://10.0.0.1:8080"}))
    (project / "run.mjs").write_text(RUN_MJS)
    doc = json.loads(run([str(NODE), "run.mjs"], project))
    assert doc["described"] == "TasknetClientAppDeprecated(appId: 7)"
    assert doc["hardhat"] == {"format": "hh-sol-artifact-1", "links": ["contracts/libraries/AccountLogic.sol",
                                                                       "contracts/libraries/ReplicaLogic.sol"],
                              "abiMatches": True}
    assert doc["profile"]["chainId"] == 1337 and doc["profile"]["contracts"] == _deployed
    assert doc["profile"]["ipfsGateway"] == "http://10.0.0.1:8080" and doc["profile"]["deployBlock"] == 42
    # the built-in devnet addresses are those of a fresh deploy_all by anvil's first dev account (tasknet up)
    assert w3.eth.chain_id == 31337 and doc["devnet"] == _deployed
    module = run([str(project / "node_modules" / ".bin" / "tasknet-network"), "profile.json"], project)
    assert "export const lab = {" in module and "satisfies TasknetNetwork" in module


def test_hardhat_link_references_point_at_the_library_placeholders(project: Path) -> None:
    pkg = project / "node_modules" / "@tasknet" / "contracts"
    hh = json.loads((pkg / "artifacts/hardhat/contracts/Marketplace.sol/Marketplace.json").read_text())
    code = hh["bytecode"].removeprefix("0x")
    addresses = {"contracts/libraries/ReplicaLogic.sol:ReplicaLogic": "0x" + "11" * 20,
                 "contracts/libraries/AccountLogic.sol:AccountLogic": "0x" + "22" * 20}
    assert hh["linkReferences"] and hh["deployedLinkReferences"]
    # oracle's linker refuses a placeholder no link reference covers: every one of them is covered
    linked = link_bytecode("0x" + code, addresses, hh["linkReferences"]).removeprefix("0x")
    for source, libs in hh["linkReferences"].items():
        for name, refs in libs.items():
            want = addresses[f"{source}:{name}"].removeprefix("0x")
            for ref in refs:
                at = slice(2 * ref["start"], 2 * (ref["start"] + ref["length"]))
                assert code[at].startswith("__") and name in code[at]  # a library placeholder, unlinked
                assert linked[at] == want
