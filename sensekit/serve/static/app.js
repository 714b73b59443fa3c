// sensekit serve: type-ahead, the view switch, the scatter, and the "store changed" notice.
// Every string from the store goes into the page through textContent or setAttribute, never innerHTML.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (sel) => document.querySelector(sel);
  const pageVersion = () => ($("#version") || {}).textContent || "";

  function wordUrl(word, view) {
    const p = new URLSearchParams({ w: word });
    if (view) p.set("view", view);
    return "/?" + p.toString();
  }

  function currentView() {
    const sel = $("#view");
    const hidden = document.querySelector('#search input[name="view"]');
    return (sel && sel.value) || (hidden && hidden.value) || new URLSearchParams(location.search).get("view") || "";
  }

  function notice(text, reload) {
    let box = $("#changed");
    if (!box) {
      box = document.createElement("div");
      box.id = "changed";
      box.className = "changed";
      document.body.insertBefore(box, document.body.firstChild);
    }
    box.textContent = text;
    if (reload) setTimeout(() => location.reload(), 1000);
  }

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    const doc = await r.json().catch(() => ({ error: "bad answer from the server" }));
    if (r.status === 503) notice(doc.error || "the store cannot be read now; try again in a moment", false);
    else if (doc.version && pageVersion() && doc.version !== pageVersion())
      notice("the store changed since this page was loaded: reloading for the new version…", true);
    if (!r.ok) throw new Error(doc.error || r.statusText);
    return doc;
  }

  // -- type-ahead ---------------------------------------------------------------------------
  function typeAhead() {
    const input = $("#q"), list = $("#suggest");
    if (!input || !list) return;
    let timer = null, seq = 0, active = -1;
    const items = () => Array.from(list.querySelectorAll("a"));
    function hide() { list.hidden = true; active = -1; }
    function mark() { items().forEach((a, i) => a.classList.toggle("active", i === active)); }
    function show(words, close) {
      list.replaceChildren();
      const add = (w, cls) => {
        const li = document.createElement("li");
        const a = document.createElement("a");
        a.href = wordUrl(w, currentView());
        a.textContent = w;
        a.className = cls;
        li.appendChild(a);
        list.appendChild(li);
      };
      words.forEach((w) => add(w, "prefix"));
      close.forEach((w) => add(w, "close"));
      active = -1;
      list.hidden = words.length + close.length === 0;
    }
    input.addEventListener("input", () => {
      clearTimeout(timer);
      const q = input.value.trim();
      if (!q) { hide(); return; }
      timer = setTimeout(async () => {
        const mine = ++seq;
        try {
          const doc = await getJSON("/api/search?" + new URLSearchParams({ q, limit: "8" }));
          if (mine === seq) show(doc.words || [], doc.close || []);
        } catch (e) { if (mine === seq) hide(); }
      }, 120);
    });
    input.addEventListener("keydown", (e) => {
      const n = items().length;
      if (list.hidden || !n) return;
      if (e.key === "ArrowDown") { active = (active + 1) % n; mark(); e.preventDefault(); }
      else if (e.key === "ArrowUp") { active = (active - 1 + n) % n; mark(); e.preventDefault(); }
      else if (e.key === "Enter" && active >= 0) { location.href = items()[active].href; e.preventDefault(); }
      else if (e.key === "Escape") hide();
    });
    document.addEventListener("click", (e) => { if (!list.contains(e.target) && e.target !== input) hide(); });
    const view = $("#view");
    if (view) view.addEventListener("change", () => {
      if (input.value.trim()) $("#search").submit();
      else location.href = "/?" + new URLSearchParams({ view: view.value });
    });
  }

  // -- the scatter ----------------------------------------------------------------------------
  function el(name, attrs) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    return e;
  }

  async function scatter() {
    const box = $("#scatter");
    if (!box) return;
    const tip = $("#tip"), caption = $("#plot-caption");
    const params = new URLSearchParams({ w: box.dataset.word });
    if (box.dataset.view) params.set("view", box.dataset.view);
    let doc;
    try { doc = await getJSON("/api/plot?" + params); }
    catch (e) { box.textContent = "no plot: " + e.message; return; }
    const pts = doc.senses.concat(doc.contexts);
    const W = 420, H = 320, pad = 22;
    const xs = pts.map((p) => p.x), ys = pts.map((p) => p.y);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const sx = (x) => pad + ((x - x0) / ((x1 - x0) || 1)) * (W - 2 * pad);
    const sy = (y) => H - pad - ((y - y0) / ((y1 - y0) || 1)) * (H - 2 * pad);
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", class: "scatter" });
    const title = el("title", {});
    title.textContent = `senses of ${doc.word} and their contexts (PCA of the ${doc.space} space)`;
    svg.appendChild(title);
    const say = (text) => { tip.textContent = text; };
    const top = Math.max(1, ...doc.senses.map((s) => s.count));
    doc.contexts.forEach((c) => {
      const s = doc.senses[c.sense];
      svg.appendChild(el("line", { x1: sx(c.x), y1: sy(c.y), x2: sx(s.x), y2: sy(s.y), stroke: s.colour, "stroke-opacity": 0.25 }));
    });
    doc.contexts.forEach((c) => {
      const s = doc.senses[c.sense];
      const dot = el("circle", { cx: sx(c.x), cy: sy(c.y), r: 3, fill: s.colour, "fill-opacity": 0.7, class: "ctx" });
      dot.addEventListener("mouseenter", () => say(`sense ${s.sense_index}: ` + (c.snippet || "a kept context vector (no snippet)")));
      svg.appendChild(dot);
    });
    doc.senses.forEach((s) => {
      const r = 6 + 8 * Math.sqrt(Math.max(s.count, 0) / top);
      const disc = el("circle", { cx: sx(s.x), cy: sy(s.y), r, fill: s.colour, stroke: "#222", "stroke-width": 1, class: "sense", "data-sense": s.sense_index });
      const t = el("title", {});
      t.textContent = `sense ${s.sense_index} · ${s.count} samples`;
      disc.appendChild(t);
      disc.addEventListener("mouseenter", () => say(`sense ${s.sense_index} (${s.count} samples): ` + (s.snippet || "")));
      disc.addEventListener("click", () => {
        const card = document.getElementById("sense-" + s.sense_index);
        if (card) { card.scrollIntoView({ behavior: "smooth", block: "center" }); card.classList.add("flash"); setTimeout(() => card.classList.remove("flash"), 900); }
      });
      svg.appendChild(disc);
    });
    box.replaceChildren(svg);
    const ev = doc.explained_variance.map((v) => Math.round(v * 100) + "%").join(" + ");
    caption.textContent = `PCA of the ${doc.space} space (${ev} of the variance)`;
  }

  // -- nearest senses of other tokens, each a link ----------------------------------------------
  async function neighbors() {
    const list = $("#neighbor-list");
    if (!list) return;
    const params = new URLSearchParams({ w: list.dataset.word, k: list.dataset.k || "10" });
    if (list.dataset.view) params.set("view", list.dataset.view);
    const item = (text) => { const li = document.createElement("li"); li.textContent = text; li.className = "dim"; return li; };
    if (list.dataset.k === "0") { list.replaceChildren(item("not asked for (k=0)")); return; }
    let doc;
    try { doc = await getJSON("/api/neighbors?" + params); }
    catch (e) { list.replaceChildren(item("no nearest senses: " + e.message)); return; }
    if (!doc.neighbors.length) { list.replaceChildren(item("none")); return; }
    list.replaceChildren(...doc.neighbors.map((n) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.className = "word";
      a.href = wordUrl(n.word, list.dataset.view);
      a.textContent = n.text;
      const info = document.createElement("span");
      info.className = "dim";
      info.textContent = ` sense ${n.sense_index} · ${n.distance.toFixed(3)}`;
      li.append(a, info);
      return li;
    }));
  }

  function annotateBox() {
    const form = document.getElementById("annotate");
    if (!form) return;
    const out = document.getElementById("annotate-out");
    const tag = (name, cls) => { const e = document.createElement(name); if (cls) e.className = cls; return e; };
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const text = document.getElementById("annotate-text").value;
      out.textContent = "…";
      try {
        const doc = await getJSON("/api/annotate?" + new URLSearchParams({ text }));
        out.textContent = "";
        for (const line of doc.lines) {
          const table = tag("table", "annotate");
          for (const w of line.words) {
            const row = tag("tr");
            const link = tag("a");
            link.href = wordUrl(w.text.toLowerCase(), currentView());
            link.textContent = w.text;
            const cells = [link, w.synset || "(induced sense " + w.sense_id + ")", w.score.toFixed(2), w.gloss || ""];
            for (const c of cells) { const td = tag("td"); td.append(c); row.append(td); }
            table.append(row);
          }
          out.append(table);
        }
      } catch (err) { out.textContent = String(err.message || err); }
    });
  }

  document.addEventListener("DOMContentLoaded", () => { typeAhead(); scatter(); neighbors(); annotateBox(); });
})();
