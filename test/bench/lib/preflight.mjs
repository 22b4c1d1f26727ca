/**
 * What the benchmark needs before it starts anything. It installs nothing: it names what is
 * missing and the command that installs it, and exits 1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The Debian package of each tool a script may need (all are in bookworm's main). */
const PACKAGE = { nginx: 'nginx', wrk: 'wrk', haproxy: 'haproxy', caddy: 'caddy', h2load: 'nghttp2-client' };

/** Absolute path of `name` on PATH (and the sbin folders, where Debian puts nginx), or undefined. */
export function findExecutable(name) {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

/**
 * Exits 1 with the fix when something is missing; returns the tools' paths otherwise. `hint`: how
 * to run without the missing tools, said after the install command (run.mjs: `--targets`).
 */
export function preflight({ tools = ['nginx', 'wrk'], hint } = {}) {
  if (process.platform !== 'linux') fail('the benchmark reads /proc: it runs on Linux only');
  const found = Object.fromEntries(tools.map((t) => [t, findExecutable(t)]));
  const missing = tools.filter((t) => !found[t]);
  if (missing.length > 0) {
    const names = missing.length > 1 ? `${missing.slice(0, -1).join(', ')} and ${missing.at(-1)} are` : `${missing[0]} is`;
    const install = `apt-get install -y ${missing.map((t) => PACKAGE[t] ?? t).join(' ')}`;
    fail(
      `${names} not installed (no executable on PATH or in /usr/sbin). Install with:\n\n  ${install}\n\n(as root, after \`apt-get update\` on a fresh machine; the benchmark installs nothing itself)${hint ? `\n${hint(missing)}` : ''}`,
    );
  }
  if (!fs.existsSync('/usr/share/java/zookeeper.jar') || !findExecutable('java')) {
    fail('ZooKeeper is not installed. Install with:\n\n  apt-get install -y zookeeper\n');
  }
  const built = ['dist/proxy/main.js', 'dist/proxy/index.js', 'dist/test/helpers/zookeeper.js'].every((f) =>
    fs.existsSync(path.join(ROOT, f)),
  );
  if (!built) fail('puttu is not built. Build it first:\n\n  npx tsc -p .\n');
  warnIfStale();
  return found;
}

/**
 * The benchmark runs dist/: say so when a source file is newer than its compiled file (each file
 * against its own output: an incremental build leaves unchanged outputs as they were).
 */
function warnIfStale() {
  const outputAt = (f) => {
    try {
      return fs.statSync(path.join(ROOT, 'dist/proxy', f.replace(/\.ts$/, '.js'))).mtimeMs;
    } catch {
      return 0;
    }
  };
  const newer = fs
    .readdirSync(path.join(ROOT, 'proxy'), { recursive: true })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .filter((f) => fs.statSync(path.join(ROOT, 'proxy', f)).mtimeMs > outputAt(f));
  if (newer.length > 0)
    process.stderr.write(
      `warning: proxy/${newer[0]} (and ${newer.length - 1} more) changed after the last build; run \`npx tsc -p .\` to measure them\n`,
    );
}
