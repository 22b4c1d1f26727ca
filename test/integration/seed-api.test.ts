/**
 * The module-level API, as puttu was first described: `require('puttu')` (or `import * as puttu`),
 * `puttu.connect(...)`, then `puttu.register(...)` and `puttu.get(...)` on the module. The snippets
 * run as they are written (only the ZooKeeper port changed) in programs of their own, with puttu
 * installed in their node_modules, against a real ZooKeeper.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as puttu from '../../proxy/index.js';
import { eventually } from '../helpers/eventually.js';
import { startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
let zk: TestZooKeeper;
let dir: string;
const children = new Set<ChildProcess>();

test.before(async () => {
  zk = await startZooKeeper();
  // An application folder with puttu installed, as `npm install puttu` leaves it.
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-seed-'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'puttu'), 'dir');
});

test.after.always(async () => {
  for (const child of children) child.kill('SIGKILL');
  await zk?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs `source` as `file` in the application folder; resolves with its stdout once `done` holds. */
function run(file: string, source: string, env: NodeJS.ProcessEnv = {}): { output: () => string; child: ChildProcess } {
  fs.writeFileSync(path.join(dir, file), source);
  const child = spawn(process.execPath, [file], { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  return { output: () => out, child };
}

const port = () => zk.connectString.split(':').pop()!;

test('the snippet with require(): a warehouse registers with puttu.register, another program finds it with puttu.get', async (t) => {
  const base = '/myRegistry/endpoints';
  // 'en0' is the interface the snippet names; this machine has none, so PUTTU_IP gives the host.
  const warehouse = run(
    'warehouse.js',
    `var puttu = require('puttu');
puttu.connect('localhost:${port()}', '${base}');
var data = { protocol: 'https', port: 10001, api: '/warehouse/v1' };
puttu.register('warehouse', data, 'en0').then(function () { console.log('registered'); }, function (err) { console.log('failed', err.code, err.message); });
`,
    { PUTTU_IP: '10.0.0.5' },
  );
  await eventually(() => warehouse.output().includes('registered'), { timeoutMs: 20_000, message: 'the warehouse registered' });
  t.false(warehouse.output().includes('failed'), warehouse.output());

  const shop = run(
    'shop.js',
    `var puttu = require('puttu');
puttu.connect('localhost:${port()}', '${base}');
puttu.get('warehouse').then(function (endpoint) {
  console.log(JSON.stringify({ asString: '' + endpoint, url: endpoint.url, protocol: endpoint.protocol, host: endpoint.host, port: endpoint.port, api: endpoint.api }));
  process.exit(0);
});
`,
  );
  await eventually(() => shop.output().includes('{'), { timeoutMs: 20_000, message: 'the shop got an endpoint' });
  t.deepEqual(JSON.parse(shop.output().trim()), {
    asString: 'https://10.0.0.5:10001/warehouse/v1',
    url: 'https://10.0.0.5:10001/warehouse/v1',
    protocol: 'https',
    host: '10.0.0.5',
    port: 10001,
    api: '/warehouse/v1',
  });

  // The node is under the snippet's base path, with the data's fields.
  const lib = puttu.connect(zk.connectString, base);
  t.teardown(() => lib.close());
  t.deepEqual(
    (await lib.list('warehouse')).map((e) => e.url),
    ['https://10.0.0.5:10001/warehouse/v1'],
  );
});

test('the same with import * as puttu, in an ES module', async (t) => {
  const base = '/esm';
  const app = run(
    'app.mjs',
    `import * as puttu from 'puttu';
puttu.connect('localhost:${port()}', '${base}');
await puttu.register('billing', { port: 9000, api: '/billing' }, 'en0');
const endpoint = await puttu.get('billing');
console.log(JSON.stringify({ url: String(endpoint), all: (await puttu.list('billing')).length }));
await puttu.close();
`,
    { PUTTU_IP: '10.0.0.7' },
  );
  const code = await new Promise<number | null>((resolve) => app.child.once('exit', resolve));
  t.is(code, 0, app.output());
  t.deepEqual(JSON.parse(app.output().trim()), { url: 'http://10.0.0.7:9000/billing', all: 1 });
});

test('module-level calls before connect() reject with a clear error; the interface lookup names what the machine has', async (t) => {
  const app = run(
    'early.js',
    `var puttu = require('puttu');
puttu.get('warehouse').catch(function (err) {
  console.log(JSON.stringify({ name: err.name, code: err.code, message: err.message }));
  puttu.connect('localhost:${port()}', '/early');
  return puttu.register('warehouse', { port: 1 }, 'no-such-interface0');
}).catch(function (err) {
  console.log(JSON.stringify({ name: err.name, code: err.code, message: err.message }));
  return puttu.close();
});
`,
    { PUTTU_IP: '' },
  );
  const code = await new Promise<number | null>((resolve) => app.child.once('exit', resolve));
  t.is(code, 0, app.output());
  const [first, second] = app
    .output()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { name: string; code: string; message: string });
  t.is(first!.name, 'NotConnectedError');
  t.is(first!.code, 'PUTTU_NOT_CONNECTED');
  t.regex(first!.message, /call connect\(connectString, basePath\)/);
  t.is(second!.name, 'InvalidRegistrationError');
  t.regex(second!.message, /no-such-interface0|network interface/);
  t.regex(second!.message, /lo\b/, 'it lists the interfaces this machine has');
});
