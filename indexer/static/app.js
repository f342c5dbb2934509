// Tasknet dashboard: polls the read-only API and renders tables and inline SVG charts. No dependencies.
"use strict";
const params = new URLSearchParams(location.search);
const REFRESH_MS = Math.max(250, Number(params.get("refresh") || 2000));
const E18 = 10n ** 18n;
const $ = (id) => document.getElementById(id);

function tokens(s) {  // decimal string of base units -> "12.5" (tokens)
  if (s === null || s === undefined) return "–";
  const v = BigInt(s), whole = v / E18, frac = (v % E18).toString().padStart(18, "0").slice(0, 3).replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : `${whole}`;
}
const short = (a) => a ? `${a.slice(0, 6)}…${a.slice(-4)}` : "–";
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const badge = (s) => `<span class="badge b-${esc(s)}">${esc(s)}</span>`;
function ago(ts, now) {
  const d = Math.max(0, now - ts);
  if (d < 60) return `${d}s ago`; if (d < 3600) return `${Math.floor(d / 60)}m ago`; return `${Math.floor(d / 3600)}h ago`;
}
const mem = (mb) => mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : `${mb} MB`;
const ppb = (v) => `${Number(v) / 1e9}`;  // parts per billion -> "0.99"
const pct = (bps) => `${bps / 100}%`;
// credibility mode: a job's replication cell ("R 3", or "0.99 ≤6" with f and spot checks in its title)
function mode(j) {
  if (j.mode !== "credibility") return num(j.replication);
  const title = `credibility mode: confidence ${ppb(j.confidence_ppb)}, assumed faulty ${pct(j.fault_bps)}, spot checks ${pct(j.spot_check_bps)}, at most ${j.replication} replicas`;
  return {html: `<span class="badge b-credibility" title="${esc(title)}">${esc(ppb(j.confidence_ppb))} ≤${esc(j.replication)}</span>`, num: true};
}
// why a credibility-mode task wanted its extra replicas, in order ("spot-check", "dispute ×2")
function wanted(reasons) {
  const runs = [];
  reasons.forEach((r) => { const last = runs[runs.length - 1]; if (last && last[0] === r) last[1] += 1; else runs.push([r, 1]); });
  return {html: runs.map(([r, n]) => `<span class="badge b-${esc(r)}">${esc(r)}${n > 1 ? ` ×${n}` : ""}</span>`).join(" ") || "–"};
}
async function get(path) {
  const r = await fetch(path, {headers: {"Accept": "application/json"}});
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

const seen = new Map();  // row key -> signature, to flash rows that changed
function fill(tableId, rows, key, cells, onClick) {
  const body = $(tableId).querySelector("tbody");
  const html = rows.map((r) => {
    const k = key(r), sig = JSON.stringify(r), fresh = seen.has(tableId + k) && seen.get(tableId + k) !== sig;
    seen.set(tableId + k, sig);
    return `<tr data-key="${esc(k)}" class="${onClick ? "clickable" : ""} ${fresh ? "fresh" : ""}">${cells(r).map((c) => `<td${c.num ? ' class="num"' : ""}>${c.html ?? esc(c)}</td>`).join("")}</tr>`;
  }).join("");
  body.innerHTML = html || `<tr><td colspan="20" class="muted">nothing yet</td></tr>`;
  if (onClick) body.querySelectorAll("tr[data-key]").forEach((tr) => tr.addEventListener("click", () => onClick(tr.dataset.key)));
}
const num = (v) => ({html: esc(v), num: true});
const mono = (v, title) => ({html: `<span class="mono" title="${esc(title || v)}">${esc(v)}</span>`});

function chart(svgId, points, {color = "#4fa3ff", max = null, bars = false, fmt = (v) => v} = {}) {
  const svg = $(svgId), W = 400, H = 140, L = 36, B = 18, T = 8;
  const vals = points.map((p) => p.v).filter((v) => v !== null);
  const top = max ?? Math.max(1, ...vals);
  const x = (i) => L + (points.length <= 1 ? 0 : i * (W - L - 6) / (points.length - 1));
  const y = (v) => H - B - (v / top) * (H - B - T);
  let g = `<line x1="${L}" y1="${H - B}" x2="${W}" y2="${H - B}" stroke="#263049"/>`;
  g += `<text x="2" y="${T + 8}">${esc(fmt(top))}</text><text x="2" y="${H - B}">0</text>`;
  if (bars) {
    const w = Math.max(2, (W - L - 6) / Math.max(1, points.length) - 2);
    points.forEach((p, i) => { if (p.v) g += `<rect x="${x(i) - w / 2}" y="${y(p.v)}" width="${w}" height="${H - B - y(p.v)}" fill="${color}" rx="2"/>`; });
  } else {
    const pts = points.map((p, i) => (p.v === null ? null : `${x(i)},${y(p.v)}`)).filter(Boolean);
    if (pts.length) g += `<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.join(" ")}"/>`;
    points.forEach((p, i) => { if (p.v !== null) g += `<circle cx="${x(i)}" cy="${y(p.v)}" r="2.5" fill="${color}"/>`; });
  }
  if (points.length) {
    const t0 = new Date(points[0].t * 1000), t1 = new Date(points[points.length - 1].t * 1000);
    const hm = (d) => d.toISOString().slice(11, 16);
    g += `<text x="${L}" y="${H - 4}">${hm(t0)}</text><text x="${W - 30}" y="${H - 4}">${hm(t1)}</text>`;
  }
  svg.innerHTML = g;
  svg.dataset.points = String(vals.length);
}

let openTask = null;
async function showTask(id) {
  openTask = id;
  const d = await get(`/api/tasks/${id}`);
  $("detail").hidden = false;
  $("detail-id").textContent = `${d.task.job_id}/${d.task.idx}`;
  const lines = [`status ${d.task.status} · target ${d.task.target} · gas ${d.task.gas_used}`];
  if (d.job && d.job.mode === "credibility") {
    lines.push(`credibility mode: confidence ${ppb(d.job.confidence_ppb)}, assumed faulty ${pct(d.job.fault_bps)}, spot checks ${pct(d.job.spot_check_bps)}, at most ${d.job.replication} replicas`);
    d.wanted.forEach((w) => lines.push(`  wanted replica ${w.target}: ${w.reason} (credibility ${ppb(w.credibility_ppb)}, block ${w.block_number})`));
  }
  lines.push("", "replicas:");
  d.replicas.forEach((r) => lines.push(`  #${r.seq} ${r.worker} ${r.status} ${r.result_digest || ""} ${r.result_cid || ""}`));
  lines.push("", "history:");
  d.history.forEach((e) => lines.push(`  block ${e.block_number} ${e.name} ${JSON.stringify(e.args)}`));
  $("detail-body").textContent = lines.join("\n");
}
$("detail-close").addEventListener("click", () => { $("detail").hidden = true; openTask = null; });

async function refresh() {
  const [stats, workers, tasks, jobs, apps, datasets, series] = await Promise.all([
    get("/api/stats"), get("/api/workers?limit=100&order=reputation"), get("/api/tasks?limit=50&order=recent"),
    get("/api/jobs?limit=25"), get("/api/apps?limit=100"), get("/api/datasets?limit=100"),
    get("/api/stats/series?minutes=30&bucket=60")]);
  const now = stats.chain_time;
  $("sync").textContent = `block ${stats.indexed_block} of ${stats.chain_head} · ${stats.events_total} events · refreshed ${new Date().toLocaleTimeString()}`;
  $("c-jobs").textContent = `${stats.jobs_open} / ${stats.jobs}`;
  $("c-running").textContent = stats.tasks_running;
  $("c-done").textContent = `${stats.tasks_finished} / ${stats.tasks_failed}`;
  $("c-success").textContent = stats.success_rate === null ? "–" : `${(stats.success_rate * 100).toFixed(1)}%`;
  $("c-tpm").textContent = stats.tasks_per_minute.toFixed(1);
  $("c-gas").textContent = stats.gas_per_task === null ? "–" : Math.round(stats.gas_per_task).toLocaleString("en");
  $("c-workers").textContent = `${stats.active_workers} / ${stats.workers}`;
  $("c-escrow").textContent = tokens(stats.value_escrowed);

  $("hosts-count").textContent = `${workers.total} registered`;
  fill("hosts", workers.items, (w) => w.address, (w) => [
    mono(short(w.address), w.address), {html: badge(w.status)}, num(w.cores), num(mem(w.memory_mb)), num(w.gpus),
    w.arch.join(", ") + (w.platform_class ? ` · ${w.platform_class}` : ""), num(w.reputation), num(w.verified), num(tokens(w.stake)), num(tokens(w.earned)), num(w.tasks_done),
    num(w.tasks_failed), ago(w.last_activity, now)]);
  $("tasks-count").textContent = `${tasks.total} claimed`;
  fill("tasks", tasks.items, (t) => String(t.task_id), (t) => [
    mono(`${t.job_id}/${t.idx}`, String(t.task_id)), {html: badge(t.status)}, num(`${t.revealed}/${t.target}`), wanted(t.wanted),
    mono(short(t.worker), t.worker || ""), mono(t.result_digest ? t.result_digest.slice(0, 12) + "…" : "–", t.result_digest || ""),
    num(t.gas_used.toLocaleString("en")), ago(t.finished_at || t.claimed_at, now)], showTask);
  fill("jobs", jobs.items, (j) => String(j.job_id), (j) => [
    num(j.job_id), num(j.app_id), {html: badge(j.status)}, num(`${j.finished}/${j.num_tasks}`), mode(j),
    num(tokens(j.reward)), num(tokens(j.escrow_held))]);
  fill("apps", apps.items, (a) => String(a.app_id), (a) => [
    num(a.app_id), mono(a.image_ref), mono(short(a.owner), a.owner), num(tokens(a.price)), num(a.jobs), num(tokens(a.earned))]);
  fill("datasets", datasets.items, (d) => String(d.dataset_id), (d) => [
    num(d.dataset_id), mono(d.cid.length > 16 ? d.cid.slice(0, 16) + "…" : d.cid, d.cid), mono(short(d.owner), d.owner),
    num(tokens(d.price)), num(d.jobs), num(tokens(d.earned))]);

  chart("ch-tasks", series.map((p) => ({t: p.t, v: p.finished + p.failed})), {bars: true, color: "#4fa3ff"});
  chart("ch-success", series.map((p) => ({t: p.t, v: p.finished + p.failed ? 100 * p.finished / (p.finished + p.failed) : null})),
    {max: 100, color: "#3ecf8e", fmt: (v) => `${v}%`});
  chart("ch-gas", series.map((p) => ({t: p.t, v: p.gas_per_task})), {color: "#f5b94a", fmt: (v) => `${Math.round(v / 1000)}k`});
  if (openTask) await showTask(openTask);
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
}

async function loop() {
  try { await refresh(); } catch (e) { $("sync").textContent = `API unreachable: ${e.message}`; }
  setTimeout(loop, REFRESH_MS);
}
loop();
