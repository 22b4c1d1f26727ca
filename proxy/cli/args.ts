/** Flag parsing for the small commands: `--name value`, `--name=value`, booleans, positionals, `--`. */
import { ConfigError, UsageError } from '../errors.js';
import { readZkTlsFiles, type ZkTlsOptions } from '../registry/zk-tls.js';
import { toEnv, toKebab } from '../config/schema.js';

export { UsageError };

export interface ParsedArgs {
  positionals: string[];
  flags: Map<string, string>;
  bools: Set<string>;
  /** Everything after a bare `--`. */
  rest: string[];
}

export function parseArgs(argv: readonly string[], spec: { values: readonly string[]; bools?: readonly string[] }): ParsedArgs {
  const parsed: ParsedArgs = { positionals: [], flags: new Map(), bools: new Set(), rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      parsed.rest = argv.slice(i + 1);
      break;
    }
    if (arg === '-h') {
      parsed.bools.add('help');
      continue;
    }
    if (!arg.startsWith('--')) {
      parsed.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (name === 'help' || spec.bools?.includes(name)) {
      parsed.bools.add(name);
      continue;
    }
    if (!spec.values.includes(name)) throw new UsageError(`unknown flag --${name}`);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new UsageError(`--${name} needs a value`);
    parsed.flags.set(name, value);
  }
  return parsed;
}

export function intFlag(args: ParsedArgs, name: string, min: number, max: number): number | undefined {
  const raw = args.flags.get(name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  return n;
}

/** ZooKeeper and base path for the client commands: flag, else env, else the local defaults. */
export function zkTarget(args: ParsedArgs, env: NodeJS.ProcessEnv): { zk: string; basePath: string } {
  return {
    zk: args.flags.get('zk') ?? (env.PUTTU_ZK || '127.0.0.1:2181'),
    basePath: args.flags.get('base-path') ?? (env.PUTTU_BASE_PATH || '/services'),
  };
}

/** The flags zkTarget and zkTls read, for parseArgs' `values`. */
export const ZK_FLAGS = ['zk', 'base-path', 'zk-tls', 'zk-ca', 'zk-cert', 'zk-key'] as const;

/** ZooKeeper over TLS for the client commands, as the proxy takes it: flag, else env; undefined: plain TCP. */
export function zkTls(args: ParsedArgs, env: NodeJS.ProcessEnv): ZkTlsOptions | undefined {
  // The same names as the proxy's configuration keys: --zk-tls and PUTTU_ZK_TLS for zkTls, and so on.
  const value = (key: 'zkTls' | 'zkCa' | 'zkCert' | 'zkKey') => args.flags.get(toKebab(key)) ?? (env[toEnv(key)] || '');
  const on = value('zkTls') || 'off';
  if (on !== 'on' && on !== 'off') throw new UsageError(`--zk-tls must be on or off, got "${on}"`);
  const files = { zkCa: value('zkCa'), zkCert: value('zkCert'), zkKey: value('zkKey') };
  const given = Object.entries(files).find(([, file]) => file !== '');
  if (on === 'off') {
    if (given) throw new UsageError(`--${toKebab(given[0])} needs --zk-tls on`);
    return undefined;
  }
  try {
    return readZkTlsFiles(files, 'command line');
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(error.message);
    throw error;
  }
}

export const ZK_FLAGS_HELP = `  --zk <host:port,...>       ZooKeeper (env PUTTU_ZK; default 127.0.0.1:2181)
  --base-path <path>         where services live (env PUTTU_BASE_PATH; default /services)
  --zk-tls <on|off>          connect to ZooKeeper over TLS (its secureClientPort; env PUTTU_ZK_TLS)
  --zk-ca <file>             PEM CAs of ZooKeeper's certificate (env PUTTU_ZK_CA; default: system CAs)
  --zk-cert <file>           PEM client certificate, for ssl.clientAuth=need (env PUTTU_ZK_CERT)
  --zk-key <file>            PEM key of --zk-cert (env PUTTU_ZK_KEY)`;
