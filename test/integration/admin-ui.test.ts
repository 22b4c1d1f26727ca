/**
 * The admin API, Prometheus HTTP service discovery (checked by a real Prometheus) and the status
 * page (checked in headless Chromium through playwright-core).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { connect, type Puttu } from '../../proxy/index.js';
import { freePort } from '../../proxy/dev/local-zookeeper.js';
import { eventually } from '../helpers/eventually.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { request, startUpstream, type Upstream } from '../helpers/upstreams.js';
import { rawClient, startZooKeeper, type TestZooKeeper } from '../helpers/zookeeper.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
let zk: TestZooKeeper;
let proxy: TestProxy;
let lib: Puttu;
let ups: Upstream[];
let deadPort: number;

test.before(async () => {
  zk = await startZooKeeper();
  proxy = await startProxy(zk.connectString, { ejectAfterFailures: 1, ejectionMs: 60_000 });
  lib = connect(zk.connectString, proxy.basePath);
  ups = await Promise.all(['w1', 'w2', 'b1'].map((n) => startUpstream(n)));
  await lib.register('warehouse', { host: '127.0.0.1', port: ups[0]!.port, api: '/warehouse/v1' });
  await lib.register('warehouse', { host: '127.0.0.1', port: ups[1]!.port, api: '/warehouse/v1' });
  await lib.register('billing', { host: '127.0.0.1', port: ups[2]!.port });
  deadPort = await freePort();
  await lib.register('billing', { host: '127.0.0.1', port: deadPort });
  const raw = await rawClient(zk.connectString);
  // Persistent: it must outlive this raw client's session.
  await raw.create(`${proxy.basePath}/billing/garbled`, Buffer.from('{"host": 12}'), 'persistent');
  await eventually(
    () => proxy.app.registry!.get('warehouse')?.instances.length === 2 && proxy.app.registry!.get('billing')?.rejected.length === 1,
  );
  await raw.close();
  for (let i = 0; i < 20; i++) await request(proxy.url + '/warehouse/items');
  // Billing's dead instance fails once and is ejected (retries keep the requests whole).
  for (let i = 0; i < 10; i++) await request(proxy.url + '/billing/invoices');
});

test.after.always(async () => {
  await lib?.close();
  await proxy?.close();
  for (const u of ups ?? []) await u.close();
  await zk?.stop();
});

test('/api/services lists instances with their format, state, why, and request counts', async (t) => {
  const data = (await request(proxy.adminUrl + '/api/services')).json();
  t.true(data.ready);
  t.is(data.zookeeper, 'connected');
  const warehouse = data.services.find((s: any) => s.name === 'warehouse');
  t.is(warehouse.routable, 2);
  t.is(
    warehouse.instances.reduce((n: number, i: any) => n + i.requests, 0),
    20,
  );
  t.true(warehouse.instances.every((i: any) => i.state === 'healthy' && i.format === 'puttu' && i.url.endsWith('/warehouse/v1')));
  const billing = data.services.find((s: any) => s.name === 'billing');
  const dead = billing.instances.find((i: any) => i.url === `http://127.0.0.1:${deadPort}`);
  t.is(dead.state, 'ejected');
  t.regex(dead.reason, /consecutive failures/);
  t.true(dead.failures >= 1);
  const bad = billing.instances.find((i: any) => i.state === 'rejected');
  t.regex(bad.reason, /host/);
  t.is(billing.routable, 1);

  const one = await request(proxy.adminUrl + '/api/services/billing');
  t.is(one.json().name, 'billing');
  t.is((await request(proxy.adminUrl + '/api/services/nope')).status, 404);
});

test('/sd/prometheus feeds a real Prometheus through http_sd_configs', async (t) => {
  const groups = (await request(proxy.adminUrl + '/sd/prometheus')).json();
  t.is(groups.length, 4, 'every routable instance (rejected ones are not targets)');
  t.true(groups.every((g: any) => g.targets.length === 1 && g.labels.puttu_service && g.labels.puttu_instance));

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-prom-sd-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(
    path.join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: puttu-sd\n    http_sd_configs:\n      - url: ${proxy.adminUrl}/sd/prometheus\n        refresh_interval: 1s\n`,
  );
  const port = await freePort();
  const prometheus = spawn(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: 'ignore' },
  );
  t.teardown(() => void prometheus.kill('SIGKILL'));
  const targets = await eventually(
    async () => {
      const r = await request(`http://127.0.0.1:${port}/api/v1/targets`).catch(() => undefined);
      const active = r?.status === 200 ? r.json().data.activeTargets : [];
      return active.length === 4 ? active : undefined;
    },
    { timeoutMs: 30_000, message: 'Prometheus discovered the four instances' },
  );
  t.deepEqual(targets.map((x: any) => x.labels.puttu_service).sort(), ['billing', 'billing', 'warehouse', 'warehouse']);
});

test('the status page shows services, instances and their state in a real browser', async (t) => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1200, height: 760 } });
  const failed: string[] = [];
  page.on('requestfailed', (r) => failed.push(r.url()));
  page.on('request', (r) => {
    if (!r.url().startsWith(proxy.adminUrl)) failed.push(`external: ${r.url()}`);
  });
  await page.goto(proxy.adminUrl + '/');
  await page.waitForSelector('section[data-service="warehouse"]', { timeout: 10_000 });
  // A second poll computes rates from deltas: send traffic in between.
  for (let i = 0; i < 30; i++) await request(proxy.url + '/warehouse/items');
  await page.waitForFunction(() => Number((globalThis as any).document.getElementById('c-rate').textContent) > 0, undefined, {
    timeout: 10_000,
  });
  t.is(await page.textContent('#zk'), 'ZooKeeper connected');
  t.is(await page.textContent('#ready'), 'ready');
  t.is(await page.textContent('#c-services'), '2');
  t.is(await page.textContent('#c-instances'), '3');
  const billing = await page.textContent('section[data-service="billing"]');
  t.regex(billing!, /ejected/);
  t.regex(billing!, /rejected/);
  t.deepEqual(failed, [], 'no request left the admin listener');
  const out = process.env.PUTTU_UPDATE_DOCS
    ? path.join(ROOT, 'docs', 'status-page.png')
    : path.join(os.tmpdir(), `puttu-status-${process.pid}.png`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  await page.screenshot({ path: out, fullPage: true });
  t.true(fs.statSync(out).size > 10_000, 'a real screenshot');
  if (!process.env.PUTTU_UPDATE_DOCS) fs.rmSync(out);
});
