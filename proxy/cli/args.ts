/** Flag parsing for the small commands: `--name value`, `--name=value`, booleans, positionals, `--`. */
import { UsageError } from '../errors.js';

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

export const ZK_FLAGS_HELP = `  --zk <host:port,...>       ZooKeeper (env PUTTU_ZK; default 127.0.0.1:2181)
  --base-path <path>         where services live (env PUTTU_BASE_PATH; default /services)`;
