/**
 * The admin surface, meant for its own listener (bound to loopback by default):
 *   /               status page (HTML, no external assets; polls /api/services)
 *   /metrics        Prometheus metrics
 *   /healthz        the process is alive
 *   /readyz         the registry has been read: requests can be routed (503 with the reason before)
 *   /api/services   the current snapshot: instances with format, state and why, request counts
 *   /api/services/<name>
 *   /sd/prometheus  Prometheus HTTP service discovery of every routable instance
 *   /debug/route?path=/<service>/<rest>  where a request would go, and why (http/explain.ts)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../clock.js';
import type { Inflight } from '../health/inflight.js';
import type { OutlierDetector } from '../health/outliers.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ServiceSnapshot } from '../registry/registry.js';
import { byName, type RegistryView } from '../registry/view.js';
import type { ZkClient } from '../registry/zk-client.js';
import { STATUS_PAGE } from './status-page.js';
import type { TrafficPolicies } from '../traffic/policies.js';
import { explainRoute, type ExplainDeps } from './explain.js';
import { errorBody, InternalError, MethodNotAllowedError, NotFoundError, UnknownServiceError, type PuttuError } from '../errors.js';

export interface AdminDeps {
  registry: RegistryView;
  zk: ZkClient;
  metrics: Metrics;
  clock: Clock;
  outliers?: OutlierDetector;
  inflight?: Inflight;
  version?: string;
  /** Traffic policies: shown per service, and what /debug/route explains with. */
  traffic?: { policies: TrafficPolicies } & Pick<ExplainDeps, 'balancerFor' | 'balancerName'>;
  /** The /metrics text; default: this process's registry (a cluster primary adds its workers'). */
  scrape?: () => Promise<string>;
}

export function createAdminHandler(deps: AdminDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { registry, zk, metrics, clock } = deps;
  const startedAt = clock.now();

  function status() {
    const staleSince = registry.staleSince;
    return {
      ready: registry.synced,
      reason: registry.synced ? undefined : `registry not yet read from ZooKeeper (connection ${zk.state}, ${zk.connectString})`,
      zookeeper: zk.state,
      basePath: registry.basePath,
      services: registry.services().length,
      stalenessSeconds: staleSince === undefined ? 0 : (clock.monotonic() - staleSince) / 1000,
      uptimeSeconds: Math.round((clock.now() - startedAt) / 1000),
      version: deps.version,
    };
  }

  function policyOf(service: string) {
    const state = deps.traffic?.policies.source.get(service);
    if (state === undefined) return null;
    return { version: state.version ?? null, inForce: state.policy ?? null, ...(state.invalid && { refused: state.invalid }) };
  }

  function describe(s: ServiceSnapshot) {
    return {
      name: s.name,
      policy: policyOf(s.name),
      routable: s.instances.filter((i) => deps.outliers?.state(i) !== 'ejected').length,
      instances: [
        ...s.instances.map((i) => {
          const ejected = deps.outliers?.state(i) === 'ejected';
          const load = deps.inflight?.stats(i);
          return {
            id: i.id,
            url: i.url,
            format: i.format,
            state: ejected ? 'ejected' : 'healthy',
            ...(ejected && { reason: 'ejected after consecutive failures' }),
            requests: load?.requests ?? 0,
            failures: load?.failures ?? 0,
            inflight: load?.inflight ?? 0,
          };
        }),
        ...s.rejected.map((r) => ({
          id: r.id,
          url: r.instance?.url ?? null,
          format: r.instance?.format ?? null,
          state: stateOf(r.kind, r.reason),
          reason: r.reason,
          requests: 0,
          failures: 0,
          inflight: 0,
        })),
      ],
    };
  }

  function prometheusTargets() {
    const groups = [];
    for (const s of registry.snapshot()) {
      for (const i of s.instances) {
        groups.push({
          targets: [i.host.includes(':') ? `[${i.host}]:${i.port}` : `${i.host}:${i.port}`],
          labels: {
            puttu_service: s.name,
            puttu_instance: i.id,
            puttu_format: i.format,
            __scheme__: i.origin.startsWith('https:') ? 'https' : 'http',
          },
        });
      }
    }
    return groups;
  }

  return function handle(req, res) {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return fail(res, new MethodNotAllowedError('the admin endpoints answer GET and HEAD'));
    if (path === '/debug/route' && deps.traffic) {
      const q = new URLSearchParams((req.url ?? '').slice(path.length + 1));
      const answer = explainRoute({ registry, outliers: deps.outliers, ...deps.traffic }, q);
      return 'error' in answer ? fail(res, answer.error) : json(res, 200, answer.body);
    }
    if (path.startsWith('/api/services/')) {
      const snapshot = registry.get(decodeURIComponent(path.slice('/api/services/'.length)));
      return snapshot ? json(res, 200, describe(snapshot)) : fail(res, new UnknownServiceError());
    }
    switch (path) {
      case '/':
        res.writeHead(200, {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          'content-security-policy': "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
        });
        return void res.end(STATUS_PAGE);
      case '/metrics':
        (deps.scrape ?? (() => metrics.registry.metrics()))().then(
          (text) => {
            res.writeHead(200, { 'content-type': metrics.registry.contentType, 'cache-control': 'no-store' });
            res.end(text);
          },
          () => fail(res, new InternalError()),
        );
        return;
      case '/healthz':
        return json(res, 200, { status: 'ok' });
      case '/readyz': {
        const s = status();
        return json(res, s.ready ? 200 : 503, s);
      }
      case '/api/status':
        return json(res, 200, status());
      case '/api/services':
        return json(res, 200, { ...status(), services: registry.snapshot().sort(byName).map(describe) });
      case '/sd/prometheus':
        return json(res, 200, prometheusTargets());
      default:
        return fail(
          res,
          new NotFoundError('admin endpoints: / /metrics /healthz /readyz /api/status /api/services /sd/prometheus /debug/route'),
        );
    }
  };
}

function stateOf(kind: string, reason: string): string {
  if (kind === 'refused') return 'refused';
  if (kind === 'inactive') return /DRAINING/i.test(reason) ? 'draining' : 'disabled';
  return 'rejected';
}

function fail(res: ServerResponse, error: PuttuError): void {
  send(res, error.status, errorBody(error));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, JSON.stringify(body));
}

function send(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}
