/**
 * The composition root: builds every part of the proxy from its configuration (app-parts.ts) and
 * wires them; nothing else constructs them. `start()` and `close()` are idempotent; close runs
 * in reverse order of start.
 */
import fs from 'node:fs';
import { systemClock, type Clock, type Random } from './clock.js';
import { ClosedError } from './errors.js';
import type { Logger } from './logger.js';
import type { Config } from './config/schema.js';
import { createUpstreamPolicy } from './security/upstream-policy.js';
import { createAdminHandler } from './http/admin.js';
import {
  buildProxyListener,
  buildUpstreams,
  connectRegistry,
  logStartup,
  nagWhileDisconnected,
  startRegistrationApi,
  wireRegistry,
} from './app-parts.js';
import { createListener, urlOf } from './http/server.js';
import type { FastLane } from './http/fast-lane.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { normalizeBasePath } from './registry/paths.js';
import type { RegistryView } from './registry/view.js';
import type { ZkClient } from './registry/zk-client.js';
import { buildTraffic, type PolicyFeed, type Traffic } from './traffic/build.js';

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
  /** A worker's traffic policies, as its primary sends them (others watch ZooKeeper themselves). */
  policies?: PolicyFeed;
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
  /** Told the length of each body the proxy moves, for the CLI's runtime tuning (ForwarderDeps). */
  onBodyBytes?: (bytes: number) => void;
  /**
   * Called when the proxy cannot go on: ZooKeeper's TLS certificate failed verification on every
   * server (the ZkTlsError says why). The CLI logs it and exits 1; without it the app waits.
   */
  onFatal?: (error: Error) => void;
}

export interface Started {
  /** Empty for a cluster primary (its workers listen). */
  proxyUrl: string;
  adminUrl: string | undefined;
  /** The REST registration API's URL, when it listens (registrationPort ≥ 0). */
  registrationUrl?: string;
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
  /** The traffic policies (after start()). */
  readonly traffic: Traffic | undefined;
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
  let traffic: Traffic | undefined;
  let starting: Promise<Started> | undefined;
  let closing: Promise<void> | undefined;

  async function start(): Promise<Started> {
    const role = deps.role ?? 'single';
    const policy = createUpstreamPolicy({ allow: config.allowNetworks, deny: config.denyNetworks, ports: config.allowPorts });
    let connectString = config.zk;
    let dev = false;
    let reg: RegistryView;
    if (deps.registry) {
      reg = deps.registry;
    } else {
      const zkSide = await connectRegistry(config, { basePath, policy, clock, logger, cleanups, cwd: deps.cwd, onFatal: deps.onFatal });
      ({ zk, registry: reg, connectString, dev } = zkSide);
    }
    registry = reg;
    const upstreams = buildUpstreams(config, { clock, random, logger, metrics, policy });
    const { pools, inflight, outliers } = upstreams;
    wireRegistry(reg, zk, pools, outliers, metrics, clock);
    const t = (traffic = buildTraffic(config, { zk, feed: deps.policies, random, inflight, metrics, logger }));
    cleanups.push(() => t.close());
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
      const parts = { ...upstreams, registry: reg, metrics, clock, logger, policies: t.policies, onBodyBytes: deps.onBodyBytes };
      const { proxy, ws, deadlines } = buildProxyListener(config, proto, parts);
      const proxyAddress = await proxy.listen(config.port, config.host);
      fastLane = proxy.lane;
      if (fastLane) metrics.watchFastLane(fastLane);
      if (proxy.h2) metrics.watchHttp2(proxy.h2);
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
      const admin = createListener(
        createAdminHandler({
          registry: reg,
          zk,
          metrics,
          clock,
          outliers,
          inflight,
          traffic: { ...upstreams, policies: t.policies },
          version: VERSION,
          ...(deps.scrape && { scrape: deps.scrape }),
        }),
      );
      const address = await admin.listen(config.adminPort, config.adminHost);
      adminPort = address.port;
      adminUrl = urlOf(address);
      cleanups.push(() => admin.close(1_000));
    }
    const registration = await startRegistrationApi(config, { role, zk, basePath, policy, clock, random, logger, cleanups });
    // Listeners first, so the policy knows the proxy's own ports before any instance is read.
    policy.setOwnPorts([proxyPort, ...(adminPort === undefined ? [] : [adminPort]), ...(registration ? [registration.port] : [])]);
    reg.start();
    zk?.connect();
    if (role === 'single') logStartup(logger, { proxyUrl, adminUrl, connectString, basePath, balancer: config.balancer });
    else if (role === 'primary')
      logger.info('puttu cluster primary: one ZooKeeper session, snapshots sent to the workers', {
        adminUrl,
        zookeeper: connectString,
        basePath,
      });
    else logger.info('puttu worker listening', { proxyUrl, pid: process.pid });
    return {
      proxyUrl,
      adminUrl,
      ...(registration && { registrationUrl: registration.url }),
      zkConnectString: connectString,
      devZooKeeper: dev,
    };
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
    get traffic() {
      return traffic;
    },
    start() {
      if (closing) return Promise.reject(new ClosedError('app'));
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
