// Palisade dashboard: plain JavaScript and SVG, no build step, nothing
// fetched from anywhere but the control plane that serves it.
'use strict';

const view = document.getElementById('view');
const windowSel = document.getElementById('window');
let timer = null;
let lastGraph = '';
let graphNS = '';

function esc(s) {
  return String(s == null ? '' : s).replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
}

async function api(path, opts) {
  const r = await fetch('/api/dashboard/' + path, Object.assign({credentials: 'same-origin'}, opts || {}));
  const text = await r.text();
  if (!r.ok) throw new Error(text.trim() || r.statusText);
  const ct = r.headers.get('Content-Type') || '';
  return ct.includes('json') ? JSON.parse(text) : text;
}

function win() { return windowSel.value; }

function fmtDur(sec) {
  if (sec < 0) return 'overdue';
  const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = Math.floor(sec % 60);
  return (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + s + 's';
}

function policyLink(kind, ref, text) {
  if (!kind || !ref) return esc(text || '');
  return '<a class="policy-link" href="#/policy/' + encodeURIComponent(kind) + '/' + ref.split('/').map(encodeURIComponent).join('/') + '">' + esc(text || ref) + '</a>';
}

function workloadLink(id) {
  if (!id || id.indexOf('/') < 0 || id.startsWith('spiffe:')) return esc(id);
  return '<a href="#/workload/' + id.split('/').map(encodeURIComponent).join('/') + '">' + esc(id) + '</a>';
}

// ---- masthead ------------------------------------------------------------

function masthead(tls) {
  const el = document.getElementById('mesh-tls');
  el.dataset.state = tls.state;
  const text = {STRICT: 'mTLS STRICT everywhere', PARTIAL: 'mTLS partly enabled', DISABLED: 'mTLS not enforced'}[tls.state] || tls.state;
  const icon = tls.state === 'STRICT' ? '<svg width="12" height="14" viewBox="0 0 12 15" class="mast-lock"><path d="M3 7 V4.5 a3 3 0 0 1 6 0 V7" fill="none" stroke="#fff" stroke-width="1.6"/><rect x="1.5" y="7" width="9" height="7" rx="1.5" fill="#fff"/></svg> ' : '⚠ ';
  el.innerHTML = icon + esc(text + (tls.plaintextEdges ? ' · ' + tls.plaintextEdges + ' plaintext edge(s)' : ''));
  el.title = tls.strictPorts + ' of ' + tls.ports + ' workload ports STRICT' + (tls.notStrict ? '\nnot STRICT: ' + tls.notStrict.join('\n') : '');
}

// ---- graph ---------------------------------------------------------------

const COLW = 320, ROWH = 56, PERCOL = 24, TOP = 40, LEFT = 40;

function layout(g) {
  const incoming = {}, out = {};
  for (const n of g.nodes) { incoming[n.id] = 0; out[n.id] = []; }
  for (const e of g.edges) {
    if (!(e.source in incoming) || !(e.destination in incoming) || e.source === e.destination) continue;
    incoming[e.destination]++;
    out[e.source].push(e.destination);
  }
  // Depth: longest path from a node nothing calls, cycles cut.
  const depth = {};
  const order = g.nodes.map(n => n.id);
  for (const id of order) depth[id] = 0;
  for (let pass = 0; pass < order.length && pass < 12; pass++) {
    let changed = false;
    for (const e of g.edges) {
      if (!(e.source in depth) || !(e.destination in depth) || e.source === e.destination) continue;
      if (depth[e.destination] < depth[e.source] + 1 && depth[e.source] < 10) { depth[e.destination] = depth[e.source] + 1; changed = true; }
    }
    if (!changed) break;
  }
  const kindRank = {unknown: 0, gateway: 1, workload: 2};
  const cols = {};
  for (const n of g.nodes) {
    const d = n.kind === 'unknown' ? 0 : depth[n.id] + 1;
    (cols[d] = cols[d] || []).push(n);
  }
  const pos = {};
  let x = LEFT, maxY = 0;
  const boxes = [];
  for (const d of Object.keys(cols).map(Number).sort((a, b) => a - b)) {
    const col = cols[d].sort((a, b) => (kindRank[a.kind] - kindRank[b.kind]) || (a.namespace || '').localeCompare(b.namespace || '') ||
      (a.service || '').localeCompare(b.service || '') || a.name.localeCompare(b.name));
    for (let i = 0; i < col.length; i += PERCOL) {
      const chunk = col.slice(i, i + PERCOL);
      // Workloads of one service (several versions) share a box inside
      // their namespace's.
      const perService = {};
      for (const n of chunk) if (n.service) perService[n.namespace + '/' + n.service] = (perService[n.namespace + '/' + n.service] || 0) + 1;
      let y = TOP, ns = null, svc = null, box = null, sbox = null;
      for (const n of chunk) {
        if (n.namespace !== ns) {
          ns = n.namespace;
          svc = null;
          y += 18;
          box = {x: x - 24, y: y - 34, w: COLW - 40, h: 0, ns: ns || ''};
          boxes.push(box);
        }
        const key = n.namespace + '/' + n.service;
        if (n.service && perService[key] > 1 && key !== svc) {
          svc = key;
          y += 16;
          sbox = {x: x - 18, y: y - 30, w: COLW - 52, h: 0, ns: 'service ' + n.service, service: true};
          boxes.push(sbox);
        } else if (!n.service || perService[key] <= 1) {
          svc = null;
          sbox = null;
        }
        pos[n.id] = {x: x, y: y};
        box.h = y - box.y + 26;
        if (sbox) { sbox.h = y - sbox.y + 20; box.h += 6; }
        y += ROWH;
      }
      maxY = Math.max(maxY, y);
      x += COLW;
    }
  }
  return {pos, boxes, width: x + LEFT, height: maxY + 220};
}

function lockIcon(x, y) {
  return '<g class="lock" transform="translate(' + (x - 6) + ',' + (y - 16) + ')"><title>mTLS</title>' +
    '<path d="M3 7 V4.5 a3 3 0 0 1 6 0 V7"/><rect x="1.5" y="7" width="9" height="7" rx="1.5"/></g>';
}

function renderGraph(g) {
  const L = layout(g);
  const parts = ['<svg xmlns="http://www.w3.org/2000/svg" id="graph-svg" width="' + L.width + '" height="' + L.height + '">'];
  for (const b of L.boxes) {
    parts.push('<rect class="' + (b.service ? 'svc-box' : 'ns-box') + '" x="' + b.x + '" y="' + b.y + '" width="' + b.w + '" height="' + b.h + '" rx="6"/>' +
      '<text class="ns-label" x="' + (b.x + 6) + '" y="' + (b.y + 12) + '">' + esc(b.service ? b.ns : (b.ns ? 'namespace ' + b.ns : '')) + '</text>');
  }
  for (const e of g.edges) {
    const a = L.pos[e.source], b = L.pos[e.destination];
    if (!a || !b) continue;
    const x1 = a.x + 14, y1 = a.y, x2 = b.x - 14, y2 = b.y;
    let mx = (x1 + x2) / 2 + 40, my = (y1 + y2) / 2;
    let d;
    const span = Math.round((b.x - a.x) / COLW);
    if (e.source === e.destination) {
      d = 'M' + a.x + ',' + (a.y - 14) + ' c 30,-40 50,0 14,14';
    } else if (span === 1 && a.y === b.y) {
      d = 'M' + x1 + ',' + y1 + ' L' + x2 + ',' + y2;
    } else if (span >= 1) {
      d = 'M' + x1 + ',' + y1 + ' C' + (mx - 40) + ',' + y1 + ' ' + (mx - 40) + ',' + y2 + ' ' + x2 + ',' + y2;
    } else {
      d = '';
    }
    if (span > 1 || span < 1) {
      // Past other columns, or backwards: an arc below the row, so it
      // crosses no node.
      const drop = 50 + 22 * Math.abs(span);
      d = 'M' + x1 + ',' + y1 + ' C' + (x1 + 40) + ',' + (y1 + drop * 1.33) + ' ' + (x2 - 40) + ',' + (y2 + drop * 1.33) + ' ' + x2 + ',' + y2;
      my = (y1 + y2) / 2 + drop;
      mx = (x1 + x2) / 2;
    }
    const label = e.rate.toFixed(2) + ' rps · ' + (e.errorRatio * 100).toFixed(0) + '% err · p99 ' + e.p99Ms.toFixed(1) + ' ms' + (e.denied ? ' · ' + e.denied + ' denied' : '');
    parts.push('<g class="edge" data-source="' + esc(e.source) + '" data-destination="' + esc(e.destination) + '" data-mtls="' + esc(e.mtls) + '" data-ingress="' + (e.ingress ? 'true' : 'false') + '">' +
      '<title>' + esc(e.source + ' → ' + e.destination + ': ' + e.requests + ' requests, ' + e.mtls) + '</title>' +
      '<path d="' + d + '"/>' +
      '<text class="label" text-anchor="middle" x="' + mx + '" y="' + (my + 22) + '">' + esc(label) + '</text>');
    if (e.mtls === 'mtls') {
      parts.push(lockIcon(mx, my));
    } else if (e.ingress) {
      parts.push('<text class="label" text-anchor="middle" x="' + mx + '" y="' + (my + 36) + '">from outside the mesh</text>');
    } else {
      parts.push('<text class="plain-label" text-anchor="middle" x="' + mx + '" y="' + (my - 8) + '">⚠ PLAINTEXT' + (e.mtls === 'mixed' ? ' (some)' : '') + '</text>');
    }
    parts.push('</g>');
  }
  for (const n of g.nodes) {
    const p = L.pos[n.id];
    const label = n.kind === 'unknown' ? 'unknown (no mesh identity)' : (n.service || n.name);
    const sub = n.kind === 'gateway' ? 'ingress gateway' : (n.kind === 'workload' ? n.name + (n.mtlsMode ? ' · ' + n.mtlsMode : '') : '');
    parts.push('<g class="node" data-id="' + esc(n.id) + '" data-kind="' + esc(n.kind) + '" data-service="' + esc(n.service || '') + '" transform="translate(' + p.x + ',' + p.y + ')">' +
      '<title>' + esc(n.spiffeId || n.id) + '</title>' +
      '<circle r="12"/><text x="18" y="-2">' + esc(label) + '</text>' +
      '<text x="18" y="12" class="muted" style="font-size:10px;fill:#6b7385">' + esc(sub) + '</text></g>');
  }
  parts.push('</svg>');
  return parts.join('');
}

// inNamespace keeps a namespace's nodes, the nodes they talk with, and
// the edges among them.
function inNamespace(g, ns) {
  const keep = new Set(g.nodes.filter(n => n.namespace === ns).map(n => n.id));
  const edges = g.edges.filter(e => keep.has(e.source) || keep.has(e.destination));
  for (const e of edges) { keep.add(e.source); keep.add(e.destination); }
  return {nodes: g.nodes.filter(n => keep.has(n.id)), edges: edges, tls: g.tls};
}

async function showGraph() {
  if (!document.getElementById('graph')) {
    view.innerHTML = '<h2>Service graph</h2><div class="filters"><label>namespace <select id="graph-ns"><option value="">all</option></select></label></div>' +
      '<div id="graph-banner"></div><div id="graph"><p class="muted">loading…</p></div>' +
      '<p class="muted">Edges: traffic seen in the window, from the destination sidecars\' records. A lock marks mutual TLS; a red dashed edge is plaintext.</p>';
    document.getElementById('graph-ns').addEventListener('change', ev => { graphNS = ev.target.value; lastGraph = ''; showGraph().catch(() => {}); });
    document.getElementById('graph').addEventListener('click', ev => {
      const n = ev.target.closest('.node');
      if (n && n.dataset.kind !== 'unknown' && n.dataset.id.indexOf('/') > 0) location.hash = '#/workload/' + n.dataset.id;
    });
  }
  const t0 = performance.now();
  const g = await api('graph?window=' + encodeURIComponent(win()));
  masthead(g.tls);
  const key = JSON.stringify(g);
  if (key !== lastGraph) {
    lastGraph = key;
    const sel = document.getElementById('graph-ns');
    const namespaces = [...new Set(g.nodes.map(n => n.namespace).filter(Boolean))].sort();
    if (sel.options.length !== namespaces.length + 1) {
      sel.innerHTML = '<option value="">all</option>' + namespaces.map(ns => '<option' + (ns === graphNS ? ' selected' : '') + '>' + esc(ns) + '</option>').join('');
    }
    document.getElementById('graph').innerHTML = renderGraph(graphNS ? inNamespace(g, graphNS) : g);
    const banner = document.getElementById('graph-banner');
    banner.innerHTML = g.tls.plaintextEdges ? '<div class="banner">⚠ ' + g.tls.plaintextEdges + ' edge(s) carried plaintext in the window</div>' : '';
  }
  document.body.dataset.graphRenderMs = String(Math.round(performance.now() - t0));
  // From the start of navigation to this graph on screen, for measuring.
  if (!document.body.dataset.graphDrawnAt) document.body.dataset.graphDrawnAt = String(Math.round(performance.now()));
  document.body.dataset.graphNodes = String(g.nodes.length);
}

// ---- workload ------------------------------------------------------------

async function showWorkload(ns, name) {
  const w = await api('workload?name=' + encodeURIComponent(ns + '/' + name));
  const c = w.certificate || {};
  const leaf = (c.chain || [])[0];
  const rows = [];
  rows.push('<h2>' + esc(w.workload) + '</h2>');
  rows.push('<table class="kv"><tr><th>SPIFFE ID</th><td id="spiffe-id"><code>' + esc(w.spiffeId) + '</code></td></tr>' +
    '<tr><th>Service</th><td>' + esc(w.service) + '</td></tr>' +
    '<tr><th>Sidecar</th><td>' + (w.connected ? '<span class="ok">connected</span>' : '<span class="warn">not connected</span>') + '</td></tr></table>');
  rows.push('<h3>Certificate</h3>');
  if (c.error) rows.push('<p class="warn">' + esc(c.error) + '</p>');
  if (leaf) {
    rows.push('<table class="kv"><tr><th>SANs</th><td id="cert-sans">' + esc((leaf.uris || []).concat(leaf.dnsNames || []).join(', ')) + '</td></tr>' +
      '<tr><th>Not after</th><td id="cert-not-after">' + esc(leaf.notAfter) + ' (in ' + esc(fmtDur(c.expiresInSeconds)) + ')</td></tr>' +
      '<tr><th>Rotates at</th><td id="cert-rotation">' + esc(c.renewAt) + ' (in ' + esc(fmtDur(c.rotatesInSeconds)) + ')</td></tr></table>');
    rows.push('<table><tr><th>#</th><th>Subject</th><th>Issuer</th><th>Not before</th><th>Not after</th><th>CA</th></tr>' +
      c.chain.map((x, i) => '<tr><td>' + i + '</td><td>' + esc(x.subject || (x.uris || []).join(',')) + '</td><td>' + esc(x.issuer) + '</td><td>' + esc(x.notBefore) + '</td><td>' + esc(x.notAfter) + '</td><td>' + (x.isCA ? 'yes' : '') + '</td></tr>').join('') + '</table>');
  }
  rows.push('<h3>Effective mTLS per port</h3><table><tr><th>Port</th><th>Name</th><th>Mode</th><th>Set by</th></tr>' +
    (w.ports || []).map(p => '<tr><td>' + p.port + '</td><td>' + esc(p.name) + '</td><td class="' + (p.mode === 'STRICT' ? 'ok' : 'warn') + '">' + esc(p.mode) + (p.portLevel ? ' (port level)' : '') + '</td><td>' +
      (p.setBy.indexOf('/') > 0 && !p.setBy.startsWith('mesh') ? policyLink('PeerAuthentication', p.setBy.split(' ')[0], p.setBy) : esc(p.setBy)) + '</td></tr>').join('') + '</table>');
  rows.push('<h3>Request authentication</h3>' + ((w.requestAuthentications || []).length ? '<ul>' + w.requestAuthentications.map(p => '<li>' + policyLink('RequestAuthentication', p.name) + ' — ' + p.rules + ' JWT rule(s), ' + esc(p.scope) + '</li>').join('') + '</ul>' : '<p class="muted">none</p>'));
  rows.push('<h3>Authorization, in evaluation order</h3>' + ((w.evaluation || []).length ? '<ol id="evaluation">' + w.evaluation.map(p => '<li><b>' + esc(p.action) + '</b> ' + policyLink('AuthorizationPolicy', p.name) + ' — ' + p.rules + ' rule(s), ' + esc(p.scope) + '</li>').join('') + '</ol>' : '<p class="muted">none: every request is allowed</p>'));
  rows.push('<h3>Recent requests</h3><table id="recent"><tr><th>Time</th><th>Direction</th><th>Peer</th><th>Request</th><th>Code</th><th>Decision</th><th>Policy</th><th>mTLS</th></tr>' +
    (w.recent || []).map(r => '<tr><td>' + esc(r.Start) + '</td><td>' + esc(r.Direction) + '</td><td>' + esc(r.Direction === 'outbound' ? '→ ' + (r.DestinationService || r.Authority || r.UpstreamHost) : (r.SourcePrincipal || ('plaintext ' + r.DownstreamRemote))) + '</td><td>' + esc((r.Method || r.Protocol) + ' ' + (r.Path || '')) + '</td><td>' + (r.ResponseCode || '') + '</td><td class="' + (/DENY/.test(r.Decision) ? 'warn' : '') + '">' + esc(r.Decision || (r.Direction === 'outbound' ? '' : 'ALLOW (no policy)')) + '</td><td>' + esc(r.Policy || r.AuthError) + '</td><td>' + (r.MTLS ? '<span class="ok">mTLS</span>' : '<span class="warn">plaintext</span>') + '</td></tr>').join('') + '</table>');
  view.innerHTML = rows.join('');
}

// ---- decisions -----------------------------------------------------------

let filters = {q: '', destination: '', source: '', all: false};

async function showDecisions() {
  if (!document.getElementById('decisions')) {
    view.innerHTML = '<h2>Decisions</h2><div class="filters">' +
      '<input id="f-q" placeholder="why was this denied? request id, path, source or policy">' +
      '<input id="f-destination" placeholder="destination namespace/name">' +
      '<input id="f-source" placeholder="source">' +
      '<label><input type="checkbox" id="f-all"> allowed too</label></div><div id="dropped"></div>' +
      '<table id="decisions"><thead><tr><th>Time</th><th>Source</th><th>Destination</th><th>Request</th><th>Decision</th><th>Policy / reason</th><th>Request id</th></tr></thead><tbody></tbody></table>';
    for (const k of ['q', 'destination', 'source']) {
      const el = document.getElementById('f-' + k);
      el.value = filters[k];
      el.addEventListener('input', () => { filters[k] = el.value; refreshDecisions(); });
    }
    const all = document.getElementById('f-all');
    all.checked = filters.all;
    all.addEventListener('change', () => { filters.all = all.checked; refreshDecisions(); });
  }
  await refreshDecisions();
}

async function refreshDecisions() {
  const q = new URLSearchParams({since: win() === '1m' ? '1m' : '1h', q: filters.q, destination: filters.destination, source: filters.source});
  if (filters.all) q.set('all', '1');
  const res = await api('decisions?' + q.toString());
  const body = document.querySelector('#decisions tbody');
  if (!body) return;
  document.getElementById('dropped').innerHTML = res.dropped ? '<p class="warn">' + res.dropped + ' records were overwritten in sidecars before the control plane read them (the oldest first); raise --record-buffer to keep them.</p>' : '';
  body.innerHTML = (res.decisions || []).map(d => '<tr class="decision" data-request-id="' + esc(d.requestId) + '" data-decision="' + esc(d.decision) + '">' +
    '<td>' + esc(d.time) + '</td><td>' + esc(d.source) + '</td><td>' + workloadLink(d.destination) + (d.port ? ':' + d.port : '') + '</td>' +
    '<td>' + esc((d.method || 'TCP') + ' ' + (d.path || '')) + (d.code ? ' → ' + d.code : '') + '</td>' +
    '<td class="' + (/DENY/.test(d.decision) ? 'warn' : 'ok') + '">' + esc(d.decision) + '</td>' +
    '<td>' + (d.policyRef ? policyLink(d.policyKind, d.policyRef, d.policy) : esc(d.policy)) + (d.authError ? ' <span class="warn">' + esc(d.authError) + '</span>' : '') + '</td>' +
    '<td><code>' + esc(d.requestId) + '</code></td></tr>').join('') || '<tr><td colspan="7" class="muted">no decisions match</td></tr>';
}

// ---- policy --------------------------------------------------------------

async function showPolicy(kind, ns, name) {
  const p = await api('policy?kind=' + encodeURIComponent(kind) + '&name=' + encodeURIComponent(ns + '/' + name));
  view.innerHTML = '<h2>' + esc(kind) + ' ' + esc(p.name) + '</h2><p class="muted">from ' + esc(p.file) + '</p><pre id="policy-spec">' + esc(JSON.stringify(p.spec, null, 2)) + '</pre>';
}

// ---- preview -------------------------------------------------------------

function showPreview() {
  view.innerHTML = '<h2>Policy preview</h2>' +
    '<p>Paste or upload proposed PeerAuthentication and AuthorizationPolicy YAML: the requests recorded in the window are replayed against it, before anyone applies it.</p>' +
    '<textarea id="proposal" spellcheck="false" placeholder="apiVersion: security.istio.io/v1&#10;kind: AuthorizationPolicy&#10;..."></textarea>' +
    '<p><input type="file" id="proposal-file" accept=".yaml,.yml"> <button id="replay">Replay the window</button> <button id="suggest">Suggest least-privilege policies</button></p>' +
    '<div id="preview-result"></div>';
  document.getElementById('proposal-file').addEventListener('change', async ev => {
    const f = ev.target.files[0];
    if (f) document.getElementById('proposal').value = await f.text();
  });
  document.getElementById('replay').addEventListener('click', async () => {
    const out = document.getElementById('preview-result');
    try {
      const r = await api('preview?since=' + encodeURIComponent(win()), {method: 'POST', body: document.getElementById('proposal').value, headers: {'Content-Type': 'application/yaml'}});
      out.innerHTML = '<p>' + r.replayed + ' recorded requests replayed, ' + r.skipped + ' skipped: <b>' + (r.changes || []).length + ' would change</b>.</p>' +
        '<table id="changes"><tr><th>Change</th><th>Time</th><th>Source</th><th>Destination</th><th>Request</th><th>Recorded</th><th>In force now</th><th>Proposed</th><th>By</th></tr>' +
        (r.changes || []).map(c => '<tr class="change" data-kind="' + esc(c.kind) + '"><td class="warn">' + esc(c.kind) + '</td><td>' + esc(c.entry.Start) + '</td><td>' + esc(c.entry.SourcePrincipal || ('plaintext ' + c.entry.DownstreamRemote)) + '</td><td>' + esc(c.entry.DestinationNamespace + '/' + c.entry.DestinationWorkload) + '</td><td>' + esc((c.entry.Method || 'TCP') + ' ' + (c.entry.Path || '')) + '</td><td>' + esc(c.recorded) + '</td><td>' + esc(c.was) + '</td><td>' + esc(c.now) + '</td><td>' + esc(c.policy) + '</td></tr>').join('') + '</table>' +
        (r.notes || []).map(n => '<p class="muted">note: ' + esc(n) + '</p>').join('');
    } catch (e) {
      out.innerHTML = '<pre class="warn" id="preview-error">' + esc(e.message) + '</pre>';
    }
  });
  document.getElementById('suggest').addEventListener('click', async () => {
    const out = document.getElementById('preview-result');
    try {
      const y = await api('suggest?since=' + encodeURIComponent(win()));
      out.innerHTML = '<p>Allows exactly the traffic of the window (<code>palisade analyze</code> accepts it):</p><pre id="suggested">' + esc(y) + '</pre>';
    } catch (e) {
      out.innerHTML = '<pre class="warn">' + esc(e.message) + '</pre>';
    }
  });
}

// ---- routing -------------------------------------------------------------

async function route() {
  clearInterval(timer);
  timer = null;
  lastGraph = '';
  const parts = (location.hash.replace(/^#\/?/, '') || 'graph').split('/').map(decodeURIComponent);
  for (const a of document.querySelectorAll('#masthead nav a')) a.classList.toggle('active', a.dataset.view === parts[0]);
  view.innerHTML = '';
  try {
    switch (parts[0]) {
      case 'workload': await showWorkload(parts[1], parts[2]); break;
      case 'decisions': timer = setInterval(() => refreshDecisions().catch(() => {}), 500); await showDecisions(); break;
      case 'policy': await showPolicy(parts[1], parts[2], parts[3]); break;
      case 'preview': showPreview(); break;
      default: timer = setInterval(() => showGraph().catch(() => {}), 1000); await showGraph();
    }
  } catch (e) {
    view.innerHTML = '<p class="warn">' + esc(e.message) + '</p>';
  }
  if (parts[0] !== 'graph' && parts[0] !== '') api('graph?window=' + encodeURIComponent(win())).then(g => masthead(g.tls)).catch(() => {});
}

window.addEventListener('hashchange', route);
windowSel.addEventListener('change', route);
route();
