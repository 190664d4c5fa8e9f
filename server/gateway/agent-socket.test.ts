import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { AgentSocket, AgentWebSocket, type AgentSocketShared } from './agent-socket.js';
import type { ConnectionHandle } from './gateway-core.js';

/** A server-side WebSocket as ws's server makes one (no socket attached: nothing here writes). */
function serverSideWebSocket(): AgentWebSocket {
  return new AgentWebSocket(null as never, undefined as never, {} as never);
}

function sharedOptions(): AgentSocketShared {
  return { clock: { nowMs: () => 1_000 }, logger: pino({ level: 'silent' }), metrics: undefined, messagesPerSecondMax: 10, maxPayloadBytes: 1_024, socketBufferedBytesMax: 1_048_576, received: { frames: 0 } };
}

describe('AgentSocket (one agent\'s WebSocket on the gateway)', () => {
  it('takes ws\'s events without a listener of its own per socket, and still runs the listeners of others', () => {
    const ws = serverSideWebSocket();
    const order: string[] = [];
    // ws's server adds its own close listener before the gateway sees the socket.
    ws.on('close', () => order.push('server listener'));
    const agent = new AgentSocket(ws, sharedOptions());
    const received: number[] = [];
    let pongs = 0;
    const handle: ConnectionHandle = {
      receive: (bytes) => received.push(bytes.length),
      transportClosed: () => order.push('transport closed'),
      pong: () => { pongs += 1; },
    };
    agent.handle = handle;
    // Four listeners per socket cost each session about 150 bytes (docs/benchmarks.md, 2026-12-04 night).
    assert.deepEqual(['message', 'pong', 'error'].map((event) => ws.listenerCount(event)), [0, 0, 0]);
    assert.equal(ws.listenerCount('close'), 1);
    ws.emit('message', Buffer.from('abc'), true);
    ws.emit('pong', Buffer.alloc(0));
    assert.equal(ws.emit('error', new Error('bad frame')), true, 'an error is taken (logged), never thrown for want of a listener');
    ws.emit('close', 1000, Buffer.alloc(0));
    assert.deepEqual(received, [3]);
    assert.equal(pongs, 1);
    assert.deepEqual(order, ['server listener', 'transport closed']);
    assert.equal(agent.shared.received.frames, 1);
  });

  it('once its agent is cut off (a killed gateway), reaches nothing and throws no unheard error', () => {
    const ws = serverSideWebSocket();
    const agent = new AgentSocket(ws, sharedOptions());
    let calls = 0;
    agent.handle = { receive: () => { calls += 1; }, transportClosed: () => { calls += 1; } };
    ws.agent = undefined;
    ws.emit('message', Buffer.from('x'), true);
    ws.emit('close', 1006, Buffer.alloc(0));
    assert.equal(ws.emit('error', new Error('late')), false);
    assert.equal(calls, 0);
  });
});
