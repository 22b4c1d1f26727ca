/**
 * Which format a znode's JSON object is, by its shape alone (a service may mix formats, and node
 * names are not reliable). The field that carries the address decides first, so that an unknown
 * extra field never turns one format into another; the first rule that matches wins:
 *
 * 1. `serviceEndpoint`                         → serverset (Finagle / Aurora)
 * 2. `host` with a string `name` and none of our own fields
 *    (`protocol`, `api`, `id`, `registrationTimeUTC`, `status`, `metadata`) → nerve
 * 3. `host`                                    → puttu (ours)
 * 4. `address`                                 → curator (Curator's top level never has `host`)
 * 5. `ip`                                      → ip (ours, older writers)
 * 6. `sslPort`, `uriSpec`, `serviceType` or `payload` (a Curator record without its address)
 *                                              → curator, so the reason names what it lacks
 * 7. `additionalEndpoints`                     → serverset, likewise
 * 8. anything else                             → puttu (the reason says what ours lacks)
 *
 * Data that is not a JSON object is the legacy URL form: a plain URL, or one as a JSON string.
 */
import type { InstanceFormat } from '../instance.js';

const OURS = ['protocol', 'api', 'id', 'registrationTimeUTC', 'status', 'metadata'];
const CURATOR_HINTS = ['sslPort', 'uriSpec', 'serviceType', 'payload'];

export function detectJsonFormat(obj: Record<string, unknown>): Exclude<InstanceFormat, 'url'> {
  const has = (key: string) => Object.hasOwn(obj, key);
  if (has('serviceEndpoint')) return 'serverset';
  if (has('host')) return typeof obj.name === 'string' && !OURS.some(has) ? 'nerve' : 'puttu';
  if (has('address')) return 'curator';
  if (has('ip')) return 'ip';
  if (CURATOR_HINTS.some(has)) return 'curator';
  if (has('additionalEndpoints')) return 'serverset';
  return 'puttu';
}
