import { spawnSync } from 'node:child_process';
import test from 'ava';

const HEAP = new URL('../../proxy/heap.js', import.meta.url).href;

/**
 * Runs a fresh node that allocates short-lived objects for `ms` (as a busy proxy does) with the
 * young generation capped at `capMiB` (or not capped), and returns what it saw.
 */
function churn(capMiB: number | undefined, nodeArgs: string[] = [], ms = 1_500, startHeld = false): { youngBytes: number; installed: boolean; capped: boolean } {
  const script = `
    import v8 from 'node:v8';
    import { capYoungGeneration } from ${JSON.stringify(HEAP)};
    // As bin/puttu.js does (startup-flags.ts): growth stopped while the program loads.
    if (${startHeld}) v8.setFlagsFromString('--semi-space-growth-factor=1');
    const cap = ${capMiB === undefined ? 'undefined' : `capYoungGeneration(${capMiB})`};
    let keep = [];
    const end = Date.now() + ${ms};
    // Timers between bursts: the GC observer is told between them, as in the event loop of a server.
    const tick = () => {
      for (let i = 0; i < 2000; i++) { keep.push({ i, s: 'x' + i, a: [i] }); if (keep.length > 5000) keep = []; }
      if (Date.now() < end) return setImmediate(tick);
      const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size;
      console.log(JSON.stringify({ youngBytes: young, installed: cap !== undefined, capped: cap?.capped ?? false }));
      cap?.stop();
    };
    tick();`;
  const r = spawnSync(process.execPath, [...nodeArgs, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, NODE_OPTIONS: '' } });
  if (r.status !== 0) throw new Error(`node exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim());
}

const MiB = 1024 * 1024;

test('the young generation stops growing at the cap (both semi-spaces: 2 × cap)', (t) => {
  const free = churn(undefined);
  // Uncapped, the same allocation grows it past what the cap allows: the check below can fail.
  t.true(free.youngBytes > 2 * 2 * MiB + MiB, `uncapped young generation ${free.youngBytes} bytes`);
  const capped = churn(2);
  t.true(capped.installed);
  t.true(capped.capped, 'growth was stopped');
  t.true(capped.youngBytes <= 2 * 2 * MiB + MiB, `capped young generation ${capped.youngBytes} bytes`);
});

test('started with growth stopped (as the CLI starts), it grows again up to the cap', (t) => {
  const r = churn(4, [], 1_500, true);
  t.true(r.installed);
  t.true(r.youngBytes > 2 * 2 * MiB, `young generation ${r.youngBytes} bytes: it grew past 2 × 2 MiB`);
  t.true(r.youngBytes <= 2 * 4 * MiB + MiB, `young generation ${r.youngBytes} bytes: at most the cap`);
});

test("an operator's --max-semi-space-size wins: no cap is installed", (t) => {
  const r = churn(2, ['--max-semi-space-size=8']);
  t.false(r.installed);
  t.true(r.youngBytes > 2 * 2 * MiB + MiB, 'the young generation grew past the cap the code asked for');
});

test('collectGarbageOnce runs a full collection: an unreachable old object is gone after it', (t) => {
  const script = `
    import { collectGarbageOnce } from ${JSON.stringify(HEAP)};
    let target = { big: new Array(100000).fill(1) };
    const ref = new WeakRef(target);
    // Old enough to have left the young generation: two scavenges' worth of allocation later.
    for (let i = 0; i < 200000; i++) globalThis.sink = { i };
    target = undefined;
    // A WeakRef's target is held until the end of the turn that last read it.
    setImmediate(() => {
      const ms = collectGarbageOnce();
      console.log(JSON.stringify({ collected: ref.deref() === undefined, ms }));
    });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, NODE_OPTIONS: '' } });
  t.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim()) as { collected: boolean; ms: number };
  t.true(out.collected);
  t.true(out.ms >= 0);
});
