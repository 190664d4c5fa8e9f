import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SdcError } from '../core/errors/index.js';
import type { AgentIdentity } from '../agent/enrollment.js';
import { readServerRecords, refusalCode, runCommandRounds } from './roundtrip-commands.js';
import type { LiveTracker } from './roundtrip-live.js';
import type { BenchApi, CommandRecord } from './roundtrip-deployment.js';

const record = (id: string, state: CommandRecord['state']): CommandRecord => ({
  id, state, history: [{ state: 'queued', at_ms: 1_000 }, { state, at_ms: 1_250 }],
});

describe('bench roundtrip: the command rounds (issue 17)', () => {
  it('a warm-up creation the API refuses is counted by its code apart from the measured ones, not dropped', async () => {
    // d-1's warm-up POST is refused with RATE_LIMITED, d-2's first measured one with COMMAND_QUEUE_FULL.
    const api = (async (_method: string, _path: string, body: { device_id: string }, headers: Record<string, string>) => {
      const round = Number(headers['idempotency-key']!.split('-').at(-1));
      if (body.device_id === 'd-1' && round === 0) throw new SdcError('HTTP_REFUSED', 'refused', { status: 429, serverCode: 'RATE_LIMITED' });
      if (body.device_id === 'd-2' && round === 1) throw new SdcError('HTTP_REFUSED', 'refused', { status: 503, serverCode: 'COMMAND_QUEUE_FULL' });
      return { id: `${body.device_id}-c${round}` };
    }) as unknown as BenchApi;
    const live = { epoch: 0, waitTerminal: async () => ({ state: 'succeeded', atMs: performance.now() }) } as unknown as LiveTracker;
    const identities = ['d-1', 'd-2'].map((deviceId) => ({ deviceId }) as AgentIdentity);
    const rounds = await runCommandRounds({
      api, live, identities, warmupRounds: 1, commandsPerAgent: 2, runTag: 't', deadlineMs: Date.now() + 60_000, progress: () => undefined,
    });
    assert.deepEqual(rounds.warmupRefusedByCode, { RATE_LIMITED: 1 });
    assert.deepEqual(rounds.refusedByCode, { COMMAND_QUEUE_FULL: 1 });
    assert.deepEqual([...rounds.ids].sort(), ['d-1-c1', 'd-1-c2', 'd-2-c2']);
    assert.equal(rounds.created, 4);
  });
});

describe('bench roundtrip: the open-loop command rounds (--rate)', () => {
  it('posts command k to agent k mod N on its due time, without waiting for earlier ones, and times it from that due time', async () => {
    let now = 10_000;
    const posts: string[] = [];
    const waiting: Array<() => void> = [];
    const api = (async (_method: string, _path: string, body: { device_id: string }, headers: Record<string, string>) => {
      posts.push(headers['idempotency-key']!.replace('bench-t-', ''));
      now += 30; // the POST takes 30 ms
      return { id: `${body.device_id}-${posts.length}` };
    }) as unknown as BenchApi;
    // Every terminal event arrives 40 ms after its POST answered, but only once all six commands
    // are posted: a closed loop would wait for the first and never post the rest.
    const live = {
      epoch: 0,
      waitTerminal: () => new Promise((resolve) => {
        const atMs = now + 40;
        waiting.push(() => resolve({ state: 'succeeded', atMs }));
        if (waiting.length === 6) for (const release of waiting) release();
      }),
    } as unknown as LiveTracker;
    const identities = ['d-1', 'd-2'].map((deviceId) => ({ deviceId }) as AgentIdentity);
    const rounds = await runCommandRounds({
      api, live, identities, warmupRounds: 1, commandsPerAgent: 2, runTag: 't', deadlineMs: Date.now() + 60_000, progress: () => undefined,
      ratePerS: 10, nowMs: () => now,
      // Each wait ends 5 ms late, as a busy timer would: the due time still starts the clock.
      // (After the started command's own steps have run, as they would on a real clock.)
      sleepUntil: async (atMs) => {
        await new Promise((resolve) => setImmediate(resolve));
        now = Math.max(now, atMs + 5);
      },
    });
    assert.deepEqual(posts, ['d-1-0', 'd-2-0', 'd-1-1', 'd-2-1', 'd-1-2', 'd-2-2']);
    assert.equal(rounds.created, 6);
    assert.equal(rounds.ids.length, 4, 'the warm-up round is not measured');
    assert.deepEqual(rounds.postSamples, [30, 30, 30, 30]);
    assert.deepEqual(rounds.clientSamples, [75, 75, 75, 75], '5 ms late + 30 ms POST + 40 ms to the event, from the due time');
  });
});

describe('bench roundtrip: a refusal\'s tally key', () => {
  it('names the server\'s code, or for a transport failure its socket error or the timeout', () => {
    assert.equal(refusalCode(new SdcError('HTTP_REFUSED', 'refused', { status: 429, serverCode: 'RATE_LIMITED' })), 'RATE_LIMITED');
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    assert.equal(refusalCode(new SdcError('HTTP_UNREACHABLE', 'https://127.0.0.1:1: read ECONNRESET', {}, { cause: reset })), 'HTTP_UNREACHABLE ECONNRESET');
    assert.equal(refusalCode(new SdcError('HTTP_UNREACHABLE', 'no answer from https://127.0.0.1:1 within 30000 ms')), 'HTTP_UNREACHABLE timeout');
    assert.equal(refusalCode(new Error('boom')), 'UNKNOWN');
  });
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
    assert.deepEqual(read.stepSamples, { 'queued->succeeded': [250, 250] }, 'the steps of terminal commands only');
    assert.equal(read.unread, 1);
    assert.deepEqual(Object.fromEntries(calls), { 'c-ok': 1, 'c-flaky': 2, 'c-gone': 3, 'c-late': 1 });
  });

  it('the server time is split by step of each terminal history, in the order the steps first appear', async () => {
    const history = (times: number[]): CommandRecord['history'] =>
      (['queued', 'sent', 'ack_received', 'executing', 'succeeded'] as const).slice(0, times.length).map((state, i) => ({ state, at_ms: times[i]! }));
    const records: Record<string, CommandRecord> = {
      a: { id: 'a', state: 'succeeded', history: history([0, 4, 9, 9, 12]) },
      b: { id: 'b', state: 'succeeded', history: history([100, 101, 103, 104, 110]) },
      open: { id: 'open', state: 'ack_received', history: history([0, 50, 70]) },
    };
    const api = (async (_method: string, path: string) => records[path.split('/').at(-1)!]) as BenchApi;
    const read = await readServerRecords(api, ['a', 'open', 'b']);
    assert.deepEqual(read.serverSamples, [12, 10]);
    assert.deepEqual(read.stepSamples, {
      'queued->sent': [4, 1], 'sent->ack_received': [5, 2], 'ack_received->executing': [0, 1], 'executing->succeeded': [3, 6],
    });
    assert.deepEqual(Object.keys(read.stepSamples), ['queued->sent', 'sent->ack_received', 'ack_received->executing', 'executing->succeeded']);
  });

  it('a refusal (not a transport failure) still ends the read-back', async () => {
    const api = (async () => { throw new SdcError('HTTP_REFUSED', 'refused with JWT_INVALID', { status: 401, serverCode: 'JWT_INVALID' }); }) as BenchApi;
    await assert.rejects(readServerRecords(api, ['c-1']), (error: unknown) => SdcError.is(error, 'HTTP_REFUSED'));
  });
});
