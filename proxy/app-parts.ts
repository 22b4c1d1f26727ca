/**
 * The parts the composition root (app.ts) assembles: the upstream side (pools, health, balancers),
 * the proxy listener with its handlers, and the wiring of registry changes to pools and metrics.
 * Each function builds or wires; none starts anything on its own.
 */
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import type { Clock, Random } from './clock.js';
import type { Logger } from './logger.js';
import type { Config } from './config/schema.js';
import { BALANCERS, parseServiceBalancers, type BalancerDeps } from './balancer/index.js';
import type { Balancer } from './balancer/balancer.js';
import { Inflight } from './health/inflight.js';
import { OUTLIER_DEFAULTS, OutlierDetector } from './health/outliers.js';
import { RetryBudget } from './forward/retry-budget.js';
import { policyLookup, type UpstreamPolicy } from './security/upstream-policy.js';
import { UpstreamPools } from './forward/upstream-pools.js';
import { createProxyHandler } from './http/proxy-handler.js';
import { createUpgradeHandler } from './http/upgrade-handler.js';
import { WsForwarder } from './forward/ws-forwarder.js';
import { createListener, type Listener } from './http/server.js';
import { Deadlines } from './forward/deadlines.js';
import type { Metrics } from './metrics/metrics.js';
import type { ServiceSnapshot } from './registry/registry.js';
import type { RegistryView } from './registry/view.js';
import { ZkClient } from './registry/zk-client.js';
import { Registry } from './registry/registry.js';
import { readZkTlsFiles } from './registry/zk-tls.js';
import type { TrafficPolicies } from './traffic/policies.js';

export { startRegistrationApi } from './registration-api/index.js';

/**
 * The ZooKeeper side: a development ZooKeeper when none is configured (loaded only then: it brings
 * node:child_process, which a configured proxy never needs), the client and the registry, which
 * reads only instances the upstream policy accepts. Neither is started here.
 */
export async function connectRegistry(
  config: Config,
  deps: {
    basePath: string;
    policy: UpstreamPolicy;
    clock: Clock;
    logger: Logger;
    cleanups: Array<() => Promise<void> | void>;
    cwd: string | undefined;
    onFatal: ((error: Error) => void) | undefined;
  },
): Promise<{ zk: ZkClient; registry: Registry; connectString: string; dev: boolean }> {
  const { logger } = deps;
  let connectString = config.zk;
  if (!connectString) {
    const { startDevZooKeeper } = await import('./dev/local-zookeeper.js');
    const dev = await startDevZooKeeper({
      dir: path.resolve(deps.cwd ?? process.cwd(), config.devZkDir),
      ...(config.devZkPort > 0 && { port: config.devZkPort }),
      logger: logger.child({ component: 'dev-zookeeper' }),
    });
    deps.cleanups.push(() => dev.stop());
    connectString = dev.connectString;
  }
  const zk = new ZkClient({
    connectString,
    sessionTimeoutMs: config.sessionTimeoutMs,
    logger: logger.child({ component: 'zookeeper' }),
    ...(config.zkAuth && { auth: [{ scheme: 'digest', auth: config.zkAuth }] }),
    ...(config.zkTls === 'on' && { tls: readZkTlsFiles(config) }),
  });
  zk.on('state', (state) => state === 'tls_failed' && deps.onFatal?.(zk.tlsError!));
  const registry = new Registry({
    zk,
    basePath: deps.basePath,
    logger: logger.child({ component: 'registry' }),
    clock: deps.clock,
    mode: 'all',
    accept: (i) => deps.policy.check(i.host, i.port),
  });
  return { zk, registry, connectString, dev: connectString !== config.zk };
}

/** Registry changes → pools (retain/release origins) and metrics (endpoint gauges, forgotten labels). */
export function wireRegistry(
  registry: RegistryView,
  zk: ZkClient | undefined,
  pools: UpstreamPools,
  outliers: OutlierDetector,
  metrics: Metrics,
  clock: Clock,
): void {
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
export function balancersFor(config: Config, deps: BalancerDeps): (service: string) => Balancer {
  const fallback = BALANCERS[config.balancer](deps);
  const overrides = new Map([...parseServiceBalancers(config.serviceBalancers)].map(([service, name]) => [service, BALANCERS[name](deps)]));
  return overrides.size === 0 ? () => fallback : (service) => overrides.get(service) ?? fallback;
}

/** Reads a PEM file named by a config key; the error names the key. */
export function readPem(file: string, key: string): string[] {
  try {
    return [fs.readFileSync(file, 'utf8')];
  } catch (error) {
    throw new Error(`${key}: cannot read ${file}: ${(error as Error).message}`);
  }
}

/** While ZooKeeper is out of reach, say so every 10 s: what is served and what is not. */
export function nagWhileDisconnected(zk: ZkClient, registry: RegistryView, logger: Logger): NodeJS.Timeout {
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
export function buildUpstreams(
  config: Config,
  deps: { clock: Clock; random: Random; logger: Logger; metrics: Metrics; policy: UpstreamPolicy },
) {
  const { clock, random, logger, metrics, policy } = deps;
  const pools = new UpstreamPools(
    {
      connections: config.upstreamConnections,
      connectTimeoutMs: config.connectTimeoutMs,
      headersTimeoutMs: config.upstreamTimeoutMs,
      bodyTimeoutMs: config.bodyTimeoutMs,
      lookupFor: (port) => policyLookup(policy, port),
      ...(config.upstreamCa && { ca: [...tls.rootCertificates, ...readPem(config.upstreamCa, 'upstreamCa')] }),
      insecureServices: new Set(
        config.insecureServices
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      ),
      http2Services: new Set(
        config.http2Services
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      ),
    },
    logger,
  );
  metrics.watchReadBuffers(pools.readBuffers);
  const inflight = new Inflight();
  const outliers = new OutlierDetector(
    { ...OUTLIER_DEFAULTS, consecutiveFailures: config.ejectAfterFailures, baseEjectionMs: config.ejectionMs },
    clock,
    logger.child({ component: 'outliers' }),
  );
  outliers.onChange = (instance, state) => metrics.setEjected(instance.service, instance.id, state === 'ejected');
  const names = parseServiceBalancers(config.serviceBalancers);
  const balancerName = (service: string): string => names.get(service) ?? config.balancer;
  return { pools, inflight, outliers, balancerFor: balancersFor(config, { random, inflight }), balancerName };
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
  policies: TrafficPolicies;
  onBodyBytes?: ((bytes: number) => void) | undefined;
}

/** The proxy listener: HTTP requests and WebSocket upgrades (not yet listening). */
export function buildProxyListener(
  config: Config,
  proto: 'http' | 'https',
  p: ProxyParts,
): { proxy: Listener; ws: WsForwarder; deadlines: Deadlines } {
  const { registry, pools, inflight, outliers, balancerFor, metrics, clock, logger, policies, onBodyBytes } = p;
  const deadlines = new Deadlines({ headMs: config.upstreamTimeoutMs, bodyMs: config.bodyTimeoutMs });
  // A policy's shorter head limit makes the deadline sweep finer (never coarser).
  policies.onCompiled = (_service, compiled) => compiled?.upstreamTimeoutMs && deadlines.allowFor(compiled.upstreamTimeoutMs);
  const policyFor = (service: string) => policies.get(service);
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
        policyFor,
        explain: config.explain === 'on',
        ...(onBodyBytes && { onBodyBytes }),
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
      requestTimeoutMs: config.clientRequestTimeoutMs,
      maxHeaderSize: config.maxHeaderBytes,
      ...(config.fastLane === 'on' && { fastLane: { maxBodyBytes: config.maxBodyBytes } }),
      ...(config.http2 === 'on' && {
        http2: {
          maxConcurrentStreams: config.http2MaxConcurrentStreams,
          maxHeaderListSize: config.maxHeaderBytes,
          windowBytes: config.http2WindowBytes,
          idleTimeoutMs: Math.max(5_000, config.clientHeadersTimeoutMs),
          streamIdleTimeoutMs: config.bodyTimeoutMs,
        },
      }),
      ...(config.tlsCert && { tls: { cert: readPem(config.tlsCert, 'tlsCert')[0]!, key: readPem(config.tlsKey, 'tlsKey')[0]! } }),
    },
  );
  const ws = new WsForwarder({
    idleTimeoutMs: config.wsIdleTimeoutMs,
    connectTimeoutMs: config.connectTimeoutMs,
    answerTimeoutMs: config.upstreamTimeoutMs,
    logger: logger.child({ component: 'ws' }),
  });
  proxy.server.on(
    'upgrade',
    createUpgradeHandler({ registry, balancerFor, outliers, ws, metrics, clock, proto, http: proxy.handler, policyFor }),
  );
  return { proxy, ws, deadlines };
}

/** Where things are, and how to try them: what a newcomer reads first. */
export function logStartup(
  logger: Logger,
  s: { proxyUrl: string; adminUrl: string | undefined; connectString: string; basePath: string; balancer: string },
): void {
  const { proxyUrl, adminUrl, connectString, basePath, balancer } = s;
  logger.info('puttu proxy listening', { proxyUrl, adminUrl, zookeeper: connectString, basePath, balancer });
  const zkFlags = `--zk ${connectString}${basePath === '/services' ? '' : ` --base-path ${basePath}`}`;
  logger.info(
    `route requests as ${proxyUrl}/<service>/<path>; instances register under ${basePath}/<service>/ in ZooKeeper ${connectString}`,
  );
  logger.info(
    `try it: start a demo backend with \`node bin/puttu.js echo --service hello ${zkFlags}\`, then \`curl ${proxyUrl}/hello/\`; ` +
      `register any program with \`node bin/puttu.js register <service> --port <port> --host 127.0.0.1 ${zkFlags} -- <command>\``,
  );
}
