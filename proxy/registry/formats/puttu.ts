/**
 * Ours: `{"protocol","host","port","api","id","registrationTimeUTC","status","weight","metadata"}`
 * (every field but `host` and `port` optional, so older writers of ours still decode), and the
 * same with `ip` in place of `host`, as earlier writers did (format 'ip').
 *
 * Routable while `status` is absent or `UP` and `weight` above 0; `DRAINING` (written by a library
 * shutting down), any other status, or weight 0 keep a valid instance out of routing.
 */
import type { DecodeResult } from '../instance.js';
import { decoded, fail, makeInstance, readWeight, show, stringEntries, validateEndpoint } from './endpoint.js';

export function decodePuttu(service: string, id: string, obj: Record<string, unknown>, format: 'puttu' | 'ip'): DecodeResult {
  const checked = validateEndpoint({
    protocol: obj.protocol ?? 'http',
    host: format === 'ip' ? obj.ip : obj.host,
    port: obj.port,
    api: obj.api ?? '',
  });
  if (typeof checked === 'string') return fail(checked);
  const weight = readWeight(obj.weight);
  if (typeof weight === 'string') return fail(weight);
  const status = obj.status ?? 'UP';
  if (typeof status !== 'string' || status.trim() === '') return fail(`status must be a string such as "UP", got ${show(obj.status)}`);
  const instance = makeInstance(service, id, format, checked, { weight, metadata: stringEntries(obj.metadata), status });
  return decoded(instance, status.toUpperCase() !== 'UP' ? `status ${status}` : weight === 0 ? 'weight 0' : undefined);
}
