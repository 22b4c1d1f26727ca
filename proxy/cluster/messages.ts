/**
 * Messages between the cluster primary (which holds the one ZooKeeper session) and its workers
 * (which serve requests). Sent over the cluster IPC channel as JSON.
 */
import type { Instance } from '../registry/instance.js';
import type { RejectedInstance } from '../registry/service-cache.js';
import type { PolicyState } from '../registry/policies.js';

export interface WireSnapshot {
  name: string;
  instances: Instance[];
  rejected: RejectedInstance[];
}

export type ToWorker =
  | { puttu: 'service'; name: string; snapshot: WireSnapshot | null }
  | { puttu: 'synced' }
  /** A service's traffic policy state (null: its document was removed). */
  | { puttu: 'policy'; service: string; state: PolicyState | null }
  | { puttu: 'metrics?'; id: number };

export type ToPrimary = { puttu: 'ready' } | { puttu: 'metrics'; id: number; json: unknown };

export const isPuttuMessage = (m: unknown): m is { puttu: string } =>
  typeof m === 'object' && m !== null && typeof (m as { puttu?: unknown }).puttu === 'string';
