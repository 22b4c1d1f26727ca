#!/usr/bin/env node
/**
 * Scale of the registry: SCALE_SERVICES services × SCALE_INSTANCES instances in a real
 * ZooKeeper (defaults 1,000 × 10). Measures puttu's initial sync (process start → /readyz ready with
 * every service read), its RSS once synced and under load, and req/s to one service with the big
 * tree against the same with a one-service tree (interleaved, SCALE_REPEATS × SCALE_SECONDS, after
 * one unmeasured SCALE_WARMUP_SECONDS run each; defaults 5 × 10 s: under load with the big tree
 * the old generation's first full collection came ~35 s in, after which a 3 × 5 s run had ended).
 * Prints figures, asserts nothing.
 *
 *   node test/bench/scale.mjs
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { preflight } from './lib/preflight.mjs';

preflight({ tools: ['wrk'] });
const { installGuards, onCleanup, runMain, spawnTracked } = await import('./lib/processes.mjs');
const { median } = await import('./lib/stats.mjs');
const { runWrk } = await import('./lib/wrk.mjs');
const { rssKiB } = await import('./lib/rss.mjs');
const { waitUntil } = await import('./lib/wait.mjs');
const stack = await import('./lib/stack.mjs');
const { rawClient } = await import('../../dist/test/helpers/zookeeper.js');

const SERVICES = Number(process.env.SCALE_SERVICES ?? 1_000);
const INSTANCES = Number(process.env.SCALE_INSTANCES ?? 10);
const REPEATS = Number(process.env.SCALE_REPEATS ?? 5);
const WARMUP = Number(process.env.SCALE_WARMUP_SECONDS ?? 2);
const SECONDS = Number(process.env.SCALE_SECONDS ?? 10);
// Node options for both proxies, e.g. SCALE_NODE_ARGS=--trace-gc (with BENCH_KEEP=1 to keep the logs).
const NODE_ARGS = (process.env.SCALE_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
const log = (line) => process.stderr.write(`${line}\n`);

installGuards({ timeBoundMs: (240 + 2 * (WARMUP + 25) + REPEATS * 2 * (SECONDS + 25)) * 1_000, label: 'scale' });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-scale-'));
onCleanup('temp folder', () => (process.env.BENCH_KEEP ? log(`kept ${dir}`) : fs.rmSync(dir, { recursive: true, force: true })));

async function main() {
  const zk = await stack.startZk();
  const backends = [await stack.startBackend({ dir, name: 'a' }), await stack.startBackend({ dir, name: 'b' })];
  const raw = await rawClient(zk.connectString);
  onCleanup('raw client', () => raw.close());

  // The big tree: persistent nodes (no session has to hold them), written pipelined.
  log(`writing ${SERVICES} services × ${INSTANCES} instances …`);
  const started = Date.now();
  for (let s = 0; s < SERVICES; s += 50) {
    const batch = [];
    for (let k = s; k < Math.min(s + 50, SERVICES); k++) {
      batch.push(
        (async () => {
          await raw.mkdirp(`/big/svc${k}`);
          await Promise.all(
            Array.from({ length: INSTANCES }, (_, i) =>
              raw.create(
                `/big/svc${k}/i${i}`,
                Buffer.from(JSON.stringify({ protocol: 'http', host: '127.0.0.1', port: backends[i % 2].port, api: '' })),
                'persistent',
              ),
            ),
          );
        })(),
      );
    }
    await Promise.all(batch);
  }
  await raw.mkdirp('/small/svc0');
  for (let i = 0; i < INSTANCES; i++)
    await raw.create(
      `/small/svc0/i${i}`,
      Buffer.from(JSON.stringify({ protocol: 'http', host: '127.0.0.1', port: backends[i % 2].port, api: '' })),
      'persistent',
    );
  log(`tree written in ${Date.now() - started} ms`);

  const proxies = {};
  for (const [name, base, count] of [
    ['big', '/big', SERVICES],
    ['small', '/small', 1],
  ]) {
    const port = await stack.freePort();
    const adminPort = await stack.freePort();
    const t0 = Date.now();
    const proc = spawnTracked(
      `puttu-${name}`,
      process.execPath,
      [
        ...NODE_ARGS,
        stack.BIN,
        'proxy',
        '--zk',
        zk.connectString,
        '--base-path',
        base,
        '--port',
        String(port),
        '--admin-port',
        String(adminPort),
        '--host',
        '127.0.0.1',
        '--log-level',
        'debug',
      ],
      {
        logFile: path.join(dir, `puttu-${name}.log`),
      },
    );
    await waitUntil(
      async () => {
        const snap = await fetch(`http://127.0.0.1:${adminPort}/api/status`)
          .then((r) => r.json())
          .catch(() => undefined);
        return snap?.ready === true && snap.services === count;
      },
      { timeoutMs: 60_000, intervalMs: 20, what: `puttu (${name}) synced` },
    );
    const syncMs = Date.now() - t0;
    proxies[name] = { port, proc, syncMs, syncedRssMiB: rssKiB(proc.pid) / 1024, rps: [], loadRssMiB: [] };
    log(`${name}: synced ${count} services in ${syncMs} ms (process start included), RSS ${proxies[name].syncedRssMiB.toFixed(0)} MiB`);
  }

  // As in `npm run bench`: one unmeasured run per proxy first (JIT, upstream connections, and the
  // garbage of the initial sync collected), so the rounds compare steady states.
  for (const name of ['big', 'small']) {
    const p = proxies[name];
    const service = name === 'big' ? `svc${SERVICES - 1}` : 'svc0';
    await runWrk({
      url: `http://127.0.0.1:${p.port}/${service}/small`,
      connections: 50,
      threads: 1,
      seconds: WARMUP,
      logFile: path.join(dir, `wrk-${name}-warmup.log`),
    });
    log(`${name}: warmed up (${WARMUP} s), RSS ${(rssKiB(p.proc.pid) / 1024).toFixed(0)} MiB`);
  }

  for (let r = 0; r < REPEATS; r++) {
    for (const name of ['big', 'small']) {
      const p = proxies[name];
      const service = name === 'big' ? `svc${SERVICES - 1}` : 'svc0';
      let peak = 0;
      const sampler = setInterval(() => (peak = Math.max(peak, rssKiB(p.proc.pid))), 250);
      const result = await runWrk({
        url: `http://127.0.0.1:${p.port}/${service}/small`,
        connections: 50,
        threads: 1,
        seconds: SECONDS,
        logFile: path.join(dir, `wrk-${name}-${r}.log`),
      });
      clearInterval(sampler);
      p.rps.push(result.rps);
      p.loadRssMiB.push(peak / 1024);
      log(`${name} #${r + 1}: ${Math.round(result.rps)} req/s, peak RSS ${(peak / 1024).toFixed(0)} MiB`);
    }
  }

  const big = proxies.big;
  const small = proxies.small;
  // The one full GC after the initial read (proxy/heap.ts): how long it paused each proxy.
  for (const name of ['big', 'small']) {
    const line = fs
      .readFileSync(path.join(dir, `puttu-${name}.log`), 'utf8')
      .split('\n')
      .find((l) => l.includes('collected the garbage of the initial registry read'));
    if (line) log(`${name}: the full GC after the initial read paused it ${JSON.parse(line).pauseMs} ms`);
  }
  const report = [
    `Scale: ${SERVICES} services × ${INSTANCES} instances (${SERVICES * INSTANCES} znodes), ${REPEATS} × ${SECONDS} s interleaved`,
    '',
    '| tree | initial sync (process start → ready) | RSS synced | req/s (median) | peak RSS under load |',
    '| --- | --: | --: | --: | --: |',
    `| ${SERVICES} services | ${big.syncMs} ms | ${big.syncedRssMiB.toFixed(0)} MiB | ${Math.round(median(big.rps))} | ${Math.max(...big.loadRssMiB).toFixed(0)} MiB |`,
    `| 1 service | ${small.syncMs} ms | ${small.syncedRssMiB.toFixed(0)} MiB | ${Math.round(median(small.rps))} | ${Math.max(...small.loadRssMiB).toFixed(0)} MiB |`,
    '',
    // Each round ran the two back to back: the ratio within a round cancels the machine's drift.
    `req/s ratio, ${SERVICES} services / 1 service: ${median(big.rps.map((r, i) => r / small.rps[i])).toFixed(2)} (median of the rounds' ratios: ${big.rps.map((r, i) => (r / small.rps[i]).toFixed(2)).join(', ')}; ratio of the medians ${(median(big.rps) / median(small.rps)).toFixed(2)})`,
  ].join('\n');
  process.stdout.write(`\n${report}\n`);
}

await runMain(main, 'scale', log);
