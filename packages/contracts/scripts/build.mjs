#!/usr/bin/env node
// Builds @tasknet/contracts from the repository's compiled artifacts (oracle/artifacts/, written by
// scripts/compile.js) and Solidity sources (contracts/):
//
//   artifacts/truffle/<Name>.json                the Truffle-format artifacts, as compiled
//   artifacts/hardhat/<source>/<Name>.json       Hardhat's hh-sol-artifact-1 format (with linkReferences)
//   contracts/...                                the interfaces, TasknetClient.sol and the example Dapps
//   networks/devnet.json                         the devnet's deterministic addresses
//   src/generated/{abis,errors,networks}.ts      typed ABIs (as const), the custom-error table, the devnet
//   dist/                                        tsc output (ES modules + .d.ts)
//
//   node scripts/build.mjs     (npm run build; npm pack runs it as prepack)
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { getContractAddress, keccak256, toFunctionSelector, toHex } from "viem";

const HERE = dirname(fileURLToPath(import.meta.url));
const PKG = resolve(HERE, "..");
const ROOT = resolve(PKG, "../..");
const ARTIFACTS = join(ROOT, "oracle", "artifacts");

/** Contracts whose ABI, artifacts and (for Solidity users) sources the package ships. */
const SHIPPED = ["Marketplace", "MarketplaceRegistry", "ReplicaLogic", "AccountLogic", "TestToken", "IMarketplace",
  "IMarketplaceExtension", "IMarketplaceRegistry", "ITaskCallback", "TasknetClient", "FileHasher", "ExampleConsumer"];
/** Solidity sources a Hardhat or Foundry project imports (with their relative imports intact). */
const SOURCES = ["contracts/IMarketplace.sol", "contracts/IMarketplaceExtension.sol",
  "contracts/IMarketplaceRegistry.sol", "contracts/client/TasknetClient.sol", "contracts/examples/FileHasher.sol", "contracts/examples/ExampleConsumer.sol"];
/** The devnet (`tasknet up`): anvil's first dev account deploys these, in this order, from nonce 0. */
const DEVNET_DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const DEVNET_ORDER = ["TestToken", "MarketplaceRegistry", "ReplicaLogic", "AccountLogic", "Marketplace"];

const camel = (name) => name[0].toLowerCase() + name.slice(1);
const write = (path, text) => {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
};
const json = (obj) => JSON.stringify(obj, null, 2) + "\n";

function load(name) {
  const path = join(ARTIFACTS, `${name}.json`);
  if (!existsSync(path)) throw new Error(`${path} is missing: run 'node scripts/compile.js' at the repository root`);
  return JSON.parse(readFileSync(path, "utf8"));
}

/** solc's `__$<keccak(fq name)[:34]>$__` placeholders in `bytecode`, as Hardhat linkReferences. */
function linkReferences(bytecode, libraries) {
  const refs = {};
  const hex = bytecode.replace(/^0x/, "");
  for (const m of hex.matchAll(/__\$([0-9a-f]{34})\$__/g)) {
    const lib = libraries.find((l) => keccak256(toHex(l.fq)).slice(2, 36) === m[1]);
    if (!lib) throw new Error(`unknown library placeholder ${m[0]}`);
    ((refs[lib.source] ??= {})[lib.name] ??= []).push({ length: 20, start: m.index / 2 });
  }
  return refs;
}

/** Enum member names per `enum Contract.Name` found in the shipped sources (the ABI only says uint8). */
function enumNames() {
  const out = {};
  for (const rel of SOURCES) {
    const text = readFileSync(join(ROOT, rel), "utf8");
    for (const m of text.matchAll(/\benum\s+(\w+)\s*\{([^}]*)\}/g)) {
      const owner = [...text.slice(0, m.index).matchAll(/\b(?:contract|interface|library)\s+(\w+)/g)].pop()?.[1];
      const members = m[2].replace(/\/\/[^\n]*/g, "").split(",").map((s) => s.trim()).filter(Boolean);
      out[`enum ${owner}.${m[1]}`] = members;
    }
  }
  return out;
}

function main() {
  for (const d of ["dist", "contracts", "artifacts", "networks", "src/generated"]) {
    rmSync(join(PKG, d), { recursive: true, force: true });
  }
  const manifest = load("manifest");
  const arts = Object.fromEntries(SHIPPED.map((n) => [n, load(n)]));
  const libraries = Object.values(arts)
    .filter((a) => new RegExp(`\\blibrary\\s+${a.contractName}\\b`).test(readFileSync(join(ROOT, a.sourceName), "utf8")))
    .map((a) => ({ name: a.contractName, source: a.sourceName, fq: `${a.sourceName}:${a.contractName}` }));

  // 1. artifacts: Truffle as compiled, Hardhat beside them
  for (const [name, a] of Object.entries(arts)) {
    write(join(PKG, "artifacts", "truffle", `${name}.json`), json(a));
    write(join(PKG, "artifacts", "hardhat", a.sourceName, `${name}.json`), json({
      _format: "hh-sol-artifact-1",
      contractName: name,
      sourceName: a.sourceName,
      abi: a.abi,
      bytecode: a.bytecode,
      deployedBytecode: a.deployedBytecode,
      linkReferences: a.linkReferences ?? linkReferences(a.bytecode, libraries),
      deployedLinkReferences: a.deployedLinkReferences ?? linkReferences(a.deployedBytecode, libraries),
    }));
  }

  // 2. Solidity sources
  for (const rel of SOURCES) cpSync(join(ROOT, rel), join(PKG, rel));

  // 3. typed ABIs
  let abis = `// Generated by scripts/build.mjs from oracle/artifacts (solc ${manifest.compiler}). Do not edit.\n`;
  for (const [name, a] of Object.entries(arts)) {
    abis += `\n/** ABI of \`${name}\` (${a.sourceName}). */\nexport const ${camel(name)}Abi = ${JSON.stringify(a.abi, null, 2)} as const;\n`;
  }
  write(join(PKG, "src", "generated", "abis.ts"), abis);

  // 4. the custom-error table: selector -> name and inputs (+ enum member names), from every shipped ABI
  const enums = enumNames();
  const errors = {
    "0x08c379a0": { name: "Error", inputs: [{ name: "message", type: "string" }] },
    "0x4e487b71": { name: "Panic", inputs: [{ name: "code", type: "uint256" }] },
  };
  for (const a of Object.values(arts)) {
    for (const item of a.abi.filter((i) => i.type === "error")) {
      const signature = `${item.name}(${item.inputs.map((i) => i.type).join(",")})`;
      errors[toFunctionSelector(signature)] = {
        name: item.name,
        inputs: item.inputs.map((i) => ({ name: i.name, type: i.type,
          ...(enums[i.internalType] ? { enum: enums[i.internalType] } : {}) })),
      };
    }
  }
  write(join(PKG, "src", "generated", "errors.ts"),
    `// Generated by scripts/build.mjs. Do not edit.\nimport type { ErrorEntry } from "../errors.js";\n\n` +
    `/** Every custom error of the shipped contracts (and Error/Panic), by 4-byte selector. */\n` +
    `export const errorTable: Readonly<Record<string, ErrorEntry>> = ${JSON.stringify(errors, null, 2)};\n`);

  // 5. the devnet's deterministic addresses
  const contracts = Object.fromEntries(DEVNET_ORDER.map((name, nonce) => [name,
    getContractAddress({ from: DEVNET_DEPLOYER, nonce: BigInt(nonce) })]));
  const devnet = { name: "devnet", chainId: 31337, rpcUrls: ["http://127.0.0.1:8545"], deployBlock: 1, contracts,
    token: contracts.TestToken };
  write(join(PKG, "networks", "devnet.json"), json(devnet));
  write(join(PKG, "src", "generated", "networks.ts"),
    `// Generated by scripts/build.mjs. Do not edit.\n\n` +
    `/** The devnet of \`tasknet up\` (anvil, chain 31337, deployed by its first dev account). */\n` +
    `export const devnet = ${JSON.stringify(devnet, null, 2)} as const;\n`);

  // 6. compile
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", join(PKG, "tsconfig.json")], { stdio: "inherit" });
  const count = readdirSync(join(PKG, "artifacts", "truffle")).length;
  console.log(`build: @tasknet/contracts with ${count} contracts, ${Object.keys(errors).length} errors ` +
    `(solc ${manifest.compiler})`);
}

main();
