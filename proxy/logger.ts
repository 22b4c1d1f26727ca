/**
 * Structured JSON logs: one object per line with `level` (by name), `time` (ISO), the bound fields,
 * the call's fields and `msg` last. The Logger interface is injected, never a global, and `child()`
 * binds fields such as the component name.
 *
 * Written here rather than with a logging library: what puttu needs is a line of JSON written
 * synchronously to stderr, and a library (pino: its stream, worker-thread transport and
 * serializers) costs several MB of resident memory in a proxy that aims to stay under 60 MB idle.
 * Bound fields are serialised once per logger, as pino does; a line costs one JSON.stringify of the
 * call's fields. Disabled levels cost a comparison.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(bindings: LogFields): Logger;
  isLevelEnabled(level: LogLevel): boolean;
}

export const LOG_LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];
const RANK: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: Infinity };

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go (each ends with a newline); defaults to stderr so stdout stays free for command output. */
  write?: (line: string) => void;
  bindings?: LogFields;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  // stderr is synchronous for files, pipes and terminals on Linux: no line is lost at exit.
  const write = options.write ?? ((line: string) => void process.stderr.write(line));
  return new JsonLogger(RANK[options.level ?? 'info'], write, options.bindings ? fragment(options.bindings) : '');
}

class JsonLogger implements Logger {
  readonly #min: number;
  readonly #write: (line: string) => void;
  /** The bound fields as `"k":v,` (already serialised). */
  readonly #bound: string;

  constructor(min: number, write: (line: string) => void, bound: string) {
    this.#min = min;
    this.#write = write;
    this.#bound = bound;
  }

  debug(msg: string, fields?: LogFields): void {
    if (this.#min <= 20) this.#line('debug', msg, fields);
  }

  info(msg: string, fields?: LogFields): void {
    if (this.#min <= 30) this.#line('info', msg, fields);
  }

  warn(msg: string, fields?: LogFields): void {
    if (this.#min <= 40) this.#line('warn', msg, fields);
  }

  error(msg: string, fields?: LogFields): void {
    if (this.#min <= 50) this.#line('error', msg, fields);
  }

  child(bindings: LogFields): Logger {
    return new JsonLogger(this.#min, this.#write, this.#bound + fragment(bindings));
  }

  isLevelEnabled(level: LogLevel): boolean {
    return level !== 'silent' && this.#min <= RANK[level];
  }

  #line(level: string, msg: string, fields: LogFields | undefined): void {
    const own = fields === undefined ? '' : fragment(fields);
    this.#write(`{"level":"${level}","time":"${new Date().toISOString()}",${this.#bound}${own}"msg":${JSON.stringify(String(msg))}}\n`);
  }
}

/** `fields` as `"k":v,` pairs (undefined values left out), or a note when they cannot be serialised. */
function fragment(fields: LogFields): string {
  let json: string;
  try {
    json = JSON.stringify(fields, serializeValue);
  } catch (error) {
    json = JSON.stringify({ logFieldsError: `fields could not be serialised: ${(error as Error).message}` });
  }
  return json.length <= 2 ? '' : json.slice(1, -1) + ',';
}

/** Errors log as message and code: no stacks of expected failures filling the logs. BigInts as strings. */
function serializeValue(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return code === undefined ? { message: value.message } : { message: value.message, code };
  }
  return typeof value === 'bigint' ? value.toString() : value;
}

export const silentLogger: Logger = createLogger({ level: 'silent' });
