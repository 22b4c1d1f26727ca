/** ZooKeeper path helpers: one place that knows the tree's layout `<base>/<service>/<instance>`. */

/** Service names: one path segment, no dot segments, nothing that needs escaping in a URL. */
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$/;

export function isValidServiceName(name: string): boolean {
  return SERVICE_NAME.test(name) && name !== '.' && name !== '..';
}

/** `/a//b/` → `/a/b`; `/` → `/`. Throws on a relative (or empty) path: no silent fallback to the root. */
export function normalizeBasePath(base: string): string {
  if (!base.startsWith('/')) throw new Error(`base path must start with "/": ${JSON.stringify(base)}`);
  const parts = base.split('/').filter((p) => p.length > 0);
  for (const p of parts) {
    if (p === '.' || p === '..') throw new Error(`base path must not contain "." or "..": ${JSON.stringify(base)}`);
  }
  return '/' + parts.join('/');
}

export function join(parent: string, child: string): string {
  return parent === '/' ? `/${child}` : `${parent}/${child}`;
}

export function servicePath(base: string, service: string): string {
  return join(base, service);
}

/** The prefix for EPHEMERAL_SEQUENTIAL creation: ZooKeeper appends a 10-digit counter. */
export function instancePrefix(base: string, service: string): string {
  return join(servicePath(base, service), service);
}

export function lastSegment(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
