/**
 * `puttu register`: registers an instance for a process that is not written in Node. With a
 * command, it starts it, registers once its port accepts connections, keeps the registration while
 * it runs, deregisters first on a signal, and passes the command's exit code on. Without one, it
 * holds the registration until signalled.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import { connect, InvalidRegistrationError } from '../index.js';
import type { Logger } from '../logger.js';
import { intFlag, parseArgs, UsageError, zkTarget, ZK_FLAGS_HELP } from './args.js';

export const REGISTER_HELP = `Usage: puttu register <service> --port N [--host H | --interface I] [--api P] [--protocol P] [-- command args...]

Registers an instance of <service> in ZooKeeper for as long as this command runs.
With a command after --, starts it, registers once --port accepts connections, and exits with
its exit code; SIGTERM/SIGINT deregister first, then pass the signal on.

  --port <n>                 the instance's port (required)
  --host <ip|name>           address to register (else PUTTU_IP, else --interface)
  --interface <name>         take the IPv4 address of this network interface
  --api <path>               base path of the service on the instance (default /)
  --protocol <http|https>    default http
  --drain-ms <n>             on a signal, stay DRAINING this long before deregistering and stopping the command (default 0)
  --wait-ms <n>              how long to wait for --port to accept connections (default 60000)
${ZK_FLAGS_HELP}

Exit codes: the command's own; without a command 0 after a signal; 1 ZooKeeper unreachable or the
command did not start; 2 bad usage or registration data.`;

export async function registerCommand(argv: string[], env: NodeJS.ProcessEnv, logger: Logger): Promise<number> {
  const args = parseArgs(argv, { values: ['port', 'host', 'interface', 'api', 'protocol', 'zk', 'base-path', 'drain-ms', 'wait-ms'] });
  if (args.bools.has('help')) {
    process.stdout.write(REGISTER_HELP + '\n');
    return 0;
  }
  const [service, ...extra] = args.positionals;
  if (!service || extra.length > 0) throw new UsageError('register takes exactly one service name (see puttu register --help)');
  const port = intFlag(args, 'port', 1, 65535);
  if (port === undefined) throw new UsageError('--port is required');
  const drainMs = intFlag(args, 'drain-ms', 0, 3_600_000) ?? 0;
  const waitMs = intFlag(args, 'wait-ms', 0, 3_600_000) ?? 60_000;
  const protocol = args.flags.get('protocol') ?? 'http';
  if (protocol !== 'http' && protocol !== 'https') throw new UsageError(`--protocol must be http or https, got "${protocol}"`);
  const { zk, basePath } = zkTarget(args, env);
  const data = {
    port,
    protocol: protocol as 'http' | 'https',
    api: args.flags.get('api') ?? '',
    ...(args.flags.has('host') && { host: args.flags.get('host')! }),
  };

  const [command, ...commandArgs] = args.rest;
  const child = command ? spawn(command, commandArgs, { stdio: 'inherit' }) : undefined;
  const childExit = child
    ? new Promise<number>((resolve) => {
        child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? signalNumber(signal) : 0)));
        child.on('error', (error) => {
          logger.error('the command did not start', { command, error });
          resolve(1);
        });
      })
    : undefined;

  const puttu = connect(zk, basePath, { logger: logger.child({ component: 'library' }), drainMs });
  let stopping: NodeJS.Signals | undefined;
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, () => resolve((stopping ??= s)));
  });

  try {
    if (child) {
      const ready = await Promise.race([
        waitForPort(data.host ?? '127.0.0.1', port, waitMs).then(() => true),
        childExit!.then(() => false),
        signalled.then(() => false),
      ]);
      if (!ready) return await finish();
    }
    const reg = await puttu.register(service, data, args.flags.get('interface'));
    logger.info('registered; reach it through the proxy at /' + service + '/', {
      service,
      path: reg.path,
      url: `${reg.endpoint.protocol}://${reg.endpoint.host}:${reg.endpoint.port}${reg.endpoint.api}`,
    });
  } catch (error) {
    process.stderr.write(`puttu register: ${(error as Error).message}\n`);
    child?.kill('SIGTERM');
    await puttu.close();
    return error instanceof InvalidRegistrationError ? 2 : 1;
  }
  return finish();

  async function finish(): Promise<number> {
    const outcome = await Promise.race([
      signalled.then((s) => ({ signal: s })),
      ...(childExit ? [childExit.then((code) => ({ code }))] : []),
    ]);
    if ('code' in outcome) {
      await puttu.close();
      return outcome.code;
    }
    // DRAINING first so proxies stop sending traffic, the drain, deregistered; then the process stops.
    await puttu.close();
    logger.info('deregistered', { service, signal: outcome.signal });
    if (!child) return 0;
    child.kill(outcome.signal);
    return childExit!;
  }
}

function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = net.connect({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`nothing accepted connections on ${host}:${port} within ${timeoutMs} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  return (os.constants.signals as Record<string, number>)[signal] ?? 0;
}
