/**
 * The proxy's configuration: its type, the one DEFAULTS object, and validation that names the
 * bad key. Every key can be set in a JSON config file (this name), an environment variable
 * (PUTTU_ + upper snake case) and a flag (--kebab-case), in rising precedence.
 */
import { ConfigError } from '../errors.js';
import { LOG_LEVELS, type LogLevel } from '../logger.js';
import { BALANCER_NAMES, parseServiceBalancers, type BalancerName } from '../balancer/index.js';
import { DEFAULT_DENY, parseCidrs, parsePorts } from '../security/upstream-policy.js';

/** Turns a parser that throws into a `check` that returns the message. */
function checkWith(parse: (v: string) => unknown): (v: string) => string | undefined {
  return (v) => {
    try {
      parse(v);
      return undefined;
    } catch (error) {
      return (error as Error).message.replace(/^\w+: /, '');
    }
  };
}

export interface Config {
  /** ZooKeeper connect string; empty: start a local development ZooKeeper. */
  zk: string;
  basePath: string;
  host: string;
  port: number;
  adminHost: string;
  /** 0 picks a free port; -1 serves the admin endpoints on no listener at all. */
  adminPort: number;
  balancer: BalancerName;
  /** Worker processes serving the proxy port (node:cluster); 1: a single process. */
  workers: number;
  /** Per-service strategies, "svc=p2c,other=round-robin". */
  serviceBalancers: string;
  logLevel: LogLevel;
  /** One JSON line per request ("on"/"off"). */
  accessLog: 'on' | 'off';
  /** Per-attempt limit to open a connection to an upstream. */
  connectTimeoutMs: number;
  /** Limit on waiting for an upstream's response headers. */
  upstreamTimeoutMs: number;
  /** Limit on silence between two chunks of an upstream's response body. */
  bodyTimeoutMs: number;
  /** A WebSocket with no traffic either way for this long is closed. */
  wsIdleTimeoutMs: number;
  /** Most connections kept to one upstream endpoint. */
  upstreamConnections: number;
  /** Attempts per request, the first included (retries go to another instance). */
  maxAttempts: number;
  /** Retries may add at most this share of extra load (plus 10 per second). */
  retryBudgetPercent: number;
  /** Consecutive failures that eject an instance from routing. */
  ejectAfterFailures: number;
  /** First ejection's length; doubles with each further ejection of the same instance. */
  ejectionMs: number;
  /** Largest request body accepted (413 beyond); 0: no limit. */
  maxBodyBytes: number;
  /** Upstream networks allowed (CIDRs, comma-separated); empty: all not denied. */
  allowNetworks: string;
  /** Upstream networks never dialled (link-local and cloud metadata by default). */
  denyNetworks: string;
  /** Upstream ports allowed ("80,443,8000-8999"); empty: all. */
  allowPorts: string;
  /** ZooKeeper credentials for reading, "user:password" (digest); empty: none. */
  zkAuth: string;
  /** Connect to ZooKeeper over TLS (its secureClientPort), verifying the server ("on"/"off"). */
  zkTls: 'on' | 'off';
  /** PEM file of the CAs that sign ZooKeeper's certificates; empty: the system's CAs. */
  zkCa: string;
  /** Client certificate and key (PEM files) for ZooKeeper servers that require one; both or neither. */
  zkCert: string;
  zkKey: string;
  /** PEM bundle of extra CAs trusted for HTTPS upstreams (added to the system roots). */
  upstreamCa: string;
  /** Services whose HTTPS upstreams are not verified (self-signed development certificates). */
  insecureServices: string;
  /** Certificate and key (PEM files) to serve the proxy over TLS; both or neither. */
  tlsCert: string;
  tlsKey: string;
  /** Time a client has to send the request head (trickled headers get 408). */
  clientHeadersTimeoutMs: number;
  /** Time for a client to send its whole request, head and body; 0: no limit. */
  clientRequestTimeoutMs: number;
  /** Largest request head accepted (431 beyond). */
  maxHeaderBytes: number;
  /** Everyday plain-HTTP requests read by puttu's fast lane ("on") or all by Node's parser ("off"). */
  fastLane: 'on' | 'off';
  /** HTTP/2 from clients: h2 by ALPN with TLS, prior-knowledge h2c on the plain port ("on"/"off"). */
  http2: 'on' | 'off';
  /** Streams one HTTP/2 client connection may have open at once. */
  http2MaxConcurrentStreams: number;
  /**
   * HTTP/2 flow control toward clients: the bytes a client may send on one stream, and on the
   * whole connection, before the proxy has passed them on (its receive windows).
   */
  http2WindowBytes: number;
  /** Services reached over HTTP/2 whatever their instances' protocol (formats without one), comma-separated. */
  http2Services: string;
  /** On SIGTERM, how long in-flight requests may take to finish. */
  shutdownGraceMs: number;
  sessionTimeoutMs: number;
  /** Where the development ZooKeeper keeps its data, and its port (0: 2181 if free, else any). */
  devZkDir: string;
  devZkPort: number;
  /** Port of the REST registration API (curator-x-discovery-server compatible); -1: off, 0: any free port. */
  registrationPort: number;
  registrationHost: string;
  /** Bearer token its writes need (or registrationTokenFile: a file holding it). */
  registrationToken: string;
  registrationTokenFile: string;
  /** A registration not renewed by a PUT within this long is removed. */
  registrationTtlMs: number;
  /** Where per-service traffic policies live in ZooKeeper: `<policyPath>/<service>`. */
  policyPath: string;
  /** This proxy's zone, for policies that prefer local instances; empty: none. */
  zone: string;
  /** Every response carries Server-Timing and X-Puttu-Attempts ("on"), or only those of policies with explain. */
  explain: 'on' | 'off';
}

export const DEFAULTS: Readonly<Config> = Object.freeze({
  zk: '',
  basePath: '/services',
  host: '0.0.0.0',
  port: 8080,
  adminHost: '127.0.0.1',
  adminPort: 9090,
  balancer: 'random',
  workers: 1,
  serviceBalancers: '',
  logLevel: 'info',
  accessLog: 'off',
  connectTimeoutMs: 2_000,
  upstreamTimeoutMs: 30_000,
  bodyTimeoutMs: 60_000,
  upstreamConnections: 256,
  wsIdleTimeoutMs: 300_000,
  maxAttempts: 3,
  retryBudgetPercent: 20,
  ejectAfterFailures: 3,
  ejectionMs: 5_000,
  maxBodyBytes: 0,
  allowNetworks: '',
  denyNetworks: DEFAULT_DENY,
  allowPorts: '',
  zkAuth: '',
  zkTls: 'off',
  zkCa: '',
  zkCert: '',
  zkKey: '',
  upstreamCa: '',
  insecureServices: '',
  tlsCert: '',
  tlsKey: '',
  clientHeadersTimeoutMs: 10_000,
  clientRequestTimeoutMs: 120_000,
  maxHeaderBytes: 16 * 1024,
  fastLane: 'on',
  http2: 'on',
  http2MaxConcurrentStreams: 100,
  http2WindowBytes: 65_535,
  http2Services: '',
  shutdownGraceMs: 10_000,
  sessionTimeoutMs: 10_000,
  devZkDir: '.puttu/zookeeper',
  devZkPort: 0,
  registrationPort: -1,
  registrationHost: '127.0.0.1',
  registrationToken: '',
  registrationTokenFile: '',
  registrationTtlMs: 30_000,
  policyPath: '/puttu/policies',
  zone: '',
  explain: 'off',
});

type Kind =
  | { type: 'string'; allowEmpty?: boolean; check?: (v: string) => string | undefined }
  | { type: 'int'; min: number; max: number }
  | { type: 'enum'; values: readonly string[] };

const port = { type: 'int', min: 0, max: 65535 } as const;
const ms = { type: 'int', min: 1, max: 3_600_000 } as const;

export const SCHEMA: { readonly [K in keyof Config]: Kind & { help: string } } = {
  zk: { type: 'string', allowEmpty: true, help: 'ZooKeeper connect string host:port[,host:port...]; unset: start a local one' },
  basePath: {
    type: 'string',
    check: (v) => (v.startsWith('/') ? undefined : 'must start with "/"'),
    help: 'ZooKeeper path holding the services',
  },
  host: { type: 'string', help: 'address the proxy listens on' },
  port: { ...port, help: 'proxy port (0: any free port)' },
  adminHost: { type: 'string', help: 'address of the admin listener (/metrics, /healthz, /readyz)' },
  adminPort: { type: 'int', min: -1, max: 65535, help: 'admin port (0: any free port, -1: no admin listener)' },
  balancer: { type: 'enum', values: BALANCER_NAMES, help: `load-balancing strategy (${BALANCER_NAMES.join(', ')})` },
  workers: { type: 'int', min: 1, max: 64, help: 'worker processes serving the proxy port; ZooKeeper is watched once, by the primary' },
  serviceBalancers: {
    type: 'string',
    allowEmpty: true,
    check: checkWith(parseServiceBalancers),
    help: 'per-service strategies, e.g. cart=p2c,search=round-robin',
  },
  logLevel: { type: 'enum', values: LOG_LEVELS, help: `log level (${LOG_LEVELS.join(', ')})` },
  accessLog: { type: 'enum', values: ['on', 'off'], help: 'one JSON log line per request: on or off' },
  connectTimeoutMs: { ...ms, help: 'upstream connect timeout, ms' },
  upstreamTimeoutMs: { ...ms, help: 'wait for upstream response headers, ms (then 504)' },
  bodyTimeoutMs: { ...ms, help: 'longest silence inside an upstream response body, ms' },
  wsIdleTimeoutMs: { ...ms, help: 'close WebSockets idle this long, ms' },
  upstreamConnections: { type: 'int', min: 1, max: 65535, help: 'most connections to one upstream endpoint' },
  maxAttempts: { type: 'int', min: 1, max: 10, help: 'attempts per request, the first included' },
  retryBudgetPercent: { type: 'int', min: 0, max: 100, help: 'retries allowed as a share of requests, % (plus 10/s)' },
  ejectAfterFailures: { type: 'int', min: 1, max: 1000, help: 'consecutive failures that eject an instance' },
  ejectionMs: { ...ms, help: 'first ejection length, ms (doubles on each repeat)' },
  maxBodyBytes: { type: 'int', min: 0, max: Number.MAX_SAFE_INTEGER, help: 'largest request body, bytes (0: no limit)' },
  allowNetworks: {
    type: 'string',
    allowEmpty: true,
    check: checkWith((v) => parseCidrs(v, 'allowNetworks')),
    help: 'upstream networks allowed, CIDRs (empty: all not denied)',
  },
  denyNetworks: {
    type: 'string',
    allowEmpty: true,
    check: checkWith((v) => parseCidrs(v, 'denyNetworks')),
    help: 'upstream networks never dialled, CIDRs',
  },
  allowPorts: {
    type: 'string',
    allowEmpty: true,
    check: checkWith((v) => parsePorts(v, 'allowPorts')),
    help: 'upstream ports allowed, e.g. 80,443,8000-8999 (empty: all)',
  },
  zkAuth: {
    type: 'string',
    allowEmpty: true,
    check: (v) => (v === '' || /^[^:]+:.+$/.test(v) ? undefined : 'must be user:password'),
    help: 'ZooKeeper digest credentials user:password (read-only identity is enough)',
  },
  zkTls: {
    type: 'enum',
    values: ['on', 'off'],
    help: "connect to ZooKeeper over TLS (its secureClientPort), verifying the server's certificate",
  },
  zkCa: { type: 'string', allowEmpty: true, help: "PEM file of the CAs of ZooKeeper's certificate, with --zk-tls on (empty: system CAs)" },
  zkCert: { type: 'string', allowEmpty: true, help: 'PEM client certificate for ZooKeeper (ssl.clientAuth=need), with --zk-key' },
  zkKey: { type: 'string', allowEmpty: true, help: 'PEM private key for --zk-cert' },
  upstreamCa: { type: 'string', allowEmpty: true, help: 'PEM file of extra CAs for HTTPS upstreams' },
  insecureServices: {
    type: 'string',
    allowEmpty: true,
    help: 'services whose HTTPS upstreams are NOT verified (development only), comma-separated',
  },
  tlsCert: { type: 'string', allowEmpty: true, help: 'PEM certificate: serve the proxy over TLS (with --tls-key)' },
  tlsKey: { type: 'string', allowEmpty: true, help: 'PEM private key for --tls-cert' },
  clientHeadersTimeoutMs: { ...ms, help: 'time for a client to send the request head, ms (then 408)' },
  clientRequestTimeoutMs: {
    type: 'int',
    min: 0,
    max: 86_400_000,
    help: 'time for a client to send its whole request, body included, ms (then 408; 0: no limit)',
  },
  maxHeaderBytes: { type: 'int', min: 1024, max: 1024 * 1024, help: 'largest request head, bytes (then 431)' },
  fastLane: {
    type: 'enum',
    values: ['on', 'off'],
    help: "plain everyday requests read without Node's http.Server (off: all by Node's parser)",
  },
  http2: {
    type: 'enum',
    values: ['on', 'off'],
    help: 'HTTP/2 from clients: h2 by ALPN with TLS, prior-knowledge h2c next to HTTP/1.1 on the plain port (gRPC needs it)',
  },
  http2MaxConcurrentStreams: { type: 'int', min: 1, max: 10_000, help: 'streams one HTTP/2 client connection may have open at once' },
  http2WindowBytes: {
    type: 'int',
    min: 65_535,
    max: 16 * 1024 * 1024,
    help: 'HTTP/2 receive window per stream and per connection: what a client may send before the proxy passes it on',
  },
  http2Services: {
    type: 'string',
    allowEmpty: true,
    help: 'services whose instances are reached over HTTP/2 (h2c, or h2 over https) whatever they registered, comma-separated',
  },
  shutdownGraceMs: { type: 'int', min: 0, max: 3_600_000, help: 'time for in-flight requests on shutdown, ms' },
  sessionTimeoutMs: { type: 'int', min: 1_000, max: 600_000, help: 'ZooKeeper session timeout, ms' },
  devZkDir: { type: 'string', help: 'data folder of the local development ZooKeeper' },
  devZkPort: { ...port, help: 'port of the local development ZooKeeper (0: 2181 if free)' },
  registrationPort: {
    type: 'int',
    min: -1,
    max: 65535,
    help: 'REST registration API port, curator-x-discovery-server compatible (-1: off, 0: any free port)',
  },
  registrationHost: { type: 'string', help: 'address of the REST registration listener' },
  registrationToken: { type: 'string', allowEmpty: true, help: 'bearer token for PUT/DELETE on the registration API (16+ characters)' },
  registrationTokenFile: { type: 'string', allowEmpty: true, help: 'file holding that bearer token (instead of --registration-token)' },
  registrationTtlMs: { type: 'int', min: 100, max: 3_600_000, help: 'a REST registration not renewed by a PUT this long is removed, ms' },
  policyPath: {
    type: 'string',
    check: (v) => (v.trim().startsWith('/') ? undefined : 'must start with "/"'),
    help: 'ZooKeeper path of the per-service traffic policies (<path>/<service>, JSON; see `puttu policy --help`)',
  },
  zone: {
    type: 'string',
    allowEmpty: true,
    check: (v) => (v.trim() === '' || /^[A-Za-z0-9._-]{1,64}$/.test(v.trim()) ? undefined : 'must be a zone name (letters, digits, . _ -)'),
    help: "this proxy's zone: policies with zone preference send traffic to instances whose metadata zone matches",
  },
  explain: {
    type: 'enum',
    values: ['on', 'off'],
    help: 'on: every response carries Server-Timing (the instance) and X-Puttu-Attempts; off: only where a policy asks',
  },
};

export const KEYS = Object.keys(SCHEMA) as Array<keyof Config>;

export { ConfigError };

/** Parses/validates one raw value for `key`; `source` names where it came from in the error. */
export function coerce<K extends keyof Config>(key: K, raw: unknown, source: string): Config[K] {
  const kind = SCHEMA[key];
  switch (kind.type) {
    case 'int': {
      const n = typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < kind.min || n > kind.max) {
        throw new ConfigError(key, source, `must be an integer from ${kind.min} to ${kind.max}, got ${JSON.stringify(raw)}`);
      }
      return n as Config[K];
    }
    case 'enum':
      if (typeof raw !== 'string' || !kind.values.includes(raw)) {
        throw new ConfigError(key, source, `must be one of ${kind.values.join(', ')}, got ${JSON.stringify(raw)}`);
      }
      return raw as Config[K];
    case 'string': {
      if (typeof raw !== 'string' || (!kind.allowEmpty && raw.trim() === '')) {
        throw new ConfigError(key, source, `must be a non-empty string, got ${JSON.stringify(raw)}`);
      }
      const problem = kind.check?.(raw);
      if (problem) throw new ConfigError(key, source, `${problem}, got ${JSON.stringify(raw)}`);
      return raw.trim() as Config[K];
    }
  }
}

export const toKebab = (key: string) => key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
export const toEnv = (key: string) => 'PUTTU_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
