// levee dashboard: renders the snapshots the server streams. Every value
// from the server reaches the page through textContent, dataset or CSSOM,
// never as HTML.
"use strict";
(function () {
  const meta = (name) => document.querySelector('meta[name="' + name + '"]').content;
  const token = meta("levee-csrf");
  const controls = meta("levee-controls") === "on";
  const $ = (id) => document.getElementById(id);
  const view = { q: "", kind: "", state: "", sort: "attention", offset: 0, limit: 50 };
  const rows = new Map(); // key -> {tr, cells}
  let source = null, pollTimer = null, updates = 0, matched = 0, debounce = null;

  if (!controls) document.body.classList.add("no-controls");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function query() {
    const p = new URLSearchParams();
    for (const k of ["q", "kind", "state", "sort"]) if (view[k]) p.set(k, view[k]);
    p.set("offset", String(view.offset));
    p.set("limit", String(view.limit));
    return p.toString();
  }

  function setStatus(text, cls) {
    const s = $("status");
    s.textContent = text;
    s.className = "status " + (cls || "");
  }

  function connect() {
    if (source) source.close();
    if (pollTimer) clearTimeout(pollTimer);
    if (!window.EventSource) return poll();
    source = new EventSource("api/events?" + query());
    source.onopen = () => setStatus("live", "live");
    source.onmessage = (ev) => render(JSON.parse(ev.data));
    source.onerror = () => setStatus("disconnected, retrying…", "down");
  }

  function poll() {
    fetch("api/snapshot?" + query(), { credentials: "same-origin" })
      .then((r) => r.json())
      .then((s) => { setStatus("live (polling)", "live"); render(s); })
      .catch(() => setStatus("disconnected, retrying…", "down"))
      .finally(() => { pollTimer = setTimeout(poll, 2000); });
  }

  function fmtRate(r) {
    if (r === undefined || r === null) return "";
    if (r === 0) return "0/s";
    return (r >= 10 ? r.toFixed(0) : r.toFixed(1)) + "/s";
  }

  function renderSummary(s) {
    const box = $("summary");
    box.replaceChildren();
    box.append(el("span", "", s.total + " policies"));
    for (const [k, n] of Object.entries(s.kinds).sort()) box.append(el("span", "", k.replace("_", " ") + ": " + n));
    box.append(el("span", s.open ? "bad" : "", s.open + " open"));
    box.append(el("span", s.half_open ? "warn" : "", s.half_open + " half-open"));
    box.append(el("span", s.attention ? "warn" : "", s.attention + " need attention"));
  }

  function renderTimeline(cell, p, snap) {
    cell.replaceChildren();
    if (p.kind !== "breaker") { cell.textContent = "—"; return; }
    const end = Date.parse(snap.at), span = snap.timeline_seconds * 1000, start = end - span;
    const ts = p.transitions || [];
    const bar = el("div", "timeline");
    bar.title = ts.length + " transitions in the last " + Math.round(snap.timeline_seconds / 60) + " min";
    let from = start, state = ts.length ? ts[0].from : p.state;
    const seg = (until, st) => {
      const w = Math.max(0, (until - from) / span * 100);
      if (w > 0) {
        const d = el("div", "seg-" + (["closed", "open", "half-open"].includes(st) ? st : "unknown"));
        d.style.width = w + "%"; // CSSOM, which the Content-Security-Policy allows
        bar.append(d);
      }
      from = Math.max(from, until);
    };
    for (const t of ts) { seg(Math.max(start, Date.parse(t.at)), state); state = t.to; }
    seg(end, p.state);
    cell.append(bar);
    const last = ts[ts.length - 1];
    if (last) {
      const ago = Math.max(0, Math.round((end - Date.parse(last.at)) / 1000));
      cell.append(el("div", "tl-note", last.from + " → " + last.to + (last.forced ? " (forced)" : "") + " " + ago + "s ago"));
    }
  }

  function control(p, action, btn) {
    btn.disabled = true;
    fetch("api/control", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Levee-Csrf": token },
      body: JSON.stringify({ kind: p.kind, name: p.name, action: action }),
    }).then((r) => r.json().catch(() => ({})).then((body) => {
      const m = $("message");
      m.hidden = false;
      if (r.ok) {
        m.className = "message ok";
        m.textContent = p.name + ": " + action.replace("_", " ") + " done, now " + body.state;
      } else {
        m.className = "message";
        m.dataset.status = String(r.status);
        m.textContent = action.replace("_", " ") + " " + p.name + " refused (" + r.status + "): " + (body.error || r.statusText);
      }
    })).catch((e) => {
      const m = $("message");
      m.hidden = false;
      m.className = "message";
      m.textContent = "control failed: " + e;
    }).finally(() => { btn.disabled = false; });
  }

  function newRow(key) {
    const tr = el("tr");
    const cells = {};
    for (const c of ["kind", "name", "state", "counts", "details", "timeline", "controls"]) {
      cells[c] = el("td", "c-" + c);
      tr.append(cells[c]);
    }
    const r = { tr, cells, policy: null, buttons: false };
    rows.set(key, r);
    return r;
  }

  function renderRow(r, p, snap) {
    r.policy = p;
    r.tr.dataset.kind = p.kind;
    r.tr.dataset.name = p.name;
    r.tr.dataset.state = p.state;
    r.tr.dataset.level = p.level;
    r.cells.kind.replaceChildren(el("span", "badge kind", p.kind.replace("_", " ")));
    r.cells.name.textContent = p.name;
    r.cells.state.replaceChildren(p.state ? el("span", "badge state-" + p.state + " level-" + p.level, p.state) : el("span", "", "—"));
    const counts = el("div", "counts");
    for (const c of p.counts) {
      const s = el("span");
      s.append(el("span", "", c.outcome.replace(/_/g, " ") + " "), el("b", "", String(c.n)));
      const rate = fmtRate(c.per_second);
      if (rate) s.append(el("span", "rate", " · " + rate));
      counts.append(s);
    }
    r.cells.counts.replaceChildren(counts);
    r.cells.details.replaceChildren(...(p.details || []).map((d) => el("div", "", d.label + ": " + d.value)));
    renderTimeline(r.cells.timeline, p, snap);
    if (p.controllable && !r.buttons) {
      r.buttons = true;
      for (const [action, label] of [["force_open", "force open"], ["reset", "reset"]]) {
        const b = el("button", "", label);
        b.type = "button";
        b.dataset.action = action;
        b.addEventListener("click", () => control(r.policy, action, b));
        r.cells.controls.append(b, document.createTextNode(" "));
      }
    }
  }

  function render(snap) {
    updates++;
    document.body.dataset.updates = String(updates);
    matched = snap.matched;
    renderSummary(snap.summary);
    const first = snap.matched ? snap.offset + 1 : 0;
    $("range").textContent = first + "–" + (snap.offset + snap.policies.length) + " of " + snap.matched;
    $("prev").disabled = snap.offset === 0;
    $("next").disabled = snap.offset + snap.policies.length >= snap.matched;
    const body = $("rows");
    const seen = new Set();
    const order = [];
    for (const p of snap.policies) {
      const key = p.kind + "\u0000" + p.name;
      seen.add(key);
      const r = rows.get(key) || newRow(key);
      renderRow(r, p, snap);
      order.push(r.tr);
    }
    for (const [key, r] of rows) if (!seen.has(key)) { r.tr.remove(); rows.delete(key); }
    order.forEach((tr, i) => { if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null); });
    $("updated").textContent = "updated " + new Date(snap.at).toLocaleTimeString();
  }

  function changed() {
    view.q = $("f-q").value;
    view.kind = $("f-kind").value;
    view.state = $("f-state").value;
    view.sort = $("f-sort").value;
    view.offset = 0;
    connect();
  }

  $("filters").addEventListener("submit", (e) => e.preventDefault());
  $("f-q").addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(changed, 250); });
  for (const id of ["f-kind", "f-state", "f-sort"]) $(id).addEventListener("change", changed);
  $("prev").addEventListener("click", () => { view.offset = Math.max(0, view.offset - view.limit); connect(); });
  $("next").addEventListener("click", () => { if (view.offset + view.limit < matched) { view.offset += view.limit; connect(); } });
  connect();
})();
