/**
 * The proxy's Prometheus metrics on its own prom-client Registry (never the global one).
 * Label values are bounded by construction: services come from the registry (unknown names are
 * all counted as "_unknown"), methods from a fixed list, status as a class, error codes from
 * UPSTREAM_ERROR_CODES. Per-service label children are resolved once and cached, and forgotten
 * when the service leaves the registry, so the number of series follows the live registry.
 */
import type client from 'prom-client';
import { Counter, DEFAULT_METRICS, Gauge, loadDefaultMetric, Registry } from '../deps/prom-client.js';
import type { ConnectionState } from '../registry/zk-client.js';
import { CONNECTION_STATES } from '../registry/zk-client.js';
import { DurationHistogram, ReadCounter, ReadCounters, register, RequestCounter, requestSlot } from './request-metrics.js';

export const LINT_FAILING_DEFAULTS = [
  'puttu_nodejs_active_handles_total',
  'puttu_nodejs_active_requests_total',
  'puttu_nodejs_active_resources_total',
];

function registerDefaultMetrics(registry: client.Registry, prefix: string): void {
  const config = { prefix, eventLoopMonitoringPrecision: 10 };
  for (const name of DEFAULT_METRICS) loadDefaultMetric(name)(registry, config);
  processCpu(registry, prefix);
  // `promtool check metrics` rejects these three: gauges whose names end in _total (reserved for
  // counters). They are the only default metrics that fail the lint, so only they go.
  for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(name);
}

/** process_cpu_{user,system}_seconds_total and their sum, as prom-client's processCpuTotal has them. */
function processCpu(registry: client.Registry, prefix: string): void {
  let last = process.cpuUsage();
  const user = new Counter({
    name: `${prefix}process_cpu_user_seconds_total`,
    help: 'Total user CPU time spent in seconds.',
    registers: [registry],
    // One collect sets all three: the registry reads them in this order.
    collect() {
      const now = process.cpuUsage();
      const userSeconds = (now.user - last.user) / 1e6;
      const systemSeconds = (now.system - last.system) / 1e6;
      last = now;
      user.inc(userSeconds);
      system.inc(systemSeconds);
      total.inc(userSeconds + systemSeconds);
    },
  });
  const system = new Counter({
    name: `${prefix}process_cpu_system_seconds_total`,
    help: 'Total system CPU time spent in seconds.',
    registers: [registry],
  });
  const total = new Counter({
    name: `${prefix}process_cpu_seconds_total`,
    help: 'Total user and system CPU time spent in seconds.',
    registers: [registry],
  });
}

export const UNKNOWN_SERVICE = '_unknown';

/**
 * For gauges every process of a cluster (--workers) reports alike (registry facts, the ZooKeeper
 * state, ejections): the primary's aggregated /metrics keeps the largest value, not the sum.
 */
const ONE_PER_CLUSTER = { aggregator: 'max' } as const;

/** Per-service metric children, resolved once. */
export interface ServiceMetrics {
  readonly service: string;
  /** Counts one finished request; `status` 0 means the connection was cut; `http2`: it came over HTTP/2. */
  observe(method: string, status: number, seconds: number, http2?: boolean): void;
  upstreamError(code: string): void;
  /** Counts retries (attempts after the first) of one request. */
  retried(count: number): void;
}

export interface Metrics {
  readonly registry: client.Registry;
  forService(service: string): ServiceMetrics;
  forget(service: string): void;
  setEndpoints(service: string, count: number): void;
  setZkState(state: ConnectionState): void;
  invalidZnode(service: string): void;
  /** An instance the upstream policy refused (registry poisoning attempt or misconfiguration). */
  refusedInstance(service: string): void;
  /** Called at scrape time for values that are derived, not counted. */
  onCollect(fn: () => void): void;
  setSynced(synced: boolean): void;
  /** Marks an instance ejected (1) or routable again (series removed). */
  setEjected(service: string, id: string, ejected: boolean): void;
  /** A service's newest traffic policy document was refused (1) or is in force (0); undefined: none. */
  setPolicyInvalid(service: string, invalid: boolean | undefined): void;
  setStaleness(seconds: number): void;
  /** Exports the fast lane's own counts (requests it answered, connections it handed to Node). */
  watchFastLane(lane: { readonly served: number; readonly handedOff: number }): void;
  /** Exports the upstream read buffers' counts (forward/read-buffers.ts). */
  watchReadBuffers(buffers: { readonly allocated: number; readonly returned: number; readonly lentBytes: number }): void;
  /** Exports the HTTP/2 listener's counts: requests by protocol (h2 over TLS, h2c), open sessions. */
  watchHttp2(front: { readonly sessions: number; readonly requests: { readonly h2: number; readonly h2c: number } }): void;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics !== false) {
    registerDefaultMetrics(registry, 'puttu_');
  }
  const collectors: Array<() => void> = [];

  const requests = new RequestCounter();
  register(registry, requests);
  const duration = new DurationHistogram([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);
  register(registry, duration);
  const upstreamErrors = new Counter({
    name: 'puttu_upstream_errors_total',
    help: 'Failed upstream attempts, by service and error code.',
    labelNames: ['service', 'code'] as const,
    registers: [registry],
  });
  const retries = new Counter({
    name: 'puttu_retries_total',
    help: 'Attempts sent to another instance after a failed one, by service.',
    labelNames: ['service'] as const,
    registers: [registry],
  });
  const endpoints = new Gauge({
    name: 'puttu_endpoints',
    help: 'Registered, valid endpoints per service in the registry snapshot (ejected ones included).',
    labelNames: ['service'] as const,
    ...ONE_PER_CLUSTER,
    registers: [registry],
  });
  const zkState = new Gauge({
    name: 'puttu_zookeeper_connection_state',
    help: 'ZooKeeper connection state: 1 for the current state, 0 for the others.',
    labelNames: ['state'] as const,
    ...ONE_PER_CLUSTER,
    registers: [registry],
  });
  const invalid = new Counter({
    name: 'puttu_registry_invalid_znodes_total',
    help: 'Instance znodes skipped because their data could not be used, by service.',
    labelNames: ['service'] as const,
    registers: [registry],
  });
  const refused = new Counter({
    name: 'puttu_registry_refused_instances_total',
    help: 'Instances never routed because the upstream policy refuses their address or port, by service.',
    labelNames: ['service'] as const,
    registers: [registry],
  });
  const synced = new Gauge({
    name: 'puttu_registry_synced',
    help: '1 once the registry has been read from ZooKeeper.',
    ...ONE_PER_CLUSTER,
    registers: [registry],
  });
  const staleness = new Gauge({
    name: 'puttu_registry_staleness_seconds',
    help: 'Seconds the registry snapshot may be out of date (0 while ZooKeeper is connected and synced).',
    ...ONE_PER_CLUSTER,
    registers: [registry],
    collect() {
      for (const fn of collectors) fn();
    },
  });
  const ejected = new Gauge({
    name: 'puttu_instance_ejected',
    help: 'Instances currently ejected from routing after consecutive failures (1 each).',
    // Not `instance`: Prometheus sets that label on every scraped series (it would be renamed).
    labelNames: ['service', 'instance_id'] as const,
    ...ONE_PER_CLUSTER,
    registers: [registry],
  });
  const ejections = new Counter({
    name: 'puttu_ejections_total',
    help: 'Ejections of instances from routing, by service.',
    labelNames: ['service'] as const,
    registers: [registry],
  });
  const policyInvalid = new Gauge({
    name: 'puttu_policy_invalid',
    help: "1 while a service's newest traffic policy document is refused (the last valid one stays in force), 0 otherwise.",
    labelNames: ['service'] as const,
    ...ONE_PER_CLUSTER,
    registers: [registry],
  });
  for (const s of CONNECTION_STATES) zkState.set({ state: s }, 0);
  synced.set(0);
  staleness.set(0);

  const services = new Map<string, ServiceMetrics & { forget(): void }>();

  function build(service: string): ServiceMetrics & { forget(): void } {
    // The request path's two series are resolved here, once: a request only adds to them.
    const counts = requests.series(service);
    const hist = duration.series(service);
    // prom-client removes series by their exact label set only: remember each one made.
    const made: Array<() => void> = [];
    const errorCounters = new Map<string, client.Counter.Internal>();
    const retryCounter = retries.labels(service);
    // A handle held by an in-flight request outlives forget(): a forgotten handle counts nothing,
    // or prom-client's children would re-create their series and leak them.
    let forgotten = false;
    return {
      service,
      observe(method, status, seconds, http2 = false) {
        if (forgotten) return;
        counts[requestSlot(method, status, http2)]!++;
        hist.observe(seconds);
      },
      upstreamError(code) {
        if (forgotten) return;
        let counter = errorCounters.get(code);
        if (counter === undefined) {
          counter = upstreamErrors.labels(service, code);
          errorCounters.set(code, counter);
          made.push(() => upstreamErrors.remove(service, code));
        }
        counter.inc();
      },
      retried(count) {
        if (forgotten) return;
        retryCounter.inc(count);
      },
      forget() {
        forgotten = true;
        retries.remove(service);
        for (const remove of made) remove();
        requests.remove(service);
        duration.remove(service);
      },
    };
  }

  return {
    registry,
    forService(service) {
      let m = services.get(service);
      if (m === undefined) {
        m = build(service);
        services.set(service, m);
      }
      return m;
    },
    forget(service) {
      services.get(service)?.forget();
      services.delete(service);
      endpoints.remove(service);
      invalid.remove(service);
      refused.remove(service);
      ejections.remove(service);
    },
    setEndpoints: (service, count) => endpoints.set({ service }, count),
    setZkState(state) {
      for (const s of CONNECTION_STATES) zkState.set({ state: s }, s === state ? 1 : 0);
    },
    invalidZnode: (service) => invalid.inc({ service }),
    refusedInstance: (service) => refused.inc({ service }),
    onCollect: (fn) => void collectors.push(fn),
    setSynced: (value) => synced.set(value ? 1 : 0),
    setStaleness: (seconds) => staleness.set(seconds),
    watchFastLane(lane) {
      register(
        registry,
        new ReadCounter(
          'puttu_fast_lane_requests_total',
          "Requests read and answered by the fast lane (the others went through Node's HTTP parser).",
          () => lane.served,
        ),
      );
      register(
        registry,
        new ReadCounter(
          'puttu_fast_lane_handoffs_total',
          "Client connections the fast lane handed to Node's HTTP parser (an unusual, streamed or incomplete request).",
          () => lane.handedOff,
        ),
      );
    },
    watchReadBuffers(buffers) {
      register(
        registry,
        new ReadCounter(
          'puttu_upstream_read_buffers_allocated_total',
          'Buffers of 64 KiB allocated for reads from plain-HTTP upstreams (every other read reused one).',
          () => buffers.allocated,
        ),
      );
      register(
        registry,
        new ReadCounter(
          'puttu_upstream_read_buffers_returned_total',
          "Times an upstream read buffer came back for reuse once the client's socket had written its bytes.",
          () => buffers.returned,
        ),
      );
      register(
        registry,
        new ReadCounter(
          'puttu_upstream_read_buffer_body_bytes_total',
          'Response body bytes sent to clients straight from reused upstream read buffers.',
          () => buffers.lentBytes,
        ),
      );
    },
    setPolicyInvalid(service, value) {
      if (value === undefined) policyInvalid.remove(service);
      else policyInvalid.set({ service }, value ? 1 : 0);
    },
    watchHttp2(front) {
      register(
        registry,
        new ReadCounters(
          'puttu_http2_requests_total',
          'Requests received over HTTP/2 from clients, by protocol (h2: TLS with ALPN; h2c: prior knowledge).',
          [
            { labels: { protocol: 'h2' }, read: () => front.requests.h2 },
            { labels: { protocol: 'h2c' }, read: () => front.requests.h2c },
          ],
        ),
      );
      new Gauge({
        name: 'puttu_http2_sessions',
        help: 'HTTP/2 client connections open.',
        registers: [registry],
        collect() {
          this.set(front.sessions);
        },
      });
    },
    setEjected(service, id, value) {
      if (value) {
        ejected.set({ service, instance_id: id }, 1);
        ejections.inc({ service });
      } else ejected.remove(service, id);
    },
  };
}
