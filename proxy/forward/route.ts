/**
 * Request target → service name + upstream path. Pure, and the single normalisation that both
 * routing and forwarding use, so what picks the service is exactly what the upstream receives.
 *
 * - Only origin-form targets (`/path?query`), or absolute-form (RFC 9112 §3.2.2) reduced to it.
 * - Dot segments are removed (RFC 3986 §5.2.4), including percent-encoded ones (`%2e`); one that
 *   would climb out of the service segment is refused, so a path never reaches another service
 *   nor escapes the endpoint's `api` base path.
 * - Encoded slashes and backslashes (`%2f`, `%5c`, `\`) are refused: servers disagree on them.
 * - Empty segments (`//`) collapse. The query passes through verbatim.
 */
import { BadPathError } from '../errors.js';

export interface Route {
  service: string;
  /** Path after the service segment, '' or starting with '/'; trailing slash kept. */
  rest: string;
  /** '' or '?…' verbatim. */
  query: string;
}

const MAX_TARGET = 8 * 1024;

export function parseTarget(target: string): Route {
  if (target.length > MAX_TARGET) throw new BadPathError('request target too long');
  let t = target;
  if (t.charCodeAt(0) !== 47 /* / */) {
    // absolute-form: keep only path and query (the authority is ours, not the client's choice)
    const m = /^https?:\/\/[^/?#]*/i.exec(t);
    if (!m) throw new BadPathError('request target must be a path');
    t = t.slice(m[0].length) || '/';
    if (t.charCodeAt(0) !== 47) t = '/' + t;
  }
  // The fragment ends the target wherever it is, after the query too (RFC 3986 §3.5).
  const hash = t.indexOf('#');
  if (hash !== -1) t = t.slice(0, hash);
  const q = t.indexOf('?');
  const clean = q === -1 ? t : t.slice(0, q);
  const query = q === -1 ? '' : t.slice(q);

  // Fast path: nothing to normalise in the common case.
  if (!needsNormalising(clean)) {
    const slash = clean.indexOf('/', 1);
    return slash === -1
      ? { service: clean.slice(1), rest: '', query }
      : { service: clean.slice(1, slash), rest: clean.slice(slash), query };
  }
  return normalise(clean, query);
}

function needsNormalising(p: string): boolean {
  return p.includes('//') || p.includes('/.') || p.includes('%') || p.includes('\\');
}

function normalise(path: string, query: string): Route {
  if (path.includes('\\') || /%(2f|5c)/i.test(path)) throw new BadPathError('encoded slashes and backslashes are not allowed in paths');
  const out: string[] = [];
  const raw = path.split('/');
  const trailing = raw.length > 1 && (raw[raw.length - 1] === '' || isDot(raw[raw.length - 1]!) || isDotDot(raw[raw.length - 1]!));
  for (const seg of raw) {
    if (seg === '' || isDot(seg)) continue;
    if (isDotDot(seg)) {
      if (out.length <= 1) throw new BadPathError('path climbs above the service');
      out.pop();
      continue;
    }
    out.push(seg);
  }
  if (out.length === 0) return { service: '', rest: '', query };
  const rest = out.length > 1 ? '/' + out.slice(1).join('/') + (trailing ? '/' : '') : trailing ? '/' : '';
  return { service: out[0]!, rest, query };
}

const isDot = (s: string) => s === '.' || s.toLowerCase() === '%2e';
const isDotDot = (s: string) => s.length >= 2 && s.length <= 6 && /^(\.|%2e){2}$/i.test(s);

/** The path sent upstream: the endpoint's api base + the rest + the query; never '' (RFC 9112 §3.2.1). */
export function upstreamPath(api: string, rest: string, query: string): string {
  const p = api + rest;
  return (p === '' ? '/' : p) + query;
}
