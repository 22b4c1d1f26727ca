/**
 * Debian's nginx as the reference reverse proxy: its own config, pid file, error log and temp
 * folders under the run's folder; one worker; keep-alive to the upstreams. Started in the
 * foreground (`daemon off`) as our child, so it is stopped by PID like everything else.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { adoptPid, onCleanup, spawnTracked } from './processes.mjs';
import { childPids } from './rss.mjs';
import { waitUntil } from './wait.mjs';

/**
 * The fields puttu adds to every request and response (X-Forwarded-For/-Proto/-Host, Via, an
 * X-Request-Id both ways), set the usual nginx way, so both proxies hand the backends the same
 * requests and do the same work. `forwarding: false` leaves them out (`ab.mjs nginx-plain`).
 */
const FORWARDING = `
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header Via "1.1 nginx";
      proxy_set_header X-Request-Id $request_id;
      add_header X-Request-Id $request_id always;`;

/**
 * `routes`: service → backend ports. `/<service>/<rest>` goes to `<backend>/<rest>`. `http2`: the
 * listener speaks prior-knowledge h2c instead of HTTP/1.1 (h2load.mjs).
 */
export function nginxConfig({ dir, port, routes, forwarding = true, http2 = false }) {
  const upstreams = Object.entries(routes).map(
    ([service, ports]) => `
  upstream ${service} {
${ports.map((p) => `    server 127.0.0.1:${p};`).join('\n')}
    keepalive 64;
    keepalive_requests 1000000;
  }`,
  );
  const locations = Object.keys(routes).map(
    (service) => `
    location /${service}/ {
      proxy_pass http://${service}/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";${forwarding ? FORWARDING : ''}
    }`,
  );
  return `# written by test/bench (puttu benchmark); deleted after the run
user root;
worker_processes 1;
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile 8192;
events {
  worker_connections 4096;
}
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  # wrk keeps its connections for the whole run; nginx's default (1000 requests) would close them
  # and make nginx pay reconnects the Node proxies do not.
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  # Keep the 64 KiB request body and the 256 KiB response in memory: the defaults (16 KiB body
  # buffer, 8 x 4 KiB proxy buffers) spill both to temp files on disk. A larger response (4 MiB)
  # is streamed through those buffers at the client's pace instead of spilling to disk, as the
  # other proxies stream it.
  client_body_buffer_size 128k;
  proxy_buffers 64 8k;
  proxy_max_temp_file_size 0;
${upstreams.join('\n')}
  server {
    listen 127.0.0.1:${port}${http2 ? ' http2' : ''};
${locations.join('\n')}
  }
}
`;
}

/** Starts nginx and resolves once it answers on `port`; `pids()` lists master and workers. */
export async function startNginx({ binary, dir, port, routes, logFile, forwarding = true, http2 = false }) {
  fs.mkdirSync(dir, { recursive: true });
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, nginxConfig({ dir, port, routes, forwarding, http2 }));
  const proc = spawnTracked('nginx', binary, ['-p', `${dir}/`, '-c', conf, '-e', path.join(dir, 'error.log')], { logFile });
  await waitUntil(
    async () => {
      if (!proc.alive()) throw new Error(`nginx exited: ${proc.logTail()}\n${readIfExists(path.join(dir, 'error.log'))}`);
      // An h2c listener does not answer HTTP/1.1: that one only has to accept connections.
      const up = http2 ? await accepts(port) : (await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined)) !== undefined;
      return up && childPids(proc.pid).length > 0;
    },
    { timeoutMs: 15_000, what: 'nginx to answer' },
  );
  // Stop the master first (it stops its workers), then kill any worker it left behind.
  const killWorkers = childPids(proc.pid).map(adoptPid);
  onCleanup('nginx', async () => {
    await proc.stop();
    for (const kill of killWorkers) kill();
  });
  return { name: 'nginx', proc, port, pids: () => (proc.alive() ? [proc.pid, ...childPids(proc.pid)] : []) };
}

function accepts(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function readIfExists(file) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
