// A measurement, not a test (not named *.test.ts, so npm test skips it): the dead-letter list's
// query times at fleet size on sql.js and, with MYSQL_URL and REDIS_URL, MariaDB. Figures in
// docs/decisions/0007-dead-letters.md. Run: DEVICES=10000 PER_DEVICE=10 node --import tsx --test server/control-plane/dead-letters-scale.measure.ts
import { it } from 'node:test';
import { makeHarness, storePairs } from './test-support.js';

const devices = Number(process.env['DEVICES'] ?? 10_000);
const perDevice = Number(process.env['PER_DEVICE'] ?? 10);
for (const pair of storePairs().pairs) {
  it(`dead-letter list at ${devices} devices x ${perDevice} commands on ${pair.name}`, { timeout: 1_800_000 }, async () => {
    const h = await makeHarness(pair.sql, pair.kv === undefined ? {} : { kv: pair.kv });
    const t0 = Date.now();
    let n = 0;
    let discarded = 0;
    let dead = 0;
    for (let d = 0; d < devices; d += 100) {
      const rows: Array<string | number> = [];
      const drows: Array<string | number> = [];
      for (let k = d; k < Math.min(devices, d + 100); k++) {
        for (let c = 0; c < perDevice; c++) {
          n++;
          // 10 % dead-lettered, and of those half discarded already.
          const isDead = c === 0;
          const id = `c_${k}_${c}`;
          if (isDead) { dead++; if (k % 2 === 0) { discarded++; drows.push(id, `dev-${k}`, 0, 1, 'op', 'old'); } }
          rows.push(id, `dev-${k}`, 'EXEC_PING_KERNEL', '{}', isDead ? 'dead_lettered' : 'succeeded', 'op', c, 1_000 + n, 1_000 + n, 1_000 + n);
        }
      }
      const ph = '(?, ?, ?, ?, ?, ?, ?, 9999999999999, ?, ?), '.repeat(rows.length / 10).slice(0, -2).replaceAll('9999999999999, ?, ?', '?, ?, ?');
      await h.db.execute(`INSERT INTO commands (id, device_id, opcode, args_json, state, created_by, device_seq, expires_at, created_at, updated_at) VALUES ${ph}`, rows);
      if (drows.length > 0) await h.db.execute(`INSERT INTO dead_letters (command_id, device_id, retries, discarded_at, discarded_by, discard_reason) VALUES ${'(?, ?, ?, ?, ?, ?), '.repeat(drows.length / 6).slice(0, -2)}`, drows);
    }
    console.log(`${pair.name}: inserted ${n} commands (${dead} dead-lettered, ${discarded} discarded) in ${Date.now() - t0} ms`);
    const time = async (what: string, run: () => Promise<unknown>, reps = 20) => {
      const ms: number[] = [];
      for (let i = 0; i < reps; i++) { const s = process.hrtime.bigint(); await run(); ms.push(Number(process.hrtime.bigint() - s) / 1e6); }
      ms.sort((a, b) => a - b);
      console.log(`${pair.name}: ${what}: min ${ms[0]!.toFixed(2)} median ${ms[Math.floor(ms.length / 2)]!.toFixed(2)} max ${ms.at(-1)!.toFixed(2)} ms`);
    };
    await time('one device (undiscarded dead letter)', () => h.cp.deadLetters.list({ deviceId: `dev-${devices - 1}` }));
    await time('one device (discarded only)', () => h.cp.deadLetters.list({ deviceId: `dev-${devices - 2}` }));
    await time('fleet first page (50)', () => h.cp.deadLetters.list({}));
    const page = await h.cp.deadLetters.list({ limit: 500 });
    await time('fleet second page (500)', () => h.cp.deadLetters.list({ limit: 500, cursor: page.next_cursor! }));
    await h.close();
    await pair.sql.cleanup();
  });
}
