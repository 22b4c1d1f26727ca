/**
 * The baseline: a minimal proxy on the `http-proxy` package with a keep-alive agent, round-robin
 * over a static list of backends per service. `/<service>/<rest>` goes to `<backend>/<rest>`, as
 * with puttu and the nginx configuration. No ZooKeeper, no metrics, no header passes of its own.
 *
 *   BENCH_ROUTES='{"echo":["http://127.0.0.1:41001"]}' node test/bench/http-proxy-server.mjs --port 41010
 */
import http from 'node:http';
import httpProxy from 'http-proxy';
import { badGateway, startBaseline } from './lib/baseline.mjs';

const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
const proxy = httpProxy.createProxyServer({ agent });
proxy.on('error', (_error, _req, res) => badGateway(res));

startBaseline(
  'http-proxy',
  (url) => url,
  (req, res, target, path) => {
    req.url = path;
    proxy.web(req, res, { target });
  },
);
