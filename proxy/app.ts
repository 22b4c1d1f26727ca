/**
 * The composition root: builds every part of the proxy from its configuration and wires them
 * (STYLE.md §3). `start()` and `close()` are idempotent; close runs in reverse order of start.
 */
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { systemClock, type Clock, type Random } from './clock.js';
import type { Logger } from './logger.js';
import type { Config } from './config/schema.js';
import { BALANCERS, parseServiceBalancers, type BalancerDeps } from './balancer/index.js';
import { Inflight } from './health/inflight.js';
import type { Balancer } from './balancer/balancer.js';
import type { DevZooKeeper } from './dev/local-zookeeper.js';
import { OUTLIER_DEFAULTS, OutlierDetector } from './health/outliers.js';
import { RetryBudget } from './forward/retry-budget.js';
import { createUpstreamPolicy, policyLookup, type UpstreamPolicy } from './security/upstream-policy.js';
import { UpstreamPools } from './forward/upstream-pools.js';
import { createAdminHandler } from './http/admin.js';
import { createProxyHandler } from './http/proxy-handler.js';
import { createUpgradeHandler } from './http/upgrade-handler.js';
import { WsForwarder } from './forward/ws-forwarder.js';
import { createListener, urlOf, type Listener } from './http/server.js';
import type { FastLane } from './http/fast-lane.js';
import { Deadlines } from './forward/deadlines.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { normalizeBasePath } from './registry/paths.js';
import { Registry, type ServiceSnapshot } from './registry/registry.js';
import type { RegistryView } from './registry/view.js';
import { ZkClient } from './registry/zk-client.js';

const VERSION = (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface AppDeps {
  config: Config;
  logger: Logger;
  /**
   * 'single' (default): everything in this process. 'primary': the ZooKeeper session, registry and
   * admin listener, no proxy listener (cluster workers serve). 'worker': the proxy listener only,
   * routing from `registry` (the snapshots the primary sends).
   */
  role?: 'single' | 'primary' | 'worker';
  registry?: RegistryView;
  /** The admin /metrics text (a cluster primary aggregates its workers'). */
  scrape?: () => Promise<string>;
  clock?: Clock;
  random?: Random;
  /** Folder that relative paths in the config (devZkDir) are resolved against. */
  cwd?: string;
  /**
   * Called once, on the turn after the registry's first complete read: the CLI's runtime tuning
   * collects that read's garbage then (runtime-tuning.ts). The app itself tunes nothing.
   */
  afterInitialRead?: () => void;
}

export interface Started {
  /** Empty for a cluster primary (its workers listen). */
  proxyUrl: string;
  adminUrl: string | undefined;
  zkConnectString: string;
  /** True when the proxy started its own development ZooKeeper. */
  devZooKeeper: boolean;
}

export interface App {
  start(): Promise<Started>;
  close(): Promise<void>;
  readonly metrics: Metrics;
  /** Available after start(). */
  readonly registry: RegistryView | undefined;
  readonly zk: ZkClient | undefined;
  /** The proxy listener's fast lane (after start(); undefined when off, with TLS, or in a primary). */
  readonly fastLane: FastLane | undefined;
}

export function createApp(deps: AppDeps): App {
  const { config, logger } = deps;
  const clock = deps.clock ?? systemClock;
  const random = deps.random ?? Math.random;
  const metrics = createMetrics();
  const basePath = normalizeBasePath(config.basePath);
  const cleanups: Array<() => Promise<void> | void> = [];
  let zk: ZkClient | undefined;
  let registry: RegistryView | undefined;
  let fastLane: FastLane | undefined;
  let starting: Promise<Started> | undefined;
  let closing: Promise<void> | undefined;

  async function start(): Promise<Started> {
    const role = deps.role ?? 'single';
    const policy = createUpstreamPolicy({ allow: config.allowNetworks, deny: config.denyNetworks, ports: config.allowPorts });
    let dev: DevZooKeeper | undefined;
    let connectString = config.zk;
    let reg: RegistryView;
    if (deps.registry) {
      reg = deps.registry;
    } else {
      if (!connectString) {
        // Loaded only here: it brings node:child_process, which a configured proxy never needs.
        const { startDevZooKeeper } = await import('./dev/local-zookeeper.js');
        dev = await startDevZooKeeper({
          dir: path.resolve(deps.cwd ?? process.cwd(), config.devZkDir),
          ...(config.devZkPort > 0 && { port: config.devZkPort }),
          logger: logger.child({ component: 'dev-zookeeper' }),
        });
        cleanups.push(() => dev!.stop());
        connectString = dev.connectString;
      }
      zk = new ZkClient({
        connectString,
        sessionTimeoutMs: config.sessionTimeoutMs,
        logger: logger.child({ component: 'zookeeper' }),
        ...(config.zkAuth && { auth: [{ scheme: 'digest', auth: config.zkAuth }] }),
      });
      reg = new Registry({ zk, basePath, logger: logger.child({ component: 'registry' }), clock, mode: 'all', accept: (i) => policy.check(i.host, i.port) });
    }
    registry = reg;
    const { pools, inflight, outliers, balancerFor } = buildUpstreams(config, { clock, random, logger, metrics, policy });
    wireRegistry(reg, zk, pools, outliers, metrics, clock, logger);
    const { afterInitialRead } = deps;
    if (afterInitialRead) reg.once('synced', () => setImmediate(afterInitialRead));
    if (zk) {
      const nag = nagWhileDisconnected(zk, reg, logger.child({ component: 'zookeeper' }));
      cleanups.push(() => clearInterval(nag));
      cleanups.push(() => zk!.close());
    }
    cleanups.push(() => reg.close());
    cleanups.push(() => pools.close());

    const proto = config.tlsCert ? 'https' : 'http';
    let proxyUrl = '';
    let proxyPort = config.port;
    if (role !== 'primary') {
      const { proxy, ws, deadlines } = buildProxyListener(config, proto, { registry: reg, pools, inflight, outliers, balancerFor, metrics, clock, logger });
      const proxyAddress = await proxy.listen(config.port, config.host);
      fastLane = proxy.lane;
      if (fastLane) metrics.watchFastLane(fastLane);
      // Cleanups run last-in first-out: the deadlines keep watching through the grace period.
      cleanups.push(() => deadlines.close());
      cleanups.push(() => proxy.close(config.shutdownGraceMs));
      // Tunnels are not requests a grace period can finish: they close first, clients reconnect.
      cleanups.push(() => ws.close());
      proxyUrl = urlOf(proxyAddress, proto);
      proxyPort = proxyAddress.port;
    }

    let adminUrl: string | undefined;
    let adminPort: number | undefined = role === 'worker' ? config.adminPort : undefined;
    if (role !== 'worker' && zk && config.adminPort >= 0) {
      const admin = createListener(createAdminHandler({ registry: reg, zk, metrics, clock, outliers, inflight, version: VERSION, ...(deps.scrape && { scrape: deps.scrape }) }));
      const address = await admin.listen(config.adminPort, config.adminHost);
      adminPort = address.port;
      adminUrl = urlOf(address);
      cleanups.push(() => admin.close(1_000));
    }
    // Listeners first, so the policy knows the proxy's own ports before any instance is read.
    policy.setOwnPorts([proxyPort, ...(adminPort === undefined ? [] : [adminPort])]);
    reg.start();
    zk?.connect();
    if (role === 'single') logStartup(logger, { proxyUrl, adminUrl, connectString, basePath, balancer: config.balancer });
    else if (role === 'primary') logger.info('puttu cluster primary: one ZooKeeper session, snapshots sent to the workers', { adminUrl, zookeeper: connectString, basePath });
    else logger.info('puttu worker listening', { proxyUrl, pid: process.pid });
    return { proxyUrl, adminUrl, zkConnectString: connectString, devZooKeeper: dev !== undefined };
  }

  return {
    metrics,
    get registry() {
      return registry;
    },
    get zk() {
      return zk;
    },
    get fastLane() {
      return fastLane;
    },
    start() {
      if (closing) return Promise.reject(new Error('app is closed'));
      starting ??= start().catch(async (error) => {
        await runCleanups();
        throw error;
      });
      return starting;
    },
    close() {
      closing ??= (async () => {
        await starting?.catch(() => undefined);
        await runCleanups();
      })();
      return closing;
    },
  };

  async function runCleanups(): Promise<void> {
    while (cleanups.length > 0) {
      const cleanup = cleanups.pop()!;
      try {
        await cleanup();
      } catch (error) {
        logger.warn('error while shutting down', { error });
      }
    }
  }
}

/** Registry changes → pools (retain/release origins) and metrics (endpoint gauges, forgotten labels). */
function wireRegistry(registry: RegistryView, zk: ZkClient | undefined, pools: UpstreamPools, outliers: OutlierDetector, metrics: Metrics, clock: Clock, logger: Logger): void {
  registry.on('change', (service: string, next: ServiceSnapshot | undefined, prev: ServiceSnapshot | undefined) => {
    const before = new Set(prev?.instances ?? []);
    const after = new Set(next?.instances ?? []);
    const gone = [...before].filter((i) => !after.has(i));
    for (const i of after) if (!before.has(i)) pools.retain(i);
    for (const i of gone) {
      pools.release(i);
      metrics.setEjected(service, i.id, false);
    }
    outliers.removed(gone);
    if (next === undefined) {
      outliers.forgetService(service);
      metrics.forget(service);
    } else metrics.setEndpoints(service, next.instances.length);
  });
  registry.on('rejected', (service, _id, _reason, kind) => {
    // 'inactive' (draining, disabled, not ALIVE) is a valid state, not a fault: not counted.
    if (kind === 'refused') metrics.refusedInstance(service);
    else if (kind === 'invalid') metrics.invalidZnode(service);
  });
  registry.on('synced', () => metrics.setSynced(true));
  if (zk) {
    zk.on('state', (state) => metrics.setZkState(state));
    metrics.setZkState(zk.state);
  }
  metrics.onCollect(() => {
    const since = registry.staleSince;
    metrics.setStaleness(since === undefined ? 0 : (clock.monotonic() - since) / 1000);
  });
}

/** The default strategy and per-service overrides, each built once. */
function balancersFor(config: Config, deps: BalancerDeps): (service: string) => Balancer {
  const fallback = BALANCERS[config.balancer](deps);
  const overrides = new Map([...parseServiceBalancers(config.serviceBalancers)].map(([service, name]) => [service, BALANCERS[name](deps)]));
  return overrides.size === 0 ? () => fallback : (service) => overrides.get(service) ?? fallback;
}

/** Reads a PEM file named by a config key; the error names the key. */
function readPem(file: string, key: string): string[] {
  try {
    return [fs.readFileSync(file, 'utf8')];
  } catch (error) {
    throw new Error(`${key}: cannot read ${file}: ${(error as Error).message}`);
  }
}

/** While ZooKeeper is out of reach, say so every 10 s: what is served and what is not. */
function nagWhileDisconnected(zk: ZkClient, registry: RegistryView, logger: Logger): NodeJS.Timeout {
  let since: number | undefined = zk.state === 'connected' ? undefined : Date.now();
  zk.on('state', (state) => {
    if (state === 'connected') since = undefined;
    else since ??= Date.now();
  });
  const timer = setInterval(() => {
    if (since === undefined) return;
    logger.warn(
      registry.synced
        ? 'ZooKeeper is out of reach: routing from the last snapshot; changes are not seen until it is back'
        : 'ZooKeeper is out of reach: not ready, requests get 503 until the registry can be read',
      { connectString: zk.connectString, state: zk.state, forSeconds: Math.round((Date.now() - since) / 1000) },
    );
  }, 10_000);
  timer.unref();
  return timer;
}

/** The upstream side: pools, per-instance load, passive health and the balancers. */
function buildUpstreams(config: Config, deps: { clock: Clock; random: Random; logger: Logger; metrics: Metrics; policy: UpstreamPolicy }) {
  const { clock, random, logger, metrics, policy } = deps;
  const pools = new UpstreamPools(
    {
      connections: config.upstreamConnections,
      connectTimeoutMs: config.connectTimeoutMs,
      headersTimeoutMs: config.upstreamTimeoutMs,
      bodyTimeoutMs: config.bodyTimeoutMs,
      lookupFor: (port) => policyLookup(policy, port),
      ...(config.upstreamCa && { ca: [...tls.rootCertificates, ...readPem(config.upstreamCa, 'upstreamCa')] }),
      insecureServices: new Set(config.insecureServices.split(',').map((s) => s.trim()).filter(Boolean)),
    },
    logger,
  );
  const inflight = new Inflight();
  const outliers = new OutlierDetector(
    { ...OUTLIER_DEFAULTS, consecutiveFailures: config.ejectAfterFailures, baseEjectionMs: config.ejectionMs },
    clock,
    logger.child({ component: 'outliers' }),
  );
  outliers.onChange = (instance, state) => metrics.setEjected(instance.service, instance.id, state === 'ejected');
  return { pools, inflight, outliers, balancerFor: balancersFor(config, { random, inflight }) };
}

interface ProxyParts {
  registry: RegistryView;
  pools: UpstreamPools;
  inflight: Inflight;
  outliers: OutlierDetector;
  balancerFor: (service: string) => Balancer;
  metrics: Metrics;
  clock: Clock;
  logger: Logger;
}

/** The proxy listener: HTTP requests and WebSocket upgrades (not yet listening). */
function buildProxyListener(config: Config, proto: 'http' | 'https', p: ProxyParts): { proxy: Listener; ws: WsForwarder; deadlines: Deadlines } {
  const { registry, pools, inflight, outliers, balancerFor, metrics, clock, logger } = p;
  const deadlines = new Deadlines({ headMs: config.upstreamTimeoutMs, bodyMs: config.bodyTimeoutMs });
  const proxy = createListener(
    createProxyHandler({
      registry,
      forwarder: {
        pools,
        balancerFor,
        inflight,
        outliers,
        budget: new RetryBudget({ ratio: config.retryBudgetPercent / 100, minPerSecond: 10 }, clock),
        maxAttempts: config.maxAttempts,
        deadlines,
      },
      metrics,
      clock,
      logger: logger.child({ component: 'proxy' }),
      ...(config.accessLog === 'on' && { accessLog: logger.child({ component: 'access' }) }),
      maxBodyBytes: config.maxBodyBytes,
      proto,
    }),
    {
      headersTimeoutMs: config.clientHeadersTimeoutMs,
      maxHeaderSize: config.maxHeaderBytes,
      ...(config.fastLane === 'on' && { fastLane: { maxBodyBytes: config.maxBodyBytes } }),
      ...(config.tlsCert && { tls: { cert: readPem(config.tlsCert, 'tlsCert')[0]!, key: readPem(config.tlsKey, 'tlsKey')[0]! } }),
    },
  );
  const ws = new WsForwarder({ idleTimeoutMs: config.wsIdleTimeoutMs, connectTimeoutMs: config.connectTimeoutMs, answerTimeoutMs: config.upstreamTimeoutMs, logger: logger.child({ component: 'ws' }) });
  proxy.server.on('upgrade', createUpgradeHandler({ registry, balancerFor, outliers, ws, metrics, clock, proto, http: proxy.handler }));
  return { proxy, ws, deadlines };
}

/** Where things are, and how to try them: what a newcomer reads first. */
function logStartup(logger: Logger, s: { proxyUrl: string; adminUrl: string | undefined; connectString: string; basePath: string; balancer: string }): void {
  const { proxyUrl, adminUrl, connectString, basePath, balancer } = s;
  logger.info('puttu proxy listening', { proxyUrl, adminUrl, zookeeper: connectString, basePath, balancer });
  const zkFlags = `--zk ${connectString}${basePath === '/services' ? '' : ` --base-path ${basePath}`}`;
  logger.info(`route requests as ${proxyUrl}/<service>/<path>; instances register under ${basePath}/<service>/ in ZooKeeper ${connectString}`);
  logger.info(
    `try it: start a demo backend with \`node bin/puttu.js echo --service hello ${zkFlags}\`, then \`curl ${proxyUrl}/hello/\`; ` +
      `register any program with \`node bin/puttu.js register <service> --port <port> --host 127.0.0.1 ${zkFlags} -- <command>\``,
  );
}
