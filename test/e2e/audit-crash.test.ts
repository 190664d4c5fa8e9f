// Issue 18.3: a control plane killed with SIGKILL while it creates and advances commands leaves
// no gap in the audit log. A child process (support/audit-crash-child.ts) runs the load; the test
// kills it once enough creates have answered, starts a control plane on the same database, and
// finds every answered command stored, every command with exactly one command.created and one
// audit entry per state change, the outbox empty and the chain verifying. Where the kill lands is
// not controlled (server/control-plane/audit-atomicity.test.ts injects the failure between commit
// and chain append deterministically); this run checks that a real kill cannot break the rule.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sourceModuleArgv } from '../../runtime/fork-module.js';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { createControlPlane } from '../../server/control-plane/control-plane.js';
import { migrateControlPlane } from '../../server/control-plane/database.js';
import { mysqlTarget } from '../../server/control-plane/test-support.js';
import { initDeployment } from '../../server/materials/materials.js';
import { systemClock, systemRandom, systemScheduler } from '../../runtime/system.js';
import { MemoryStreamBus } from '../../server/stores/bus/memory-stream-bus.js';
import { createEmbeddedKeyValueStore } from '../../server/stores/kv/redis-key-value-store.js';
import type { SqlDatabase } from '../../server/stores/sql/sql-port.js';
import { openSqlJsDatabase } from '../../server/stores/sql/sqljs-database.js';
import { storeTargets } from './support/e2e-harness.js';

const childPath = fileURLToPath(new URL('./support/audit-crash-child.ts', import.meta.url));
/** Creates answered before the kill: enough that the workers are in full swing. */
const answersBeforeKill = 40;
/** The child's start (tsx, migrations) and its first creates on a busy machine. */
const childAnswersTimeoutMs = 120_000;

/** Runs the child until it has answered `answers` creates, then kills it with SIGKILL; returns the ids it answered. */
async function runAndKill(env: Record<string, string>, answers: number): Promise<string[]> {
  const child = spawn(process.execPath, sourceModuleArgv(childPath), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const answered: string[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString('utf8')).slice(-4_000); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the child answered ${answered.length} creates in ${childAnswersTimeoutMs} ms: ${stderr}`)), childAnswersTimeoutMs);
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the child exited (${code}) after ${answered.length} creates: ${stderr}`)); });
      createInterface({ input: child.stdout }).on('line', (line) => {
        const match = /^created (c_[0-9a-f]+)$/.exec(line);
        if (match === null) return;
        answered.push(match[1]!);
        if (answered.length >= answers) { clearTimeout(timer); resolve(); }
      });
    });
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  return answered;
}

for (const target of storeTargets()) {
  describe(`kill -9 of a control plane under load on ${target.name} stores`, () => {
    it('loses no audit entry: after a restart every command has its command.created and one entry per state change', async (t) => {
      const dataDir = await mkdtemp(join(tmpdir(), 'sdc-audit-crash-'));
      const mysql = target.mysqlUrl === undefined ? undefined : mysqlTarget(target.mysqlUrl);
      const openDb = async (): Promise<SqlDatabase> => (mysql === undefined ? openSqlJsDatabase({ dataDir: join(dataDir, 'db'), fileName: 'sdc.sqlite' }) : mysql.open(dataDir));
      const deviceId = 'crash-dev-1';
      let db: SqlDatabase | undefined;
      try {
        const materials = await initDeployment({ dataDir, clock: systemClock, random: systemRandom });
        const setup = await openDb();
        await migrateControlPlane(setup, systemClock);
        await setup.execute("INSERT INTO devices (id, status, created_at) VALUES (?, 'enrolled', ?)", [deviceId, systemClock.nowMs()]);
        await setup.close();

        const answered = await runAndKill({
          SDC_CRASH_DIR: dataDir, SDC_CRASH_DEVICE: deviceId,
          ...(mysql === undefined ? {} : { SDC_CRASH_MYSQL_URL: (mysql as unknown as { url: string }).url, SDC_CRASH_REDIS_URL: target.redisUrl ?? '' }),
        }, answersBeforeKill);

        db = await openDb();
        const restarted = await createControlPlane({
          materials, clock: systemClock, random: systemRandom, scheduler: systemScheduler, persistJwtKeys: false,
          stores: { sql: db, bus: new MemoryStreamBus({ clock: systemClock, scheduler: systemScheduler }), kv: createEmbeddedKeyValueStore({ keyPrefix: `sdc-crash-check-${process.pid}:` }) },
          gatewayUrls: ['wss://127.0.0.1:9443/v1/agent'],
        });
        const recordedAtRestart = await restarted.auditStore.recordedCount();
        await restarted.start();
        await restarted.stop();
        t.diagnostic(`${answered.length} creates answered before the kill; ${recordedAtRestart} audit entries were recorded but not yet chained`);

        const commands = await db.query<{ id: string }>('SELECT id FROM commands');
        const stored = new Set(commands.map((c) => c.id));
        assert.deepEqual(answered.filter((id) => !stored.has(id)), [], 'every create that answered was committed');
        const entries = await restarted.auditStore.scan(1, 10_000);
        const events = await db.query<{ command_id: string; n: number }>('SELECT command_id, COUNT(*) AS n FROM command_events GROUP BY command_id');
        const changesOf = new Map(events.map((e) => [e.command_id, Number(e.n)]));
        for (const { id } of commands) {
          const kinds = entries.filter((e) => e.subject === `command:${id}`).map((e) => e.kind);
          assert.equal(kinds.filter((k) => k === 'command.created').length, 1, `${id}: ${kinds.join(',')}`);
          assert.equal(kinds.length, changesOf.get(id), `${id}: ${kinds.join(',')} for ${changesOf.get(id)} state changes`);
        }
        assert.equal(await restarted.auditStore.recordedCount(), 0);
        const verdict = await restarted.context.audit.verify();
        assert.ok(verdict.ok, JSON.stringify(verdict));
      } finally {
        await db?.close();
        await mysql?.cleanup();
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  });
}
