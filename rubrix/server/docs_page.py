"""``GET /docs``: a readable page of the API, rendered from ``/openapi.json`` with no network.

FastAPI's own ``/docs`` (Swagger UI) loads its JavaScript and CSS from a CDN. A reward server
usually runs where nothing outside is reachable (a training cluster, this project's machines),
and there that page stays blank. This one is a single self-contained HTML page: a few lines of
script fetch the schema from the same server and list each route with its request fields (types,
required, descriptions) and its answers. Any OpenAPI tool can read ``/openapi.json`` directly.
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rubrix reward server — API</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{margin-top:2rem;border-bottom:1px solid #ddd}code,.t{font-family:ui-monospace,monospace;font-size:13px}
.m{display:inline-block;min-width:3.5rem;font-weight:bold}.t{color:#666}.req{color:#b00}
ul{list-style:none;padding-left:1.2rem;border-left:1px solid #eee}li{margin:.15rem 0}.d{color:#555}
</style></head><body>
<h1>rubrix reward server</h1>
<p>Rendered from <a href="openapi.json"><code>/openapi.json</code></a> (OpenAPI 3). Every refusal is
<code>{"error": {"type", "field", "message"}, "detail"}</code>.</p>
<div id="api">loading…</div>
<script>
const esc = s => String(s).replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));
let spec;
function deref(s){ let seen=0;
  while (s && s.$ref && seen++ < 20) s = spec.components.schemas[s.$ref.split("/").pop()];
  return s||{}; }
function typeOf(s){ s = deref(s);
  if (s.enum) return s.enum.map(v => JSON.stringify(v)).join(" | ");
  const alts = s.anyOf || s.oneOf;
  if (alts) return alts.map(typeOf).join(" | ");
  if (s.type === "array") return typeOf(s.items || {}) + "[]";
  return (s.type === "object" && s.title) || s.type || s.title || "any"; }
function fields(s, depth){ s = deref(s);
  const alts = s.anyOf || s.oneOf;
  if (alts) return alts.map(a => fields(a, depth)).join("");
  if (s.type === "array") return fields(s.items || {}, depth);
  if (!s.properties || depth > 4) return "";
  const req = new Set(s.required || []);
  return "<ul>" + Object.entries(s.properties).map(([k, v]) =>
    "<li><code>" + esc(k) + "</code> <span class=t>" + esc(typeOf(v)) + "</span>" +
    (req.has(k) ? " <span class=req>required</span>" : "") +
    (v.description ? " — <span class=d>" + esc(v.description) + "</span>" : "") +
    fields(v, depth + 1) + "</li>").join("") + "</ul>"; }
fetch("openapi.json").then(r => r.json()).then(s => { spec = s; let html = "";
  for (const [path, ops] of Object.entries(s.paths)) for (const [method, op] of Object.entries(ops)) {
    html += "<h2><span class=m>" + method.toUpperCase() + "</span><code>" + esc(path) + "</code></h2>";
    if (op.summary) html += "<p><b>" + esc(op.summary) + "</b></p>";
    if (op.description) html += "<p>" + esc(op.description) + "</p>";
    const body = op.requestBody && op.requestBody.content["application/json"];
    if (body) html += "<h3>Request body</h3>" + fields(body.schema, 0);
    html += "<h3>Answers</h3><ul>" + Object.entries(op.responses || {}).map(([code, r]) => {
      const c = r.content && r.content["application/json"];
      return "<li><code>" + esc(code) + "</code> " + esc(r.description || "") +
        (c ? fields(c.schema, 1) : "") + "</li>";
    }).join("") + "</ul>"; }
  document.getElementById("api").innerHTML = html;
}).catch(e => { document.getElementById("api").textContent = "could not load openapi.json: " + e; });
</script></body></html>
"""

__all__ = ["PAGE"]
