/** The machine a run happened on, for the report. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

function firstLine(command, args) {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 5_000 });
  return (
    `${r.stdout ?? ''}${r.stderr ?? ''}`
      .split('\n')
      .find((l) => l.trim())
      ?.trim() ?? 'unknown'
  );
}

/** `tools`: name → path, as preflight() returns them; those it lists are asked their version. */
export function machine({ nginx, wrk, haproxy, caddy } = {}) {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  return {
    nproc: os.availableParallelism(),
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    kernel: os.release(),
    node: process.version,
    nginx: nginx ? firstLine(nginx, ['-v']) : undefined,
    wrk: wrk ? firstLine(wrk, ['-v']) : undefined,
    haproxy: haproxy ? firstLine(haproxy, ['-v']).replace(/^HAProxy version (\S+).*/, 'HAProxy $1') : undefined,
    caddy: caddy ? `Caddy ${firstLine(caddy, ['version']).split(' ')[0]}` : undefined,
  };
}

export function describeMachine(m) {
  return [
    `machine: ${m.nproc} CPUs (${m.cpu}), ${m.memory} RAM, Linux ${m.kernel}`,
    `node ${m.node}${[m.nginx, m.haproxy, m.caddy, m.wrk].map((v) => (v ? `; ${v}` : '')).join('')}`,
  ].join('\n');
}
