/**
 * `puttu proxy --workers N`: the primary holds the one ZooKeeper session, the registry and the
 * admin listener; N workers (node:cluster) serve the proxy port and route from the snapshots the
 * primary sends them. ZooKeeper is watched once, not N times. The kernel spreads connections over
 * the workers (SCHED_NONE: no extra hop through the primary). A worker that dies is replaced.
 */
import cluster, { type Worker } from 'node:cluster';
import prom from 'prom-client';
import { createApp, type App } from '../app.js';
import type { Config } from '../config/schema.js';
import { urlOf } from '../http/server.js';
import type { Logger } from '../logger.js';
import type { ServiceSnapshot } from '../registry/service-cache.js';
import { isPuttuMessage, type ToPrimary, type ToWorker, type WireSnapshot } from './messages.js';

export interface Primary {
  app: App;
  close(): Promise<void>;
}

export async function startPrimary(
  config: Config,
  logger: Logger,
  afterInitialRead?: () => void,
  onFatal?: (error: Error) => void,
): Promise<Primary> {
  let nextId = 0;
  const waiting = new Map<number, { got: unknown[]; expect: number; done: () => void }>();
  const scrape = async (): Promise<string> => {
    const workers = live();
    const id = ++nextId;
    const got: unknown[] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2_000);
      waiting.set(id, {
        got,
        expect: workers.length,
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      for (const w of workers) send(w, { puttu: 'metrics?', id });
      if (workers.length === 0) resolve();
    });
    waiting.delete(id);
    const mine = await app.metrics.registry.getMetricsAsJSON();
    return prom.AggregatorRegistry.aggregate([mine, ...got] as Parameters<typeof prom.AggregatorRegistry.aggregate>[0]).metrics();
  };

  const app = createApp({
    config,
    logger,
    role: 'primary',
    scrape,
    ...(afterInitialRead && { afterInitialRead }),
    ...(onFatal && { onFatal }),
  });
  await app.start();
  const registry = app.registry!;
  const wire = (s: ServiceSnapshot): WireSnapshot => ({ name: s.name, instances: [...s.instances], rejected: [...s.rejected] });
  registry.on('change', (name, next) => broadcast({ puttu: 'service', name, snapshot: next ? wire(next) : null }));
  registry.on('synced', () => broadcast({ puttu: 'synced' }));
  const policies = app.traffic!.policies.source;
  policies.on('change', (service, state) => broadcast({ puttu: 'policy', service, state: state ?? null }));

  let closing = false;
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ exec: process.argv[1]!, args: process.argv.slice(2) });
  cluster.on('message', (worker: Worker, message: unknown) => {
    if (!isPuttuMessage(message)) return;
    const m = message as ToPrimary;
    if (m.puttu === 'ready') {
      // A (re)started worker gets the whole view, then follows the changes.
      for (const s of registry.snapshot()) send(worker, { puttu: 'service', name: s.name, snapshot: wire(s) });
      for (const state of policies.all()) send(worker, { puttu: 'policy', service: state.service, state });
      if (registry.synced) send(worker, { puttu: 'synced' });
    } else if (m.puttu === 'metrics') {
      const w = waiting.get(m.id);
      if (w) {
        w.got.push(m.json);
        if (w.got.length >= w.expect) w.done();
      }
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (closing) return;
    logger.error('worker died; starting a replacement', { pid: worker.process.pid, code, signal });
    fork();
  });
  // Said once the first worker listens, with the port it got (the configured one, or the
  // kernel's pick for port 0, which cluster then hands to every worker).
  cluster.once('listening', (_worker, address) => {
    const listened = { address: address.address ?? config.host, port: address.port };
    logger.info('puttu proxy listening', { proxyUrl: urlOf(listened, config.tlsCert ? 'https' : 'http'), workers: config.workers });
  });
  for (let i = 0; i < config.workers; i++) fork();

  function fork(): void {
    cluster.fork({ PUTTU_CLUSTER_ROLE: 'worker' });
  }
  function live(): Worker[] {
    return Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && w.isConnected());
  }
  function send(worker: Worker, message: ToWorker): void {
    if (worker.isConnected()) worker.send(message);
  }
  function broadcast(message: ToWorker): void {
    for (const w of live()) send(w, message);
  }

  return {
    app,
    async close() {
      closing = true;
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve) => {
              if (w.isDead()) return resolve();
              const timer = setTimeout(() => w.process.kill('SIGKILL'), config.shutdownGraceMs + 2_000);
              w.once('exit', () => {
                clearTimeout(timer);
                resolve();
              });
              w.process.kill('SIGTERM');
            }),
        ),
      );
      await app.close();
    },
  };
}
