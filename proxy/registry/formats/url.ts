/**
 * The legacy form: the znode's data is a plain URL (`https://10.0.0.5:10001/warehouse/v1`), or
 * the same URL as a JSON string. No status: always routable when valid.
 */
import type { DecodeResult } from '../instance.js';
import { decoded, fail, makeInstance, validateEndpoint } from './endpoint.js';

export function decodeUrl(service: string, id: string, text: string): DecodeResult {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail('neither JSON nor a URL');
  }
  if (url.username || url.password) return fail('URL carries credentials');
  if (url.search || url.hash) return fail('URL carries a query or fragment');
  const protocol = url.protocol.slice(0, -1);
  const port = url.port === '' ? (protocol === 'https' ? 443 : 80) : Number(url.port);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  // The path stays percent-encoded, as the JSON form stores it: decoding would turn '%2F' into a
  // real slash (another path) and '%20' into a space (rejected). normalizeApi still checks each
  // decoded segment for dot segments and encoded slashes.
  const checked = validateEndpoint({ protocol, host, port, api: url.pathname });
  if (typeof checked === 'string') return fail(checked);
  return decoded(makeInstance(service, id, 'url', checked), undefined);
}
