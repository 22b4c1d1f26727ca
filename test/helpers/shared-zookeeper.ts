/**
 * One ZooKeeper server for a whole test file, and the file's cleanups: the server starts before
 * the file's first test; after its last one the cleanups run, the most recent first, then the
 * server stops. Call it once, at the top of the file (it registers the file's hooks).
 */
import test from 'ava';
import { startZooKeeper, type TestZooKeeper } from './zookeeper.js';

export interface SharedZooKeeper {
  /** The running server (from the file's first test on). */
  readonly zk: TestZooKeeper;
  /** Run after the file's last test, the most recent first; a failing one does not stop the rest. */
  readonly cleanups: Array<() => Promise<unknown>>;
}

export function shareZooKeeper(): SharedZooKeeper {
  let zk: TestZooKeeper | undefined;
  const cleanups: Array<() => Promise<unknown>> = [];
  test.before(async () => {
    zk = await startZooKeeper();
  });
  test.after.always(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await zk?.stop();
  });
  return {
    get zk(): TestZooKeeper {
      if (zk === undefined) throw new Error('the shared ZooKeeper is not started yet: use it inside a test');
      return zk;
    },
    cleanups,
  };
}
