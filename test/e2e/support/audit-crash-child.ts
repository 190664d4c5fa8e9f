// A control plane under load, for test/e2e/audit-crash.test.ts to kill -9 at a moment of its
// choosing: workers create operator commands and move each through deliver, ack and start, and
// print `created <id>` once a create has answered. Usage (environment):
//   SDC_CRASH_DIR=<data dir> SDC_CRASH_DEVICE=<enrolled device id> [SDC_CRASH_MYSQL_URL=… SDC_CRASH_REDIS_URL=…]
//   node --import tsx test/e2e/support/audit-crash-child.ts
import { join } from 'node:path';
import { createControlPlane } from '../../../server/control-plane/control-plane.js';
import { initDeployment } from '../../../server/materials/materials.js';
import { systemClock, systemRandom, systemScheduler } from '../../../runtime/system.js';
import { MemoryStreamBus } from '../../../server/stores/bus/memory-stream-bus.js';
import { createEmbeddedKeyValueStore, createRedisKeyValueStore } from '../../../server/stores/kv/redis-key-value-store.js';
import { createMysqlDatabase } from '../../../server/stores/sql/mysql-database.js';
import { openSqlJsDatabase } from '../../../server/stores/sql/sqljs-database.js';

/** Concurrent workers: enough that commits, drains and answers overlap when the kill lands. */
const workersCount = 4;

const dataDir = process.env['SDC_CRASH_DIR'] ?? '';
const deviceId = process.env['SDC_CRASH_DEVICE'] ?? '';
const mysqlUrl = process.env['SDC_CRASH_MYSQL_URL'];
const redisUrl = process.env['SDC_CRASH_REDIS_URL'];
const keyPrefix = `sdc-crash-${process.pid}:`;

const materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
const db = mysqlUrl ? await createMysqlDatabase({ url: mysqlUrl }) : await openSqlJsDatabase({ dataDir: join(dataDir, 'db'), fileName: 'sdc.sqlite' });
const cp = await createControlPlane({
  materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, persistJwtKeys: false,
  stores: {
    sql: db, bus: new MemoryStreamBus({ clock: systemClock, scheduler: systemScheduler }),
    kv: redisUrl ? createRedisKeyValueStore({ url: redisUrl, keyPrefix }) : createEmbeddedKeyValueStore({ keyPrefix }),
  },
  gatewayUrls: ['wss://127.0.0.1:9443/v1/agent'],
});

async function worker(index: number): Promise<void> {
  for (let n = 0; ; n += 1) {
    const { command } = await cp.commands.create({
      actor: { name: 'crash-operator', role: 'operator' }, deviceId, opcode: 'EXEC_PING_KERNEL', args: {}, idempotencyKey: `crash-${index}-${n}`,
    });
    process.stdout.write(`created ${command.id}\n`);
    for (const event of ['deliver', 'ack', 'start'] as const) {
      await cp.commands.transition(command.id, event, systemClock.nowMs(), { actor: 'gateway:gw-crash' });
    }
  }
}

await Promise.all(Array.from({ length: workersCount }, (_, index) => worker(index)));
