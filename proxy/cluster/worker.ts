/** A cluster worker: the proxy listener, routing from the snapshots its primary sends. */
import { createApp, type App, type AppDeps } from '../app.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../logger.js';
import { normalizeBasePath } from '../registry/paths.js';
import { isPuttuMessage, type ToPrimary, type ToWorker } from './messages.js';
import { RemotePolicies } from './remote-policies.js';
import { RemoteRegistry } from './remote-registry.js';

/** The CLI's runtime tuning for the worker's app (app.ts AppDeps), when it tunes. */
type WorkerTuning = Pick<AppDeps, 'afterInitialRead' | 'onBodyBytes'>;

export async function startWorker(config: Config, logger: Logger, tuning: WorkerTuning = {}): Promise<App> {
  const registry = new RemoteRegistry(normalizeBasePath(config.basePath));
  const policies = new RemotePolicies();
  const app = createApp({ config, logger: logger.child({ worker: process.pid }), role: 'worker', registry, policies, ...tuning });
  process.on('message', (message: unknown) => {
    if (!isPuttuMessage(message)) return;
    const m = message as ToWorker;
    if (m.puttu === 'metrics?') {
      void app.metrics.registry.getMetricsAsJSON().then((json) => send({ puttu: 'metrics', id: m.id, json }));
    } else if (m.puttu === 'policy') policies.apply(m.service, m.state);
    else registry.apply(m);
  });
  await app.start();
  send({ puttu: 'ready' });
  return app;
}

function send(message: ToPrimary): void {
  process.send?.(message);
}
