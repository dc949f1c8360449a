// The investigator page: everything it shows comes from the /v1 API, called with the bearer
// token the user pasted (kept in this tab's sessionStorage). Views: #search and #decision=ID.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "attestream.token";
const TERMS = ["outcome", "detector", "score", "from", "to", "since"];
const ENTITIES = ["customer", "terminal", "epc", "gtin", "location", "read_point", "event_id"];
let pages = [];          // the cursors of the pages seen so far (null: the first page)
let lastSearch = null;   // the parameters of the last search, without cursor

async function api(path, params) {
  const url = new URL(`/v1/${path}`, location.origin);
  for (const [key, value] of params) url.searchParams.append(key, value);
  const answer = await fetch(url, { headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` } });
  if (answer.status === 401) { signOut(); throw new Error("the token was refused"); }
  if (!answer.ok) {
    const body = await answer.json().catch(() => ({}));
    throw new Error(body.error ? body.error.message : `HTTP ${answer.status}`);
  }
  return answer;
}

function cell(row, text) {
  const td = row.insertCell();
  td.textContent = text;
  return td;
}

function definitions(dl, pairs) {
  dl.replaceChildren();
  for (const [term, value] of pairs) {
    if (value === undefined || value === null) continue;
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = term;
    dd.textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
    dl.append(dt, dd);
  }
}

// --- search -------------------------------------------------------------------------------

function searchParams(form) {
  const data = new FormData(form), params = [["limit", data.get("limit") || "20"]];
  for (const key of ENTITIES) if (data.get(key)) params.push([key, data.get(key).trim()]);
  const terms = TERMS.filter((k) => data.get(k)).map((k) => `${k}=${data.get(k).trim()}`);
  if (data.get("query")) terms.push(data.get("query").trim());
  if (terms.length) params.push(["query", terms.join(" ")]);
  return params;
}

async function showPage(cursor) {
  $("search-status").textContent = "searching…";
  const params = cursor ? [...lastSearch, ["cursor", cursor]] : lastSearch;
  try {
    const page = await (await api("search", params)).json();
    const body = $("results").tBodies[0];
    body.replaceChildren();
    for (const d of page.results) {
      const row = body.insertRow();
      cell(row, d.event_time);
      const link = document.createElement("a");
      link.href = `#decision=${encodeURIComponent(d.decision_id)}`;
      link.textContent = `${d.chain}/${d.seq}`;
      link.className = "open-decision";
      cell(row, "").append(link);
      for (const v of [d.event_id, d.detector, d.outcome, d.score.toFixed(3), d.entity]) cell(row, v);
    }
    $("results").hidden = false;
    $("search-status").textContent = `page ${pages.length}: ${page.results.length} decision(s)` +
      (page.by_index ? " (entity index)" : " (scan of the entries)");
    $("next-page").hidden = !page.next_cursor;
    $("next-page").dataset.cursor = page.next_cursor || "";
    $("first-page").hidden = pages.length <= 1;
  } catch (err) {
    $("search-status").textContent = `search failed: ${err.message}`;
  }
}

// --- decision -----------------------------------------------------------------------------

function reasonBars(reasons) {
  const box = $("reasons");
  box.replaceChildren();
  const largest = Math.max(1e-9, ...reasons.map((r) => Math.abs(r.contribution)));
  for (const r of [...reasons].sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution))) {
    const row = document.createElement("div"), bar = document.createElement("span");
    row.className = "reason";
    row.append(Object.assign(document.createElement("span"), { className: "feature", textContent: r.feature }));
    bar.className = r.contribution >= 0 ? "bar up" : "bar down";
    bar.style.width = `${(50 * Math.abs(r.contribution)) / largest}%`;
    const track = Object.assign(document.createElement("span"), { className: "track" });
    track.append(bar);
    row.append(track, Object.assign(document.createElement("span"), { textContent: r.contribution.toFixed(3) }));
    box.append(row);
    if (r.evidence) {
      // What to check: the conflicting scan, the failed challenge, the despatch not matched.
      const e = r.evidence;
      const where = [e.event_id, e.biz_location, e.event_time].filter(Boolean).join(" · ");
      box.append(Object.assign(document.createElement("div"), {
        className: "evidence", textContent: where ? `${e.detail} [${where}]` : e.detail,
      }));
    }
  }
}

function timelineEntity(decision) {
  const c = decision.context || {};
  if (c.kind === "payment") return ["customer", c.customer_id];
  if (c.kind === "scan") return ["epc", c.epc];
  return ["event_id", decision.event_id];
}

async function showTimeline(decision) {
  const [kind, value] = timelineEntity(decision);
  $("timeline-entity").textContent = `${kind} ${value}`;
  const body = $("timeline").tBodies[0];
  body.replaceChildren();
  const line = await (await api("timeline", [["kind", kind], ["value", value]])).json();
  for (const step of line.events) {
    const row = body.insertRow();
    if (step.decision_id === decision.decision_id) row.className = "current";
    cell(row, step.event_time);
    cell(row, step.event_id);
    cell(row, step.outcome);
    cell(row, step.score.toFixed(3));
    cell(row, step.distance_km == null ? "" : step.distance_km.toFixed(1));
    cell(row, step.speed_kmh == null ? "" : step.speed_kmh.toFixed(0));
  }
}

async function showBadge(logged) {
  const badge = $("badge");
  badge.className = "badge";
  badge.textContent = "checking proof…";
  const d = logged.decision;
  try {
    const proof = await (await api("prove", [["decision_id", d.decision_id]])).json();
    const verdict = await checkProofFile(proof, logged.leaf_hash);
    badge.className = verdict.ok ? "badge verified" : "badge failed";
    badge.textContent = verdict.ok ? "verified" : "NOT verified";
    $("badge-detail").textContent = verdict.detail + (verdict.ok ? ". Checked in this browser: " +
      "leaf hash and inclusion path to the checkpoint root; the checkpoint's signature and " +
      "anchor are checked by `attestream forensic verify-proof --key`." : "");
  } catch (err) {
    badge.className = "badge failed";
    badge.textContent = "NOT verified";
    $("badge-detail").textContent = err.message;
  }
}

async function showDecision(id) {
  $("search-view").hidden = true;
  $("decision-view").hidden = false;
  const logged = await (await api("decision", [["id", id]])).json();
  const d = logged.decision;
  $("decision-title").textContent = `${logged.chain}/${logged.seq}`;
  $("download").dataset.id = d.decision_id;
  definitions($("outcome"), [["outcome", d.outcome], ["score", d.score], ["detector", d.detector],
    ["model", `${d.model_id} (${d.model_sha256.slice(0, 16)}…)`], ["decided at", d.decided_at]]);
  definitions($("event"), [["decision id", d.decision_id], ["event id", d.event_id],
    ["event time", d.event_time], ["entity", d.entity_id], ["event sha256", d.event_sha256],
    ["source", d.source], ...Object.entries(d.context || {}), ["leaf hash", logged.leaf_hash]]);
  reasonBars(d.reasons);
  await Promise.all([showBadge(logged), showTimeline(d)]);
}

async function downloadBundle() {
  const id = $("download").dataset.id;
  const blob = await (await api("bundle", [["ids", id]])).blob();
  const link = Object.assign(document.createElement("a"), {
    href: URL.createObjectURL(blob), download: `case-${id.slice(0, 16)}.json`,
  });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

// --- wiring -------------------------------------------------------------------------------

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  $("app").hidden = true;
  $("login").hidden = false;
}

function route() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return signOut();
  $("login").hidden = true;
  $("app").hidden = false;
  const match = location.hash.match(/^#decision=(.+)$/);
  if (match) {
    showDecision(decodeURIComponent(match[1])).catch((err) => {
      $("badge-detail").textContent = `cannot show the decision: ${err.message}`;
    });
  } else {
    $("decision-view").hidden = true;
    $("search-view").hidden = false;
  }
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  route();
});
$("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  lastSearch = searchParams(e.target);
  pages = [null];
  showPage(null);
});
$("next-page").addEventListener("click", () => {
  pages.push($("next-page").dataset.cursor);
  showPage(pages[pages.length - 1]);
});
$("first-page").addEventListener("click", () => { pages = [null]; showPage(null); });
$("back").addEventListener("click", (e) => { e.preventDefault(); location.hash = "#search"; });
$("download").addEventListener("click", () => downloadBundle().catch((err) => {
  $("badge-detail").textContent = `download failed: ${err.message}`;
}));
window.addEventListener("hashchange", route);
route();
