/**
 * The benchmark's backend: a minimal, fast Node HTTP server. By path: `.../large` answers 256 KiB,
 * `.../huge` 4 MiB, anything else a small body; a request with a body (the 64 KiB upload,
 * post-64k.lua to `/upload`) is read whole and answered with a small body. `--delay-ms N` adds
 * N ms before every answer (the slow instance). `GET /__requests` (asked directly, not through a
 * proxy) answers how many requests it served.
 *
 *   node test/bench/echo-backend.mjs --port 41001 [--delay-ms 50]
 */
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string', default: '127.0.0.1' }, 'delay-ms': { type: 'string', default: '0' } },
});
const delayMs = Number(values['delay-ms']);
const SMALL = Buffer.from('hello from the puttu bench backend\n');
const LARGE = Buffer.alloc(256 * 1024, 'x');
const HUGE = Buffer.alloc(4 * 1024 * 1024, 'x');
const RECEIVED = Buffer.from('received\n');

function reply(res, body) {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
}

function answer(res, body) {
  if (delayMs > 0) setTimeout(reply, delayMs, res, body);
  else reply(res, body);
}

let served = 0;

const server = http.createServer((req, res) => {
  if (req.url === '/__requests') return reply(res, Buffer.from(String(served)));
  served++;
  if (req.method === 'POST' || req.method === 'PUT') {
    req.on('data', () => undefined);
    req.on('end', () => answer(res, RECEIVED));
    return;
  }
  answer(res, req.url.endsWith('/large') ? LARGE : req.url.endsWith('/huge') ? HUGE : SMALL);
});
// Longer than any proxy's idle upstream timeout (nginx's upstream keepalive_timeout is 60 s): a
// proxy must never reuse a connection the backend is closing at that moment (a spurious 502).
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.listen(Number(values.port), values.host, () => {
  process.stdout.write(`${JSON.stringify({ msg: 'echo backend listening', port: server.address().port, delayMs })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
