/**
 * A small structured logger: one JSON object per line, written to a sink.
 * Injected, never a global; `child()` binds fields such as the component name.
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

const RANK: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: 100 };
export const LOG_LEVELS = Object.keys(RANK) as LogLevel[];

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; defaults to stderr so stdout stays free for command output. */
  write?: (line: string) => void;
  now?: () => number;
  bindings?: LogFields;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = RANK[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const now = options.now ?? Date.now;
  return build(options.bindings ?? {});

  function build(bindings: LogFields): Logger {
    const log = (level: LogLevel) => (msg: string, fields?: LogFields) => {
      if (RANK[level] < threshold) return;
      const record = { time: new Date(now()).toISOString(), level, msg, ...bindings, ...fields };
      write(JSON.stringify(record, replaceErrors) + '\n');
    };
    return {
      debug: log('debug'),
      info: log('info'),
      warn: log('warn'),
      error: log('error'),
      child: (more) => build({ ...bindings, ...more }),
      isLevelEnabled: (level) => RANK[level] >= threshold,
    };
  }
}

/** Errors serialise to their message and code, never to `{}`. */
function replaceErrors(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return code === undefined ? { message: value.message } : { message: value.message, code };
  }
  return value;
}

export const silentLogger: Logger = createLogger({ level: 'silent' });
