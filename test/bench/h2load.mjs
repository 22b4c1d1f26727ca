#!/usr/bin/env node
/**
 * The HTTP/2 scenarios of `npm run bench`: puttu's prior-knowledge h2c listener next to nginx's
 * `http2` listener, both in front of the same two HTTP/1.1 echo backends (registered in a real
 * ZooKeeper for puttu), measured with h2load (Debian's nghttp2-client), interleaved rounds,
 * medians printed. Numbers are output, never asserted.
 *
 *   node test/bench/h2load.mjs [--seconds S] [--rounds N]
 *
 *   --seconds S   BENCH_SECONDS=3   length of each measured h2load run (after a 1 s warm-up)
 *   --rounds N    BENCH_REPEATS=3   interleaved rounds per scenario
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { preflight } from './lib/preflight.mjs';

const { values: opts } = parseArgs({ options: { seconds: { type: 'string' }, rounds: { type: 'string' } } });
const tools = preflight({ tools: ['nginx', 'h2load'] });
const { installGuards, onCleanup, runMain } = await import('./lib/processes.mjs');
const { startNginx } = await import('./lib/nginx.mjs');
const { cpuSeconds } = await import('./lib/cpu.mjs');
const { startRssSampler } = await import('./lib/rss.mjs');
const { median } = await import('./lib/stats.mjs');
const stack = await import('./lib/stack.mjs');

const SECONDS = Number(opts.seconds ?? process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(opts.rounds ?? process.env.BENCH_REPEATS ?? 3);
/** Connections × streams in flight per connection, and the path. */
const SCENARIOS = [
  { id: 'h2c-c10-m10', clients: 10, streams: 10, path: '/echo/small', about: '10 connections × 10 concurrent streams, small GET' },
  { id: 'h2c-c50-m1', clients: 50, streams: 1, path: '/echo/small', about: '50 connections × 1 stream, small GET' },
  { id: 'h2c-c4-m32-256k', clients: 4, streams: 32, path: '/echo/large', about: '4 connections × 32 streams, 256 KiB GET' },
];
installGuards({ timeBoundMs: (SCENARIOS.length * 2 * ROUNDS * (SECONDS + 3) + 180) * 1_000, label: 'h2load' });
const log = (line) => process.stderr.write(`${line}\n`);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-h2load-'));
onCleanup('temp folder', () => fs.rmSync(dir, { recursive: true, force: true }));

function h2load(url, s, seconds) {
  const args = ['-c', String(s.clients), '-m', String(s.streams), '-t', '1', '-D', String(seconds), '--warm-up-time=1', url];
  return new Promise((resolve, reject) =>
    execFile(tools.h2load, args, { timeout: (seconds + 30) * 1_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
  );
}

/** req/s, requests done and failed, mean time per request (ms) from h2load's report. */
function parse(out) {
  const rps = Number(/finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out)?.[1]);
  const m = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  const t = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
  const ms = (v) =>
    v === undefined
      ? Number.NaN
      : v.endsWith('us')
        ? Number(v.slice(0, -2)) / 1000
        : v.endsWith('ms')
          ? Number(v.slice(0, -2))
          : Number(v.slice(0, -1)) * 1000;
  return { rps, done: Number(m?.[2]), failed: Number(m?.[4]) + Number(m?.[5]), meanMs: ms(t?.[3]), maxMs: ms(t?.[2]) };
}

async function main() {
  const zk = await stack.startZk();
  const backends = await Promise.all([stack.startBackend({ dir, name: 'a' }), stack.startBackend({ dir, name: 'b' })]);
  await stack.registerBackends(zk.connectString, { echo: backends });
  const nginx = await startNginx({
    binary: tools.nginx,
    dir: path.join(dir, 'nginx'),
    port: await stack.freePort(),
    routes: { echo: backends.map((b) => b.port) },
    logFile: path.join(dir, 'nginx.log'),
    http2: true,
  });
  const puttu = await stack.startPuttu({ dir, zk: zk.connectString, expect: { echo: 2 } });
  const targets = [
    { label: 'nginx (http2)', ...nginx },
    { label: 'puttu (h2c)', ...puttu },
  ];
  log(`h2load ${ROUNDS} rounds × ${SECONDS} s per proxy and scenario; one core each (nginx 1 worker, puttu one process)`);
  const rows = [];
  for (const s of SCENARIOS) {
    const runs = targets.map(() => []);
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < targets.length; k++) {
        const i = (k + r) % targets.length;
        const t = targets[i];
        const cpu0 = cpuSeconds(t.pids()).total;
        const rss = startRssSampler(t.pids);
        const started = Date.now();
        const run = parse(await h2load(`http://127.0.0.1:${t.port}${s.path}`, s, SECONDS));
        const wall = (Date.now() - started) / 1000;
        run.cpu = (cpuSeconds(t.pids()).total - cpu0) / wall;
        run.peakMiB = rss.stop().peakKiB / 1024;
        runs[i].push(run);
        log(
          `[${s.id} ${r + 1}/${ROUNDS}] ${t.label.padEnd(14)} ${Math.round(run.rps)} req/s, mean ${run.meanMs.toFixed(2)} ms, failed ${run.failed}, CPU ${Math.round(run.cpu * 100)}%`,
        );
      }
    }
    for (let i = 0; i < targets.length; i++) {
      const m = (f) => median(runs[i].map(f));
      rows.push({
        scenario: s.id,
        proxy: targets[i].label,
        rps: m((x) => x.rps),
        meanMs: m((x) => x.meanMs),
        failed: runs[i].reduce((n, x) => n + x.failed, 0),
        cpu: m((x) => x.cpu),
        peakMiB: Math.max(...runs[i].map((x) => x.peakMiB)),
      });
    }
  }
  const lines = [
    `puttu h2c benchmark (h2load), ${new Date().toISOString()}; ${ROUNDS} interleaved rounds × ${SECONDS} s, medians`,
    ...SCENARIOS.map((s) => `  ${s.id}: ${s.about}`),
    '',
    '| scenario | proxy | req/s | mean latency | failed | CPU | max RSS |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.proxy} | ${Math.round(r.rps)} | ${r.meanMs.toFixed(2)} ms | ${r.failed} | ${Math.round(r.cpu * 100)}% | ${r.peakMiB.toFixed(1)} MB |`,
    ),
  ];
  process.stdout.write(`\n${lines.join('\n')}\n`);
}

await runMain(main, 'h2load', log);
