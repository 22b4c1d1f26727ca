/** What the benchmark loads each proxy with, and a one-request check that each works. */
import { fileURLToPath } from 'node:url';

export const SLOW_MS = 50;
const LUA = fileURLToPath(new URL('../post-64k.lua', import.meta.url));

/**
 * `expect`: body length of a correct answer. `perBalancer`: measured for each puttu --balancer
 * strategy, against the service whose third instance is slow.
 */
export const SCENARIOS = [
  { id: 'small-c10', title: 'small response, 10 conn', path: '/echo/small', connections: 10, expect: 35 },
  { id: 'small-c50', title: 'small response, 50 conn', path: '/echo/small', connections: 50, expect: 35 },
  { id: 'post-64k', title: '64 KiB upload (POST), 50 conn', path: '/echo/upload', connections: 50, script: LUA, expect: 9 },
  { id: 'get-256k', title: '256 KiB response, 50 conn', path: '/echo/large', connections: 50, expect: 256 * 1024 },
  { id: 'get-4m', title: '4 MiB response, 50 conn', path: '/echo/huge', connections: 50, expect: 4 * 1024 * 1024 },
  {
    id: 'slow-1-of-3',
    title: `1 of 3 instances +${SLOW_MS} ms, 10 conn`,
    path: '/mixed/small',
    connections: 10,
    expect: 35,
    perBalancer: true,
  },
];

/** The scenarios named in `list` (comma-separated ids), or all. */
export function selectScenarios(list) {
  if (!list) return SCENARIOS;
  const ids = list.split(',').map((s) => s.trim());
  const unknown = ids.filter((id) => !SCENARIOS.some((s) => s.id === id));
  if (unknown.length > 0)
    throw new Error(`BENCH_SCENARIOS: unknown ${unknown.join(', ')} (known: ${SCENARIOS.map((s) => s.id).join(', ')})`);
  return SCENARIOS.filter((s) => ids.includes(s.id));
}

/** One request through `target`, so a broken route fails loudly instead of measuring errors. */
export async function checkScenario(target, scenario) {
  const url = `http://127.0.0.1:${target.port}${scenario.path}`;
  const res = await fetch(url, scenario.script ? { method: 'POST', body: Buffer.alloc(64 * 1024, 'x') } : {});
  const body = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200 || body.length !== scenario.expect) {
    throw new Error(`${target.label}: ${url} answered ${res.status} with ${body.length} bytes (expected 200, ${scenario.expect})`);
  }
}
