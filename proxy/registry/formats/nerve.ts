/**
 * Airbnb Nerve's ZooKeeper reporter: `{"host","port","name"}` plus optional `weight`, `labels`
 * and `haproxy_server_options` (ignored). Read as http on `host:port` with no base path; `labels`
 * become metadata. A weight of 0 is valid and takes the instance out of routing (HAProxy, which
 * Synapse feeds these weights to, sends a server of weight 0 no new traffic).
 */
import type { DecodeResult } from '../instance.js';
import { decoded, fail, makeInstance, readWeight, stringEntries, validateEndpoint } from './endpoint.js';

export function decodeNerve(service: string, id: string, obj: Record<string, unknown>): DecodeResult {
  const checked = validateEndpoint({ protocol: 'http', host: obj.host, port: obj.port, api: '' });
  if (typeof checked === 'string') return fail(`nerve: ${checked}`);
  const weight = readWeight(obj.weight);
  if (typeof weight === 'string') return fail(`nerve: ${weight}`);
  const instance = makeInstance(service, id, 'nerve', checked, { weight, metadata: stringEntries(obj.labels) });
  return decoded(instance, weight === 0 ? 'weight 0' : undefined);
}
