/**
 * The one resolution of a request, shared by HTTP (Node's path and the fast lane) and WebSocket
 * upgrades: target → service → the registry's current snapshot → an instance, or the typed error
 * the client gets. Synchronous: it reads the in-memory snapshot, never ZooKeeper.
 */
import type { Balancer } from '../balancer/balancer.js';
import type { OutlierDetector } from '../health/outliers.js';
import { NoInstancesError, NotReadyError, toProxyError, UnknownServiceError, type PuttuError } from '../errors.js';
import type { Instance } from '../registry/instance.js';
import type { ServiceSnapshot } from '../registry/service-cache.js';
import type { CompiledPolicy } from '../traffic/router.js';
import type { RegistryView } from '../registry/view.js';
import { parseTarget, type Route } from './route.js';

export interface Resolved {
  route: Route;
  /** Has at least one live instance. */
  snapshot: ServiceSnapshot;
}

/** What a request failed to resolve to, and the service to count it under (undefined: unknown). */
export interface Unresolved {
  error: PuttuError;
  service: string | undefined;
}

/**
 * `target` (the request line's) → its route and its service's snapshot; or a bad path (400), a
 * registry not read yet (503), an unknown service (404), a service without live instances (503).
 */
export function resolveTarget(registry: RegistryView, target: string): Resolved | Unresolved {
  let route: Route;
  try {
    route = parseTarget(target);
  } catch (error) {
    return { error: toProxyError(error), service: undefined };
  }
  const snapshot = registry.get(route.service);
  if (snapshot === undefined) return { error: registry.synced ? new UnknownServiceError() : new NotReadyError(), service: undefined };
  if (snapshot.instances.length === 0) return { error: new NoInstancesError(), service: route.service };
  return { route, snapshot };
}

export const isResolved = (r: Resolved | Unresolved): r is Resolved => (r as Resolved).snapshot !== undefined;

/**
 * The balancer's pick: among the instances outlier detection has not ejected, never one already
 * `tried`; when every untried one is ejected, among those anyway (an ejected instance beats no
 * answer). Undefined when every instance was tried.
 *
 * With a traffic policy (traffic/router.ts) the policy chooses, from the same lists, with the
 * request's sticky `key`; `balancer` is then the strategy the policy falls back to.
 */
export function pickInstance(
  balancer: Balancer,
  outliers: OutlierDetector,
  service: string,
  instances: readonly Instance[],
  tried?: readonly Instance[],
  policy?: CompiledPolicy,
  key?: string,
): Instance | undefined {
  const routable = outliers.routable(service, instances);
  if (policy !== undefined) return policy.route(routable, instances, key, balancer, tried);
  if (tried === undefined) return balancer.pick(routable);
  let candidates = routable.filter((i) => !tried.includes(i));
  if (candidates.length === 0) candidates = instances.filter((i) => !tried.includes(i));
  return candidates.length === 0 ? undefined : balancer.pick(candidates);
}
