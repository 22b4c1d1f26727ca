/**
 * `puttu policy get|set|validate|delete <service> [file]`: a service's traffic policy document in
 * ZooKeeper (`<policy path>/<service>`, traffic/policy.ts). `set` checks the document exactly as
 * the proxies will and writes nothing when it is refused.
 */
import fs from 'node:fs';
import type { Logger } from '../logger.js';
import { isValidServiceName, join, normalizeBasePath } from '../registry/paths.js';
import { isNoNode, ZkClient } from '../registry/zk-client.js';
import { ZkError } from '../errors.js';
import { DEFAULTS } from '../config/schema.js';
import { parsePolicy } from '../traffic/policy.js';
import { parseArgs, UsageError } from './args.js';

export const POLICY_HELP = `Usage: puttu policy <get|set|validate|delete> <service> [file]

A service's traffic policy: the JSON document at <policy path>/<service> in ZooKeeper, which every
proxy watches and applies to new requests within a second (see README, "Traffic policy").

  get <service>              print the stored document (on stderr its znode version, and why if refused)
  set <service> <file|->     check the document, then write it (from stdin with -)
  validate <service> [file]  check a file; without one, the document stored in ZooKeeper
  delete <service>           remove the document: the proxy's flags apply again

  --zk <host:port,...>       ZooKeeper (env PUTTU_ZK; default 127.0.0.1:2181)
  --policy-path <path>       where policies live (env PUTTU_POLICY_PATH; default ${DEFAULTS.policyPath})

Exit codes: 0 ok; 1 ZooKeeper unreachable; 2 bad usage or a refused document; 3 no policy stored.`;

const TIMEOUT_MS = 10_000;

export async function policyCommand(argv: string[], env: NodeJS.ProcessEnv, logger: Logger): Promise<number> {
  const args = parseArgs(argv, { values: ['zk', 'policy-path'] });
  if (args.bools.has('help')) {
    process.stdout.write(POLICY_HELP + '\n');
    return 0;
  }
  const [action, service, file, ...extra] = args.positionals;
  if (action === undefined || !['get', 'set', 'validate', 'delete'].includes(action))
    throw new UsageError(`policy needs an action: get, set, validate or delete (puttu policy --help)`);
  if (service === undefined || !isValidServiceName(service))
    throw new UsageError(`policy ${action} needs a service name, got ${JSON.stringify(service ?? '')}`);
  if (extra.length > 0 || (file !== undefined && action !== 'set' && action !== 'validate'))
    throw new UsageError(`too many arguments for policy ${action}`);
  if (action === 'set' && file === undefined) throw new UsageError('policy set needs a file (or - for stdin)');
  let text: string | undefined;
  if (file !== undefined) {
    try {
      text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
    } catch (error) {
      throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
    }
    const parsed = parsePolicy(text);
    if (!parsed.ok) {
      process.stderr.write(`puttu policy: ${file === '-' ? 'stdin' : file}: refused: ${parsed.reason}\n`);
      return 2;
    }
    if (action === 'validate') {
      process.stdout.write(`${file}: a valid policy for ${service}\n`);
      return 0;
    }
  }
  const root = normalizeBasePath(args.flags.get('policy-path') ?? (env.PUTTU_POLICY_PATH || DEFAULTS.policyPath));
  const path = join(root, service);
  const zk = new ZkClient({
    connectString: args.flags.get('zk') ?? (env.PUTTU_ZK || '127.0.0.1:2181'),
    logger: logger.child({ component: 'zookeeper' }),
  });
  try {
    zk.connect();
    await zk.whenConnected(TIMEOUT_MS);
    return await run(zk, action, service, path, text);
  } catch (error) {
    process.stderr.write(`puttu policy: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await zk.close();
  }
}

async function run(zk: ZkClient, action: string, service: string, path: string, text: string | undefined): Promise<number> {
  const stored = async () => {
    try {
      return await zk.getDataWithVersion(path);
    } catch (error) {
      if (isNoNode(error)) return undefined;
      throw error;
    }
  };
  switch (action) {
    case 'set': {
      const data = Buffer.from(text!);
      if (await zk.exists(path)) await zk.setData(path, data);
      else {
        await zk.mkdirp(path.slice(0, path.lastIndexOf('/')) || '/');
        try {
          await zk.create(path, data, 'persistent');
        } catch (error) {
          // Written by someone else meanwhile: ours is the newer.
          if (!(error instanceof ZkError && error.zkCode === 'node_exists')) throw error;
          await zk.setData(path, data);
        }
      }
      const now = await stored();
      process.stdout.write(`policy of ${service} set at ${path} (version ${now?.version ?? '?'})\n`);
      return 0;
    }
    case 'delete':
      try {
        await zk.remove(path);
      } catch (error) {
        if (!isNoNode(error)) throw error;
        process.stderr.write(`puttu policy: no policy for ${service} at ${path}\n`);
        return 3;
      }
      process.stdout.write(`policy of ${service} deleted: the proxies' flags apply\n`);
      return 0;
    default: {
      const doc = await stored();
      if (doc === undefined) {
        process.stderr.write(`puttu policy: no policy for ${service} at ${path}\n`);
        return 3;
      }
      const parsed = parsePolicy(doc.data);
      if (action === 'get') {
        process.stdout.write(doc.data.toString('utf8').trimEnd() + '\n');
        process.stderr.write(`version ${doc.version}${parsed.ok ? '' : ` (refused by the proxies: ${parsed.reason})`}\n`);
        return 0;
      }
      if (!parsed.ok) {
        process.stderr.write(`puttu policy: ${path} (version ${doc.version}): refused: ${parsed.reason}\n`);
        return 2;
      }
      process.stdout.write(`${path} (version ${doc.version}): a valid policy for ${service}\n`);
      return 0;
    }
  }
}
