/**
 * The parts of prom-client puttu uses, loaded from their own files rather than its index: the
 * index also loads the Summary (and its t-digest), the Pushgateway (https, zlib) and the cluster
 * aggregator (node:cluster, child_process), 1.5 MB of resident memory a proxy never uses (the
 * cluster primary, which aggregates, loads the index itself). prom-client 15 has no exports map, so
 * these are private paths: package.json pins prom-client's exact version, and
 * test/unit/dependency-contract.test.ts fails, naming the path, when an upgrade moves one.
 */
import { createRequire } from 'node:module';
import type client from 'prom-client';

const load = createRequire(import.meta.url);

export const PROM_CLIENT_PATHS = {
  Registry: 'prom-client/lib/registry',
  Counter: 'prom-client/lib/counter',
  Gauge: 'prom-client/lib/gauge',
} as const;

export const Registry = load(PROM_CLIENT_PATHS.Registry) as typeof client.Registry;
export const Counter = load(PROM_CLIENT_PATHS.Counter) as typeof client.Counter;
export const Gauge = load(PROM_CLIENT_PATHS.Gauge) as typeof client.Gauge;

/** One of prom-client's default metrics, as its collectDefaultMetrics registers it. */
export type DefaultMetric = (registry: client.Registry, config: { prefix: string; eventLoopMonitoringPrecision: number }) => void;

/**
 * prom-client's default metrics, one module each, as collectDefaultMetrics lists them, but for
 * processCpuTotal: that one requires `@opentelemetry/api` (51 modules, for exemplars puttu does not
 * use), so metrics.ts registers the same three counters itself.
 */
export const DEFAULT_METRICS = [
  'processStartTime',
  'osMemoryHeap',
  'processOpenFileDescriptors',
  'processMaxFileDescriptors',
  'eventLoopLag',
  'processResources',
  'processHandles',
  'processRequests',
  'heapSizeAndUsed',
  'heapSpacesSizeAndUsed',
  'version',
  'gc',
] as const;

export const defaultMetricPath = (name: string): string => `prom-client/lib/metrics/${name}`;

export function loadDefaultMetric(name: (typeof DEFAULT_METRICS)[number]): DefaultMetric {
  return load(defaultMetricPath(name)) as DefaultMetric;
}
