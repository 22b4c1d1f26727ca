#!/usr/bin/env node
// The `puttu` command: the compiled CLI (npm install builds it through the `prepare` script).
import { existsSync } from 'node:fs';

const dist = new URL('../dist/proxy/', import.meta.url);
if (!existsSync(new URL('main.js', dist))) {
  process.stderr.write('puttu: not built yet; run `npm install` (or `npm run build`) in the puttu folder\n');
  process.exit(1);
}
// The runtime tuning's first step must come before the CLI's modules are loaded (an ES module
// graph is read and compiled before any of it runs), so it is applied here. main.js parses the
// flag again and reports a bad value.
const tuning = await import(new URL('runtime-tuning.js', dist).href);
let tune = true;
try {
  tune = tuning.tuningChoice(process.argv.slice(2), process.env).tune;
} catch {}
if (tune) tuning.beforeLoad();
await import(new URL('main.js', dist).href);
