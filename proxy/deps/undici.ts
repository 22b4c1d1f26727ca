/**
 * undici's Pool, loaded from its own file rather than undici's index: the index also loads fetch,
 * WebSocket, the cache and more, about 10 MB of resident memory a proxy never uses. undici 7 has
 * no exports map, so this is a private path: package.json pins undici's exact version, and
 * test/unit/dependency-contract.test.ts fails, naming the path, when an upgrade moves or changes it.
 */
import { createRequire } from 'node:module';
import type { Pool as PoolType } from 'undici';

export const UNDICI_POOL_PATH = 'undici/lib/dispatcher/pool.js';

export const Pool = createRequire(import.meta.url)(UNDICI_POOL_PATH) as typeof PoolType;
export type Pool = PoolType;
