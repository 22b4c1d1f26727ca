#!/usr/bin/env node
// The `puttu` command: the compiled CLI (npm install builds it through the `prepare` script).
import { existsSync } from 'node:fs';

const main = new URL('../dist/proxy/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('puttu: not built yet; run `npm install` (or `npm run build`) in the puttu folder\n');
  process.exit(1);
}
await import(main.href);
