#!/usr/bin/env node
/**
 * Where a V8 .cpuprofile (node --cpu-prof) spent its time: the top functions by self time, and
 * the same time grouped by origin (puttu, undici, prom-client, node core, GC, ...).
 *
 *   node test/bench/cpuprofile-summary.mjs <file.cpuprofile> [--top 15]
 */
import fs from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

function shortUrl(url) {
  return url
    .replace(/^file:\/\//, '')
    .replace(ROOT, '')
    .replace(/^.*\/node_modules\//, 'node_modules/');
}

export function originOf({ functionName, url }) {
  if (SPECIAL.has(functionName)) return functionName;
  if (!url) return '(native / builtins)';
  if (url.startsWith('node:')) return 'node core';
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1];
  if (url.includes('/dist/proxy/')) return 'puttu (dist/proxy)';
  return shortUrl(url);
}

/**
 * Self time per function: each sample's node is charged the time until the next sample (as
 * Chrome DevTools does); functions are keyed by name and location.
 */
export function summarise(profile) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const dt = timeDeltas[i + 1] ?? 0;
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + dt);
  }
  const byFunction = new Map();
  const byOrigin = new Map();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const { callFrame } = nodes.get(id);
    const name = callFrame.functionName || '(anonymous)';
    const location = callFrame.url ? `${shortUrl(callFrame.url)}:${callFrame.lineNumber + 1}` : '';
    const key = `${name} ${location}`;
    const f = byFunction.get(key) ?? { name, location, origin: originOf(callFrame), us: 0 };
    f.us += us;
    byFunction.set(key, f);
    const origin = originOf(callFrame);
    byOrigin.set(origin, (byOrigin.get(origin) ?? 0) + us);
    totalUs += us;
    if (name === '(idle)') idleUs += us;
  }
  const sort = (entries) => [...entries].sort((a, b) => b.us - a.us);
  return {
    totalUs,
    busyUs: totalUs - idleUs,
    functions: sort(byFunction.values()),
    origins: sort([...byOrigin].map(([origin, us]) => ({ origin, us }))),
  };
}

/** Markdown tables: top functions, then origins; percentages of the busy (non-idle) time. */
export function renderSummary(summary, top = 15) {
  const pct = (us) => `${((100 * us) / summary.busyUs).toFixed(1)}%`;
  const ms = (us) => (us / 1000).toFixed(0);
  const lines = [
    `sampled ${ms(summary.totalUs)} ms, busy (not idle) ${ms(summary.busyUs)} ms; percentages of busy time`,
    '',
    '| self ms | self % | function | where |',
    '| --: | --: | --- | --- |',
    ...summary.functions
      .filter((f) => f.name !== '(idle)')
      .slice(0, top)
      .map((f) => `| ${ms(f.us)} | ${pct(f.us)} | \`${f.name}\` | ${f.location || f.origin} |`),
    '',
    '| by origin | self ms | self % |',
    '| --- | --: | --: |',
    ...summary.origins
      .filter((o) => o.origin !== '(idle)')
      .slice(0, 12)
      .map((o) => `| ${o.origin} | ${ms(o.us)} | ${pct(o.us)} |`),
  ];
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '15' } } });
  if (positionals.length !== 1) {
    process.stderr.write('usage: node test/bench/cpuprofile-summary.mjs <file.cpuprofile> [--top 15]\n');
    process.exit(2);
  }
  const profile = JSON.parse(fs.readFileSync(positionals[0], 'utf8'));
  process.stdout.write(`${renderSummary(summarise(profile), Number(values.top))}\n`);
}
