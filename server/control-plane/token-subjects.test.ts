import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TokenSubjectCheck } from './token-subjects.js';
import type { TokenSubject } from './users.js';

/**
 * Review h11, F1: a users-table read begun before a revocation and ended after the revocation's
 * notice made this process forget the user put the old token generation back in the cache, and
 * the revoked token was accepted here again for up to cacheTtlMs. The reads are held on gates
 * (no timing): the order of SELECT, change, forget and answer is the test's.
 */

/** A users table of one user whose reads can be held: each read sees the generation when it begins, as a SELECT would. */
function usersTable() {
  const table = { generation: 0, reads: 0, gates: [] as Array<() => void>, holdNext: false };
  const subjectOf = async (_name: string): Promise<TokenSubject | undefined> => {
    table.reads += 1;
    const seen = table.generation;
    if (table.holdNext) {
      table.holdNext = false;
      await new Promise<void>((resolve) => { table.gates.push(resolve); });
    }
    return { id: 'u1', role: 'viewer', tokenGeneration: seen, createdAtMs: 0 };
  };
  return { table, subjectOf };
}

/** Lets the read begun by a call reach its gate. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('TokenSubjectCheck: a read in flight across a change does not cache the old generation', () => {
  const clock = { nowMs: () => 1_000_000 };

  it('a read begun before forget() and ended after it is the caller\'s answer but is not remembered', async () => {
    const { table, subjectOf } = usersTable();
    const check = new TokenSubjectCheck({ clock, subjectOf });
    table.holdNext = true;
    const inFlight = check.require('ann', 'viewer', 0, { userId: 'u1' }); // a request; its SELECT saw generation 0
    await settle();
    table.generation = 1; // logout-all commits on another control plane
    check.forget('ann'); // its notice arrives here; the live re-check reads afresh
    await assert.rejects(check.require('ann', 'viewer', 0, { userId: 'u1' }, { fresh: true }), { code: 'API_TOKEN_REVOKED' });
    table.gates.shift()!();
    await inFlight; // began before the change: accepted, as it would have been a moment earlier
    const readsBefore = table.reads;
    // The next request with the revoked token is refused from the fresh read's entry, not accepted from the old read's.
    await assert.rejects(check.require('ann', 'viewer', 0, { userId: 'u1' }), { code: 'API_TOKEN_REVOKED' });
    assert.equal(table.reads, readsBefore, 'the fresh read\'s entry stands: no read');
  });

  it('forgetAll() (a lost subscription) makes every read in flight unremembered too', async () => {
    const { table, subjectOf } = usersTable();
    const check = new TokenSubjectCheck({ clock, subjectOf });
    table.holdNext = true;
    const inFlight = check.require('ann', 'viewer', 0, { userId: 'u1' });
    await settle();
    table.generation = 1;
    check.forgetAll();
    table.gates.shift()!();
    await inFlight;
    const readsBefore = table.reads;
    await assert.rejects(check.require('ann', 'viewer', 0, { userId: 'u1' }), { code: 'API_TOKEN_REVOKED' });
    assert.equal(table.reads, readsBefore + 1, 'the old answer was not cached: the users table is read again');
  });

  it('a read ending after one begun later does not overwrite the later one\'s entry', async () => {
    const { table, subjectOf } = usersTable();
    const check = new TokenSubjectCheck({ clock, subjectOf });
    table.holdNext = true;
    const older = check.require('ann', 'viewer', 0, { userId: 'u1' });
    await settle();
    table.generation = 1; // changed in the database directly: no notice, no forget()
    await assert.rejects(check.require('ann', 'viewer', 0, { userId: 'u1' }, { fresh: true }), { code: 'API_TOKEN_REVOKED' });
    table.gates.shift()!();
    await older;
    await assert.rejects(check.require('ann', 'viewer', 0, { userId: 'u1' }), { code: 'API_TOKEN_REVOKED' });
  });

  it('a read with no change across it is remembered: the next request reads nothing', async () => {
    const { table, subjectOf } = usersTable();
    const check = new TokenSubjectCheck({ clock, subjectOf });
    table.holdNext = true;
    const first = check.require('ann', 'viewer', 0, { userId: 'u1' });
    await settle();
    check.forget('bob'); // another user's change does not touch ann's read
    table.gates.shift()!();
    await first;
    await check.require('ann', 'viewer', 0, { userId: 'u1' });
    assert.equal(table.reads, 1);
  });
});
