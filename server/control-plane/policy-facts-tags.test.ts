import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicy, policyUsesTags, type PolicyRequest } from '../../core/protocol/policy.js';
import type { SqlValue } from '../stores/sql/sql-port.js';
import { PolicyFacts } from './policy-facts.js';
import { makeHarness, sqlJsTarget } from './test-support.js';

const everyDevice = parsePolicy({ version: 1, rules: [{ id: 'all', effect: 'allow', roles: ['admin'], opcodes: '*', devices: '*' }] });
const byTag = parsePolicy({ version: 1, rules: [{ id: 'lab', effect: 'allow', roles: ['admin'], opcodes: '*', devices: { tags: ['group:lab'] } }] });

describe('policy facts: a device\'s tags are read only when a rule selects by tag (issue 17)', () => {
  it('policyUsesTags', () => {
    assert.equal(policyUsesTags(everyDevice), false);
    assert.equal(policyUsesTags(byTag), true);
    assert.equal(policyUsesTags(parsePolicy({ version: 1, rules: [{ id: 'ids', effect: 'allow', roles: '*', opcodes: '*', devices: { ids: ['d-1'] } }] })), false);
  });

  it('admission reads no tags under a policy that never looks at them, and the tags under one that does; the dry run always shows them', async () => {
    const h = await makeHarness(sqlJsTarget);
    try {
      await h.db.execute("INSERT INTO devices (id, status, created_at) VALUES ('d-1', 'enrolled', 0)");
      await h.db.execute("INSERT INTO device_tags (device_id, tag) VALUES ('d-1', 'group:lab')");
      const tagReads: string[] = [];
      const db = h.cp.context.db;
      const counting = Object.assign(Object.create(db) as typeof db, {
        query: <T>(sql: string, params?: readonly SqlValue[]) => {
          if (sql.includes('FROM device_tags')) tagReads.push(sql);
          return db.query<T>(sql, params);
        },
      });
      const facts = new PolicyFacts({ context: { ...h.cp.context, db: counting } });
      const base: PolicyRequest = { actor: { id: 'root', role: 'admin' }, opcode: 'EXEC_PING_KERNEL', device: { id: 'd-1' }, nowMs: 0, argsBytes: 2 };
      const plain = await facts.reserve(everyDevice, base);
      assert.equal(plain.request.device.tags, undefined);
      assert.equal(tagReads.length, 0);
      const tagged = await facts.reserve(byTag, base);
      assert.deepEqual(tagged.request.device.tags, ['group:lab']);
      assert.equal(tagReads.length, 1);
      assert.deepEqual((await facts.peek(everyDevice, base)).device.tags, ['group:lab']);
      assert.equal(tagReads.length, 2);
    } finally {
      await h.close();
    }
  });
});
