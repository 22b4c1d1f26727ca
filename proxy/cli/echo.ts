/**
 * `puttu echo`: a demo backend that registers itself. It answers every request with JSON that
 * describes the request and which instance served it: the docker-compose gateway's sample
 * services and the README's first steps.
 */
import http from 'node:http';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import { connect, InvalidRegistrationError } from '../index.js';
import type { Logger } from '../logger.js';
import { intFlag, parseArgs, UsageError, zkTarget, zkTls, ZK_FLAGS, ZK_FLAGS_HELP } from './args.js';

export const ECHO_HELP = `Usage: puttu echo --service NAME [--port N] [--listen-host H] [--host H | --interface I] [--api P]

Runs a small HTTP server that answers every request with JSON describing it (and which
instance answered), registered in ZooKeeper as an instance of NAME until stopped.

  --service <name>           service to register as (required)
  --port <n>                 port to listen on (default: any free port)
  --listen-host <ip>         address to listen on (default 0.0.0.0)
  --host <ip|name>           address to register (else PUTTU_IP, else --interface, else 127.0.0.1)
  --interface <name>         register the IPv4 address of this network interface
  --api <path>               base path to register (default /)
  --drain-ms <n>             on SIGTERM, stay DRAINING and serving this long before leaving (default 500)
${ZK_FLAGS_HELP}

Exit codes: 0 after SIGTERM/SIGINT; 1 ZooKeeper unreachable or the port is taken; 2 bad usage.`;

export async function echoCommand(argv: string[], env: NodeJS.ProcessEnv, logger: Logger): Promise<number> {
  const args = parseArgs(argv, { values: ['service', 'port', 'listen-host', 'host', 'interface', 'api', 'drain-ms', ...ZK_FLAGS] });
  if (args.bools.has('help')) {
    process.stdout.write(ECHO_HELP + '\n');
    return 0;
  }
  const service = args.flags.get('service');
  if (!service) throw new UsageError('--service is required');
  if (args.positionals.length > 0) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
  const port = intFlag(args, 'port', 0, 65535) ?? 0;
  const drainMs = intFlag(args, 'drain-ms', 0, 3_600_000) ?? 500;
  const { zk, basePath } = zkTarget(args, env);
  const tls = zkTls(args, env);
  const api = args.flags.get('api') ?? '';
  let instance = '';
  let served = 0;

  const server = http.createServer((req, res) => {
    served++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const reply = JSON.stringify({
        service,
        instance,
        hostname: os.hostname(),
        served,
        method: req.method,
        url: req.url,
        headers: req.headers,
        bodyBytes: body.length,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': instance });
      res.end(reply + '\n');
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, args.flags.get('listen-host') ?? '0.0.0.0', resolve);
    });
  } catch (error) {
    process.stderr.write(`puttu echo: cannot listen on port ${port}: ${(error as Error).message}\n`);
    return 1;
  }
  const actualPort = (server.address() as AddressInfo).port;
  const iface = args.flags.get('interface');
  const host = args.flags.get('host') ?? (env.PUTTU_IP || iface ? undefined : '127.0.0.1');

  const puttu = connect(zk, basePath, { logger: logger.child({ component: 'library' }), drainMs, ...(tls && { tls }) });
  try {
    const reg = await puttu.register(service, { port: actualPort, api, ...(host && { host }) }, iface);
    instance = reg.path.slice(reg.path.lastIndexOf('/') + 1);
    logger.info('echo backend registered', {
      service,
      instance,
      listening: actualPort,
      url: `http://${reg.endpoint.host}:${actualPort}${api}`,
    });
  } catch (error) {
    process.stderr.write(`puttu echo: ${(error as Error).message}\n`);
    server.close();
    await puttu.close();
    return error instanceof InvalidRegistrationError ? 2 : 1;
  }

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  // Marked DRAINING first (proxies stop routing here), still serving through the drain, then the
  // node and the session go, then the server stops.
  await puttu.close();
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
  logger.info('echo backend stopped', { service, instance, signal });
  return 0;
}
