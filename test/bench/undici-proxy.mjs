/**
 * A second baseline: the minimal proxy issue 4 measured, on undici's `dispatch` API (one keep-alive
 * `Pool` per backend, round-robin over a static list). `/<service>/<rest>` goes to
 * `<backend>/<rest>`. It drops only the hop-by-hop fields undici refuses; no registry, no metrics,
 * no X-Forwarded-*, no error pages beyond a bare 502.
 *
 *   BENCH_ROUTES='{"echo":["http://127.0.0.1:41001"]}' node test/bench/undici-proxy.mjs --port 41010
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } } });
const routes = new Map(
  Object.entries(JSON.parse(process.env.BENCH_ROUTES ?? '{}')).map(([service, targets]) => [service, { pools: targets.map((t) => new Pool(t)), next: 0 }]),
);
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

function requestHeaders(raw) {
  const out = [];
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) out.push(raw[i], raw[i + 1]);
  return out;
}

function responseHeaders(raw) {
  const out = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toString('latin1');
    if (!HOP.has(name.toLowerCase())) out.push(name, raw[i + 1].toString('latin1'));
  }
  return out;
}

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  const slash = url.indexOf('/', 1);
  const route = routes.get(slash < 0 ? url.slice(1) : url.slice(1, slash));
  if (!route) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    return res.end('unknown service\n');
  }
  const pool = route.pools[route.next];
  route.next = (route.next + 1) % route.pools.length;
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.dispatch(
    { path: slash < 0 ? '/' : url.slice(slash), method: req.method, headers: requestHeaders(req.rawHeaders), body: hasBody ? req : null },
    {
      onConnect() {},
      onHeaders(status, raw, resume) {
        res.writeHead(status, responseHeaders(raw));
        this.resume = resume;
        return true;
      },
      onData(chunk) {
        if (res.write(chunk)) return true;
        res.once('drain', this.resume);
        return false;
      },
      onComplete() {
        res.end();
      },
      onError() {
        if (res.headersSent) return res.destroy();
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('bad gateway\n');
      },
    },
  );
});
server.listen(Number(values.port), values.host, () => {
  process.stdout.write(`${JSON.stringify({ msg: 'undici baseline listening', port: server.address().port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
