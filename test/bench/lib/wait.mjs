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
