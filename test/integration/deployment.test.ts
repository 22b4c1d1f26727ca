/**
 * The deployment files, checked by real tools since no Docker engine runs here: `docker-compose
 * config` validates the compose file, and the Dockerfile's stages are replayed outside Docker
 * (COPY into a folder per stage, RUN in its WORKDIR), then the runtime stage is started the way its
 * ENTRYPOINT/CMD say, its HEALTHCHECK run, and a request routed through it.
 */
import test from 'ava';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '../../proxy/index.js';
import { eventually } from '../helpers/eventually.js';
import { portOf } from '../helpers/processes.js';
import { request, startUpstream } from '../helpers/upstreams.js';
import { startZooKeeper } from '../helpers/zookeeper.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

test('docker-compose config accepts the compose file, with the services the gateway needs', (t) => {
  const result = spawnSync('docker-compose', ['-f', path.join(ROOT, 'docker-compose.yml'), 'config'], { encoding: 'utf8' });
  if (result.error) t.fail(`docker-compose is not installed: ${result.error.message} (apt-get install -y docker-compose)`);
  t.is(result.status, 0, result.stderr);
  for (const service of ['zookeeper', 'puttu', 'prometheus', 'grafana', 'warehouse-1', 'warehouse-2', 'billing-1']) {
    t.regex(result.stdout, new RegExp(`^  ${service}:`, 'm'), service);
  }
  t.regex(result.stdout, /127\.0\.0\.1:9090/, 'admin port published on loopback only');
});

test('docker-compose config accepts the production file: 3-member ensemble, two proxies, one balancer', (t) => {
  const result = spawnSync('docker-compose', ['-f', path.join(ROOT, 'docker-compose.prod.yml'), 'config'], { encoding: 'utf8' });
  if (result.error) t.fail(`docker-compose is not installed: ${result.error.message} (apt-get install -y docker-compose)`);
  t.is(result.status, 0, result.stderr);
  for (const service of ['zk1', 'zk2', 'zk3', 'puttu-1', 'puttu-2', 'lb']) {
    t.regex(result.stdout, new RegExp(`^  ${service}:`, 'm'), service);
  }
  for (const id of [1, 2, 3]) t.regex(result.stdout, new RegExp(`ZOO_MY_ID: '${id}'`), `zk${id} has its id`);
  t.is(result.stdout.match(/server\.1=zk1:2888:3888;2181 server\.2=zk2:2888:3888;2181 server\.3=zk3:2888:3888;2181/g)?.length, 3);
  t.is(
    result.stdout.match(/^ {4}- zk1:2181,zk2:2181,zk3:2181$/gm)?.length,
    3,
    'both proxies and the sample instance use all three members',
  );
  t.is(result.stdout.match(/^ {4}- published: 8080$/gm)?.length, 1, 'one published proxy port: the balancer');
  const adminPorts = result.stdout.match(/^ {4}- .*:9090(\/tcp)?$/gm) ?? [];
  t.is(adminPorts.length, 2);
  t.true(
    adminPorts.every((p) => p.includes('127.0.0.1:')),
    `admin ports published on loopback only: ${adminPorts.join(' ')}`,
  );
  t.is(result.stdout.match(/\/readyz/g)?.length, 2, "both proxies' healthchecks probe /readyz");

  // The balancer's config, with HAProxy's own checker (the proxies' names resolve only in Docker).
  const cfg = path.join(ROOT, 'config', 'haproxy.cfg');
  const check = spawnSync('haproxy', ['-c', '-f', cfg], { encoding: 'utf8' });
  if (check.error) t.fail(`haproxy is not installed: ${check.error.message} (apt-get install -y haproxy)`);
  t.is(check.status, 0, check.stderr);
  const text = fs.readFileSync(cfg, 'utf8');
  t.regex(text, /option httpchk GET \/readyz/);
  t.regex(text, /check port 9090/);
  t.regex(text, /server puttu-1 puttu-1:8080\n\s+server puttu-2 puttu-2:8080/);
});

interface Instruction {
  op: string;
  args: string;
}

function parseDockerfile(text: string): Array<{ name: string; steps: Instruction[] }> {
  const stages: Array<{ name: string; steps: Instruction[] }> = [];
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  for (const line of lines) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!m || line.trim().startsWith('#')) continue;
    const [, op, args] = m;
    if (op === 'FROM') stages.push({ name: /\bAS\s+(\S+)/i.exec(args!)?.[1] ?? String(stages.length), steps: [] });
    else stages.at(-1)!.steps.push({ op: op!, args: args!.trim() });
  }
  return stages;
}

/** Replays the Dockerfile's stages into `root/<stage>/...`; returns the runtime stage's facts. */
function replay(root: string) {
  const stages = parseDockerfile(fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
  const facts = {
    workdir: '/',
    env: {} as Record<string, string>,
    entrypoint: [] as string[],
    cmd: [] as string[],
    healthcheck: [] as string[],
    user: 'root',
    exposed: [] as string[],
  };
  for (const stage of stages) {
    const fsRoot = path.join(root, stage.name);
    Object.assign(facts, { workdir: '/', env: {}, entrypoint: [], cmd: [], healthcheck: [], user: 'root', exposed: [] });
    const inStage = (p: string) => path.join(fsRoot, path.isAbsolute(p) ? p : path.join(facts.workdir, p));
    for (const { op, args } of stage.steps) {
      if (op === 'WORKDIR') {
        facts.workdir = args;
        fs.mkdirSync(inStage('.'), { recursive: true });
      } else if (op === 'ENV') {
        const [k, v] = args.split('=');
        facts.env[k!] = v!;
      } else if (op === 'COPY') {
        const from = /^--from=(\S+)\s+/.exec(args);
        const parts = args.replace(/^--from=\S+\s+/, '').split(/\s+/);
        const dest = parts.pop()!;
        for (const src of parts) {
          const source = from ? path.join(root, from[1]!, src) : path.join(ROOT, src);
          const target = dest.endsWith('/') ? path.join(inStage(dest), path.basename(src)) : inStage(dest);
          fs.cpSync(source, target, { recursive: true });
        }
      } else if (op === 'RUN') {
        execFileSync('sh', ['-c', args], { cwd: inStage('.'), env: { ...process.env, ...facts.env }, stdio: 'pipe' });
      } else if (op === 'USER') facts.user = args;
      else if (op === 'EXPOSE') facts.exposed = args.split(/\s+/);
      else if (op === 'ENTRYPOINT') facts.entrypoint = JSON.parse(args);
      else if (op === 'CMD') facts.cmd = JSON.parse(args);
      else if (op === 'HEALTHCHECK') facts.healthcheck = JSON.parse(args.replace(/^.*?CMD\s+/, ''));
      else throw new Error(`Dockerfile instruction ${op} is not replayed by this test`);
    }
    Object.assign(facts, { root: inStage('.') });
  }
  return facts as typeof facts & { root: string };
}

test('the Dockerfile stages build a runtime that starts, passes its healthcheck and routes', async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-image-'));
  t.teardown(() => fs.rmSync(work, { recursive: true, force: true }));
  const image = replay(work);
  t.not(image.user, 'root', 'the runtime runs as a non-root user');
  t.deepEqual(image.entrypoint, ['node', 'bin/puttu.js']);
  t.false(fs.existsSync(path.join(image.root, 'node_modules', 'typescript')), 'no dev dependencies in the runtime');
  t.false(fs.existsSync(path.join(image.root, 'test')), 'no tests in the runtime');
  t.true(fs.existsSync(path.join(image.root, 'dist', 'proxy', 'main.js')));

  const zk = await startZooKeeper();
  t.teardown(() => zk.stop());
  // As the image runs it (ENTRYPOINT + CMD), plus what compose adds; both ports moved to 0 (the
  // kernel picks free ones, named in the start-up line) so tests cannot collide, and the
  // healthcheck is pointed at the admin one the same way.
  const args = [
    ...image.entrypoint.slice(1),
    ...image.cmd,
    '--zk',
    zk.connectString,
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--admin-port',
    '0',
  ];
  const child = spawn(image.entrypoint[0] === 'node' ? process.execPath : image.entrypoint[0]!, args, {
    cwd: image.root,
    env: { ...process.env, ...image.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.teardown(() => void child.kill('SIGKILL'));
  const listening = await eventually(() => out.split('\n').find((l) => l.includes('"puttu proxy listening"')), {
    timeoutMs: 20_000,
    message: 'runtime listening',
  });
  const { proxyUrl, adminUrl } = JSON.parse(listening) as { proxyUrl: string; adminUrl: string };
  const port = portOf(proxyUrl);
  const adminPort = portOf(adminUrl);

  const health = image.healthcheck.map((a) => a.replace('9090', String(adminPort)));
  const check = spawnSync(health[0] === 'node' ? process.execPath : health[0]!, health.slice(1), { encoding: 'utf8', timeout: 10_000 });
  t.is(check.status, 0, `HEALTHCHECK ${health.join(' ')} failed: ${check.stderr}`);

  const upstream = await startUpstream('img');
  t.teardown(() => upstream.close());
  const lib = connect(zk.connectString, '/services');
  t.teardown(() => lib.close());
  await lib.register('img', { host: '127.0.0.1', port: upstream.port });
  await eventually(async () => (await request(`http://127.0.0.1:${port}/img/ok`)).status === 200, { message: 'routed by the runtime' });

  child.kill('SIGTERM');
  t.is(await exited, 0);
});
