import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import pino from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import { LiveHub, liveHubLimits, type LiveSubjects, type LiveViewer } from './live.js';

/**
 * Review h11, F2 and F3: what the live hub reads from the users table when it is slow or down,
 * and when notices come faster than re-checks end.
 * - F2: with the database down a sweep read once per stream (the first stream's failure left
 *   `fresh` set, so each stream of the user read again) and stop() waited for the whole sweep.
 * - F3: every notice on sdc:cp:user-changed started its own re-check, each a fresh read, in
 *   parallel and without bound: whoever can publish on the kv channel could take the MySQL pool.
 * The users table is a fake whose reads are counted and held on gates: the tests assert the
 * number and order of reads, never a duration.
 */

interface Read {
  readonly name: string;
  readonly fresh: boolean;
}

/** LiveSubjects over a users table whose reads are counted; the first `hold` reads wait for release(). */
function fakeSubjects() {
  const table = {
    reads: [] as Read[],
    hold: 0,
    gates: [] as Array<() => void>,
    /** What a read of `name` answers: undefined (the token stands) or the error it throws. */
    answer: (_name: string): Error | undefined => undefined,
    onChanged: undefined as ((name: string | undefined) => void) | undefined,
    release(): void {
      for (const open of this.gates.splice(0)) open();
    },
  };
  const subjects: LiveSubjects = {
    recheck: async (viewer, options) => {
      table.reads.push({ name: viewer.name, fresh: options.fresh });
      if (table.hold > 0) {
        table.hold -= 1;
        await new Promise<void>((resolve) => { table.gates.push(resolve); });
      }
      const error = table.answer(viewer.name);
      if (error !== undefined) throw error;
    },
    watchSubjectChanges: async (onChanged) => {
      table.onChanged = onChanged;
      return async () => undefined;
    },
  };
  return { table, subjects };
}

/** The smallest ServerResponse the hub uses, recording what it is sent. */
function fakeResponse(): ServerResponse & { sent: string[]; ended: boolean } {
  const listeners: Array<() => void> = [];
  const fake = {
    sent: [] as string[], ended: false, writableLength: 0,
    writeHead() { return fake; },
    write(chunk: string) { fake.sent.push(chunk); return true; },
    end(chunk?: string) { if (chunk !== undefined) fake.sent.push(chunk); fake.ended = true; for (const listener of listeners) listener(); return fake; },
    on(event: string, listener: () => void) { if (event === 'close') listeners.push(listener); return fake; },
  };
  return fake as unknown as ServerResponse & { sent: string[]; ended: boolean };
}

/** Lets every promise continuation that can run now run (the fake's reads are in-process). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

const recheckIntervalMs = 5_000;

async function makeHub(subjects: LiveSubjects, options: { noticeUsersPendingMax?: number } = {}) {
  const time = new VirtualTime(1_000_000);
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, new Writable({ write(chunk, _encoding, done) { lines.push(JSON.parse(String(chunk)) as Record<string, unknown>); done(); } }));
  const hub = new LiveHub({ kv: new MemoryKeyValueStore({ clock: time }), logger, clock: time, scheduler: time, subjects, recheckIntervalMs, ...options });
  await hub.start();
  const viewer = (name: string): LiveViewer => ({ name, role: 'viewer', tokenGeneration: 0, tokenExpiresAtMs: time.nowMs() + 3_600_000 });
  const attach = (name: string) => {
    const response = fakeResponse();
    hub.attach(response, viewer(name));
    return response;
  };
  return { time, hub, lines, attach };
}

describe('review h11 F2: a sweep against a database that is down', () => {
  it('reads once, ends the pass at the first failure and logs it once (API_LIVE_RECHECK_FAILED); the streams stay', async () => {
    const { table, subjects } = fakeSubjects();
    const { time, hub, lines, attach } = await makeHub(subjects);
    const streams = [];
    for (const user of ['u0', 'u1', 'u2', 'u3']) for (let i = 0; i < 5; i += 1) streams.push(attach(user));
    table.answer = () => new SdcError('STORE_UNAVAILABLE', 'the database is down');
    table.hold = 1;
    time.advance(recheckIntervalMs);
    await settle();
    assert.deepEqual(table.reads, [{ name: 'u0', fresh: true }]);
    table.release();
    await hub.rechecksSettled();
    assert.deepEqual(table.reads, [{ name: 'u0', fresh: true }], 'one read for the pass, not one per stream or per user');
    const failed = lines.filter((line) => line.code === 'API_LIVE_RECHECK_FAILED');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.trigger, 'sweep');
    assert.ok(streams.every((response) => !response.ended), 'streams are kept when the users cannot be read');
    // The next sweep tries again.
    time.advance(recheckIntervalMs);
    await hub.rechecksSettled();
    assert.equal(table.reads.length, 2);
    await hub.stop();
  });

  it('stop() waits only for the read in flight: nothing is read after it', async () => {
    const { table, subjects } = fakeSubjects();
    const { time, hub, attach } = await makeHub(subjects);
    const streams = [];
    for (const user of ['u0', 'u1', 'u2', 'u3']) for (let i = 0; i < 5; i += 1) streams.push(attach(user));
    table.hold = 1;
    time.advance(recheckIntervalMs);
    await settle();
    assert.equal(table.reads.length, 1);
    let stopped = false;
    const stopping = hub.stop().then(() => { stopped = true; });
    await settle();
    assert.equal(stopped, false, 'stop() waits for the read in flight');
    table.release();
    await stopping;
    assert.deepEqual(table.reads, [{ name: 'u0', fresh: true }], 'no read after stop()');
    assert.ok(streams.every((response) => response.ended && /"reason":"shutdown"/.test(response.sent.at(-1)!)));
  });
});

describe('review h11 F3: notices are merged per user and bounded', () => {
  it('50 notices for one user while its re-check reads: one more re-check, not 50; the one more sees the change', async () => {
    const { table, subjects } = fakeSubjects();
    const { hub, attach } = await makeHub(subjects);
    const ann = [attach('ann'), attach('ann')];
    table.hold = 1;
    table.onChanged!('ann');
    await settle();
    assert.equal(table.reads.length, 1);
    // The change commits after the first read's SELECT; its notice (and a flood of copies) comes while it is held.
    for (let i = 0; i < 50; i += 1) table.onChanged!('ann');
    // The first re-check's reads (this stream's and, from the cache, the other's) answer from before the change; later ones see it.
    table.answer = () => (table.reads.length > 2 ? new SdcError('API_TOKEN_REVOKED', 'revoked') : undefined);
    await settle();
    assert.equal(table.reads.length, 1, 'the notices are queued behind the running re-check, not read in parallel');
    table.release();
    await hub.rechecksSettled();
    // Each re-check reads fresh once for the user, then judges its other stream from the cache (a read of this fake).
    assert.deepEqual(table.reads.map((read) => read.fresh), [true, false, true, false], 'the first re-check and one merged re-check');
    assert.ok(ann.every((response) => response.ended && /"reason":"token_revoked"/.test(response.sent.at(-1)!)));
    assert.equal(hub.noticesDropped, 0);
    await hub.stop();
  });

  it('notices for more users than noticeUsersPendingMax: those beyond are dropped, counted and logged once; a user without streams costs nothing', async () => {
    const { table, subjects } = fakeSubjects();
    const pendingMax = 4;
    const { hub, lines, attach } = await makeHub(subjects, { noticeUsersPendingMax: pendingMax });
    const users = Array.from({ length: pendingMax + 6 }, (_, i) => `user${i}`);
    for (const user of users) attach(user);
    table.hold = users.length;
    table.onChanged!('nobody-here');
    for (const user of users) table.onChanged!(user);
    await settle();
    assert.deepEqual(table.reads.map((read) => read.name), users.slice(0, pendingMax), 'one read per user taken, at most noticeUsersPendingMax at once');
    assert.equal(hub.noticesDropped, 6);
    assert.equal(lines.filter((line) => line.code === 'API_LIVE_RECHECK_NOTICES_DROPPED').length, 1, 'one line for the burst');
    table.hold = 0;
    table.release();
    await hub.rechecksSettled();
    // Places are given back: a notice now is taken.
    table.onChanged!(users.at(-1)!);
    await hub.rechecksSettled();
    assert.equal(table.reads.length, pendingMax + 1);
    assert.equal(table.reads.at(-1)!.name, users.at(-1));
    assert.equal(liveHubLimits.noticeUsersPendingMax, pendingMax, 'the default is the bound tested');
    await hub.stop();
  });
});
