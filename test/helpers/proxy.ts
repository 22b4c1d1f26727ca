/** A real proxy app in-process, pointed at a test ZooKeeper, on free loopback ports. */
import { randomUUID } from 'node:crypto';
import { createApp, type App } from '../../proxy/app.js';
import { DEFAULTS, type Config } from '../../proxy/config/schema.js';
import { silentLogger, type Logger } from '../../proxy/logger.js';
import type { Random } from '../../proxy/clock.js';

export interface TestProxy {
  app: App;
  url: string;
  adminUrl: string;
  basePath: string;
  close(): Promise<void>;
}

/** What a test may give the app besides its config. */
export interface TestProxyDeps {
  random?: Random;
  logger?: Logger;
  onBodyBytes?: (bytes: number) => void;
}

export async function startProxy(zk: string, overrides: Partial<Config> = {}, deps: TestProxyDeps = {}): Promise<TestProxy> {
  const proxy = await startProxyUnsynced(zk, overrides, deps);
  await proxy.app.registry!.whenSynced();
  return proxy;
}

/** Started and listening, without waiting for the first read from ZooKeeper. */
export async function startProxyUnsynced(zk: string, overrides: Partial<Config> = {}, deps: TestProxyDeps = {}): Promise<TestProxy> {
  const config: Config = {
    ...DEFAULTS,
    zk,
    basePath: `/t-${randomUUID().slice(0, 8)}`,
    host: '127.0.0.1',
    port: 0,
    adminPort: 0,
    logLevel: 'silent',
    sessionTimeoutMs: 4_000,
    shutdownGraceMs: 2_000,
    ...overrides,
  };
  const app = createApp({
    config,
    logger: deps.logger ?? silentLogger,
    ...(deps.random && { random: deps.random }),
    ...(deps.onBodyBytes && { onBodyBytes: deps.onBodyBytes }),
  });
  const started = await app.start();
  return { app, url: started.proxyUrl, adminUrl: started.adminUrl!, basePath: config.basePath, close: () => app.close() };
}
