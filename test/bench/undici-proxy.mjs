/**
 * A second baseline: a minimal proxy on undici's `dispatch` API (one keep-alive
 * `Pool` per backend, round-robin over a static list). `/<service>/<rest>` goes to
 * `<backend>/<rest>`. It drops only the hop-by-hop fields undici refuses; no registry, no metrics,
 * no X-Forwarded-*, no error pages beyond a bare 502.
 *
 *   BENCH_ROUTES='{"echo":["http://127.0.0.1:41001"]}' node test/bench/undici-proxy.mjs --port 41010
 */
import { Pool } from 'undici';
import { badGateway, startBaseline } from './lib/baseline.mjs';

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

startBaseline(
  'undici',
  (url) => new Pool(url),
  (req, res, pool, path) => {
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    pool.dispatch(
      { path, method: req.method, headers: requestHeaders(req.rawHeaders), body: hasBody ? req : null },
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
          badGateway(res);
        },
      },
    );
  },
);
