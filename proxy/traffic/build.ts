/**
 * The traffic-policy side of the composition root: the watcher of the policy documents (or, in a
 * cluster worker, the copy its primary sends), the compiled policies the request path reads, and
 * their wiring to metrics and deadlines. Builds and wires; the watcher starts reading when
 * ZooKeeper connects.
 */
import type { EventEmitter } from 'node:events';
import type { Random } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { Inflight } from '../health/inflight.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { PolicyWatcher, type PolicyEvents, type PolicySource } from '../registry/policies.js';
import { normalizeBasePath } from '../registry/paths.js';
import type { ZkClient } from '../registry/zk-client.js';
import { TrafficPolicies } from './policies.js';

export type PolicyFeed = PolicySource & EventEmitter<PolicyEvents>;

export interface Traffic {
  readonly policies: TrafficPolicies;
  /** Resolves once the policy documents have been read (at once for a worker's copy). */
  whenSynced(): Promise<void>;
  close(): void;
}

export function buildTraffic(
  config: Config,
  deps: { zk: ZkClient | undefined; feed?: PolicyFeed | undefined; random: Random; inflight: Inflight; metrics: Metrics; logger: Logger },
): Traffic {
  const { zk, metrics, logger } = deps;
  const log = logger.child({ component: 'policy' });
  const watcher =
    deps.feed === undefined && zk ? new PolicyWatcher({ zk, path: normalizeBasePath(config.policyPath), logger: log }) : undefined;
  const feed: PolicyFeed = deps.feed ?? watcher ?? emptyFeed();
  const policies = new TrafficPolicies(feed, { random: deps.random, inflight: deps.inflight, zone: config.zone }, log);
  if (watcher) {
    watcher.on('change', (service, state) =>
      metrics.setPolicyInvalid(service, state === undefined ? undefined : state.invalid !== undefined),
    );
    watcher.start();
  }
  return {
    policies,
    whenSynced: () => watcher?.whenSynced() ?? Promise.resolve(),
    close: () => watcher?.close(),
  };
}

/** No policies at all (a proxy given a registry without ZooKeeper, as tests do). */
function emptyFeed(): PolicyFeed {
  const feed = { get: () => undefined, all: () => [], on: () => feed } as unknown as PolicyFeed;
  return feed;
}
