/** Real processes for tests: `puttu <command>` started with node directly (signals must reach it). */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eventually } from './eventually.js';

export const BIN = fileURLToPath(new URL('../../../bin/puttu.js', import.meta.url));

/**
 * The port of a URL a puttu process logged. Tests start its listeners on port 0 and read the
 * kernel's pick from the start-up line, so no other process can take the port first.
 */
export function portOf(url: unknown): number {
  const port = Number(new URL(String(url)).port);
  if (!(port > 0)) throw new Error(`no port in ${String(url)}`);
  return port;
}

/**
 * The child's exit code, once what it wrote before exiting has been read too: 'exit' can come
 * before the last of its output, so it waits for both pipes to end (at most a second: a
 * grandchild still holding them, a cluster worker say, must not hold the test).
 */
export function exitCode(child: ChildProcess): Promise<number | null> {
  const ended = (stream: NodeJS.ReadableStream | null) =>
    stream === null || (stream as { readableEnded?: boolean }).readableEnded
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          stream.once('end', resolve);
          stream.once('close', resolve);
        });
  const drained = Promise.all([ended(child.stdout), ended(child.stderr)]);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      const bound = setTimeout(() => resolve(code), 1_000);
      void drained.then(() => {
        clearTimeout(bound);
        resolve(code);
      });
    }),
  );
}

export interface PuttuProcess {
  child: ChildProcess;
  /** Parsed JSON log lines so far. */
  lines(): any[];
  output(): string;
  exited: Promise<number | null>;
  /** Waits for a log line whose msg matches. */
  waitFor(msg: string | RegExp, timeoutMs?: number): Promise<any>;
  kill(signal?: NodeJS.Signals): void;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

export function puttu(args: string[], env: NodeJS.ProcessEnv = {}): PuttuProcess {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  const exited = exitCode(child).then((code) => {
    running.delete(child);
    return code;
  });
  const lines = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
  return {
    child,
    lines,
    output: () => out,
    exited,
    waitFor: (msg, timeoutMs = 20_000) =>
      eventually(() => lines().find((l) => (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg))), {
        timeoutMs,
        message: `log line ${msg}`,
      }),
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** A `puttu echo` backend, resolved once registered: its port and znode name. */
export async function startEcho(
  zk: string,
  basePath: string,
  service: string,
  extra: string[] = [],
): Promise<PuttuProcess & { port: number; instance: string }> {
  const p = puttu(
    ['echo', '--service', service, '--zk', zk, '--base-path', basePath, '--host', '127.0.0.1', '--listen-host', '127.0.0.1', ...extra],
    {
      PUTTU_LOG_LEVEL: 'info',
    },
  );
  const line = await p.waitFor('echo backend registered');
  return Object.assign(p, { port: line.listening as number, instance: line.instance as string });
}
