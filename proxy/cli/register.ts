/**
 * `puttu register`: registers an instance for a process that is not written in Node. With a
 * command, it starts it, registers once its port accepts connections, keeps the registration while
 * it runs, deregisters first on a signal, and passes the command's exit code on. Without one, it
 * holds the registration until signalled. With --health-path, it registers only once that path
 * answers 2xx, and keeps the registration DRAINING while it does not (see health-gate.ts).
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import { connect, InvalidRegistrationError } from '../index.js';
import type { Logger } from '../logger.js';
import { intFlag, parseArgs, UsageError, zkTarget, zkTls, ZK_FLAGS, ZK_FLAGS_HELP, type ParsedArgs } from './args.js';
import { HealthGate, probeHost } from './health-gate.js';

export const REGISTER_HELP = `Usage: puttu register <service> --port N [--host H | --interface I] [--api P] [--protocol P]
                      [--health-path /ready ...] [-- command args...]

Registers an instance of <service> in ZooKeeper for as long as this command runs.
With a command after --, starts it, registers once --port accepts connections, and exits with
its exit code; SIGTERM/SIGINT deregister first, then pass the signal on.
With --health-path, registers only once GET <path> on the instance answers 2xx (instead of
waiting for the port), keeps probing, marks the registration DRAINING (proxies stop routing to
it) once the path has not answered 2xx for --health-grace-ms, and UP again at its next 2xx.

  --port <n>                 the instance's port (required)
  --host <ip|name>           address to register (else PUTTU_IP, else --interface)
  --interface <name>         take the IPv4 address of this network interface
  --api <path>               base path of the service on the instance (default /)
  --protocol <http|https>    default http
  --drain-ms <n>             on a signal, stay DRAINING this long before deregistering and stopping the command (default 0)
  --wait-ms <n>              how long to wait for --port to accept connections, or --health-path to
                             answer 2xx, before giving up with exit 1 (default 60000)
  --health-path <path>       readiness path on the instance, e.g. /ready (not under --api); probed at
                             <protocol>://127.0.0.1:<port><path>, or at --host when that is a loopback
                             address (over https the certificate is not verified)
  --health-host <ip|name>    probe this address instead (a program listening only on a public address)
  --health-interval-ms <n>   pause between probes (default 1000)
  --health-timeout-ms <n>    a probe without a complete answer in this long fails (default 1000)
  --health-grace-ms <n>      how long the path may go without a 2xx before DRAINING (default 3000)
${ZK_FLAGS_HELP}

Exit codes: the command's own; without a command 0 after a signal; 1 ZooKeeper unreachable, the
command did not start, or it was not ready (--port, --health-path) within --wait-ms; 2 bad usage
or registration data.`;

export async function registerCommand(argv: string[], env: NodeJS.ProcessEnv, logger: Logger): Promise<number> {
  const args = parseArgs(argv, {
    values: ['port', 'host', 'interface', 'api', 'protocol', 'drain-ms', 'wait-ms', ...HEALTH_FLAGS, ...ZK_FLAGS],
  });
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
  const tls = zkTls(args, env);
  const data = {
    port,
    protocol: protocol as 'http' | 'https',
    api: args.flags.get('api') ?? '',
    ...(args.flags.has('host') && { host: args.flags.get('host')! }),
  };
  const gate = healthGate(args, data, logger.child({ component: 'health' }));

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

  const puttu = connect(zk, basePath, { logger: logger.child({ component: 'library' }), drainMs, ...(tls && { tls }) });
  let stopping: NodeJS.Signals | undefined;
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, () => resolve((stopping ??= s)));
  });

  try {
    if (gate) {
      const outcome = await Promise.race([
        gate.waitUntilHealthy(waitMs).then((ok) => (ok ? ('healthy' as const) : ('timed out' as const))),
        signalled.then(() => 'stopped' as const),
        ...(childExit ? [childExit.then(() => 'stopped' as const)] : []),
      ]);
      if (outcome !== 'healthy') await gate.stop();
      if (outcome === 'timed out') throw new Error(`${gate.url} did not answer 2xx within ${waitMs} ms`);
      if (outcome === 'stopped') return await finish();
    } else if (child) {
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
      ...(gate && { health: gate.url }),
    });
    gate?.watch(reg);
  } catch (error) {
    process.stderr.write(`puttu register: ${(error as Error).message}\n`);
    await gate?.stop();
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
    // No status write may follow (or race) the DRAINING and deletion of close().
    await gate?.stop();
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

const HEALTH_FLAGS = ['health-path', 'health-host', 'health-interval-ms', 'health-timeout-ms', 'health-grace-ms'] as const;

/**
 * The gate of --health-path, or undefined without it. Probed on loopback (see health-gate.ts): the
 * registered host when it is a loopback address, else 127.0.0.1, unless --health-host says.
 */
function healthGate(
  args: ParsedArgs,
  data: { port: number; protocol: 'http' | 'https'; host?: string },
  logger: Logger,
): HealthGate | undefined {
  const path = args.flags.get('health-path');
  if (path === undefined) {
    const stray = HEALTH_FLAGS.find((f) => args.flags.has(f));
    if (stray) throw new UsageError(`--${stray} needs --health-path`);
    return undefined;
  }
  if (!path.startsWith('/') || /[\s#]/.test(path)) throw new UsageError(`--health-path must be a path starting with /, got "${path}"`);
  const intervalMs = intFlag(args, 'health-interval-ms', 10, 3_600_000) ?? 1_000;
  const timeoutMs = intFlag(args, 'health-timeout-ms', 10, 3_600_000) ?? 1_000;
  const graceMs = intFlag(args, 'health-grace-ms', 0, 3_600_000) ?? 3_000;
  const host = args.flags.get('health-host') ?? probeHost(data.host);
  return new HealthGate({ target: { protocol: data.protocol, host, port: data.port, path, timeoutMs }, intervalMs, graceMs, logger });
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
