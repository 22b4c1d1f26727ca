/**
 * Loads the configuration: DEFAULTS ← config file ← environment ← flags. Pure: the caller passes
 * argv, the environment and a file reader, so tests feed it directly (fabio's `Load(args, environ)`).
 */
import { checkZkCertPair } from '../registry/zk-tls.js';
import { ConfigError, DEFAULTS, KEYS, SCHEMA, coerce, toEnv, toKebab, type Config } from './schema.js';

export interface Loaded {
  config: Config;
  help: boolean;
}

export type ReadFile = (path: string) => string;

export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv, readFile: ReadFile): Loaded {
  const flags = parseFlags(argv);
  if (flags.help) return { config: { ...DEFAULTS }, help: true };
  const config: Config = { ...DEFAULTS };
  const configPath = flags.values.get('config') ?? env.PUTTU_CONFIG;
  if (configPath) applyFile(config, configPath, readFile);
  for (const key of KEYS) {
    const value = env[toEnv(key)];
    if (value !== undefined && value !== '') set(config, key, value, `environment ${toEnv(key)}`);
  }
  for (const [name, value] of flags.values) {
    if (name === 'config') continue;
    const key = KEYS.find((k) => toKebab(k) === name);
    if (!key) throw new ConfigError(`--${name}`, 'command line', 'is not a known flag (see --help)');
    set(config, key, value, `--${name}`);
  }
  if ((config.tlsCert === '') !== (config.tlsKey === '')) {
    throw new ConfigError(
      config.tlsCert === '' ? 'tlsCert' : 'tlsKey',
      'configuration',
      'is required when the other of tlsCert/tlsKey is set',
    );
  }
  checkZkTls(config);
  if (config.registrationPort >= 0 && config.registrationToken === '' && config.registrationTokenFile === '') {
    throw new ConfigError(
      'registrationToken',
      'configuration',
      'or registrationTokenFile is required with registrationPort: writes need a token',
    );
  }
  return { config, help: false };
}

/** The ZooKeeper TLS files go with --zk-tls on, and a client certificate with its key. */
function checkZkTls(config: Config): void {
  checkZkCertPair(config);
  const given = (['zkCa', 'zkCert', 'zkKey'] as const).find((key) => config[key] !== '');
  if (given && config.zkTls !== 'on') throw new ConfigError(given, 'configuration', 'is set but zkTls is off: set zkTls on (--zk-tls on)');
}

function set<K extends keyof Config>(config: Config, key: K, raw: unknown, source: string): void {
  config[key] = coerce(key, raw, source);
}

function applyFile(config: Config, path: string, readFile: ReadFile): void {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    throw new ConfigError('config', path, `cannot be read: ${(error as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new ConfigError('config', path, `is not valid JSON: ${(error as Error).message}`);
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) throw new ConfigError('config', path, 'must hold a JSON object');
  for (const [key, value] of Object.entries(data)) {
    if (key === '$schema' || key.startsWith('//')) continue;
    // own keys only: `in` would accept Object.prototype names such as "constructor"
    if (!Object.hasOwn(SCHEMA, key)) throw new ConfigError(key, path, 'is not a known configuration key');
    set(config, key as keyof Config, value, path);
  }
}

interface Flags {
  values: Map<string, string>;
  help: boolean;
}

/** `--key value`, `--key=value`; `-h`/`--help`. Anything else is an error naming it. */
export function parseFlags(argv: readonly string[]): Flags {
  const values = new Map<string, string>();
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--') || arg === '--') throw new ConfigError(arg, 'command line', 'is not a flag (flags look like --port 8080)');
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let value: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    if (value === undefined) {
      value = argv[i + 1];
      if (value === undefined || value.startsWith('--')) throw new ConfigError(`--${name}`, 'command line', 'needs a value');
      i++;
    }
    values.set(name, value);
  }
  return { values, help };
}

export function helpText(command = 'puttu proxy'): string {
  const rows = KEYS.map((key) => {
    const flag = `--${toKebab(key)} <${SCHEMA[key].type === 'int' ? 'n' : 'value'}>`;
    const def = DEFAULTS[key] === '' ? '' : ` (default: ${DEFAULTS[key]})`;
    return `  ${flag.padEnd(32)} ${SCHEMA[key].help}${def}\n  ${''.padEnd(32)} env ${toEnv(key)}`;
  });
  return [
    `Usage: ${command} [flags]`,
    '',
    'Routes /<service>/<path> to a random live instance of <service> registered in ZooKeeper.',
    '',
    'Flags (each also an environment variable and a key of the --config JSON file):',
    `  ${'--config <file>'.padEnd(32)} JSON file with any of the keys below (camelCase)\n  ${''.padEnd(32)} env PUTTU_CONFIG`,
    ...rows,
    `  ${'-h, --help'.padEnd(32)} show this help`,
    `  ${'--tune-runtime on|off'.padEnd(32)} V8 memory and start-up tuning of this process (default on)\n  ${''.padEnd(32)} env PUTTU_TUNE_RUNTIME; not in the config file`,
    '',
    'Precedence: defaults < config file < environment < flags.',
  ].join('\n');
}
