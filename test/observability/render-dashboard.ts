/**
 * docs/dashboard.png without Grafana (not installable here): a real ZooKeeper, proxy and two
 * backends under a bounded load that goes through a few incidents (a dead instance, a burst of
 * 5xx, ZooKeeper away for a while, an instance leaving, rejected znodes), a real Prometheus
 * scraping it with config/prometheus.yml, then every panel's own query run over the load window
 * (/api/v1/query_range) and drawn by charts.ts, screenshotted by headless Chromium.
 * Entry point: scripts/render-dashboard.mjs.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { eventually } from '../helpers/eventually.js';
import { dashboardHtml, type PanelData, type Series } from './charts.js';
import { expandVariables, legendFor, loadDashboards, panelsOf, type Dashboard } from './dashboards.js';
import { prometheusConfigFor, REPO, startPrometheus, type PrometheusServer } from './prometheus-server.js';
import { startScenario, type Scenario } from './scenario.js';

export interface RenderOptions {
  /** Length of the load, in ms (default 60 s). */
  durationMs?: number;
  /** Output PNG (default docs/dashboard.png); one per dashboard, suffixed with its uid, after the first. */
  out?: string;
  chromiumPath?: string;
  width?: number;
  log?: (message: string) => void;
}

const STEP_SECONDS = 1;
const RATE_INTERVAL = '5s'; // Grafana's $__rate_interval for a 1 s scrape: max(4 × scrape, step + scrape)
const VARIABLES = { service: '.*' };
/** Set during the 5xx incident: a fifth of billing's requests go to a path its backend fails. */
let billingFailing = false;

export async function renderDashboards(options: RenderOptions = {}): Promise<string[]> {
  const { durationMs = 60_000, width = 1800, log = () => undefined } = options;
  const out = options.out ?? path.join(REPO, 'docs/dashboard.png');
  const dashboards = loadDashboards().map((d) => d.dashboard as Dashboard);
  let scenario: Scenario | undefined;
  let prometheus: PrometheusServer | undefined;
  try {
    log('starting ZooKeeper, the proxy and two backends');
    scenario = await startScenario();
    const s = scenario;
    const [a, b] = s.upstreams;
    await s.register('warehouse', a!);
    const leaving = await s.register('warehouse', b!);
    await s.register('billing', b!);
    prometheus = await startPrometheus({ config: prometheusConfigFor(s.proxy.adminUrl, `${STEP_SECONDS}s`) });
    // Prometheus applies discovered targets only every 5 s: start the load once it scrapes.
    const p = prometheus;
    await eventually(async () => (await p.query('up{job="puttu"} == 1')).result.length > 0, {
      timeoutMs: 30_000,
      message: 'Prometheus scraping the proxy',
    });
    log(`Prometheus at ${prometheus.url}; load for ${durationMs / 1000} s`);

    const start = Math.floor(Date.now() / 1000);
    const load = startMixedLoad(s, durationMs);
    await incidents(s, durationMs, leaving, log);
    const sent = await load;
    // Wait for a scrape after the load ended, so its last second is in Prometheus.
    const loadEnded = Date.now() / 1000;
    await eventually(
      async () => Number((await p.query('max(timestamp(puttu_registry_synced))')).result[0]?.value?.[1] ?? 0) > loadEnded + 1,
      {
        timeoutMs: 15_000,
        message: 'a scrape after the load',
      },
    );
    const end = Math.floor(Date.now() / 1000);
    log(`${sent} requests sent; querying ${start}..${end}`);

    const files: string[] = [];
    for (const [i, dashboard] of dashboards.entries()) {
      const data = await query(prometheus, dashboard, start, end);
      const html = dashboardHtml(dashboard, data, {
        from: start,
        to: end,
        width,
        variables: VARIABLES,
        subtitle: `Grafana dashboard ${dashboard.uid}, drawn from its own queries on a real Prometheus scraping puttu under load: ${sent} requests, ${new Date(start * 1000).toISOString().slice(0, 19)}Z + ${end - start} s`,
      });
      const file = i === 0 ? out : out.replace(/\.png$/, `-${dashboard.uid}.png`);
      await screenshot(html, file, width, options.chromiumPath ?? '/usr/bin/chromium');
      log(`wrote ${path.relative(process.cwd(), file)}`);
      files.push(file);
    }
    return files;
  } finally {
    await prometheus?.stop();
    await scenario?.close();
  }
}

/** Every target of every panel over [start, end], one point per step, NaN where a series is absent. */
async function query(prometheus: PrometheusServer, dashboard: Dashboard, start: number, end: number): Promise<PanelData[]> {
  const data: PanelData[] = [];
  for (const panel of panelsOf(dashboard)) {
    const series: Series[] = [];
    for (const target of panel.targets) {
      const expr = expandVariables(target.expr, { rateInterval: RATE_INTERVAL, variables: VARIABLES });
      const r = await prometheus.queryRange(expr, start, end, STEP_SECONDS);
      for (const m of r.result) {
        const byTime = new Map((m.values ?? []).map(([t, v]) => [Math.round(t), Number(v)]));
        const points: Array<[number, number]> = [];
        for (let t = start; t <= end; t += STEP_SECONDS) points.push([t, byTime.get(t) ?? NaN]);
        series.push({ name: legendFor(target.legendFormat, m.metric), points });
      }
    }
    data.push({ panel, series: series.sort((x, y) => x.name.localeCompare(y.name)) });
  }
  return data;
}

/** The incidents, at fixed fractions of the load window. */
async function incidents(
  s: Scenario,
  durationMs: number,
  leaving: { unregister(): Promise<void> },
  log: (m: string) => void,
): Promise<void> {
  const t0 = Date.now();
  const at = (fraction: number) => new Promise((r) => setTimeout(r, Math.max(0, t0 + fraction * durationMs - Date.now())));
  await at(0.2);
  log('a third warehouse instance registers on a port nobody listens on');
  await s.registerDead('warehouse');
  await at(0.3);
  log('an unusable and a refused znode appear under billing');
  await s.addRejects('billing');
  await at(0.35);
  billingFailing = true;
  log('billing answers 20% 5xx');
  await at(0.5);
  log('ZooKeeper stops');
  await s.zk.server.stop();
  await at(0.55);
  billingFailing = false;
  await at(0.7);
  log('ZooKeeper starts again');
  await s.zk.server.start();
  await at(0.8);
  log('one good warehouse instance leaves');
  await leaving.unregister();
  await at(0.85);
  log('two more bad znodes under billing');
  await s.addRejects('billing');
  await at(1);
}

/** Six keep-alive clients for `durationMs`: mostly warehouse reads and billing writes with varied backend latency. */
async function startMixedLoad(s: Scenario, durationMs: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 6 });
  const deadline = Date.now() + durationMs;
  let sent = 0;
  const one = (method: string, pathAndQuery: string) =>
    new Promise<void>((resolve) => {
      const req = http.request(s.proxy.url + pathAndQuery, { method, agent }, (res) => {
        res.resume();
        res.on('end', resolve);
        res.on('error', () => resolve());
      });
      req.setTimeout(10_000, () => req.destroy());
      req.on('error', () => resolve());
      req.end();
    });
  const worker = async () => {
    while (Date.now() < deadline && sent < 500_000) {
      sent++;
      const r = Math.random();
      if (r < 0.6) await one('GET', `/warehouse/items?ms=${Math.round(1 + Math.random() ** 3 * 40)}`);
      else if (r < 0.93)
        await one(
          'POST',
          `/billing/${billingFailing && Math.random() < 0.2 ? 'fail' : 'invoices'}?ms=${Math.round(5 + Math.random() * 60)}`,
        );
      else if (r < 0.97) await one('GET', '/nowhere/x');
      else await one('GET', `/warehouse/${Math.random() < 0.1 ? 'fail' : 'items'}`);
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  agent.destroy();
  return sent;
}

async function screenshot(html: string, file: string, width: number, executablePath: string): Promise<void> {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--headless'],
  });
  try {
    const page = await browser.newPage({ viewport: { width, height: 800 }, deviceScaleFactor: 1 });
    // Nothing outside the page may load: the markup is self-contained.
    await page.route('**/*', (route) => (route.request().url().startsWith('data:') ? route.continue() : route.abort()));
    await page.setContent(html, { waitUntil: 'load' });
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await page.screenshot({ path: file, fullPage: true });
  } finally {
    await browser.close();
  }
}
