import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { initDeployment } from '../../materials/materials.js';
import { systemClock, systemRandom, systemScheduler } from '../../../runtime/system.js';
import { MemoryStreamBus } from '../../stores/bus/memory-stream-bus.js';
import { createEmbeddedKeyValueStore } from '../../stores/kv/redis-key-value-store.js';
import { openSqlJsDatabase } from '../../stores/sql/sqljs-database.js';
import { createControlPlane } from '../control-plane.js';

describe('control-plane log lines', () => {
  it('a refused request logs one msg key; the refusal\'s message is under its own name', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sdc-log-lines-'));
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => { lines.push(line); } });
    const materials = await initDeployment({ dataDir: dir, clock: systemClock, random: systemRandom });
    const sql = await openSqlJsDatabase({ dataDir: join(dir, 'db') });
    const bus = new MemoryStreamBus({ clock: systemClock, scheduler: systemScheduler });
    const kv = createEmbeddedKeyValueStore({ keyPrefix: 'log-lines:' });
    const cp = await createControlPlane({
      materials, stores: { sql, bus, kv }, clock: systemClock, random: systemRandom, scheduler: systemScheduler, logger,
      gatewayUrls: ['wss://127.0.0.1:9443/v1/agent'], persistJwtKeys: false, scryptParams: { N: 1024, r: 8, p: 1 },
    });
    try {
      const response = await cp.app.inject({ method: 'GET', url: '/v1/devices', headers: { authorization: 'Bearer not-a-token' } });
      assert.equal(response.statusCode, 401);
      const refused = lines.filter((line) => line.includes('"request refused"'));
      assert.equal(refused.length, 1, lines.join(''));
      for (const line of lines) assert.equal(line.match(/"msg":/g)?.length ?? 0, 1, line);
      const entry = JSON.parse(refused[0]!) as { msg: string; code: string; detail: string };
      assert.equal(entry.msg, 'request refused');
      assert.match(entry.code, /^JWT_/);
      assert.equal(entry.detail, (response.json() as { error: { message: string } }).error.message);
    } finally {
      await cp.stop();
      await bus.close();
      await kv.close();
      await sql.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
