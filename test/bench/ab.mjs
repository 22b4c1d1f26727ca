#!/usr/bin/env node
/**
 * A/B runs: two or more proxies on the same backends, one wrk run each in turn, repeated, medians
 * printed. For measuring one change against another build with enough repeats to see past the
 * noise of a shared 2-core machine (±10 % between single runs).
 *
 *   node test/bench/ab.mjs [options] TARGET TARGET ...
 *
 * TARGET:
 *   nginx | haproxy | caddy | http-proxy | undici
 *                                      the baselines of `npm run bench` (undici: undici-proxy.mjs)
 *   nginx-plain | haproxy-plain | caddy-plain
 *                                      without the forwarding fields puttu adds (lib/nginx.mjs,
 *                                      lib/haproxy.mjs, lib/caddy.mjs; Caddy keeps its X-Forwarded-*)
 *   script:LABEL=FILE                  a baseline-like script (BENCH_ROUTES, --port), e.g. a prototype
 *   puttu[:LABEL][=DIR][,FLAG,...]     puttu from DIR (a built tree, default this one) with extra
 *                                      `puttu proxy` flags, e.g. puttu:p2c,--balancer,p2c; a FLAG
 *                                      `node:X` is a node option: puttu:s4,node:--max-semi-space-size=4
 * Options:
 *   --rounds N (5)  --seconds S (5)  --connections C (50)  --threads T (1)  --path P (/echo/small)
 *   --warmup S (2)  --node-args "A B"  (for every puttu, e.g. "--max-semi-space-size=8")
 *   --script FILE  a wrk Lua script, e.g. --script test/bench/post-64k.lua --path /echo/upload
 * BENCH_KEEP=1 keeps the temporary folder with every process's log (e.g. with node:--trace-deopt).
 *
 * Example: build a variant into /tmp/b (`git worktree add /tmp/b && cd /tmp/b && npm ci && npx tsc`),
 * then `node test/bench/ab.mjs puttu:main puttu:b=/tmp/b undici nginx`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { preflight } from './lib/preflight.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '50' },
    threads: { type: 'string', default: '1' },
    path: { type: 'string', default: '/echo/small' },
    warmup: { type: 'string', default: '2' },
    'node-args': { type: 'string', default: '' },
    script: { type: 'string' },
  },
});
if (positionals.length === 0) {
  process.stderr.write(
    'usage: node test/bench/ab.mjs [--rounds N] [--seconds S] [--connections C] TARGET ... (see the top of this file)\n',
  );
  process.exit(2);
}
/** The targets run by a binary of their own (a Debian package), and how each is started. */
const EXTERNAL = /^(nginx|haproxy|caddy)(-plain)?$/;
const tools = preflight({
  tools: ['wrk', ...new Set(positionals.map((p) => EXTERNAL.exec(p)?.[1]).filter(Boolean))],
});
const { installGuards, onCleanup, runMain } = await import('./lib/processes.mjs');
const { startNginx } = await import('./lib/nginx.mjs');
const { startHaproxy } = await import('./lib/haproxy.mjs');
const { startCaddy } = await import('./lib/caddy.mjs');
const starters = { nginx: startNginx, haproxy: startHaproxy, caddy: startCaddy };
const { describeRun, idleRssKiB, measure } = await import('./lib/measure.mjs');
const { median } = await import('./lib/stats.mjs');
const stack = await import('./lib/stack.mjs');

const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const WARMUP = Number(values.warmup);
const scenario = {
  path: values.path,
  connections: Number(values.connections),
  ...(values.script && { script: path.resolve(values.script) }),
};
const threads = Math.min(Number(values.threads), scenario.connections);
installGuards({ timeBoundMs: (positionals.length * (ROUNDS * (SECONDS + 2) + WARMUP + 15) + 120) * 1_000, label: 'ab' });
const log = (line) => process.stderr.write(`${line}\n`);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'puttu-ab-'));
onCleanup('temp folder', () =>
  process.env.BENCH_KEEP ? process.stderr.write(`kept ${dir}\n`) : fs.rmSync(dir, { recursive: true, force: true }),
);

async function startTarget(spec, ctx) {
  const external = EXTERNAL.exec(spec);
  if (external) {
    const [, name, plain] = external;
    return {
      label: spec,
      ...(await starters[name]({
        binary: tools[name],
        dir: path.join(dir, spec),
        port: await stack.freePort(),
        routes: ctx.routes,
        logFile: path.join(dir, `${spec}.log`),
        forwarding: !plain,
      })),
    };
  }
  if (spec === 'http-proxy') return { label: 'http-proxy', ...(await stack.startHttpProxy({ dir, routes: ctx.routes })) };
  if (spec === 'undici') return { label: 'undici', ...(await stack.startUndiciProxy({ dir, routes: ctx.routes })) };
  if (spec.startsWith('script:')) {
    const [label, file] = spec.slice(7).split('=');
    return { label, ...(await stack.startBaselineScript({ dir, routes: ctx.routes, name: label, script: path.resolve(file) })) };
  }
  const m = /^puttu(?::([\w.-]+))?(?:=([^,]+))?((?:,[^,]+)*)$/.exec(spec);
  if (!m) throw new Error(`unknown target ${spec}`);
  const label = m[1] ?? 'puttu';
  const tree = m[2] ? path.resolve(m[2]) : undefined;
  const all = m[3] ? m[3].slice(1).split(',') : [];
  const flags = all.filter((f) => !f.startsWith('node:'));
  const nodeArgs = [...values['node-args'].split(' ').filter(Boolean), ...all.filter((f) => f.startsWith('node:')).map((f) => f.slice(5))];
  return {
    label,
    ...(await stack.startPuttu({
      dir,
      zk: ctx.zk,
      name: label,
      flags,
      nodeArgs,
      expect: { echo: 2 },
      ...(tree && { bin: path.join(tree, 'bin/puttu.js') }),
    })),
  };
}

async function main() {
  const zk = await stack.startZk();
  const backends = await Promise.all([stack.startBackend({ dir, name: 'a' }), stack.startBackend({ dir, name: 'b' })]);
  await stack.registerBackends(zk.connectString, { echo: backends });
  const ctx = { zk: zk.connectString, routes: { echo: backends.map((b) => b.port) } };
  const targets = [];
  for (const spec of positionals) targets.push(await startTarget(spec, ctx));
  for (const t of targets) t.idleKiB = await idleRssKiB(t);
  for (const t of targets)
    if (WARMUP > 0) await measure({ target: t, scenario, seconds: WARMUP, threads, logFile: path.join(dir, 'warmup.log') });
  const runs = new Map(targets.map((t) => [t, []]));
  for (let r = 0; r < ROUNDS; r++) {
    // Rotate the order each round, so no target always runs right after the same neighbour.
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + r) % targets.length];
      const run = await measure({ target: t, scenario, seconds: SECONDS, threads, logFile: path.join(dir, `wrk-${r}-${i}.log`) });
      runs.get(t).push(run);
      log(`[${r + 1}/${ROUNDS}] ${t.label.padEnd(12)} ${describeRun(run)}`);
    }
  }
  const first = median(runs.get(targets[0]).map((x) => x.rps));
  const rows = targets.map((t) => {
    const rs = runs.get(t);
    const med = (f) => median(rs.map(f));
    const rps = med((x) => x.rps);
    return [
      t.label,
      Math.round(rps).toLocaleString('en'),
      `${(rps / first).toFixed(2)}×`,
      rs.map((x) => Math.round(x.rps / 100) / 10).join(' '),
      med((x) => x.p50).toFixed(2),
      med((x) => x.p99).toFixed(2),
      Math.round(med((x) => (x.cores * 1e6) / x.rps)).toString(),
      (t.idleKiB / 1024).toFixed(0),
      (Math.max(...rs.map((x) => x.peakKiB)) / 1024).toFixed(0),
      (med((x) => x.foreign) * 100).toFixed(0) + '%',
    ];
  });
  const head = [
    'target',
    'req/s',
    `vs ${targets[0].label}`,
    'runs (k req/s)',
    'p50 ms',
    'p99 ms',
    'CPU µs/req',
    'idle MB',
    'peak MB',
    'others',
  ];
  const lines = [head, ...rows].map((r) => `| ${r.join(' | ')} |`);
  lines.splice(1, 0, `|${head.map(() => ' --- ').join('|')}|`);
  process.stdout.write(
    `wrk -t${threads} -c${scenario.connections} ${scenario.path}, ${ROUNDS} rounds × ${SECONDS} s, medians\n${lines.join('\n')}\n`,
  );
}

await runMain(main, 'ab', log);
