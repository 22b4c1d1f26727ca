/**
 * The baseline: a minimal proxy on the `http-proxy` package with a keep-alive agent, round-robin
 * over a static list of backends per service. `/<service>/<rest>` goes to `<backend>/<rest>`, as
 * with puttu and the nginx configuration. No ZooKeeper, no metrics, no header passes of its own.
 *
 *   BENCH_ROUTES='{"echo":["http://127.0.0.1:41001"]}' node test/bench/http-proxy-server.mjs --port 41010
 */
import http from 'node:http';
import { parseArgs } from 'node:util';
import httpProxy from 'http-proxy';

const { values } = parseArgs({ options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' } } });
const routes = new Map(Object.entries(JSON.parse(process.env.BENCH_ROUTES ?? '{}')).map(([service, targets]) => [service, { targets, next: 0 }]));

const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
const proxy = httpProxy.createProxyServer({ agent });
proxy.on('error', (_error, _req, res) => {
  if (res.headersSent || typeof res.writeHead !== 'function') return res.destroy?.();
  res.writeHead(502, { 'content-type': 'text/plain' });
  res.end('bad gateway\n');
});

const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  const slash = url.indexOf('/', 1);
  const route = routes.get(slash < 0 ? url.slice(1) : url.slice(1, slash));
  if (!route) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    return res.end('unknown service\n');
  }
  const target = route.targets[route.next];
  route.next = (route.next + 1) % route.targets.length;
  req.url = slash < 0 ? '/' : url.slice(slash);
  proxy.web(req, res, { target });
});
server.listen(Number(values.port), values.host, () => {
  process.stdout.write(`${JSON.stringify({ msg: 'http-proxy baseline listening', port: server.address().port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
