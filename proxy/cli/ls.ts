/** `puttu ls [service]` and `puttu get <service>`: the registry, read once, for people and scripts. */
import { connect } from '../index.js';
import { InvalidRegistrationError, NoEndpointError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { systemClock } from '../clock.js';
import { normalizeBasePath } from '../registry/paths.js';
import { Registry, type ServiceSnapshot } from '../registry/registry.js';
import { byName } from '../registry/view.js';
import { ZkClient } from '../registry/zk-client.js';
import { parseArgs, UsageError, zkTarget, zkTls, ZK_FLAGS, ZK_FLAGS_HELP } from './args.js';

export const LS_HELP = `Usage: puttu ls [service] [--json]

Lists services and their instances (rejected znodes too, with the reason).

  --json                     machine-readable output
${ZK_FLAGS_HELP}

Exit codes: 0 ok; 1 ZooKeeper unreachable; 2 bad usage; 3 the named service does not exist.`;

export const GET_HELP = `Usage: puttu get <service>

Prints the URL of one random live endpoint of <service>, for shell scripts.

${ZK_FLAGS_HELP}

Exit codes: 0 printed; 1 ZooKeeper unreachable; 2 bad usage; 3 no live endpoint.`;

const TIMEOUT_MS = 10_000;

export async function lsCommand(argv: string[], env: NodeJS.ProcessEnv, logger: Logger): Promise<number> {
  const args = parseArgs(argv, { values: [...ZK_FLAGS], bools: ['json'] });
  if (args.bools.has('help')) {
    process.stdout.write(LS_HELP + '\n');
    return 0;
  }
  if (args.positionals.length > 1) throw new UsageError('ls takes at most one service name');
  const only = args.positionals[0];
  const { zk: connectString, basePath } = zkTarget(args, env);
  const tls = zkTls(args, env);
  const zk = new ZkClient({ connectString, logger: logger.child({ component: 'zookeeper' }), ...(tls && { tls }) });
  const registry = new Registry({ zk, basePath: normalizeBasePath(basePath), logger: silentLogger, clock: systemClock, mode: 'all' });
  try {
    registry.start();
    zk.connect();
    await zk.whenConnected(TIMEOUT_MS);
    await registry.whenSynced();
    let services = registry.snapshot().sort(byName);
    if (only !== undefined) {
      services = services.filter((s) => s.name === only);
      if (services.length === 0) {
        process.stderr.write(`puttu ls: no service "${only}" under ${basePath}\n`);
        return 3;
      }
    }
    process.stdout.write(args.bools.has('json') ? JSON.stringify(services.map(toJson), null, 2) + '\n' : table(services));
    return 0;
  } catch (error) {
    process.stderr.write(`puttu ls: ${(error as Error).message}\n`);
    return 1;
  } finally {
    registry.close();
    await zk.close();
  }
}

export async function getCommand(argv: string[], env: NodeJS.ProcessEnv, logger: Logger): Promise<number> {
  const args = parseArgs(argv, { values: [...ZK_FLAGS] });
  if (args.bools.has('help')) {
    process.stdout.write(GET_HELP + '\n');
    return 0;
  }
  const [service, ...extra] = args.positionals;
  if (!service || extra.length > 0) throw new UsageError('get takes exactly one service name');
  const { zk, basePath } = zkTarget(args, env);
  const tls = zkTls(args, env);
  const puttu = connect(zk, basePath, { logger, connectTimeoutMs: TIMEOUT_MS, ...(tls && { tls }) });
  try {
    const endpoint = await puttu.get(service);
    process.stdout.write(endpoint.url + '\n');
    return 0;
  } catch (error) {
    process.stderr.write(`puttu get: ${(error as Error).message}\n`);
    return error instanceof NoEndpointError ? 3 : error instanceof InvalidRegistrationError ? 2 : 1;
  } finally {
    await puttu.close();
  }
}

function toJson(s: ServiceSnapshot) {
  return {
    name: s.name,
    instances: s.instances.map((i) => ({
      id: i.id,
      url: i.url,
      protocol: i.protocol,
      host: i.host,
      port: i.port,
      api: i.api,
      format: i.format,
    })),
    rejected: s.rejected.map((r) => ({
      id: r.id,
      kind: r.kind,
      reason: r.reason,
      ...(r.instance && { url: r.instance.url, format: r.instance.format }),
    })),
  };
}

function table(services: ServiceSnapshot[]): string {
  const rows: string[][] = [['SERVICE', 'INSTANCE', 'URL', 'FORMAT', 'STATE']];
  for (const s of services) {
    if (s.instances.length === 0 && s.rejected.length === 0) rows.push([s.name, '-', '-', '-', 'no instances']);
    for (const i of s.instances) rows.push([s.name, i.id, i.url, i.format, 'ok']);
    for (const r of s.rejected) {
      const state =
        r.kind === 'inactive' ? (/DRAINING/i.test(r.reason) ? 'draining' : 'disabled') : r.kind === 'refused' ? 'refused' : 'rejected';
      rows.push([s.name, r.id, r.instance?.url ?? '-', r.instance?.format ?? '-', `${state}: ${r.reason}`]);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n') + '\n';
}
