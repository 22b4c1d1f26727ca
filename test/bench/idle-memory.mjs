#!/usr/bin/env node
/**
 * Where an idle puttu's resident memory is: starts puttu (default settings, metrics on, one service
 * with two instances in a real ZooKeeper) IDLE_STARTS times per variant, waits IDLE_SECONDS after
 * it has read the registry, and prints the median RSS split by mapping (`/proc/<pid>/smaps`): the
 * node binary's code and read-only data, anonymous memory (V8's heap, malloc, stacks), the rest.
 * Prints figures, asserts nothing.
 *
 *   node test/bench/idle-memory.mjs [VARIANT ...]
 *
 * VARIANT: LABEL or LABEL=node-option,node-option (e.g. `opt=--opt`, the optimizing compiler left
 * on through start-up; `pool1=--v8-pool-size=1`). Default: `puttu`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { preflight } from './lib/preflight.mjs';

preflight({ tools: [] });
const { installGuards, onCleanup, runMain } = await import('./lib/processes.mjs');
const { median } = await import('./lib/stats.mjs');
const stack = await import('./lib/stack.mjs');

const STARTS = Number(process.env.IDLE_STARTS ?? 3);
const SECONDS = Number(process.env.IDLE_SECONDS ?? 5);
const variants = (process.argv.length > 2 ? process.argv.slice(2) : ['puttu']).map((v) => {
  const [label, options = ''] = v.split('=', 2);
  return { label, nodeArgs: options.split(',').filter(Boolean) };
});
const log = (line) => process.stderr.write(`${line}\n`);
installGuards({ timeBoundMs: (STARTS * variants.length * (SECONDS + 15) + 60) * 1000, label: 'idle-memory' });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-idle-'));
onCleanup('temp folder', () => fs.rmSync(dir, { recursive: true, force: true }));

/** KiB resident per kind of mapping. */
function residentByKind(pid) {
  const kinds = { 'node code': 0, 'node data': 0, anonymous: 0, other: 0, total: 0 };
  let kind = 'other';
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const [, perms, file] = m;
      if (file.endsWith('/node')) kind = perms.includes('x') ? 'node code' : 'node data';
      else if (file === '' || file === '[heap]' || file === '[stack]') kind = 'anonymous';
      else kind = 'other';
    } else if (line.startsWith('Rss:')) {
      const kib = Number(line.split(/\s+/)[1]);
      kinds[kind] += kib;
      kinds.total += kib;
    }
  }
  return kinds;
}

async function main() {
  const zk = await stack.startZk();
  const backends = [await stack.startBackend({ dir, name: 'a' }), await stack.startBackend({ dir, name: 'b' })];
  await stack.registerBackends(zk.connectString, { echo: backends });
  const rows = [];
  for (const v of variants) {
    const samples = [];
    for (let i = 0; i < STARTS; i++) {
      const p = await stack.startPuttu({ dir, zk: zk.connectString, name: `${v.label}-${i}`, nodeArgs: v.nodeArgs, expect: { echo: 2 } });
      await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
      samples.push(residentByKind(p.proc.pid));
      await p.proc.stop();
    }
    const row = { label: v.label };
    for (const k of Object.keys(samples[0])) row[k] = median(samples.map((s) => s[k]));
    rows.push(row);
    log(`${v.label}: ${(row.total / 1024).toFixed(1)} MiB (${samples.map((s) => (s.total / 1024).toFixed(1)).join(', ')})`);
  }
  const kinds = ['total', 'node code', 'node data', 'anonymous', 'other'];
  const out = [
    `Idle RSS, MiB (median of ${STARTS} starts, ${SECONDS} s after the registry was read; node ${process.version})`,
    '',
    `| variant | ${kinds.join(' | ')} |`,
    `| --- | ${kinds.map(() => '--:').join(' | ')} |`,
    ...rows.map((r) => `| ${r.label} | ${kinds.map((k) => (r[k] / 1024).toFixed(1)).join(' | ')} |`),
  ];
  process.stdout.write(out.join('\n') + '\n');
}

await runMain(main, 'idle-memory', log);
