// FileHasher's page: hash a file on Tasknet from the browser.
//
// It connects to an injected EIP-1193 wallet (window.ethereum) or, when the browser has none, to the devnet dev
// account named in config.json; uploads the file and an inputs document through the IPFS RPC API; pays and
// requests through the FileHasher contract; follows the request through the contracts' events; fetches the result
// archive through the IPFS gateway, checks it against the digest the marketplace delivered on chain, and shows it.
// Every revert is shown as its custom error, by name and values (@tasknet/contracts' describeError).
import {
  createPublicClient, createWalletClient, custom, defineChain, formatUnits, http,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import {
  describeError, fileHasherAbi, marketplaceAbi, marketplaceRegistryAbi, testTokenAbi, splitTaskId,
} from "@tasknet/contracts";

import { readTar } from "./tar.js";

const STATUS = ["none", "pending", "done", "refundable", "refunded"];
const REASONS = ["no consensus between the replicas", "failure reports reached the cap", "cancelled",
  "not done by the deadline"];
const $ = (id) => document.getElementById(id);

const state = {
  config: null, chain: null, pub: null, wallet: null, account: null, symbol: "TOKEN", requests: [],
  selected: null, verified: new Map(), polling: false, busy: false,
};

// -- small helpers ------------------------------------------------------------------------------------
const short = (hex) => (hex ? `${hex.slice(0, 8)}…${hex.slice(-4)}` : "");
const amount = (wei) => `${formatUnits(wei, 18)} ${state.symbol}`;

function say(message) {
  $("status").textContent = message;
}

function showError(error) {
  const line = describeError(error);
  $("error").textContent = line;
  $("error").hidden = false;
  console.error(line, error);
}

function clearError() {
  $("error").textContent = "";
  $("error").hidden = true;
}

async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return "0x" + [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// -- connection ---------------------------------------------------------------------------------------
async function connect() {
  const cfg = (state.config = await (await fetch("config.json", { cache: "no-store" })).json());
  state.chain = defineChain({
    id: cfg.chainId, name: `Tasknet (chain ${cfg.chainId})`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [cfg.rpcUrl] } },
  });
  state.pub = createPublicClient({ chain: state.chain, transport: http(cfg.rpcUrl), pollingInterval: 250 });
  if (window.ethereum) {
    const [address] = await window.ethereum.request({ method: "eth_requestAccounts" });
    const chainId = Number(await window.ethereum.request({ method: "eth_chainId" }));
    if (chainId !== cfg.chainId) {
      throw new Error(`the wallet is on chain ${chainId}; switch it to chain ${cfg.chainId} (the Tasknet devnet)`);
    }
    state.account = address;
    state.wallet = createWalletClient({ account: address, chain: state.chain, transport: custom(window.ethereum) });
    $("wallet-kind").textContent = "injected wallet";
    window.ethereum.on?.("accountsChanged", () => location.reload());
  } else {
    const dev = privateKeyToAccount(cfg.devAccount.privateKey);
    state.account = dev.address;
    state.wallet = createWalletClient({ account: dev, chain: state.chain, transport: http(cfg.rpcUrl) });
    $("wallet-kind").textContent = `devnet dev account '${cfg.devAccount.role}' (no wallet in this browser)`;
  }
  $("account").textContent = state.account;
  $("account").title = state.account;
  state.symbol = await state.pub.readContract({ address: cfg.contracts.TestToken, abi: testTokenAbi,
    functionName: "symbol" });
}

/** Simulates (so a revert is reported before anything is signed), sends, and waits for the receipt. */
async function send(label, call) {
  say(`${label}: waiting for the wallet…`);
  const { request } = await state.pub.simulateContract({ account: state.account, ...call });
  const hash = await state.wallet.writeContract(request);
  say(`${label}: transaction ${short(hash)} sent, waiting for it to be mined…`);
  const receipt = await state.pub.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new Error(`${label}: the transaction ${hash} reverted`);
  say(`${label}: done (block ${receipt.blockNumber})`);
  return receipt;
}

// -- IPFS -----------------------------------------------------------------------------------------------
async function ipfsAdd(name, blob) {
  const form = new FormData();
  form.append("file", blob, name);
  const url = `${state.config.ipfsApi}/api/v0/add?pin=true&cid-version=1&quieter=true`;
  let response;
  try {
    response = await fetch(url, { method: "POST", body: form });
  } catch (e) {
    throw new Error(`the IPFS API ${state.config.ipfsApi} refused the upload (${e.message}); allow this page's ` +
      `origin ${location.origin} (tasknet up --ipfs-api-origin ${location.origin})`);
  }
  if (!response.ok) throw new Error(`IPFS add failed: HTTP ${response.status} ${await response.text()}`);
  return JSON.parse((await response.text()).trim().split("\n").pop()).Hash;
}

async function ipfsCat(cid) {
  const response = await fetch(`${state.config.ipfsGateway}/ipfs/${cid}`);
  if (!response.ok) throw new Error(`the IPFS gateway answered HTTP ${response.status} for ${cid}`);
  return new Uint8Array(await response.arrayBuffer());
}

// -- actions --------------------------------------------------------------------------------------------
async function requestHash() {
  const cfg = state.config;
  const file = $("file").files[0];
  const text = $("text").value;
  if (!file && !text) throw new Error("choose a file or type some text to hash");
  const blob = file ?? new Blob([text], { type: "text/plain" });
  say("uploading the file to IPFS…");
  const fileCid = await ipfsAdd(file?.name ?? "text.txt", blob);
  const inputs = { version: 1, count: 1, template: { args: [] },
    common_inputs: [{ uri: `ipfs://${fileCid}`, path: "file", size: blob.size }] };
  const inputsCid = await ipfsAdd("inputs.json", new Blob([JSON.stringify(inputs)], { type: "application/json" }));
  say(`file ${short(fileCid)} and inputs document ${short(inputsCid)} are on IPFS`);
  const hasher = cfg.contracts.FileHasher;
  const price = await state.pub.readContract({ address: hasher, abi: fileHasherAbi, functionName: "price" });
  const allowance = await state.pub.readContract({ address: cfg.contracts.TestToken, abi: testTokenAbi,
    functionName: "allowance", args: [state.account, hasher] });
  if (allowance < price) {
    await send(`approving ${amount(price)}`, { address: cfg.contracts.TestToken, abi: testTokenAbi,
      functionName: "approve", args: [hasher, price] });
  }
  const receipt = await send("requesting", { address: hasher, abi: fileHasherAbi, functionName: "request",
    args: [inputsCid] });
  await refresh();
  const mine = state.requests.find((r) => r.txHash === receipt.transactionHash);
  if (mine) select(mine.id);
}

async function act(kind, id) {
  const names = { cancel: "cancelling", refund: "claiming the refund" };
  await send(`${names[kind]} of request ${id}`, { address: state.config.contracts.FileHasher, abi: fileHasherAbi,
    functionName: kind === "cancel" ? "cancel" : "claimRefund", args: [BigInt(id)] });
  await refresh();
}

function guarded(fn) {
  return async (...args) => {
    if (state.busy) return;
    state.busy = true;
    clearError();
    document.body.classList.add("busy");
    try {
      await fn(...args);
    } catch (e) {
      say("");
      showError(e);
    } finally {
      state.busy = false;
      document.body.classList.remove("busy");
    }
  };
}

// -- following the requests through events ----------------------------------------------------------------
const MARKET_EVENTS = ["JobPosted", "TasksClaimed", "ReplicaClaimed", "ResultCommitted", "ResultRevealed",
  "ResultSubmitted", "TaskFinalized", "FailureReported", "FailureConfirmed", "TaskFailed", "LeaseExpired",
  "ClaimAbandoned", "CallbackDelivered", "TasksCancelled", "JobClosed", "TasksEndedDelivered"];

function marketEventTask(e) {
  const a = e.args;
  if (a.taskId !== undefined) return { taskId: a.taskId };
  if (a.startTaskId !== undefined) return { taskId: a.startTaskId, count: a.count ?? 1n };
  if (a.jobId !== undefined) return { jobId: a.jobId };
  return {};
}

function describeEvent(e, req) {
  const a = e.args;
  switch (e.eventName) {
    case "HashRequested": return `request ${a.requestId} paid ${amount(a.paid)}: inputs ${short(a.inputsCID)}`;
    case "TasknetJobPosted": return `job ${a.jobId} posted from the Dapp's balance (escrow ${amount(a.escrow)})`;
    case "JobPosted": return `the marketplace locked ${amount(a.escrow)} for job ${a.jobId}`;
    case "TasksClaimed": return `worker ${short(a.worker)} claimed the task`;
    case "ReplicaClaimed": return `worker ${short(a.worker)} claimed replica ${a.replica}`;
    case "ResultCommitted": return `worker ${short(a.worker)} committed its result`;
    case "ResultRevealed": return `worker ${short(a.worker)} revealed digest ${short(a.resultDigest)}`;
    case "ResultSubmitted": return `worker ${short(a.worker)} submitted digest ${short(a.resultDigest)} ` +
      `(archive ${short(a.resultCID)})`;
    case "TaskFinalized": return `${a.winners} replicas agreed on digest ${short(a.resultDigest)}`;
    case "FailureReported": return `worker ${short(a.worker)} reported a failure (${a.reports} so far)`;
    case "FailureConfirmed": return `a second worker confirmed the failure`;
    case "TaskFailed": return `the task failed: ${amount(a.refund)} back to the Dapp`;
    case "LeaseExpired": return `worker ${short(a.worker)} let its claim expire: the task is open again`;
    case "ClaimAbandoned": return `worker ${short(a.worker)} gave the task back: it is open again`;
    case "CallbackDelivered": return `the marketplace called the Dapp back (${a.success ? "accepted" : "refused"})`;
    case "TasksCancelled": return `task cancelled: ${amount(a.refund)} back to the Dapp`;
    case "JobClosed": return a.refund ? `job closed after its deadline: ${amount(a.refund)} back to the Dapp`
      : "job closed";
    case "TasksEndedDelivered": return `the marketplace told the Dapp (${a.success ? "accepted" : "refused"})`;
    case "HashComputed": return `the Dapp stored digest ${short(a.resultDigest)}`;
    case "HashFailed": return `the Dapp marked the request refundable: ${REASONS[a.reason] ?? a.reason}`;
    case "RefundClaimed": return `${amount(a.amount)} refunded to ${short(a.user)}`;
    case "TasknetHookFailed": return "the Dapp's hook failed: the outcome waits for a replay";
    default: return `${e.eventName} (request ${req.id})`;
  }
}

async function refresh() {
  const cfg = state.config;
  const fromBlock = BigInt(cfg.deployBlock ?? 0);
  const hasherLogs = await state.pub.getContractEvents({ address: cfg.contracts.FileHasher, abi: fileHasherAbi,
    fromBlock });
  const requested = hasherLogs.filter((e) => e.eventName === "HashRequested" &&
    e.args.user.toLowerCase() === state.account.toLowerCase());
  const first = requested.length ? requested[0].blockNumber : null;
  const marketLogs = first === null ? [] : (await state.pub.getContractEvents({
    address: cfg.contracts.Marketplace, abi: marketplaceAbi, fromBlock: first,
  })).filter((e) => MARKET_EVENTS.includes(e.eventName));
  const head = await state.pub.getBlock();
  const requests = [];
  for (const ev of requested) {
    const id = ev.args.requestId;
    const taskId = ev.args.taskId;
    const [jobId] = splitTaskId(taskId);
    const r = await state.pub.readContract({ address: cfg.contracts.FileHasher, abi: fileHasherAbi,
      functionName: "getRequest", args: [id] });
    const job = await state.pub.readContract({ address: cfg.contracts.Marketplace, abi: marketplaceAbi,
      functionName: "getJob", args: [jobId] });
    const events = [
      ...hasherLogs.filter((e) => e.args.requestId === id),
      ...marketLogs.filter((e) => {
        const t = marketEventTask(e);
        if (t.jobId !== undefined) return t.jobId === jobId;
        if (t.taskId === undefined) return false;
        return t.taskId <= taskId && taskId < t.taskId + (t.count ?? 1n);
      }),
    ].sort((x, y) => (x.blockNumber === y.blockNumber ? x.logIndex - y.logIndex
      : Number(x.blockNumber - y.blockNumber)));
    requests.push({ id: String(id), taskId, jobId, txHash: ev.transactionHash, status: STATUS[r.status],
      digest: r.digest, paid: r.paid, deadline: BigInt(job.deadline), expired: head.timestamp > BigInt(job.deadline),
      events });
  }
  state.requests = requests.reverse();
  render();
  const sel = state.requests.find((r) => r.id === state.selected);
  if (sel?.status === "done" && !state.verified.has(sel.id)) await verify(sel);
}

// -- the result: fetched through the gateway, checked against the on-chain digest -----------------------------
async function deterministicFile(appId) {
  const logs = await state.pub.getLogs({ address: state.config.contracts.MarketplaceRegistry,
    event: marketplaceRegistryAbi.find((i) => i.type === "event" && i.name === "AppRegistered"),
    args: { appId: BigInt(appId) }, fromBlock: 0n });
  return logs.length ? logs[0].args.deterministicFile : "";
}

function resultCid(req) {
  const submitted = req.events.find((e) => e.eventName === "ResultSubmitted");
  if (submitted) return submitted.args.resultCID;
  const revealed = req.events.find((e) => e.eventName === "ResultRevealed" && e.args.resultDigest === req.digest);
  if (revealed) return revealed.args.resultCID;
  const reported = req.events.find((e) => e.eventName === "FailureReported" && e.args.resultDigest === req.digest);
  return reported?.args.resultCID ?? null;
}

async function verify(req) {
  const cid = resultCid(req);
  if (!cid) return;
  state.verified.set(req.id, { pending: true });
  try {
    const archive = await ipfsCat(cid);
    const files = readTar(archive);
    const job = await state.pub.readContract({ address: state.config.contracts.Marketplace, abi: marketplaceAbi,
      functionName: "getJob", args: [req.jobId] });
    const det = await deterministicFile(job.appId);
    const status = files.get("logs/status.txt") ? new TextDecoder().decode(files.get("logs/status.txt")) : "";
    const ok = /^reason: ok$/m.test(status);
    const covered = det && ok ? files.get(`output/${det}`) : archive;
    if (!covered) throw new Error(`the archive has no output/${det}, the app's deterministic file`);
    const computed = await sha256Hex(covered);
    const result = files.get("output/result.txt");
    state.verified.set(req.id, {
      cid, computed, match: computed === req.digest, over: det && ok ? `output/${det}` : "the whole archive",
      text: result ? new TextDecoder().decode(result) : `(no output/result.txt; the run ended with:\n${status})`,
    });
  } catch (e) {
    state.verified.set(req.id, { cid, error: describeError(e) });
  }
  render();
}

// -- rendering ----------------------------------------------------------------------------------------------
function select(id) {
  state.selected = id;
  render();
  const req = state.requests.find((r) => r.id === id);
  if (req?.status === "done" && !state.verified.has(id)) verify(req);
}

function button(label, onClick, testId) {
  const b = document.createElement("button");
  b.textContent = label;
  b.dataset.testid = testId;
  b.addEventListener("click", (e) => {
    e.stopPropagation();
    onClick();
  });
  return b;
}

/** The request's status as the user should read it: a pending request past its job's deadline is "expired" (no
 * worker may claim it any more; claiming the refund closes the job and refunds it in one transaction). */
function shownStatus(r) {
  return r.status === "pending" && r.expired ? "expired" : r.status;
}

function render() {
  const tbody = $("requests").querySelector("tbody");
  tbody.replaceChildren();
  for (const r of state.requests) {
    const tr = document.createElement("tr");
    tr.dataset.requestId = r.id;
    tr.classList.toggle("selected", r.id === state.selected);
    const shown = shownStatus(r);
    const cells = [`#${r.id}`, shown, `${r.jobId}/0`, amount(r.paid)];
    for (const [i, c] of cells.entries()) {
      const td = document.createElement("td");
      td.textContent = c;
      if (i === 1) td.className = `badge ${shown === "expired" ? "refundable" : shown}`;
      if (i === 1 && shown === "expired") td.title = "past its deadline without a result: no worker may take it now";
      tr.append(td);
    }
    const actions = document.createElement("td");
    if (shown === "pending") actions.append(button("Cancel", guarded(() => act("cancel", r.id)), "cancel"));
    if (shown === "refundable" || shown === "expired") {
      actions.append(button("Claim refund", guarded(() => act("refund", r.id)), "refund"));
    }
    tr.append(actions);
    tr.addEventListener("click", () => select(r.id));
    tbody.append(tr);
  }
  $("no-requests").hidden = state.requests.length > 0;
  const req = state.requests.find((r) => r.id === state.selected);
  $("detail").hidden = !req;
  if (!req) return;
  $("detail-title").textContent = `Request #${req.id}: ${shownStatus(req)}`;
  const list = $("timeline");
  list.replaceChildren(...req.events.map((e) => {
    const li = document.createElement("li");
    li.dataset.event = e.eventName;
    li.innerHTML = `<span class="block">block ${e.blockNumber}</span> <b>${e.eventName}</b> `;
    li.append(document.createTextNode(describeEvent(e, req)));
    return li;
  }));
  const v = state.verified.get(req.id);
  $("result").hidden = req.status !== "done";
  $("onchain-digest").textContent = req.digest;
  if (!v || v.pending) {
    $("verified").textContent = "fetching the result from the IPFS gateway…";
    $("verified").className = "";
    $("result-text").textContent = "";
  } else if (v.error) {
    $("verified").textContent = `could not check the result: ${v.error}`;
    $("verified").className = "bad";
  } else {
    $("verified").textContent = v.match
      ? `✓ verified: sha256 of ${v.over} (${short(v.computed)}) equals the digest on chain`
      : `✗ mismatch: sha256 of ${v.over} is ${v.computed}, not the digest on chain`;
    $("verified").className = v.match ? "good" : "bad";
    $("result-cid").textContent = v.cid;
    $("result-text").textContent = v.text;
  }
}

async function poll() {
  if (state.polling) return;
  state.polling = true;
  try {
    const cfg = state.config;
    const [balance, price] = await Promise.all([
      state.pub.readContract({ address: cfg.contracts.TestToken, abi: testTokenAbi, functionName: "balanceOf",
        args: [state.account] }),
      state.pub.readContract({ address: cfg.contracts.FileHasher, abi: fileHasherAbi, functionName: "price" }),
    ]);
    $("balance").textContent = amount(balance);
    $("price").textContent = amount(price);
    await refresh();
  } catch (e) {
    showError(e);
  } finally {
    state.polling = false;
  }
}

async function main() {
  try {
    await connect();
  } catch (e) {
    showError(e);
    $("connection").classList.add("bad");
    return;
  }
  $("request-btn").addEventListener("click", guarded(requestHash));
  document.body.dataset.ready = "true";
  await poll();
  setInterval(poll, 1000);
}

main();
