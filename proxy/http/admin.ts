/**
 * The admin surface, meant for its own listener (bound to loopback by default): /metrics,
 * /healthz (the process is alive), /readyz (the registry has been read: requests can be routed),
 * /api/services (the current snapshot as JSON).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Registry } from '../registry/registry.js';
import type { ZkClient } from '../registry/zk-client.js';

export interface AdminDeps {
  registry: Registry;
  zk: ZkClient;
  metrics: Metrics;
  clock: Clock;
}

export function createAdminHandler(deps: AdminDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { registry, zk, metrics, clock } = deps;

  function readiness() {
    const staleSince = registry.staleSince;
    return {
      ready: registry.synced,
      reason: registry.synced ? undefined : `registry not yet read from ZooKeeper (connection ${zk.state}, ${zk.connectString})`,
      zookeeper: zk.state,
      services: registry.services().length,
      stalenessSeconds: staleSince === undefined ? 0 : (clock.monotonic() - staleSince) / 1000,
    };
  }

  return function handle(req, res) {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: { code: 'PUTTU_METHOD_NOT_ALLOWED', status: 405 } });
    switch (path) {
      case '/metrics':
        metrics.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' });
            res.end(text);
          },
          () => json(res, 500, { error: { code: 'PUTTU_INTERNAL', status: 500 } }),
        );
        return;
      case '/healthz':
        return json(res, 200, { status: 'ok' });
      case '/readyz': {
        const r = readiness();
        return json(res, r.ready ? 200 : 503, r);
      }
      case '/api/services':
        return json(res, 200, {
          ...readiness(),
          services: registry.snapshot().map((s) => ({
            name: s.name,
            instances: s.instances.map((i) => ({ id: i.id, url: i.url, format: i.format, state: 'healthy' })),
            rejected: s.rejected,
          })),
        });
      default:
        return json(res, 404, { error: { code: 'PUTTU_NOT_FOUND', status: 404, message: 'admin endpoints: /metrics /healthz /readyz /api/services' } });
    }
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}
