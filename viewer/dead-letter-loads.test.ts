import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeadLetterLoads } from './dead-letter-loads.js';

/** Reads the test answers by hand, in any order; `shown` is what the view would show. */
function harness() {
  const reads: Array<{ resolve: (rows: string[]) => void; reject: (error: Error) => void }> = [];
  const shown: { rows: string[] | undefined; error: string | undefined } = { rows: undefined, error: undefined };
  const loads = new DeadLetterLoads<string[]>({
    read: () => new Promise<string[]>((resolve, reject) => { reads.push({ resolve, reject }); }),
    apply: (rows) => { shown.rows = rows; shown.error = undefined; },
    fail: (error) => { shown.error = (error as Error).message; },
  });
  return { loads, reads, shown };
}

describe('the dead-letter view applies the newest read asked, whatever order the answers come in', () => {
  it('the read on showing answers after the read after a retry: the older list is dropped, the retried row stays off', async () => {
    const { loads, reads, shown } = harness();
    const first = loads.load();
    const afterRetry = loads.load();
    reads[1]!.resolve(['c_created']);
    assert.equal(await afterRetry, true);
    reads[0]!.resolve(['c_retried', 'c_created']);
    assert.equal(await first, false, 'the older answer is not applied');
    assert.deepEqual(shown.rows, ['c_created']);
  });

  it('answers in the order asked: each is applied in turn, the last one shown', async () => {
    const { loads, reads, shown } = harness();
    const first = loads.load();
    reads[0]!.resolve(['a', 'b']);
    assert.equal(await first, true);
    assert.deepEqual(shown.rows, ['a', 'b']);
    const second = loads.load();
    reads[1]!.resolve(['b']);
    assert.equal(await second, true);
    assert.deepEqual(shown.rows, ['b']);
  });

  it('a device filter changed quickly: the first device\'s late answer does not replace the second\'s rows', async () => {
    const { loads, reads, shown } = harness();
    const deviceA = loads.load();
    const deviceB = loads.load();
    reads[1]!.resolve(['b-1']);
    await deviceB;
    reads[0]!.resolve(['a-1', 'a-2']);
    await deviceA;
    assert.deepEqual(shown.rows, ['b-1']);
  });

  it('an older read\'s failure landing last shows no error; the newest read\'s failure does', async () => {
    const { loads, reads, shown } = harness();
    const older = loads.load();
    const newer = loads.load();
    reads[1]!.resolve(['x']);
    await newer;
    reads[0]!.reject(new Error('API_UNAVAILABLE'));
    assert.equal(await older, false);
    assert.deepEqual(shown, { rows: ['x'], error: undefined });
    const newest = loads.load();
    reads[2]!.reject(new Error('API_TIMEOUT'));
    assert.equal(await newest, true);
    assert.deepEqual(shown, { rows: ['x'], error: 'API_TIMEOUT' });
  });
});
