import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type WebSocket from 'ws';
import { SdcError } from '../core/errors/index.js';
import { EchoPipe } from './ws-echo.js';

/** A socket whose echoes the test sends by hand. */
function fakeSocket(): WebSocket & { sent: number } {
  const socket = Object.assign(new EventEmitter(), { sent: 0, send() { socket.sent += 1; } });
  return socket as unknown as WebSocket & { sent: number };
}

describe('bench: the echo baseline with several echoes in flight on one socket (--rate)', () => {
  it('each echo settles the oldest wait, in order', async () => {
    const ws = fakeSocket();
    const pipe = new EchoPipe(ws);
    const settled: number[] = [];
    const waits = [0, 1, 2].map((i) => pipe.echo(Buffer.from('x'), 60_000).then(() => settled.push(i)));
    assert.equal(ws.sent, 3);
    ws.emit('message', Buffer.from('x'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(settled, [0]);
    ws.emit('message', Buffer.from('x'));
    ws.emit('message', Buffer.from('x'));
    await Promise.all(waits);
    assert.deepEqual(settled, [0, 1, 2]);
  });

  it('a lost echo fails every wait on that socket, not just its own', async () => {
    const ws = fakeSocket();
    const pipe = new EchoPipe(ws);
    const first = pipe.echo(Buffer.from('x'), 20);
    const second = pipe.echo(Buffer.from('x'), 60_000);
    await assert.rejects(first, (error: unknown) => SdcError.is(error, 'HTTP_UNREACHABLE'));
    await assert.rejects(second, (error: unknown) => SdcError.is(error, 'HTTP_UNREACHABLE'));
  });
});
