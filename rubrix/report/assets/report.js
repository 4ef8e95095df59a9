// rubrix report: the sample (or pair) browser and the judge-prompt viewer.
// The charts are already in the page as SVG; this script only reads the embedded JSON model,
// lists rows 50 at a time (so 10,000 samples open at once), searches, sorts and shows details.
"use strict";
(function () {
  const M = JSON.parse(document.getElementById("data").textContent);
  const PAGE = 50;
  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k);
    return e;
  };
  const fmt = (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
  const state = { rows: [], shown: [], sort: null, dir: 1, page: 0, query: "", status: "" };

  // -- the prompt the judge saw: a skeleton with the sample's texts and fence digests put back --
  function expand(s, texts, digests) {
    const P = M.prompts;
    for (const k of ["p", "r", "f"]) s = s.split(P.sentinel_digests[k]).join(digests[k] || "");
    for (const k of ["p", "r", "f"]) s = s.split(P.sentinels[k]).join(texts[k] || "");
    return s;
  }
  function judgePrompts(i) {
    const P = M.prompts;
    if (!P || !P.available) return null;
    if (P.full[String(i)]) return P.full[String(i)];
    const key = P.keys[i];
    if (key === null || key === undefined) return null;
    const S = M.samples, crit = M.rubrics[S.rubric[i]].criteria;
    return P.skeletons[key].map((r) => {
      const c = crit.find((x) => x.id === r.c), ctext = r.c !== null && c ? c.text : "";
      const text = (segs) => segs.map((k) => (k < 0 ? ctext : P.strings[k])).join("");
      return { c: r.c, kind: r.kind, answer: r.answer, m: r.m.map(([role, segs]) => [role, expand(text(segs), S.text[i], S.digest[i])]) };
    });
  }

  // -- score runs ------------------------------------------------------------------------------
  function scoreRows(done) {
    const S = M.samples, n = S.id.length, rows = new Array(n);
    let i = 0;
    const step = () => {
      const end = Math.min(n, i + 2000);
      for (; i < end; i++) {
        const t = S.text[i] || {};
        const met = S.p[i].filter((p) => p !== null && p >= 0.5).length;
        const errs = S.errors[i] ? Object.values(S.errors[i]).join(" ") : "";
        rows[i] = { i, id: S.id[i], reward: S.reward[i], status: S.status[i], met,
          text: (t.r || "").slice(0, 140),
          blob: (S.id[i] + "\n" + (t.p || "") + "\n" + (t.r || "") + "\n" + errs + "\n" + S.status[i]).toLowerCase() };
      }
      progress(i / n);
      if (i < n) setTimeout(step, 0); else done(rows);
    };
    step();
  }
  function scoreCells(r) {
    const S = M.samples;
    const crit = M.rubrics[S.rubric[r.i]].criteria;
    return [el("td", { text: r.id }), el("td", { class: "n", text: fmt(r.reward) }),
      el("td", {}, el("span", { class: "st st-" + r.status, text: r.status })),
      el("td", { class: "n", text: r.met + "/" + crit.length }), el("td", { class: "snip", text: r.text })];
  }
  function showSample(i) {
    const S = M.samples, rub = M.rubrics[S.rubric[i]], t = S.text[i];
    const d = $("detail");
    d.hidden = false;
    d.replaceChildren();
    d.append(el("h3", { text: "Sample " + S.id[i] }),
      el("p", {}, "reward ", el("b", { id: "d-reward", text: fmt(S.reward[i]) }), " · raw " + fmt(S.reward_raw[i]) +
        " · status ", el("span", { class: "st st-" + S.status[i], text: S.status[i] })));
    if (t) {
      d.append(el("h4", { text: "Prompt" }), el("pre", { class: "text", id: "d-prompt", text: t.p }),
        el("h4", { text: "Response" }), el("pre", { class: "text", id: "d-response", text: t.r }));
      if (t.f !== undefined) d.append(el("h4", { text: "Reference" }), el("pre", { class: "text", text: t.f }));
    } else d.append(el("p", { class: "warn", text: "The prompt and response are not in this report (the samples file was not available)." }));
    const tbl = el("table", { class: "plain", id: "d-criteria" });
    tbl.append(el("tr", {}, ...["criterion", "weight", "P", "met", "moves reward by", "error"].map((h) => el("th", { text: h }))));
    const pos = rub.positive;
    // largest effect on the reward first: which weights moved it
    const items = rub.criteria.map((c, k) => {
      const p = S.p[i][k];
      return { c, p, contrib: p !== null && c.weight !== null && pos ? (c.weight * p) / pos : null };
    }).sort((a, b) => Math.abs(b.contrib || 0) - Math.abs(a.contrib || 0));
    for (const { c, p, contrib } of items) {
      const err = S.errors[i] && S.errors[i][c.id];
      const row = el("tr", { "data-criterion": c.id },
        el("td", {}, el("code", { text: c.id }), c.text ? el("div", { class: "muted", text: c.text }) : ""),
        el("td", { class: "n", text: c.weight === null ? "?" : String(c.weight) }),
        el("td", { class: "n", text: fmt(p) }),
        el("td", { text: p === null ? "–" : p >= 0.5 ? "yes" : "no" }),
        el("td", { class: "n" + (contrib !== null && contrib < 0 ? " neg" : ""), text: contrib === null ? "–" : (contrib >= 0 ? "+" : "") + contrib.toFixed(3) }),
        el("td", { class: err ? "err" : "", text: err || "" }));
      tbl.append(row);
    }
    d.append(el("h4", { text: "Verdicts and what each did to the reward" }), tbl,
      el("p", { class: "muted", text: "moves reward by = weight × P / sum of positive weights" + (pos ? " (" + pos + ")" : "") +
        "; pitfalls (negative weights) subtract. Veto caps and clipping apply after." }));
    const reqs = judgePrompts(i);
    d.append(el("h4", { text: "What the judge read" }));
    if (!reqs) {
      d.append(el("p", { class: "warn", id: "d-noprompt", text: (M.prompts && M.prompts.reason) || "No judge prompt is embedded for this sample." }));
      return;
    }
    const sel = el("select", { id: "d-pick", "aria-label": "criterion" });
    reqs.forEach((r, k) => sel.append(el("option", { value: String(k), text: (r.c || r.kind) + " (" + r.kind + "; answer " + r.answer.join(" / ") + ")" })));
    const box = el("div", { id: "d-prompt-view" });
    const draw = () => {
      const r = reqs[Number(sel.value)];
      box.replaceChildren(...r.m.flatMap(([role, text]) => [el("div", { class: "role", text: "<" + role + ">" }),
        el("pre", { class: "msg", "data-role": role, text })]));
    };
    sel.addEventListener("change", draw);
    d.append(el("p", { class: "muted", text: "Rendered from the run's templates and rubric (verdict style " + M.prompts.verdict +
      "); the same text as rubrix prompts render." }), sel, box);
    draw();
  }

  // -- eval runs -------------------------------------------------------------------------------
  function evalRows(done) {
    const P = M.pairs;
    done(P.id.map((id, i) => {
      const c = P.cells[i], src = c[c.length - 1] || "";
      const r = { i, id, source: src };
      M.methods.forEach((m, k) => { r["m" + k] = c[k] ? c[k][0] : ""; });
      r.blob = (id + " " + src + " " + c.slice(0, -1).map((x) => (x ? x[0] + " " + (x[4] || "") : "")).join(" ")).toLowerCase();
      return r;
    }));
  }
  function evalCells(r) {
    const c = M.pairs.cells[r.i];
    return [el("td", { text: r.id }), el("td", { text: r.source })].concat(M.methods.map((m, k) => {
      const x = c[k];
      if (!x) return el("td", { text: "–" });
      return el("td", { class: "oc oc-" + x[0], title: x[4] || "" }, x[0] + " ", el("span", { class: "muted", text: fmt(x[1], 2) + " vs " + fmt(x[2], 2) + (x[3] === false ? " · order flip" : "") }));
    }));
  }

  // -- the table: filter, sort, page ------------------------------------------------------------
  function apply() {
    const q = state.query.toLowerCase();
    let rows = state.rows.filter((r) => (!q || r.blob.includes(q)) && (!state.status || r.status === state.status));
    if (state.sort) {
      const k = state.sort, dir = state.dir;
      rows = rows.slice().sort((a, b) => {
        const x = a[k], y = b[k];
        if (x === y) return a.i - b.i;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * dir;
      });
    }
    state.shown = rows;
    state.page = Math.min(state.page, Math.max(0, Math.ceil(rows.length / PAGE) - 1));
    draw();
  }
  function draw() {
    const table = document.querySelector("table.data"), body = table.tBodies[0];
    const start = state.page * PAGE, rows = state.shown.slice(start, start + PAGE);
    const cells = M.kind === "score" ? scoreCells : evalCells;
    body.replaceChildren(...rows.map((r) => {
      const tr = el("tr", { "data-id": r.id }, ...cells(r));
      if (M.kind === "score") tr.addEventListener("click", () => showSample(r.i));
      return tr;
    }));
    const pages = Math.max(1, Math.ceil(state.shown.length / PAGE));
    $("count").textContent = state.shown.length + " of " + state.rows.length + " shown";
    $("page").textContent = "page " + (state.page + 1) + " of " + pages;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
    table.querySelectorAll("th").forEach((th) => {
      th.classList.toggle("asc", th.dataset.key === state.sort && state.dir === 1);
      th.classList.toggle("desc", th.dataset.key === state.sort && state.dir === -1);
    });
  }
  function progress(f) {
    $("building-fill").style.width = Math.round(100 * f) + "%";
    $("building-text").textContent = "building the page… " + Math.round(100 * f) + "%";
  }
  function wire(rows) {
    state.rows = rows;
    $("search").addEventListener("input", (e) => { state.query = e.target.value; state.page = 0; apply(); });
    if ($("status-filter")) $("status-filter").addEventListener("change", (e) => { state.status = e.target.value; state.page = 0; apply(); });
    document.querySelectorAll("table.data th").forEach((th) => th.addEventListener("click", () => {
      state.dir = state.sort === th.dataset.key ? -state.dir : (th.dataset.key === "id" || th.dataset.key === "source" ? 1 : -1);
      state.sort = th.dataset.key;
      apply();
    }));
    $("prev").addEventListener("click", () => { state.page--; draw(); });
    $("next").addEventListener("click", () => { state.page++; draw(); });
    document.querySelectorAll("a.goto").forEach((a) => a.addEventListener("click", (e) => {
      e.preventDefault();
      openId(a.dataset.id);
    }));
    apply();
    const m = /^#sample=(.*)$/.exec(location.hash);
    if (m) openId(decodeURIComponent(m[1]));
    $("building").hidden = true;
    window.rubrixReport = { ready: true, showSample, openId, state, expand };
  }
  function openId(id) {
    const i = M.samples.id.indexOf(id);
    if (i < 0) return;
    $("search").value = id;
    state.query = id;
    state.page = 0;
    apply();
    showSample(i);
    $("detail").scrollIntoView();
  }
  if (M.kind === "score") scoreRows(wire);
  else if (M.kind === "eval") evalRows(wire);
  else { $("building").hidden = true; window.rubrixReport = { ready: true }; }
})();
