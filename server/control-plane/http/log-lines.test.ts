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

async function withControlPlane(run: (cp: Awaited<ReturnType<typeof createControlPlane>>, lines: string[]) => Promise<void>): Promise<void> {
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
    await run(cp, lines);
  } finally {
    await cp.stop();
    await bus.close();
    await kv.close();
    await sql.close();
    await rm(dir, { recursive: true, force: true });
  }
}

describe('control-plane log lines', () => {
  it('a refused request logs one msg key; the refusal\'s message is under its own name', async () => {
    await withControlPlane(async (cp, lines) => {
      const response = await cp.app.inject({ method: 'GET', url: '/v1/devices', headers: { authorization: 'Bearer not-a-token' } });
      assert.equal(response.statusCode, 401);
      const refused = lines.filter((line) => line.includes('"request refused"'));
      assert.equal(refused.length, 1, lines.join(''));
      for (const line of lines) assert.equal(line.match(/"msg":/g)?.length ?? 0, 1, line);
      const entry = JSON.parse(refused[0]!) as { msg: string; code: string; detail: string };
      assert.equal(entry.msg, 'request refused');
      assert.match(entry.code, /^JWT_/);
      assert.equal(entry.detail, (response.json() as { error: { message: string } }).error.message);
    });
  });

  // Security review 2026-12-05, finding 9: the answer does not echo the client's path; the log line names it.
  it('a 404 answers a generic message and logs the path (without the query)', async () => {
    await withControlPlane(async (cp, lines) => {
      const answer = await cp.app.inject({ method: 'GET', url: '/v1/some-unknown-path/xyz?q=1' });
      assert.equal(answer.statusCode, 404);
      const error = (answer.json() as { error: { code: string; message: string } }).error;
      assert.equal(error.code, 'API_NOT_FOUND');
      assert.ok(!answer.body.includes('some-unknown-path'), answer.body);
      const refused = lines.filter((line) => line.includes('"request refused"')).map((line) => JSON.parse(line) as { code: string; method: string; path: string });
      assert.deepEqual(refused.map((entry) => [entry.code, entry.method, entry.path]), [['API_NOT_FOUND', 'GET', '/v1/some-unknown-path/xyz']]);
    });
  });

  // Security review 2026-12-05, finding 3: the viewer's EventSource sends its JWT as ?token=.
  it('a credential in the URL never reaches a log line: ?token=, other names, encoded names, a bare value, a presigned signature', async () => {
    await withControlPlane(async (cp, lines) => {
      const secret = 'SECRETJWTVALUE0123456789';
      const urls = [
        `/v1/live?token=${secret}`,
        `/v1/live?%74oken=${secret}`,
        `/v1/audit?from_seq=1&access_token=${secret}`,
        `/v1/devices?${secret}`,
        `/v1/no-such-route?token=${secret}`,
        `/v1/blobs/bucket/key?X-Amz-Signature=${secret}&X-Amz-Credential=${secret}`,
        `/v1/live?token=${secret}%ZZ`,
        // The one-time ticket that replaced the token (live-tickets.ts): short-lived, still never logged.
        `/v1/live?ticket=${secret}`,
      ];
      for (const url of urls) await cp.app.inject({ method: 'GET', url });
      assert.ok(lines.length >= urls.length, lines.join(''));
      const incoming = lines.filter((line) => line.includes('"incoming request"'));
      assert.equal(incoming.length, urls.length, lines.join(''));
      for (const line of lines) assert.ok(!line.includes(secret), `a log line carries the secret: ${line}`);
      // What may be logged still is: the path, the names, the values of paging parameters.
      const logged = incoming.map((line) => (JSON.parse(line) as { req: { url: string } }).req.url);
      assert.equal(logged[0], '/v1/live?token=[redacted]');
      assert.equal(logged[1], '/v1/live?token=[redacted]');
      assert.equal(logged[2], '/v1/audit?from_seq=1&access_token=[redacted]');
      assert.equal(logged[3], '/v1/devices?[redacted]');
      assert.equal(logged[7], '/v1/live?ticket=[redacted]');
    });
  });
});
