/**
 * A proxy worth watching: a real ZooKeeper, the proxy, real backends registered through the
 * library, and ways to cause each thing the dashboard and the alerts chart: 5xx answers, unknown
 * services, a registered instance nobody listens on (refused connections, retries, ejections),
 * unusable and refused znodes, a service without instances. Loopback only.
 */
import type http from 'node:http';
import { connect, type Puttu, type Registration } from '../../proxy/index.js';
import { freePort } from '../../proxy/dev/local-zookeeper.js';
import type { ZkClient } from '../../proxy/registry/zk-client.js';
import { eventually } from '../helpers/eventually.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, startUpstream, type Upstream } from '../helpers/upstreams.js';
import { rawClient, startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

/**
 * The backends' behaviour, chosen by the request: a path containing `/fail` answers 500, and
 * `?ms=N` delays the answer by N ms (a slow backend, so latency panels have something to show).
 */
function backend(req: http.IncomingMessage, res: http.ServerResponse, upstream: Upstream): void {
  const url = new URL(req.url ?? '/', 'http://backend');
  const status = url.pathname.includes('/fail') ? 500 : 200;
  const answer = () => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ from: upstream.name, path: url.pathname }));
  };
  const ms = Number(url.searchParams.get('ms') ?? 0);
  req.resume();
  req.on('end', () => (ms > 0 ? setTimeout(answer, ms) : answer()));
}

export interface Scenario {
  readonly zk: TestZooKeeper;
  readonly proxy: TestProxy;
  readonly lib: Puttu;
  readonly upstreams: readonly Upstream[];
  /** One request through the proxy; resolves with its status. */
  send(pathAndQuery: string, method?: string): Promise<number>;
  /** Registers `upstream` as an instance of `service` and waits until the proxy routes to it. */
  register(service: string, upstream: Upstream): Promise<Registration>;
  /** Registers an instance on a port nobody listens on: its connections are refused. */
  registerDead(service: string): Promise<Registration>;
  /** Adds an unusable znode (not JSON) and one the upstream policy refuses (a link-local address). */
  addRejects(service: string): Promise<void>;
  /** Creates the service's node with no instance under it. */
  addEmptyService(service: string): Promise<void>;
  /** The proxy's /metrics text. */
  scrape(): Promise<string>;
  close(): Promise<void>;
}

export async function startScenario(proxyOverrides: Parameters<typeof startProxy>[1] = {}): Promise<Scenario> {
  const zk = await startZooKeeper();
  const closers: Array<() => Promise<void>> = [() => zk.stop()];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    closers.length = 0;
  };
  try {
    const proxy = await startProxy(zk.connectString, proxyOverrides);
    closers.push(() => proxy.close());
    const upstreams = [await startUpstream('backend-a', backend), await startUpstream('backend-b', backend)];
    for (const u of upstreams) closers.push(() => u.close());
    const lib = connect(zk.connectString, proxy.basePath, { sessionTimeoutMs: 4_000 });
    closers.push(() => lib.close());
    let raw: ZkClient | undefined;
    const rawZk = async () => {
      if (raw === undefined) {
        raw = await rawClient(zk.connectString);
        closers.push(() => raw!.close());
      }
      return raw;
    };
    const instances = (service: string) => proxy.app.registry!.get(service)?.instances.length ?? 0;
    const registered = async (service: string, register: () => Promise<Registration>) => {
      const before = instances(service);
      const registration = await register();
      await eventually(() => instances(service) > before, { message: `proxy sees the new ${service} instance` });
      return registration;
    };
    return {
      zk,
      proxy,
      lib,
      upstreams,
      send: async (pathAndQuery, method = 'GET') => (await request(proxy.url + pathAndQuery, { method })).status,
      register: (service, upstream) => registered(service, () => lib.register(service, { host: '127.0.0.1', port: upstream.port })),
      registerDead: async (service) => {
        const port = await freePort();
        return registered(service, () => lib.register(service, { host: '127.0.0.1', port }));
      },
      addRejects: async (service) => {
        const zkc = await rawZk();
        const dir = `${proxy.basePath}/${service}`;
        await zkc.mkdirp(dir);
        await zkc.create(`${dir}/garbled-`, Buffer.from('this is not an instance'), 'ephemeral_sequential');
        await zkc.create(
          `${dir}/metadata-`,
          Buffer.from(JSON.stringify({ protocol: 'http', host: '169.254.169.254', port: 80 })),
          'ephemeral_sequential',
        );
        await eventually(() => (proxy.app.registry!.get(service)?.rejected.length ?? 0) >= 2, {
          message: `proxy rejects the bad ${service} znodes`,
        });
      },
      addEmptyService: async (service) => {
        await (await rawZk()).mkdirp(`${proxy.basePath}/${service}`);
        await eventually(() => proxy.app.registry!.get(service) !== undefined, { message: `proxy sees the empty service ${service}` });
      },
      scrape: async () => (await request(proxy.adminUrl + '/metrics')).body.toString('utf8'),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The metric names that have at least one sample in a Prometheus text exposition. */
export function sampleNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    const m = /^([A-Za-z_:][\w:]*)[{\s]/.exec(line);
    if (m) names.add(m[1]!);
  }
  return names;
}

/** The value of one sample, e.g. `sampleValue(text, 'puttu_retries_total', { service: 'web' })`. */
export function sampleValue(exposition: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}
