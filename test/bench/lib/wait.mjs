/** Polling with a deadline: the benchmark never sleeps hoping something is ready. */
import { setTimeout as sleep } from 'node:timers/promises';

export async function waitUntil(check, { timeoutMs, what, intervalMs = 50 }) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Until the process `proc` (a spawnTracked one) answers any HTTP request on `port`; fails if it exits. */
export function untilAnswers(proc, name, port) {
  return waitUntil(
    async () => {
      if (!proc.alive()) throw new Error(`${name} exited: ${proc.logTail()}`);
      const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
      await res?.arrayBuffer();
      return res !== undefined;
    },
    { timeoutMs: 15_000, what: `${name} to answer` },
  );
}
