/**
 * Debian's HAProxy as a reference reverse proxy: its config in the run's folder, one thread
 * (`nbthread 1`, the one core nginx's single worker and puttu get), `balance random`, idle
 * upstream connections shared between requests (`http-reuse always`). HAProxy's `random` is
 * `random(2)`: of two random draws, the server with fewer requests in flight (a p2c, which shows
 * in the slow-instance scenario). Started in the foreground
 * (`-db`: no daemon, no master process) as our child, so it is one process, stopped by PID.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnTracked } from './processes.mjs';
import { untilAnswers } from './wait.mjs';

/**
 * The fields puttu adds to every request and response (X-Forwarded-For/-Proto/-Host, Via, an
 * X-Request-Id both ways), set the HAProxy way, as lib/nginx.mjs does for nginx.
 */
const FORWARDING = `
  option forwardfor
  unique-id-format %[uuid()]
  unique-id-header X-Request-Id
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request add-header Via "1.1 haproxy"
  http-response set-header X-Request-Id %[unique-id]`;

/** `routes`: service → backend ports. `/<service>/<rest>` goes to `<backend>/<rest>`. */
export function haproxyConfig({ port, routes, forwarding = true }) {
  const services = Object.keys(routes);
  const backends = Object.entries(routes).map(
    ([service, ports]) => `
backend ${service}
  balance random
  http-reuse always
  http-request replace-path ^/${service}(/.*)$ \\1
${ports.map((p, i) => `  server ${service}${i} 127.0.0.1:${p}`).join('\n')}`,
  );
  return `# written by test/bench (puttu benchmark); deleted after the run
global
  nbthread 1
  maxconn 8192

defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 65s
  timeout server 65s
  # wrk keeps its connections for the whole run, as with nginx (keepalive_timeout 65s).
  timeout http-keep-alive 65s

frontend bench
  bind 127.0.0.1:${port}${forwarding ? FORWARDING : ''}
${services.map((s) => `  use_backend ${s} if { path_beg /${s}/ }`).join('\n')}
${backends.join('\n')}
`;
}

/** Starts HAProxy and resolves once it answers on `port`; `pids()` is its one process. */
export async function startHaproxy({ binary, dir, port, routes, logFile, forwarding = true }) {
  fs.mkdirSync(dir, { recursive: true });
  const conf = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(conf, haproxyConfig({ port, routes, forwarding }));
  const proc = spawnTracked('haproxy', binary, ['-db', '-f', conf], { logFile, cwd: dir });
  await untilAnswers(proc, 'haproxy', port);
  return { name: 'haproxy', proc, port, pids: () => (proc.alive() ? [proc.pid] : []) };
}
