/**
 * The admin listener's status page: one self-contained HTML document (inline CSS and script, no
 * external assets) that polls /api/services every two seconds and shows services, instances, their
 * state and why, request and error rates (from the deltas of the counters), and ZooKeeper's state.
 */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>puttu · status</title>
<style>
  :root { --bg:#0f1419; --panel:#171d24; --line:#26303b; --text:#dce3ea; --dim:#8a97a6; --ok:#3fb950; --warn:#d29922; --bad:#f85149; --info:#58a6ff; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--text); }
  header { display: flex; align-items: center; gap: 16px; padding: 14px 24px; border-bottom: 1px solid var(--line); background: var(--panel); }
  header h1 { font-size: 18px; margin: 0; letter-spacing: .5px; }
  header h1 span { color: var(--info); }
  .pill { padding: 2px 10px; border-radius: 999px; font-size: 12px; font-weight: 600; border: 1px solid currentColor; }
  .ok { color: var(--ok); } .warn { color: var(--warn); } .bad { color: var(--bad); } .dim { color: var(--dim); }
  header .meta { margin-left: auto; color: var(--dim); font-size: 12px; }
  main { padding: 20px 24px; max-width: 1200px; }
  .cards { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin-bottom: 20px; }
  .card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
  .card .v { font-size: 26px; font-weight: 650; }
  .card .k { color: var(--dim); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; }
  .service { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; margin-bottom: 14px; overflow: hidden; }
  .service > .head { display: flex; gap: 18px; align-items: baseline; padding: 10px 16px; border-bottom: 1px solid var(--line); }
  .service > .head h2 { margin: 0; font-size: 15px; }
  .service > .head .stat { color: var(--dim); font-size: 12px; }
  .service > .head .stat b { color: var(--text); font-weight: 600; }
  table { width: 100%; border-collapse: collapse; font-size: 13px; }
  th, td { text-align: left; padding: 6px 16px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { color: var(--dim); font-weight: 500; font-size: 11px; text-transform: uppercase; letter-spacing: .5px; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.reason { white-space: normal; color: var(--dim); }
  tr:last-child td { border-bottom: none; }
  .state { font-weight: 600; }
  .empty { padding: 40px; text-align: center; color: var(--dim); }
  code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
</style>
</head>
<body>
<header>
  <h1>put<span>tu</span></h1>
  <span id="zk" class="pill dim">ZooKeeper …</span>
  <span id="ready" class="pill dim">…</span>
  <span class="meta" id="meta">loading…</span>
</header>
<main>
  <div class="cards">
    <div class="card"><div class="k">Services</div><div class="v" id="c-services">–</div></div>
    <div class="card"><div class="k">Routable instances</div><div class="v" id="c-instances">–</div></div>
    <div class="card"><div class="k">Requests / s</div><div class="v" id="c-rate">–</div></div>
    <div class="card"><div class="k">Upstream failures / s</div><div class="v" id="c-errors">–</div></div>
  </div>
  <div id="services"><div class="empty">Reading the registry…</div></div>
</main>
<script>
(() => {
  const STATE_CLASS = { healthy: 'ok', ejected: 'bad', draining: 'warn', disabled: 'dim', rejected: 'bad', refused: 'bad' };
  let previous = null;
  const el = (id) => document.getElementById(id);
  const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const rate = (now, before, key, seconds) => (before && seconds > 0 ? Math.max(0, (now[key] - (before[key] ?? 0)) / seconds) : 0);
  const fmt = (n) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

  function policyStat(p) {
    if (!p) return '';
    const inForce = p.version === null ? 'defaults' : '<b>v' + p.version + '</b>';
    const refused = p.refused ? ' <b class="bad">v' + p.refused.version + ' refused: ' + esc(p.refused.reason) + '</b>' : '';
    return '<span class="stat policy" title="' + esc(JSON.stringify(p.inForce)) + '">policy ' + inForce + refused + '</span>';
  }
  function render(data, seconds) {
    const prev = new Map();
    if (previous) for (const s of previous.services) for (const i of s.instances) prev.set(s.name + '/' + i.id, i);
    el('zk').textContent = 'ZooKeeper ' + data.zookeeper;
    el('zk').className = 'pill ' + (data.zookeeper === 'connected' ? 'ok' : 'bad');
    el('ready').textContent = data.ready ? (data.stalenessSeconds > 0 ? 'stale ' + data.stalenessSeconds.toFixed(0) + ' s' : 'ready') : 'not ready';
    el('ready').className = 'pill ' + (data.ready ? (data.stalenessSeconds > 0 ? 'warn' : 'ok') : 'bad');
    el('meta').textContent = data.basePath + ' · up ' + data.uptimeSeconds + ' s' + (data.version ? ' · v' + data.version : '') + ' · refreshed ' + new Date().toLocaleTimeString();
    let total = 0, failures = 0, routable = 0;
    const html = data.services.map((s) => {
      let sRate = 0, sFail = 0;
      const rows = s.instances.map((i) => {
        const before = prev.get(s.name + '/' + i.id);
        const r = rate(i, before, 'requests', seconds);
        const f = rate(i, before, 'failures', seconds);
        sRate += r; sFail += f;
        return '<tr><td><code>' + esc(i.id) + '</code></td><td><code>' + esc(i.url ?? '–') + '</code></td><td>' + esc(i.format ?? '–') +
          '</td><td class="state ' + (STATE_CLASS[i.state] ?? 'dim') + '">' + esc(i.state) + '</td><td class="num">' + fmt(r) +
          '</td><td class="num">' + fmt(f) + '</td><td class="num">' + i.inflight + '</td><td class="reason">' + esc(i.reason ?? '') + '</td></tr>';
      }).join('');
      total += sRate; failures += sFail; routable += s.routable;
      const health = s.routable === 0 ? 'bad' : s.routable < s.instances.filter((i) => i.url).length ? 'warn' : 'ok';
      return '<section class="service" data-service="' + esc(s.name) + '"><div class="head"><h2>' + esc(s.name) + '</h2>' +
        '<span class="stat"><b class="' + health + '">' + s.routable + '</b> routable of ' + s.instances.length + '</span>' +
        '<span class="stat"><b>' + fmt(sRate) + '</b> req/s</span><span class="stat"><b>' + fmt(sFail) + '</b> failures/s</span>' + policyStat(s.policy) + '</div>' +
        '<table><thead><tr><th>Instance</th><th>URL</th><th>Format</th><th>State</th><th class="num">req/s</th><th class="num">fail/s</th><th class="num">In flight</th><th>Why</th></tr></thead><tbody>' +
        (rows || '<tr><td colspan="8" class="dim">no instances</td></tr>') + '</tbody></table></section>';
    }).join('');
    el('services').innerHTML = html || '<div class="empty">No services registered under <code>' + esc(data.basePath) + '</code> yet.</div>';
    el('c-services').textContent = data.services.length;
    el('c-instances').textContent = routable;
    el('c-rate').textContent = fmt(total);
    el('c-errors').textContent = fmt(failures);
    el('c-errors').className = 'v ' + (failures > 0 ? 'bad' : '');
  }

  let last = 0;
  async function tick() {
    try {
      const response = await fetch('/api/services', { cache: 'no-store' });
      const data = await response.json();
      const now = performance.now();
      render(data, last ? (now - last) / 1000 : 0);
      previous = data;
      last = now;
      document.body.dataset.loaded = 'true';
    } catch (error) {
      el('meta').textContent = 'admin API unreachable: ' + error.message;
    }
    setTimeout(tick, 2000);
  }
  tick();
})();
</script>
</body>
</html>
`;
