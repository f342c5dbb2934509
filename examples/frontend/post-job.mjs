#!/usr/bin/env node
// Post a Tasknet job from JavaScript with ethers v6, wait for its results on chain, print their CIDs.
//
// It loads the Truffle-format artifacts that `tasknet up` writes (networks[chainId].address filled), so the
// same files work with Truffle, Embark or any ethers/web3.js frontend. Usage:
//
//   node examples/frontend/post-job.mjs --app 1 --args 0,24 --reward 0.1           # the devnet of `tasknet up`
//   node examples/frontend/post-job.mjs --devnet path/devnet.json --app 1 --count 3 --args '{index}'
//   node examples/frontend/post-job.mjs --rpc http://127.0.0.1:8545 --artifacts DIR --ipfs-api URL --app 1
//                                       (key in $TASKNET_PRIVATE_KEY)
//
// Prints one JSON document on stdout: {"jobId", "txHash", "inputsCID", "results": [{"index", "taskId",
// "digest", "cid"}]}; progress goes to stderr. Exit 0 when every task has a final result, 1 on error, 4 on timeout.

import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { Contract, JsonRpcProvider, NonceManager, Wallet, parseUnits } from "ethers";

const { values: opt } = parseArgs({
  options: {
    devnet: { type: "string" },
    rpc: { type: "string" },
    artifacts: { type: "string" },
    "ipfs-api": { type: "string" },
    role: { type: "string", default: "requester" },
    app: { type: "string" },
    count: { type: "string", default: "1" },
    args: { type: "string", default: "" },
    inputs: { type: "string" },
    reward: { type: "string", default: "0.1" },
    replication: { type: "string", default: "1" },
    "max-run": { type: "string", default: "120" },
    deadline: { type: "string", default: "3600" },
    callback: { type: "string", default: "0x0000000000000000000000000000000000000000" },
    timeout: { type: "string", default: "300" },
  },
});

const log = (...m) => console.error("[post-job]", ...m);
const errorContracts = []; // decode reverts with these contracts' custom errors

function fail(message, code = 1) {
  console.error(`Error: ${message}`);
  process.exit(code);
}

// -- where things are: the devnet file, or explicit flags ------------------------------------------------
function settings() {
  if (!opt.app) fail("--app APP_ID is required (register one with 'tasknet app register')");
  if (opt.rpc) {
    if (!opt.artifacts || !opt["ipfs-api"]) fail("--rpc needs --artifacts DIR and --ipfs-api URL");
    const key = process.env.TASKNET_PRIVATE_KEY;
    if (!key) fail("set TASKNET_PRIVATE_KEY to the requester's key");
    return { rpc: opt.rpc, artifacts: opt.artifacts, ipfsApi: opt["ipfs-api"], key };
  }
  const home = process.env.TASKNET_HOME || join(homedir(), ".tasknet");
  const file = opt.devnet || process.env.TASKNET_DEVNET_FILE || join(home, "devnet", "devnet.json");
  let devnet;
  try {
    devnet = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    fail(`cannot read the devnet file ${file} (${e.message}); start the devnet with 'tasknet up'`);
  }
  const account = devnet.accounts.find((a) => a.role === opt.role);
  if (!account) fail(`the devnet has no account with role ${opt.role}`);
  return { rpc: devnet.rpc_url, artifacts: join(devnet.state_dir, "artifacts"), ipfsApi: devnet.ipfs_api,
           key: account.private_key };
}

// -- Truffle artifacts: abi + networks[chainId].address --------------------------------------------------
function load(dir, name, chainId, signer) {
  const art = JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8"));
  const net = art.networks?.[String(chainId)];
  if (!net?.address) fail(`${name}.json has no address for chain ${chainId}; use the artifacts of this devnet`);
  return new Contract(net.address, art.abi, signer);
}

async function ipfsAddJson(api, doc) {
  const form = new FormData();
  form.append("file", new Blob([JSON.stringify(doc)], { type: "application/json" }), "inputs.json");
  const r = await fetch(`${api}/api/v0/add?pin=true&cid-version=1&quieter=true`, { method: "POST", body: form });
  if (!r.ok) fail(`IPFS add failed: HTTP ${r.status} ${await r.text()}`);
  return JSON.parse((await r.text()).trim().split("\n").pop()).Hash;
}

// -- a revert, decoded with the marketplace's custom errors ------------------------------------------------
function explain(e, contracts) {
  const data = e?.data ?? e?.info?.error?.data ?? e?.error?.data;
  for (const c of contracts) {
    try {
      const parsed = c.interface.parseError(data);
      if (parsed) return `${parsed.name}(${parsed.args.map(String).join(", ")})`;
    } catch { /* not this contract's error */ }
  }
  return e.shortMessage || e.message;
}

async function main() {
  const s = settings();
  const provider = new JsonRpcProvider(s.rpc, undefined, { pollingInterval: 200 });
  const { chainId } = await provider.getNetwork();
  const wallet = new NonceManager(new Wallet(s.key, provider));
  const me = await wallet.getAddress();
  const market = load(s.artifacts, "Marketplace", chainId, wallet);
  const token = load(s.artifacts, "TestToken", chainId, wallet);
  const registry = load(s.artifacts, "MarketplaceRegistry", chainId, wallet);
  errorContracts.push(market, registry, token);

  const appId = BigInt(opt.app);
  const count = BigInt(opt.count);
  const replication = BigInt(opt.replication);
  const reward = parseUnits(opt.reward, 18);
  const app = await registry.getApp(appId);
  if (app.owner === "0x0000000000000000000000000000000000000000") fail(`no app ${appId} is registered`);

  // 1. money: top the marketplace balance up to the escrow (approve + deposit)
  const escrow = count * (replication * reward + app.price);
  const balance = await market.balanceOf(me);
  if (balance < escrow) {
    const missing = escrow - balance;
    log(`depositing ${missing} wei`);
    await (await token.approve(await market.getAddress(), missing)).wait();
    await (await market.deposit(missing)).wait();
  }

  // 2. the inputs document on IPFS (or an existing one)
  const args = opt.args ? opt.args.split(",") : [];
  const inputsCID = opt.inputs ?? await ipfsAddJson(s.ipfsApi, { version: 1, count: Number(count),
                                                                 template: { args } });
  log(`inputs document ${inputsCID}`);

  // 3. post the job: the JobParams struct, field by field
  const now = BigInt((await provider.getBlock("latest")).timestamp);
  const params = {
    appId, datasetId: 0n, numTasks: count, replication, reward, deadline: now + BigInt(opt.deadline),
    maxRunSeconds: BigInt(opt["max-run"]), cores: 1n, memoryMB: 256n, gpus: 0n, archMask: 0n, minReputation: 0n,
    callback: opt.callback, inputsCID, encryptionKey: "0x",
  };
  const receipt = await (await market.postJob(params)).wait();
  const posted = receipt.logs.map((l) => market.interface.parseLog(l)).find((l) => l?.name === "JobPosted");
  const jobId = posted.args.jobId;
  log(`job ${jobId} posted in block ${receipt.blockNumber}, escrow ${posted.args.escrow} wei`);

  // 4. wait for each task's final event: ResultSubmitted (R = 1) or TaskFinalized (R > 1)
  const first = jobId << 32n;
  const results = new Map();
  const deadline = Date.now() + Number(opt.timeout) * 1000;
  let from = receipt.blockNumber;
  while (results.size < Number(count)) {
    if (Date.now() > deadline) {
      console.error(`Timeout: ${results.size}/${count} tasks finished; run 'tasknet job explain ${jobId}'`);
      process.exit(4);
    }
    const head = await provider.getBlockNumber();
    if (head >= from) {
      const mine = (e) => e.args.taskId >= first && e.args.taskId < first + count;
      for (const e of (await market.queryFilter(market.filters.ResultSubmitted(), from, head)).filter(mine)) {
        results.set(e.args.taskId, { digest: e.args.resultDigest, cid: e.args.resultCID });
      }
      const reveals = (await market.queryFilter(market.filters.ResultRevealed(), receipt.blockNumber, head))
        .filter(mine);
      for (const e of (await market.queryFilter(market.filters.TaskFinalized(), from, head)).filter(mine)) {
        const winner = reveals.find((r) => r.args.taskId === e.args.taskId && r.args.resultDigest === e.args.resultDigest);
        results.set(e.args.taskId, { digest: e.args.resultDigest, cid: winner?.args.resultCID ?? null });
      }
      from = head + 1;
      log(`${results.size}/${count} tasks finished`);
    }
    if (results.size < Number(count)) await new Promise((r) => setTimeout(r, 250));
  }
  const out = [...results.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([taskId, r]) => ({
    index: Number(taskId - first), taskId: taskId.toString(), digest: r.digest, cid: r.cid,
  }));
  console.log(JSON.stringify({ jobId: Number(jobId), txHash: receipt.hash, inputsCID, results: out }, null, 2));
  provider.destroy();
}

main().catch((e) => fail(explain(e, errorContracts)));
