import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { it } from 'node:test';
import type { RandomSource, Scheduler, TimerHandle } from '../core/ports/ports.js';
import type { AgentCore } from './agent-core.js';
import { startWsAgentDriver } from './ws-transport.js';

/** A port nothing listens on: every connection attempt fails at once. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

// Issue 15 (reconnect storm): after a gateway dies its agents must not come back in step. The
// driver draws each reconnect delay uniformly from [0, min(max, base * 2^attempt)] (full jitter)
// through its RandomSource; this pins the bounds it asks for and that the delay waited is the draw.
it('reconnect delays are full-jitter draws under an exponential ceiling, capped at backoffMaxMs', async () => {
  const bounds: number[] = [];
  const waited: number[] = [];
  const attempts = 8;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => { done = resolve; });
  // Each draw returns a different point of its range, so a delay that ignored the draw would show.
  const random: RandomSource = {
    bytes: (length) => new Uint8Array(length),
    intBelow: (bound) => { bounds.push(bound); return Math.floor((bound - 1) * (bounds.length % 2 === 0 ? 1 : 0.25)); },
  };
  let nextId = 0;
  const scheduler: Scheduler = {
    schedule: (delayMs, callback): TimerHandle => {
      waited.push(delayMs);
      if (waited.length >= attempts) done();
      else setImmediate(callback);
      return { id: ++nextId };
    },
    cancel: () => undefined,
  };
  const core = { isReady: false, onConnected: () => { throw new Error('no connection should open'); }, stop: async () => undefined } as unknown as AgentCore;
  const driver = startWsAgentDriver({
    core, urls: [`wss://127.0.0.1:${await closedPort()}/v1/agent`], certPem: '', keyPem: '', caPem: '', random, scheduler, backoffBaseMs: 500, backoffMaxMs: 30_000,
  });
  await finished;
  await driver.stop();
  assert.deepEqual(bounds.slice(0, attempts), [501, 1_001, 2_001, 4_001, 8_001, 16_001, 30_001, 30_001]);
  assert.deepEqual(waited, bounds.slice(0, attempts).map((bound, i) => Math.floor((bound - 1) * ((i + 1) % 2 === 0 ? 1 : 0.25))));
});
