#!/usr/bin/env node
/**
 * Renders every Grafana dashboard in grafana/dashboards to docs/dashboard.png from its own
 * queries on a real Prometheus scraping a real proxy under load (Grafana is not installable
 * here). Needs the build (`npx tsc -p .`), Debian's zookeeper, prometheus and chromium packages,
 * and playwright-core (a devDependency). Takes about 80 s; the load itself is bounded.
 *
 *   node scripts/render-dashboard.mjs [--duration-ms 60000] [--out docs/dashboard.png]
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';

const entry = new URL('../dist/test/observability/render-dashboard.js', import.meta.url);
if (!fs.existsSync(entry)) {
  console.error('dist/ is missing or stale: run `npx tsc -p .` first');
  process.exit(2);
}
for (const [bin, pkg] of [['/usr/bin/prometheus', 'prometheus'], ['/usr/bin/chromium', 'chromium'], ['/usr/share/java/zookeeper.jar', 'zookeeper']]) {
  if (!fs.existsSync(bin)) {
    console.error(`${bin} is missing: apt-get update && apt-get install -y ${pkg}`);
    process.exit(2);
  }
}
const { values } = parseArgs({ options: { 'duration-ms': { type: 'string' }, out: { type: 'string' } } });
const durationMs = Number(values['duration-ms'] ?? 60_000);
if (!Number.isFinite(durationMs) || durationMs < 5_000 || durationMs > 600_000) {
  console.error('--duration-ms must be between 5000 and 600000');
  process.exit(2);
}
// A hard bound on the whole run; exiting kills the servers it started (their exit hooks).
setTimeout(() => {
  console.error('render-dashboard: did not finish in time');
  process.exit(1);
}, durationMs + 120_000).unref();

const { renderDashboards } = await import(entry.href);
const files = await renderDashboards({
  durationMs,
  ...(values.out && { out: values.out }),
  log: (m) => console.log(`render-dashboard: ${m}`),
});
console.log(files.join('\n'));
