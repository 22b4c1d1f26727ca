/**
 * The REST registration listener (`--registration-port`, off by default): assembles the store,
 * the handler and their own listener, apart from the proxy's and the admin's. Nothing starts on
 * import; `startRegistrationApi()` returns undefined when the port is -1.
 */
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Clock, Random } from '../clock.js';
import type { Config } from '../config/schema.js';
import { ConfigError } from '../errors.js';
import type { Logger } from '../logger.js';
import { createListener, urlOf } from '../http/server.js';
import type { ZkClient } from '../registry/zk-client.js';
import type { UpstreamPolicy } from '../security/upstream-policy.js';
import { createRegistrationHandler } from './handler.js';
import { RestRegistrations } from './store.js';

/** A token shorter than this is refused: it guards writes to the whole registry. */
export const MIN_TOKEN_LENGTH = 16;

export interface RegistrationApi {
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface RegistrationApiDeps {
  /** The listener runs where the ZooKeeper session is: a single process or a cluster primary. */
  role: 'single' | 'primary' | 'worker';
  zk: ZkClient | undefined;
  basePath: string;
  policy: UpstreamPolicy;
  clock: Clock;
  random: Random;
  logger: Logger;
  /** Where its close is registered, run last-in first-out by the app. */
  cleanups: Array<() => Promise<void> | void>;
}

type TokenConfig = Pick<Config, 'registrationToken' | 'registrationTokenFile'>;

/** The bearer token writes need, from the token or the file (one of them); errors name the key. */
export function registrationToken(config: TokenConfig, readFile: (path: string) => string = (p) => fs.readFileSync(p, 'utf8')): string {
  const { registrationToken: inline, registrationTokenFile: file } = config;
  if (inline !== '' && file !== '') {
    throw new ConfigError('registrationToken', 'configuration', 'and registrationTokenFile are both set; set one of them');
  }
  let token = inline;
  let key = 'registrationToken';
  if (file !== '') {
    key = 'registrationTokenFile';
    try {
      token = readFile(file).trim();
    } catch (error) {
      throw new ConfigError(key, 'configuration', `cannot be read: ${(error as Error).message}`);
    }
  }
  if (token === '') {
    throw new ConfigError(key, 'configuration', 'is required with registrationPort: writes to the registry need a bearer token');
  }
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    throw new ConfigError(key, 'configuration', `must be a token of at least ${MIN_TOKEN_LENGTH} characters without spaces`);
  }
  return token;
}

/** Starts the listener when `registrationPort` is set (and this process holds the session); undefined otherwise. */
export async function startRegistrationApi(config: Config, deps: RegistrationApiDeps): Promise<RegistrationApi | undefined> {
  const { zk } = deps;
  if (config.registrationPort < 0 || deps.role === 'worker' || !zk) return undefined;
  const token = registrationToken(config);
  const logger = deps.logger.child({ component: 'registration-api' });
  const store = new RestRegistrations({ zk, basePath: deps.basePath, ttlMs: config.registrationTtlMs, clock: deps.clock, logger });
  const listener = createListener(
    createRegistrationHandler({ store, policy: deps.policy, token, clock: deps.clock, random: deps.random, logger }),
    { headersTimeoutMs: config.clientHeadersTimeoutMs, requestTimeoutMs: 30_000, maxHeaderSize: config.maxHeaderBytes },
  );
  let address: AddressInfo;
  try {
    address = await listener.listen(config.registrationPort, config.registrationHost);
  } catch (error) {
    store.close();
    throw error;
  }
  const url = urlOf(address);
  logger.info('REST registration API listening (curator-x-discovery-server compatible)', {
    url,
    ttlMs: config.registrationTtlMs,
    basePath: deps.basePath,
  });
  const api: RegistrationApi = {
    url,
    port: address.port,
    async close() {
      await listener.close(1_000);
      store.close();
    },
  };
  deps.cleanups.push(() => api.close());
  return api;
}
