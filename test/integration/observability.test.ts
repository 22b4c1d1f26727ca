/**
 * The observability artefacts, each checked by its own real tool against a real running proxy:
 * config/prometheus.yml and config/alerts.yml by promtool (config, rules, rule unit tests), the
 * proxy's /metrics by `promtool check metrics`, every Grafana dashboard against what the proxy
 * really exports, and a real Prometheus server (Debian's) scraping the proxy through the repo's
 * own config until a service's request rate shows in its HTTP API.
 *
 * Dashboard metric names are checked against the samples of a scrape, not against its # HELP /
 * # TYPE lines: prom-client prints those for every registered metric even before it has a series,
 * so they cannot tell a panel that will chart data from one that never will. The scenario
 * therefore causes every situation the dashboard charts (5xx, unknown services, refused
 * connections, retries, ejections, rejected znodes, a service without instances). Prometheus
 * stores a classic histogram only as its _bucket, _sum and _count series, so those names (never
 * the bare histogram name) are what a panel must use and what the check looks for.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { eventually } from '../helpers/eventually.js';
import { startLoad } from '../helpers/load.js';
import {
  dashboardProblems,
  expandVariables,
  loadDashboards,
  metricNames,
  panelsOf,
  provisionedDatasourceUids,
  type Dashboard,
} from '../observability/dashboards.js';
import { prometheusConfigFor, promtool, REPO, startPrometheus } from '../observability/prometheus-server.js';
import { sampleNames, sampleValue, startScenario, type Scenario } from '../observability/scenario.js';

let s: Scenario;

/** One round of traffic touching every status class and failure path the dashboard shows. */
async function drive(): Promise<void> {
  for (let i = 0; i < 12; i++) await s.send('/warehouse/items'); // 1 of 3 instances refuses: retries, ejection
  await s.send('/warehouse/fail'); // 5xx from the backend
  await s.send('/billing/invoices', 'POST');
  await s.send('/nowhere/x'); // 404, counted as _unknown
  await s.send('/empty/x'); // 503 PUTTU_NO_INSTANCES
}

test.before(async () => {
  s = await startScenario();
  const [a, b] = s.upstreams;
  await s.register('warehouse', a!);
  await s.register('warehouse', b!);
  await s.registerDead('warehouse');
  await s.register('billing', b!);
  await s.addRejects('billing');
  await s.addEmptyService('empty');
  await eventually(
    async () => {
      await drive();
      const text = await s.scrape();
      return (
        (sampleValue(text, 'puttu_retries_total', { service: 'warehouse' }) ?? 0) > 0 &&
        (sampleValue(text, 'puttu_ejections_total', { service: 'warehouse' }) ?? 0) > 0
      );
    },
    { timeoutMs: 20_000, message: 'retries and an ejection counted' },
  );
});

test.after.always(async () => {
  await s?.close();
});

test('promtool check config: config/prometheus.yml', async (t) => {
  const r = await promtool(['check', 'config', 'config/prometheus.yml']);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /1 rule files found/, 'it loads config/alerts.yml');
});

test('promtool check rules: config/alerts.yml', async (t) => {
  const r = await promtool(['check', 'rules', 'config/alerts.yml']);
  t.is(r.code, 0, r.stdout + r.stderr);
});

test('promtool test rules: every alert is unit-tested firing and not firing, and the tests pass', async (t) => {
  const alerts = [...fs.readFileSync(path.join(REPO, 'config/alerts.yml'), 'utf8').matchAll(/^\s*- alert:\s*(\w+)/gm)].map((m) => m[1]!);
  for (const name of ['PuttuServiceNoEndpoints', 'PuttuHigh5xxRatio', 'PuttuZooKeeperDisconnected', 'PuttuRegistryStale'])
    t.true(alerts.includes(name), `${name} is defined`);
  const cases = [
    ...fs.readFileSync(path.join(REPO, 'config/alerts.test.yml'), 'utf8').matchAll(/alertname:\s*(\w+)\s*\n\s*exp_alerts:\s*(\[\s*\])?/g),
  ];
  for (const name of alerts) {
    t.true(
      cases.some((c) => c[1] === name && c[2] === undefined),
      `${name} has a firing case`,
    );
    t.true(
      cases.some((c) => c[1] === name && c[2] !== undefined),
      `${name} has a not-firing case`,
    );
  }
  const r = await promtool(['test', 'rules', 'config/alerts.test.yml']);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /SUCCESS/);
});

test('promtool check metrics passes on a real scrape after traffic', async (t) => {
  const text = await s.scrape();
  t.true((sampleValue(text, 'puttu_requests_total', { service: 'warehouse', method: 'GET', status_class: '2xx' }) ?? 0) > 0);
  const r = await promtool(['check', 'metrics'], text);
  t.is(r.code, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
  t.is((r.stdout + r.stderr).trim(), '', 'no lint findings');
});

test('metricNames finds the selected metrics and nothing else', (t) => {
  t.deepEqual(
    metricNames(
      'histogram_quantile(0.99, sum by (service, le) (rate(a_seconds_bucket{service=~"$service",le!="+Inf"}[$__rate_interval])))\n / ignoring (le) group_left b_total offset 5m or vector(1e3) > bool 0.5',
    ),
    ['a_seconds_bucket', 'b_total'],
  );
  t.deepEqual(metricNames('sum(rate(x{code="rate(y)"}[5m:1m])) and on (instance) up'), ['x', 'up']);
});

test('every dashboard is a valid Grafana dashboard whose queries name only metrics a running proxy exports', async (t) => {
  const dashboards = loadDashboards();
  t.true(dashboards.length > 0, 'grafana/dashboards holds at least one dashboard');
  const uids = provisionedDatasourceUids();
  t.true(uids.size > 0, 'a datasource is provisioned');
  const used = new Map<string, string[]>();
  for (const { file, dashboard } of dashboards) {
    const rel = path.relative(REPO, file);
    t.deepEqual(dashboardProblems(dashboard, uids), [], `${rel} is a valid dashboard`);
    const d = dashboard as Dashboard;
    t.true(
      d.templating?.list.some((v) => v.name === 'service'),
      `${rel} has a service variable`,
    );
    for (const v of d.templating?.list ?? []) {
      const m = /label_values\(\s*([A-Za-z_:][\w:]*)/.exec(v.definition ?? JSON.stringify(v.query));
      if (m) used.set(m[1]!, [...(used.get(m[1]!) ?? []), `${rel} variable $${v.name}`]);
    }
    for (const p of panelsOf(d)) {
      for (const target of p.targets) {
        const names = metricNames(target.expr);
        t.true(names.length > 0, `${rel} "${p.title}" ${target.refId} selects a metric`);
        for (const n of names) used.set(n, [...(used.get(n) ?? []), `${rel} "${p.title}" ${target.refId}`]);
      }
    }
  }
  for (const required of [
    'puttu_requests_total',
    'puttu_request_duration_seconds_bucket',
    'puttu_endpoints',
    'puttu_upstream_errors_total',
    'puttu_retries_total',
    'puttu_ejections_total',
    'puttu_zookeeper_connection_state',
    'puttu_registry_staleness_seconds',
  ]) {
    t.true(used.has(required), `a dashboard charts ${required}`);
  }
  // Keep the situations coming until one scrape has a sample of every name: an ejection lasts
  // seconds, and its gauge series goes when the instance is readmitted.
  let missing: string[] = [];
  await eventually(
    async () => {
      await drive();
      const exported = sampleNames(await s.scrape());
      missing = [...used.keys()].filter((n) => !exported.has(n));
      return missing.length === 0;
    },
    { timeoutMs: 20_000, message: 'a scrape with every dashboard metric' },
  ).catch(() => undefined);
  t.deepEqual(
    missing.map((n) => `${n} (${used.get(n)!.join('; ')})`),
    [],
    'metrics used by a dashboard but not exported by the proxy',
  );
});

test('a real Prometheus scraping the proxy with config/prometheus.yml shows the request rate, runs every dashboard query and loads the alerts', async (t) => {
  const prometheus = await startPrometheus({ config: prometheusConfigFor(s.proxy.adminUrl, '1s') });
  t.teardown(() => prometheus.stop());
  const load = startLoad(s.proxy.url + '/warehouse/items', { concurrency: 2, maxMs: 40_000 });
  t.teardown(() => load.stop().then(() => undefined));

  const rate = await eventually(
    async () => {
      const r = await prometheus.query('sum(rate(puttu_requests_total{service="warehouse"}[10s]))');
      const value = Number(r.result[0]?.value?.[1] ?? 0);
      return value > 0 ? value : undefined;
    },
    {
      timeoutMs: 30_000,
      intervalMs: 250,
      message: `warehouse's request rate visible in Prometheus (log: ${prometheus.output().slice(-500)})`,
    },
  );
  t.log(`warehouse: ${rate.toFixed(1)} requests/s in Prometheus`);
  const targets = await prometheus.api<{ activeTargets: Array<{ labels: Record<string, string>; health: string }> }>('targets');
  t.deepEqual(
    targets.activeTargets.map((x) => [x.labels.job, x.labels.instance, x.health]),
    [['puttu', new URL(s.proxy.adminUrl).host, 'up']],
  );

  // Every panel query parses and runs on this Prometheus, and every panel has data to draw.
  for (const { file, dashboard } of loadDashboards()) {
    for (const p of panelsOf(dashboard as Dashboard)) {
      let series = 0;
      for (const target of p.targets) {
        const expr = expandVariables(target.expr, { rateInterval: '10s', variables: { service: '.*' } });
        const r = await prometheus
          .query(expr)
          .catch((e: Error) => t.fail(`${path.basename(file)} "${p.title}" ${target.refId}: ${e.message}`));
        series += r ? r.result.length : 0;
      }
      t.true(series > 0, `${path.basename(file)} "${p.title}" has data`);
    }
  }

  // The alert rules loaded, and the one the scenario provokes (a service with no instance) is on its way.
  const rules = await prometheus.api<{ groups: Array<{ rules: Array<{ name: string; health: string }> }> }>('rules', { type: 'alert' });
  const loaded = rules.groups.flatMap((g) => g.rules);
  t.true(loaded.length >= 4 && loaded.every((r) => r.health === 'ok'), JSON.stringify(loaded.map((r) => [r.name, r.health])));
  const pending = await eventually(
    async () => {
      const { alerts } = await prometheus.api<{ alerts: Array<{ labels: Record<string, string>; state: string }> }>('alerts');
      return alerts.find((a) => a.labels.alertname === 'PuttuServiceNoEndpoints' && a.labels.service === 'empty');
    },
    { timeoutMs: 10_000, intervalMs: 250, message: 'PuttuServiceNoEndpoints for the empty service' },
  );
  t.is(pending.state, 'pending', 'pending for its first minute');
});
