#!/usr/bin/env node
// The `puttu` command: the compiled CLI (npm install builds it through the `prepare` script).
import { existsSync } from 'node:fs';

const dist = new URL('../dist/proxy/', import.meta.url);
if (!existsSync(new URL('main.js', dist))) {
  process.stderr.write('puttu: not built yet; run `npm install` (or `npm run build`) in the puttu folder\n');
  process.exit(1);
}
// V8 flags first: they must be set before the CLI's modules are loaded (see startup-flags.ts).
await import(new URL('startup-flags.js', dist).href);
await import(new URL('main.js', dist).href);
