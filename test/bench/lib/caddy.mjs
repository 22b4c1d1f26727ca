/**
 * Debian's Caddy as a reference reverse proxy: `reverse_proxy` with `lb_policy random`, plain
 * HTTP on a loopback port, Go limited to one core (GOMAXPROCS=1, as nginx's single worker and
 * puttu). Its JSON config (the Caddyfile's native form, so nothing is adapted or guessed) turns off
 * everything that could leave the machine or the run's folder: no admin endpoint, no automatic
 * HTTPS (no ACME, no certificates), no autosaved config; HOME and the XDG folders point into the
 * run's folder. Started in the foreground (`caddy run`) as our child, one process, stopped by PID.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnTracked } from './processes.mjs';
import { untilAnswers } from './wait.mjs';

/**
 * The fields puttu adds to every request and response, as lib/nginx.mjs sets them for nginx:
 * Caddy's reverse_proxy sets X-Forwarded-For/-Proto/-Host itself; Via and an X-Request-Id both
 * ways are added here. `forwarding: false` adds nothing (Caddy's own three fields remain).
 */
const FORWARDING = {
  request: { set: { Via: ['1.1 caddy'], 'X-Request-Id': ['{http.request.uuid}'] } },
  response: { set: { 'X-Request-Id': ['{http.request.uuid}'] } },
};

/** `routes`: service → backend ports. `/<service>/<rest>` goes to `<backend>/<rest>`. */
export function caddyConfig({ port, routes, forwarding = true }) {
  const route = ([service, ports]) => ({
    match: [{ path: [`/${service}/*`] }],
    handle: [
      { handler: 'rewrite', strip_path_prefix: `/${service}` },
      {
        handler: 'reverse_proxy',
        upstreams: ports.map((p) => ({ dial: `127.0.0.1:${p}` })),
        load_balancing: { selection_policy: { policy: 'random' } },
        ...(forwarding && { headers: FORWARDING }),
        transport: {
          protocol: 'http',
          // Bodies as they are (no Accept-Encoding: gzip added), as the other proxies forward them.
          compression: false,
          // Idle upstream connections kept as nginx's `keepalive 64` keeps them.
          keep_alive: { max_idle_conns_per_host: 64, idle_timeout: 65 * 1e9 },
        },
      },
    ],
    terminal: true,
  });
  return {
    admin: { disabled: true, config: { persist: false } },
    logging: { logs: { default: { level: 'WARN' } } },
    apps: {
      http: {
        grace_period: 1e9,
        servers: {
          bench: {
            listen: [`127.0.0.1:${port}`],
            automatic_https: { disable: true },
            routes: Object.entries(routes).map(route),
          },
        },
      },
    },
  };
}

/** Starts Caddy and resolves once it answers on `port`; `pids()` is its one process. */
export async function startCaddy({ binary, dir, port, routes, logFile, forwarding = true }) {
  fs.mkdirSync(dir, { recursive: true });
  const conf = path.join(dir, 'caddy.json');
  fs.writeFileSync(conf, JSON.stringify(caddyConfig({ port, routes, forwarding }), null, 2));
  const env = {
    GOMAXPROCS: '1',
    HOME: dir,
    XDG_CONFIG_HOME: path.join(dir, 'config'),
    XDG_DATA_HOME: path.join(dir, 'data'),
    XDG_CACHE_HOME: path.join(dir, 'cache'),
    NO_PROXY: '*',
  };
  const proc = spawnTracked('caddy', binary, ['run', '--config', conf], { logFile, env, cwd: dir });
  await untilAnswers(proc, 'caddy', port);
  return { name: 'caddy', proc, port, pids: () => (proc.alive() ? [proc.pid] : []) };
}
