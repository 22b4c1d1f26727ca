import type { EventEmitter } from 'node:events';
import type { RegistryEvents } from './registry.js';
import type { ServiceSnapshot } from './service-cache.js';

/**
 * What the request path, the admin surface and the wiring read from a registry. The ZooKeeper-backed
 * Registry is one; a cluster worker's RemoteRegistry (snapshots sent by the primary) is the other.
 */
export interface RegistryView extends EventEmitter<RegistryEvents> {
  readonly basePath: string;
  readonly synced: boolean;
  readonly staleSince: number | undefined;
  get(service: string): ServiceSnapshot | undefined;
  services(): string[];
  snapshot(): ServiceSnapshot[];
  whenSynced(): Promise<void>;
  start(): void;
  close(): void;
}

/**
 * Services in code-unit order of their names: deterministic, and unlike localeCompare it does not
 * load ICU's collation data into the process (+3 MB resident on the first admin request).
 */
export function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
