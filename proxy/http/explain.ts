/**
 * `GET /debug/route?path=/<service>/<rest>[&header=Name:value…][&cookie=name=value…]` on the
 * admin listener: where a request would go and why. The service, the policy version in force,
 * every instance with its state and weight, the rules that applied (split, zone, sticky), the
 * instance a request with those headers and cookies would reach (when that is decided by its key;
 * otherwise the candidates a balancer draws among) and the upstream URL the path maps to. It reads
 * the same snapshot, outlier state and policy as the request path, and changes none of them.
 */
import type { Balancer } from '../balancer/balancer.js';
import { rendezvousOrder } from '../balancer/hrw.js';
import { weightOf } from '../balancer/weights.js';
import { BadRequestError, type PuttuError } from '../errors.js';
import { isResolved, resolveTarget } from '../forward/resolve.js';
import { upstreamPath } from '../forward/route.js';
import type { OutlierDetector } from '../health/outliers.js';
import type { Instance } from '../registry/instance.js';
import type { RegistryView } from '../registry/view.js';
import type { TrafficPolicies } from '../traffic/policies.js';
import { zoneOf, type RouteDetail } from '../traffic/router.js';

export interface ExplainDeps {
  registry: RegistryView;
  outliers: OutlierDetector | undefined;
  policies: TrafficPolicies;
  balancerFor: (service: string) => Balancer;
  /** The flags' strategy name for a service (for the answer). */
  balancerName: (service: string) => string;
}

export function explainRoute(deps: ExplainDeps, query: URLSearchParams): { body: unknown } | { error: PuttuError } {
  const path = query.get('path');
  if (path === null || !path.startsWith('/'))
    return { error: new BadRequestError('give the request path to explain: /debug/route?path=/<service>/<rest>') };
  const raw: string[] = [];
  for (const h of query.getAll('header')) {
    const colon = h.indexOf(':');
    if (colon <= 0) return { error: new BadRequestError(`header must be "Name: value", got ${JSON.stringify(h.slice(0, 80))}`) };
    raw.push(h.slice(0, colon).trim(), h.slice(colon + 1).trim());
  }
  const cookies = query.getAll('cookie');
  if (cookies.length > 0) raw.push('cookie', cookies.join('; '));
  const resolved = resolveTarget(deps.registry, path);
  if (!isResolved(resolved)) return { error: resolved.error };
  const { route, snapshot } = resolved;
  const service = route.service;
  const all = snapshot.instances;
  const routable = deps.outliers?.routable(service, all) ?? all;
  const compiled = deps.policies.get(service);
  const state = deps.policies.source.get(service);
  const key = compiled?.keyOf(raw);
  const detail: RouteDetail = { rules: [] };
  let chosen: Instance | undefined;
  if (compiled !== undefined) chosen = compiled.route(routable, all, key, deps.balancerFor(service), undefined, detail);
  else detail.candidates = routable;
  const candidates = new Set(detail.candidates ?? []);
  const total = [...candidates].reduce((sum, i) => sum + weightOf(i), 0);
  const rest = compiled === undefined || compiled.stripPrefix ? route.rest : `/${service}${route.rest}`;
  const target = (i: Instance) => i.origin + upstreamPath(i.api, rest, route.query);
  return {
    body: {
      service,
      path,
      policy: {
        version: compiled?.version ?? null,
        inForce: compiled?.policy ?? null,
        ...(state?.invalid && { refused: state.invalid }),
        balancer: compiled?.policy.balancer ?? deps.balancerName(service),
      },
      rules: detail.rules,
      ...(detail.split && { split: detail.split }),
      ...(detail.zone && { zone: detail.zone }),
      ...(detail.sticky && { sticky: detail.sticky }),
      chosen: chosen === undefined ? null : { id: chosen.id, url: target(chosen) },
      ...(chosen === undefined && {
        decidedBy: `the ${compiled?.policy.balancer ?? deps.balancerName(service)} balancer, per request, among the candidates`,
      }),
      ...(key !== undefined && { stickyOrder: rendezvousOrder([...candidates], key).map((i) => i.id) }),
      instances: [
        ...all.map((i) => ({
          id: i.id,
          url: target(i),
          state: routable.includes(i) ? 'healthy' : 'ejected',
          weight: weightOf(i),
          effectiveWeight: candidates.has(i) ? weightOf(i) : 0,
          sharePercent: candidates.has(i) && total > 0 && key === undefined ? Math.round((weightOf(i) * 1000) / total) / 10 : null,
          ...(zoneOf(i) !== undefined && { zone: zoneOf(i) }),
          ...(i.metadata && Object.keys(i.metadata).length > 0 && { metadata: i.metadata }),
        })),
        ...snapshot.rejected.map((r) => ({
          id: r.id,
          url: r.instance?.url ?? null,
          state: r.kind,
          reason: r.reason,
          weight: 0,
          effectiveWeight: 0,
        })),
      ],
    },
  };
}
