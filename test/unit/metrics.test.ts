import test from 'ava';
import prom from 'prom-client';
import { createMetrics, LINT_FAILING_DEFAULTS, UNKNOWN_SERVICE, type Metrics } from '../../proxy/metrics/metrics.js';
import { CONNECTION_STATES } from '../../proxy/registry/zk-client.js';

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

async function samples(metrics: Metrics, name: string): Promise<Sample[]> {
  const metric = metrics.registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  return (await metric.get()).values as Sample[];
}

async function value(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const match = (await samples(metrics, name)).filter(
    (s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length,
  );
  if (match.length > 1) throw new Error(`several series match ${JSON.stringify(labels)}`);
  return match[0]?.value;
}

const fresh = () => createMetrics({ defaultMetrics: false });

test('defaultMetrics: false registers only puttu metrics; the default adds process metrics', async (t) => {
  const bare = await fresh().registry.getMetricsAsJSON();
  t.true(bare.length > 0);
  t.true(bare.every((m) => m.name.startsWith('puttu_')));
  t.false(bare.some((m) => m.name === 'puttu_process_cpu_user_seconds_total'));
  const full = await createMetrics().registry.getMetricsAsJSON();
  t.true(full.some((m) => m.name === 'puttu_process_cpu_user_seconds_total'));
});

test("the default process metrics are prom-client's, less the three that fail promtool's lint", async (t) => {
  const reference = new prom.Registry();
  prom.collectDefaultMetrics({ register: reference, prefix: 'puttu_' });
  const expected = (await reference.getMetricsAsJSON()).map((m) => m.name).filter((n) => !LINT_FAILING_DEFAULTS.includes(n));
  const ours = new Set((await createMetrics().registry.getMetricsAsJSON()).map((m) => m.name));
  t.deepEqual(
    expected.filter((n) => !ours.has(n)),
    [],
  );
  t.deepEqual(
    LINT_FAILING_DEFAULTS.filter((n) => ours.has(n)),
    [],
  );
  t.true(ours.has('puttu_process_cpu_seconds_total'));
});

test('the process CPU counters grow, and the total is user plus system', async (t) => {
  const m = createMetrics();
  const read = async () =>
    Object.fromEntries(
      await Promise.all(
        ['user', 'system', ''].map(async (k) => [
          k || 'total',
          (await samples(m, `puttu_process_cpu_${k ? `${k}_` : ''}seconds_total`))[0]?.value ?? -1,
        ]),
      ),
    );
  const first = await read();
  const until = process.cpuUsage().user + 20_000;
  while (process.cpuUsage().user < until); // burn 20 ms of user CPU
  const second = await read();
  t.true(second.user >= first.user + 0.015, `user ${first.user} -> ${second.user}`);
  t.true(second.system >= first.system);
  t.true(Math.abs(second.total - (second.user + second.system)) < 1e-9);
});

test('each createMetrics has its own registry', async (t) => {
  const a = fresh();
  const b = fresh();
  t.not(a.registry, b.registry);
  a.forService('x').observe('GET', 200, 0.01);
  t.is(await value(a, 'puttu_requests_total', { service: 'x', method: 'GET', status_class: '2xx', protocol: 'http/1.1' }), 1);
  t.is(await value(b, 'puttu_requests_total', { service: 'x', method: 'GET', status_class: '2xx', protocol: 'http/1.1' }), undefined);
});

test('observe counts requests by service, method and status class', async (t) => {
  const m = fresh();
  const svc = m.forService('shop');
  t.is(svc.service, 'shop');
  svc.observe('GET', 200, 0.01);
  svc.observe('GET', 204, 0.01);
  svc.observe('POST', 201, 0.01);
  svc.observe('GET', 404, 0.01);
  svc.observe('DELETE', 503, 0.01);
  svc.observe('OPTIONS', 101, 0.01);
  svc.observe('PUT', 302, 0.01);
  const requests = (labels: { method: string; status_class: string }) =>
    value(m, 'puttu_requests_total', { service: 'shop', protocol: 'http/1.1', ...labels });
  t.is(await requests({ method: 'GET', status_class: '2xx' }), 2);
  t.is(await requests({ method: 'POST', status_class: '2xx' }), 1);
  t.is(await requests({ method: 'GET', status_class: '4xx' }), 1);
  t.is(await requests({ method: 'DELETE', status_class: '5xx' }), 1);
  t.is(await requests({ method: 'OPTIONS', status_class: '1xx' }), 1);
  t.is(await requests({ method: 'PUT', status_class: '3xx' }), 1);
  t.is((await samples(m, 'puttu_requests_total')).length, 6);
});

test('forService returns the same handle for the same service', (t) => {
  const m = fresh();
  t.is(m.forService('a'), m.forService('a'));
  t.not(m.forService('a'), m.forService('b'));
});

test('unknown methods are counted as OTHER; method names are case-sensitive', async (t) => {
  const m = fresh();
  const svc = m.forService('s');
  svc.observe('PROPFIND', 207, 0.1);
  svc.observe('get', 200, 0.1);
  svc.observe('CONNECT', 400, 0.1);
  t.is(await value(m, 'puttu_requests_total', { service: 's', method: 'OTHER', status_class: '2xx', protocol: 'http/1.1' }), 2);
  t.is(await value(m, 'puttu_requests_total', { service: 's', method: 'OTHER', status_class: '4xx', protocol: 'http/1.1' }), 1);
  const methods = new Set((await samples(m, 'puttu_requests_total')).map((s) => s.labels.method));
  t.deepEqual([...methods], ['OTHER']);
});

test('status 0 is counted as "aborted"; out-of-range statuses are clamped to a class', async (t) => {
  const m = fresh();
  const svc = m.forService('s');
  svc.observe('GET', 0, 1);
  svc.observe('GET', 0, 1);
  svc.observe('GET', 99, 1);
  svc.observe('GET', 600, 1);
  svc.observe('GET', 999, 1);
  t.is(await value(m, 'puttu_requests_total', { service: 's', method: 'GET', status_class: 'aborted', protocol: 'http/1.1' }), 2);
  t.is(await value(m, 'puttu_requests_total', { service: 's', method: 'GET', status_class: '1xx', protocol: 'http/1.1' }), 1);
  t.is(await value(m, 'puttu_requests_total', { service: 's', method: 'GET', status_class: '5xx', protocol: 'http/1.1' }), 2);
});

test('observe records the duration in the per-service histogram', async (t) => {
  const m = fresh();
  const svc = m.forService('s');
  svc.observe('GET', 200, 0.003);
  svc.observe('POST', 500, 0.2);
  svc.observe('GET', 0, 40);
  const all = await samples(m, 'puttu_request_duration_seconds');
  const count = all.find((s) => s.metricName === 'puttu_request_duration_seconds_count' && s.labels.service === 's');
  const sum = all.find((s) => s.metricName === 'puttu_request_duration_seconds_sum' && s.labels.service === 's');
  t.is(count?.value, 3);
  t.is(Math.round((sum?.value ?? 0) * 1000), 40_203);
  const bucket = (le: number | string) =>
    all.find((s) => s.metricName === 'puttu_request_duration_seconds_bucket' && s.labels.le === le)?.value;
  t.is(bucket(0.001), 0);
  t.is(bucket(0.005), 1);
  t.is(bucket(0.25), 2);
  t.is(bucket(30), 2);
  t.is(bucket('+Inf'), 3);
  // The histogram is labelled by service only.
  t.true(all.every((s) => Object.keys(s.labels).every((k) => k === 'service' || k === 'le')));
});

test('upstreamError counts by service and code', async (t) => {
  const m = fresh();
  const a = m.forService('a');
  a.upstreamError('PUTTU_UPSTREAM_REFUSED');
  a.upstreamError('PUTTU_UPSTREAM_REFUSED');
  a.upstreamError('PUTTU_UPSTREAM_TIMEOUT');
  m.forService('b').upstreamError('PUTTU_UPSTREAM_REFUSED');
  t.is(await value(m, 'puttu_upstream_errors_total', { service: 'a', code: 'PUTTU_UPSTREAM_REFUSED' }), 2);
  t.is(await value(m, 'puttu_upstream_errors_total', { service: 'a', code: 'PUTTU_UPSTREAM_TIMEOUT' }), 1);
  t.is(await value(m, 'puttu_upstream_errors_total', { service: 'b', code: 'PUTTU_UPSTREAM_REFUSED' }), 1);
  // errors are not requests
  t.is((await samples(m, 'puttu_requests_total')).length, 0);
});

test('forget removes every series of that service and keeps the others', async (t) => {
  const m = fresh();
  for (const name of ['x', 'y']) {
    const s = m.forService(name);
    s.observe('GET', 200, 0.01);
    s.observe('PATCH', 0, 0.01);
    s.observe('BREW', 418, 0.01);
    s.upstreamError('PUTTU_UPSTREAM_RESET');
    m.setEndpoints(name, 3);
    m.invalidZnode(name);
  }
  const before = await m.registry.metrics();
  t.true(before.includes('service="x"'));
  for (const metric of [
    'puttu_requests_total{',
    'puttu_request_duration_seconds_bucket{',
    'puttu_upstream_errors_total{',
    'puttu_endpoints{',
    'puttu_registry_invalid_znodes_total{',
  ]) {
    t.true(
      before.split('\n').some((l) => l.startsWith(metric) && l.includes('service="x"')),
      metric,
    );
  }

  m.forget('x');
  const after = await m.registry.metrics();
  t.false(after.includes('service="x"'));
  t.true(after.includes('service="y"'));
  t.is(await value(m, 'puttu_requests_total', { service: 'y', method: 'GET', status_class: '2xx', protocol: 'http/1.1' }), 1);
  t.is(await value(m, 'puttu_endpoints', { service: 'y' }), 3);
});

test('forget of a service never seen, or twice, is harmless', async (t) => {
  const m = fresh();
  m.forService('y').observe('GET', 200, 0);
  t.notThrows(() => m.forget('never'));
  m.forget('y');
  t.notThrows(() => m.forget('y'));
  t.false((await m.registry.metrics()).includes('service="y"'));
});

test('a service forgotten and seen again starts from zero', async (t) => {
  const m = fresh();
  m.forService('x').observe('GET', 200, 0);
  m.forService('x').observe('GET', 200, 0);
  m.forget('x');
  m.forService('x').observe('GET', 200, 0);
  t.is(await value(m, 'puttu_requests_total', { service: 'x', method: 'GET', status_class: '2xx', protocol: 'http/1.1' }), 1);
  m.forget('x');
  t.false((await m.registry.metrics()).includes('service="x"'));
});

test('regression: a handle held across forget (an in-flight request) does not resurrect the series', async (t) => {
  const m = fresh();
  const inFlight = m.forService('x');
  inFlight.observe('GET', 200, 0.01);
  inFlight.upstreamError('PUTTU_UPSTREAM_RESET');
  m.forget('x');
  // The request started before the service left the registry finishes afterwards.
  inFlight.observe('GET', 200, 0.01);
  inFlight.observe('POST', 502, 0.01);
  inFlight.upstreamError('PUTTU_UPSTREAM_RESET');
  inFlight.upstreamError('PUTTU_UPSTREAM_TIMEOUT');
  t.false((await m.registry.metrics()).includes('service="x"'));
  // A new handle for the same name still counts.
  m.forService('x').observe('GET', 200, 0.01);
  t.is(await value(m, 'puttu_requests_total', { service: 'x', method: 'GET', status_class: '2xx', protocol: 'http/1.1' }), 1);
});

test('setZkState sets exactly one state to 1 and all the others to 0', async (t) => {
  const m = fresh();
  const states = async () => new Map((await samples(m, 'puttu_zookeeper_connection_state')).map((s) => [s.labels.state, s.value]));
  const initial = await states();
  t.deepEqual([...initial.keys()].sort(), [...CONNECTION_STATES].sort());
  t.true([...initial.values()].every((v) => v === 0));
  for (const state of ['connected', 'disconnected', 'expired', 'connected', 'closed'] as const) {
    m.setZkState(state);
    const now = await states();
    t.is(now.size, CONNECTION_STATES.length);
    t.is(now.get(state), 1, state);
    t.is([...now.values()].filter((v) => v === 1).length, 1, state);
    t.is(
      [...now.values()].reduce((a, b) => a + b, 0),
      1,
      state,
    );
  }
});

test('setEndpoints, setSynced and setStaleness set their gauges; onCollect runs at scrape time', async (t) => {
  const m = fresh();
  m.setEndpoints('s', 4);
  m.setEndpoints('s', 2);
  t.is(await value(m, 'puttu_endpoints', { service: 's' }), 2);
  t.is(await value(m, 'puttu_registry_synced', {}), 0);
  m.setSynced(true);
  t.is(await value(m, 'puttu_registry_synced', {}), 1);
  m.setSynced(false);
  t.is(await value(m, 'puttu_registry_synced', {}), 0);
  let calls = 0;
  m.onCollect(() => {
    calls += 1;
    m.setStaleness(12.5);
  });
  t.is(calls, 0);
  t.regex(await m.registry.metrics(), /^puttu_registry_staleness_seconds 12\.5$/m);
  t.is(calls, 1);
});

test('invalidZnode counts per service', async (t) => {
  const m = fresh();
  m.invalidZnode('s');
  m.invalidZnode('s');
  t.is(await value(m, 'puttu_registry_invalid_znodes_total', { service: 's' }), 2);
});

/** A small deterministic generator, so a failure here can be reproduced. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test('label cardinality stays bounded after 1000 observations with random methods and statuses', async (t) => {
  const m = fresh();
  const random = lcg(20240601);
  const known = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE'];
  const svc = m.forService('s');
  const unknown = m.forService(UNKNOWN_SERVICE);
  for (let i = 0; i < 1000; i++) {
    const method = random() < 0.5 ? known[Math.floor(random() * known.length)]! : `M${Math.floor(random() * 1e9).toString(36)}`;
    const status = Math.floor(random() * 700);
    (i % 2 === 0 ? svc : unknown).observe(method, status, random());
  }
  const series = await samples(m, 'puttu_requests_total');
  t.is(
    series.reduce((a, s) => a + s.value, 0),
    1000,
  );
  // 9 method values (8 known + OTHER) × 6 status classes × 2 services at most (all HTTP/1.1).
  t.true(series.length <= 9 * 6 * 2, String(series.length));
  const methods = new Set(series.map((s) => String(s.labels.method)));
  t.true(
    [...methods].every((x) => x === 'OTHER' || known.includes(x)),
    [...methods].join(','),
  );
  t.true(methods.has('OTHER'));
  const classes = new Set(series.map((s) => String(s.labels.status_class)));
  t.true(
    [...classes].every((c) => ['1xx', '2xx', '3xx', '4xx', '5xx', 'aborted'].includes(c)),
    [...classes].join(','),
  );
  t.deepEqual(new Set(series.map((s) => s.labels.service)), new Set(['s', UNKNOWN_SERVICE]));
  const histogramSeries = (await samples(m, 'puttu_request_duration_seconds')).filter(
    (s) => s.metricName === 'puttu_request_duration_seconds_count',
  );
  t.is(histogramSeries.length, 2);
});
