import test from 'ava';
import { createLogger, type LogLevel } from '../../proxy/logger.js';

function capture(level: LogLevel = 'info', bindings?: Record<string, unknown>) {
  const lines: string[] = [];
  const logger = createLogger({ level, write: (line) => lines.push(line), ...(bindings && { bindings }) });
  return { logger, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, any>) };
}

test('one JSON object per line: level by name, ISO time, bound fields, the call fields, msg last', (t) => {
  const { logger, lines, parsed } = capture('info', { app: 'puttu' });
  logger.child({ component: 'registry' }).info('instance added', { service: 'warehouse', port: 10001, gone: undefined });
  t.is(lines.length, 1);
  t.true(lines[0]!.endsWith('}\n'));
  const [line] = parsed();
  t.deepEqual(Object.keys(line!), ['level', 'time', 'app', 'component', 'service', 'port', 'msg']);
  t.like(line, { level: 'info', app: 'puttu', component: 'registry', service: 'warehouse', port: 10001, msg: 'instance added' });
  t.is(new Date(line!.time as string).toISOString(), line!.time);
});

test('levels below the configured one are dropped; silent drops everything', (t) => {
  const warn = capture('warn');
  warn.logger.debug('d');
  warn.logger.info('i');
  warn.logger.warn('w');
  warn.logger.error('e');
  t.deepEqual(
    warn.parsed().map((l) => l.level),
    ['warn', 'error'],
  );
  t.false(warn.logger.isLevelEnabled('info'));
  t.true(warn.logger.isLevelEnabled('error'));
  t.false(warn.logger.isLevelEnabled('silent'));
  const silent = capture('silent');
  silent.logger.error('e');
  t.is(silent.lines.length, 0);
  t.false(silent.logger.isLevelEnabled('error'));
});

test('errors log as message and code (no stack); bigints as strings; odd messages stay valid JSON', (t) => {
  const { logger, parsed } = capture('debug');
  const error = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  logger.error('upstream failed "badly"\n', { error, nested: { cause: new Error('inner') }, big: 10n });
  const [line] = parsed();
  t.deepEqual(line!.error, { message: 'connect ECONNREFUSED', code: 'ECONNREFUSED' });
  t.deepEqual(line!.nested, { cause: { message: 'inner' } });
  t.is(line!.big, '10');
  t.is(line!.msg, 'upstream failed "badly"\n');
});

test('fields that cannot be serialised still give a line, saying so', (t) => {
  const { logger, parsed } = capture();
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  logger.info('with a cycle', { cyclic });
  const [line] = parsed();
  t.is(line!.msg, 'with a cycle');
  t.regex(line!.logFieldsError as string, /could not be serialised/);
});
