/**
 * Finagle / Aurora serversets: `member_NNNNNNNNNN` nodes (ephemeral sequential) whose data is the
 * JSON form of Twitter's `ServiceInstance`:
 *
 * ```json
 * {"serviceEndpoint":{"host":"10.0.0.7","port":31337},
 *  "additionalEndpoints":{"http":{"host":"10.0.0.7","port":8080}},
 *  "status":"ALIVE","shard":0}
 * ```
 *
 * Traffic goes to `serviceEndpoint` over http (a serverset records no protocol or path). Only
 * `ALIVE` is routed; STARTING, STOPPING, STOPPED, DEAD, WARNING or any other status keeps a valid
 * member out of routing. `shard` and the additional endpoints are kept for display when well
 * formed and ignored otherwise. A numeric `weight`, where a writer adds one, is the member's
 * weight (0: not routed).
 */
import type { DecodeResult, NamedEndpoint } from '../instance.js';
import { checkPort, decoded, fail, isObject, isValidHost, lenientWeight, makeInstance, show, validateEndpoint } from './endpoint.js';

export function decodeServerset(service: string, id: string, obj: Record<string, unknown>): DecodeResult {
  const main = obj.serviceEndpoint;
  if (!isObject(main)) return fail(`serverset: serviceEndpoint must be an object {"host","port"}, got ${show(main)}`);
  const checked = validateEndpoint({ protocol: 'http', host: main.host, port: main.port, api: '' });
  if (typeof checked === 'string') return fail(`serverset: serviceEndpoint.${checked}`);
  const status = obj.status;
  if (typeof status !== 'string' || status.trim() === '')
    return fail(`serverset: status must be a string such as "ALIVE", got ${show(status)}`);
  const shard = typeof obj.shard === 'number' && Number.isInteger(obj.shard) && obj.shard >= 0 ? obj.shard : undefined;
  const endpoints = namedEndpoints(obj.additionalEndpoints);
  const weight = lenientWeight(obj.weight);
  const instance = makeInstance(service, id, 'serverset', checked, {
    status,
    weight,
    ...(shard !== undefined && { shard }),
    ...(endpoints && { endpoints }),
  });
  return decoded(instance, status.toUpperCase() !== 'ALIVE' ? `status ${status}` : weight === 0 ? 'weight 0' : undefined);
}

function namedEndpoints(value: unknown): Readonly<Record<string, NamedEndpoint>> | undefined {
  if (!isObject(value)) return undefined;
  const out: Record<string, NamedEndpoint> = {};
  let any = false;
  for (const [name, e] of Object.entries(value)) {
    if (!isObject(e) || typeof e.host !== 'string' || !isValidHost(e.host)) continue;
    const port = checkPort(e.port);
    if (typeof port === 'string') continue;
    out[name] = Object.freeze({ host: e.host, port });
    any = true;
  }
  return any ? Object.freeze(out) : undefined;
}
