import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../core/errors/index.js';
import { readServerRecords } from './roundtrip-commands.js';
import type { BenchApi, CommandRecord } from './roundtrip-deployment.js';

const record = (id: string, state: CommandRecord['state']): CommandRecord => ({
  id, state, history: [{ state: 'queued', at_ms: 1_000 }, { state, at_ms: 1_250 }],
});

describe('bench roundtrip: reading the server records back (issue 17)', () => {
  it('an unreachable API is tried again; a record it never answers for counts as unread, not as the end of the run', async () => {
    const calls = new Map<string, number>();
    const api = (async (_method: string, path: string) => {
      const id = path.split('/').at(-1)!;
      const n = (calls.get(id) ?? 0) + 1;
      calls.set(id, n);
      if (id === 'c-flaky' && n === 1) throw new SdcError('HTTP_UNREACHABLE', 'read ECONNRESET');
      if (id === 'c-gone') throw new SdcError('HTTP_UNREACHABLE', 'read ECONNRESET');
      return record(id, id === 'c-late' ? 'executing' : 'succeeded');
    }) as BenchApi;
    // The bench's waits are unref'd timers (its deployment keeps the process alive); here nothing else does.
    const keepAlive = setInterval(() => undefined, 1_000);
    const read = await readServerRecords(api, ['c-ok', 'c-flaky', 'c-gone', 'c-late']).finally(() => clearInterval(keepAlive));
    assert.deepEqual(read.byState, { succeeded: 2, executing: 1 });
    assert.deepEqual(read.serverSamples, [250, 250]);
    assert.equal(read.unread, 1);
    assert.deepEqual(Object.fromEntries(calls), { 'c-ok': 1, 'c-flaky': 2, 'c-gone': 3, 'c-late': 1 });
  });

  it('a refusal (not a transport failure) still ends the read-back', async () => {
    const api = (async () => { throw new SdcError('HTTP_REFUSED', 'refused with JWT_INVALID', { status: 401, serverCode: 'JWT_INVALID' }); }) as BenchApi;
    await assert.rejects(readServerRecords(api, ['c-1']), (error: unknown) => SdcError.is(error, 'HTTP_REFUSED'));
  });
});
