import { spawnSync } from 'node:child_process';
import test from 'ava';

const FLAGS = new URL('../../proxy/startup-flags.js', import.meta.url).href;

/**
 * Runs a fresh node that loads startup-flags.js as bin/puttu.js does, makes one function hot before
 * `startupOver()` and another after it, and returns the names V8's --trace-opt says it optimized.
 */
function optimized(nodeArgs: string[] = []): string[] {
  const script = `
    const { startupOver } = await import(${JSON.stringify(FLAGS)});
    function hotDuringStartup(i) { return (i * 31) ^ (i >>> 3); }
    function hotAfterStartup(i) { return (i * 17) ^ (i >>> 5); }
    let sum = 0;
    const spin = (f) => { for (let round = 0; round < 50; round++) for (let i = 0; i < 20000; i++) sum += f(i); };
    spin(hotDuringStartup);
    startupOver();
    spin(hotAfterStartup);
    await new Promise((resolve) => setTimeout(resolve, 200)); // concurrent compiles finish
    spin(hotAfterStartup);
    console.log('sum', sum);`;
  const r = spawnSync(process.execPath, ['--trace-opt', ...nodeArgs, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, NODE_OPTIONS: '' } });
  if (r.status !== 0) throw new Error(`node exited ${r.status}: ${r.stderr}`);
  return [...r.stdout.matchAll(/completed optimizing .*?<JSFunction (\w+)/g)].map((m) => m[1]!);
}

test('TurboFan is off while puttu starts and on again after startupOver()', (t) => {
  const names = optimized();
  t.false(names.includes('hotDuringStartup'), names.join(' '));
  t.true(names.includes('hotAfterStartup'), names.join(' '));
});

test("an operator's --no-opt holds after startupOver()", (t) => {
  const names = optimized(['--no-opt']);
  t.deepEqual(names.filter((n) => n.startsWith('hot')), []);
});

test('without the start-up hold (an operator --opt) the start-up code is optimized too: the first test can fail', (t) => {
  const names = optimized(['--opt']);
  t.true(names.includes('hotDuringStartup'), names.join(' '));
});
