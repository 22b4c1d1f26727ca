/** `npm test` runs this first: the suite needs Debian's ZooKeeper; install it when we can. */
import { ensureZooKeeperInstalled } from '../../proxy/dev/local-zookeeper.js';
import { createLogger } from '../../proxy/logger.js';

try {
  ensureZooKeeperInstalled(createLogger({ level: 'info' }));
} catch (error) {
  console.error((error as Error).message);
  process.exit(1);
}
