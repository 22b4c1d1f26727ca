/**
 * Structured JSON logs through pino: one object per line with `time` (ISO), `level` (by name),
 * `msg` and fields. The Logger interface is ours, so the rest of puttu depends on it, not on pino;
 * it is injected, never a global, and `child()` binds fields such as the component name.
 */
import { pino, type DestinationStream } from 'pino';

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

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; defaults to stderr so stdout stays free for command output. */
  write?: (line: string) => void;
  bindings?: LogFields;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination: DestinationStream = options.write ? { write: options.write } : pino.destination({ fd: 2, sync: true });
  const root = pino(
    {
      level: options.level ?? 'info',
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Errors log as message and code: no stacks of expected failures filling the logs.
      serializers: { error: serializeError },
    },
    destination,
  );
  return wrap(options.bindings ? root.child(options.bindings) : root);
}

function wrap(p: pino.Logger): Logger {
  return {
    debug: (msg, fields) => (fields ? p.debug(fields, msg) : p.debug(msg)),
    info: (msg, fields) => (fields ? p.info(fields, msg) : p.info(msg)),
    warn: (msg, fields) => (fields ? p.warn(fields, msg) : p.warn(msg)),
    error: (msg, fields) => (fields ? p.error(fields, msg) : p.error(msg)),
    child: (bindings) => wrap(p.child(bindings)),
    isLevelEnabled: (level) => level !== 'silent' && p.isLevelEnabled(level),
  };
}

function serializeError(value: unknown): unknown {
  if (!(value instanceof Error)) return value;
  const code = (value as { code?: unknown }).code;
  return code === undefined ? { message: value.message } : { message: value.message, code };
}

export const silentLogger: Logger = createLogger({ level: 'silent' });
