/**
 * The two metrics every request updates (`puttu_requests_total`, `puttu_request_duration_seconds`),
 * kept as plain numbers per service and put into prom-client's format only when scraped.
 *
 * prom-client's own label children hash their label set on every `inc()`/`observe()` (a string
 * built, an object looked up per call). Here a service's series are found once, when the service's
 * metrics handle is made; a request then only adds to an array slot. Both objects have prom-client's
 * metric shape (`name`, `help`, `type`, `aggregator`, `get()`, `reset()`), so they register in a
 * prom-client Registry and aggregate across cluster workers like its own metrics.
 */
import type client from 'prom-client';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE'] as const;
/** Index of the `OTHER` method row, after METHODS. */
const OTHER_METHOD = METHODS.length;
const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'aborted'] as const;

/** The protocols requests are counted by: HTTP/1.1 (both paths, WebSocket upgrades) and HTTP/2 (h2 and h2c). */
const PROTOCOLS = ['http/1.1', 'http/2'] as const;
/** Slots of one protocol: (METHODS + OTHER) × status classes. */
const PROTOCOL_SLOTS = (METHODS.length + 1) * STATUS_CLASSES.length;

/**
 * The slot of a RequestCounter series that counts `method` and `status` (0: connection cut) over
 * HTTP/2 or not: protocol block, then method row × 6 + status class. Unknown methods count as
 * OTHER; statuses out of range are clamped to 1xx or 5xx.
 */
export function requestSlot(method: string, status: number, http2 = false): number {
  const m = METHODS.indexOf(method as (typeof METHODS)[number]);
  const c = status === 0 ? 5 : Math.min(Math.max(Math.floor(status / 100), 1), 5) - 1;
  return (http2 ? PROTOCOL_SLOTS : 0) + (m === -1 ? OTHER_METHOD : m) * STATUS_CLASSES.length + c;
}

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

interface MetricShape {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; values: Sample[]; aggregator: string }>;
  reset(): void;
}

/** Requests by service, method, status class and protocol: one Float64Array of 2 × (METHODS+1) × 6 per service. */
export class RequestCounter implements MetricShape {
  readonly name = 'puttu_requests_total';
  readonly help = 'Requests handled, by service, method, status class ("aborted": connection cut) and protocol (http/1.1, http/2).';
  readonly type = 'counter';
  readonly aggregator = 'sum';
  readonly #series = new Map<string, Float64Array>();

  /** The counts of one service, indexed by requestSlot(). */
  series(service: string): Float64Array {
    let counts = this.#series.get(service);
    if (counts === undefined) {
      counts = new Float64Array(PROTOCOLS.length * PROTOCOL_SLOTS);
      this.#series.set(service, counts);
    }
    return counts;
  }

  remove(service: string): void {
    this.#series.delete(service);
  }

  reset(): void {
    for (const counts of this.#series.values()) counts.fill(0);
  }

  async get() {
    const values: Sample[] = [];
    for (const [service, counts] of this.#series) {
      for (let i = 0; i < counts.length; i++) {
        if (counts[i] === 0) continue;
        const slot = i % PROTOCOL_SLOTS;
        const m = Math.floor(slot / STATUS_CLASSES.length);
        values.push({
          labels: {
            service,
            method: m === OTHER_METHOD ? 'OTHER' : METHODS[m]!,
            status_class: STATUS_CLASSES[slot % STATUS_CLASSES.length]!,
            protocol: PROTOCOLS[Math.floor(i / PROTOCOL_SLOTS)]!,
          },
          value: counts[i]!,
        });
      }
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

/**
 * A counter whose value something else keeps (a plain number it increments anyway), read at
 * scrape time: nothing added to the path that counts. `reset()` (between tests) shifts the zero.
 */
export class ReadCounter implements MetricShape {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  readonly #read: () => number;
  #zero = 0;

  readonly #labels: Record<string, string>;

  constructor(
    readonly name: string,
    readonly help: string,
    read: () => number,
    labels: Record<string, string> = {},
  ) {
    this.#read = read;
    this.#labels = labels;
  }

  reset(): void {
    this.#zero = this.#read();
  }

  /** The sample, for a metric that gathers several read counters under one name. */
  sample(): Sample {
    return { labels: this.#labels, value: this.#read() - this.#zero };
  }

  async get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values: [this.sample()],
      aggregator: this.aggregator,
    };
  }
}

/** Several ReadCounters under one name, told apart by their labels (a fixed, bounded set). */
export class ReadCounters implements MetricShape {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  readonly #counters: readonly ReadCounter[];

  constructor(
    readonly name: string,
    readonly help: string,
    series: ReadonlyArray<{ labels: Record<string, string>; read: () => number }>,
  ) {
    this.#counters = series.map((s) => new ReadCounter(name, help, s.read, s.labels));
  }

  reset(): void {
    for (const c of this.#counters) c.reset();
  }

  async get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values: this.#counters.map((c) => c.sample()),
      aggregator: this.aggregator,
    };
  }
}

/** One service's duration series: counts per bucket (not cumulative), sum and count. */
export class DurationSeries {
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: readonly number[];

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.buckets = new Float64Array(bounds.length);
  }

  observe(seconds: number): void {
    const bounds = this.#bounds;
    // Linear: requests are mostly fast, so the first buckets match.
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= bounds[i]!) {
        this.buckets[i]!++;
        break;
      }
    }
    this.sum += seconds;
    this.count++;
  }
}

/** Request durations by service, with fixed buckets. */
export class DurationHistogram implements MetricShape {
  readonly name = 'puttu_request_duration_seconds';
  readonly help = 'Time from request received to response completed, by service.';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly bounds: readonly number[];
  readonly #series = new Map<string, DurationSeries>();

  constructor(bounds: readonly number[]) {
    this.bounds = [...bounds].sort((a, b) => a - b);
  }

  series(service: string): DurationSeries {
    let s = this.#series.get(service);
    if (s === undefined) {
      s = new DurationSeries(this.bounds);
      this.#series.set(service, s);
    }
    return s;
  }

  remove(service: string): void {
    this.#series.delete(service);
  }

  reset(): void {
    for (const s of this.#series.values()) {
      s.buckets.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }

  async get() {
    const values: Sample[] = [];
    const bucket = `${this.name}_bucket`;
    for (const [service, s] of this.#series) {
      if (s.count === 0) continue;
      let cumulative = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += s.buckets[i]!;
        values.push({ labels: { le: this.bounds[i]!, service }, value: cumulative, metricName: bucket });
      }
      values.push({ labels: { le: '+Inf', service }, value: s.count, metricName: bucket });
      values.push({ labels: { service }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { service }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}

/** Adds one of these to a prom-client registry (it accepts any object of this shape). */
export function register(registry: client.Registry, metric: MetricShape): void {
  registry.registerMetric(metric as unknown as client.Metric);
}
