/**
 * What the two baseline proxies (http-proxy-server.mjs, undici-proxy.mjs) share: their command
 * line, the static routes from BENCH_ROUTES, the `/<service>/<rest>` routing with round-robin over
 * a service's backends, and listening. Each baseline brings only its forwarding.
 */
import http from 'node:http';
import { parseArgs } from 'node:util';

/**
 * Starts a baseline proxy: `forward(req, res, backend, path)` is called for each routed request;
 * `toBackend(url)` turns each BENCH_ROUTES entry into what `forward` gets (a URL, a pool...).
 */
export function startBaseline(name, toBackend, forward) {
  const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } } });
  const routes = new Map(
    Object.entries(JSON.parse(process.env.BENCH_ROUTES ?? '{}')).map(([service, urls]) => [
      service,
      { backends: urls.map(toBackend), next: 0 },
    ]),
  );
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const slash = url.indexOf('/', 1);
    const route = routes.get(slash < 0 ? url.slice(1) : url.slice(1, slash));
    if (!route) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('unknown service\n');
    }
    const backend = route.backends[route.next];
    route.next = (route.next + 1) % route.backends.length;
    forward(req, res, backend, slash < 0 ? '/' : url.slice(slash));
  });
  server.listen(Number(values.port), values.host, () => {
    process.stdout.write(`${JSON.stringify({ msg: `${name} baseline listening`, port: server.address().port })}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}

/** A bare 502 (or a cut connection once the head went out). */
export function badGateway(res) {
  if (res.headersSent || typeof res.writeHead !== 'function') return res.destroy?.();
  res.writeHead(502, { 'content-type': 'text/plain' });
  res.end('bad gateway\n');
}
