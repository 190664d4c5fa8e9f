import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { SdcError } from '../../core/errors/index.js';
import { VirtualTime } from '../../core/time/virtual-time.js';
import { liveChannel } from '../bus-contract/streams.js';
import type { KeyValueStore, MessageHandler, SubscribeOptions } from '../stores/kv/kv-port.js';
import { MemoryKeyValueStore } from '../stores/kv/memory-key-value-store.js';
import type { LiveEvent } from './context.js';
import { LiveHub } from './live.js';
import { LivePublisher, livePublisherLimits } from './live-publisher.js';

/**
 * The chaos finding (docs/chaos.md, redis-cut): a command's terminal state was published while
 * Redis was cut, the publish failed, and the operator's live stream showed the command
 * `executing` for ever (it was `succeeded` in SQL). A lost change must be followed by `resync`.
 */

const silent = pino({ level: 'silent' });
const event = (state: string): LiveEvent => ({ type: 'command', command_id: 'c_1', device_id: 'd1', state, at_ms: 1 });

/** The memory store behind a switch: while `down`, publish fails as ioredis does with Redis cut. */
function switchableKv(time: VirtualTime): { kv: KeyValueStore; heard: () => string[]; setDown(down: boolean): void } {
  const inner = new MemoryKeyValueStore({ clock: time });
  let down = false;
  const heard: string[] = [];
  void inner.subscribe(liveChannel, (message) => { heard.push(message); });
  const kv = new Proxy(inner, {
    get(target, name, receiver) {
      if (name === 'publish') {
        return async (channel: string, message: string) => {
          if (down) throw new SdcError('STORE_UNAVAILABLE', 'Redis is cut');
          return target.publish(channel, message);
        };
      }
      const value = Reflect.get(target, name, receiver) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { kv, heard: () => heard.map((m) => (JSON.parse(m) as { type: string; state?: string; reason?: string }).state ?? `resync:${(JSON.parse(m) as { reason: string }).reason}`), setDown: (value) => { down = value; } };
}

/** Lets the publish promises settle (the memory store answers in microtasks). */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 10; i += 1) await Promise.resolve();
};

describe('LivePublisher: a lost change is followed by a resync notice', () => {
  it('sends resync once the channel is back, on its retry timer, with no new change needed', async () => {
    const time = new VirtualTime(1_000);
    const store = switchableKv(time);
    const publisher = new LivePublisher({ kv: store.kv, logger: silent, clock: time, scheduler: time });
    publisher.publish(event('executing'));
    await settle();
    store.setDown(true);
    publisher.publish(event('succeeded'));
    await settle();
    assert.equal(publisher.resyncOwed, true);
    // Still down at the first retry: owed, retried later.
    time.advance(livePublisherLimits.retryFirstMs);
    await settle();
    assert.equal(publisher.resyncOwed, true);
    store.setDown(false);
    time.advance(livePublisherLimits.retryFirstMs * 2);
    await settle();
    assert.deepEqual(store.heard(), ['executing', 'resync:publish_lost']);
    assert.equal(publisher.resyncOwed, false);
    assert.equal(time.pendingTimers, 0);
    publisher.stop();
  });

  /** A publisher that lost one change while the store was down; the store is back. */
  const afterOneLoss = async () => {
    const time = new VirtualTime(1_000);
    const store = switchableKv(time);
    const publisher = new LivePublisher({ kv: store.kv, logger: silent, clock: time, scheduler: time });
    store.setDown(true);
    publisher.publish(event('executing'));
    await settle();
    store.setDown(false);
    return { time, store, publisher };
  };

  it('puts the notice before the next change when that comes first', async () => {
    const { time, store, publisher } = await afterOneLoss();
    publisher.publish(event('succeeded'));
    await settle();
    assert.deepEqual(store.heard(), ['resync:publish_lost', 'succeeded']);
    assert.equal(publisher.resyncOwed, false);
    publisher.stop();
    assert.equal(time.pendingTimers, 0);
  });

  it('sends one notice for the changes that come together when the channel is back', async () => {
    const { store, publisher } = await afterOneLoss();
    for (const state of ['succeeded', 'sent', 'failed']) publisher.publish(event(state));
    await settle();
    assert.deepEqual(store.heard(), ['resync:publish_lost', 'succeeded', 'sent', 'failed']);
    publisher.stop();
  });

  it('stays quiet while nothing is lost', async () => {
    const time = new VirtualTime(1_000);
    const store = switchableKv(time);
    const publisher = new LivePublisher({ kv: store.kv, logger: silent, clock: time, scheduler: time });
    publisher.publish(event('sent'));
    publisher.publish(event('succeeded'));
    await settle();
    time.advance(60_000);
    await settle();
    assert.deepEqual(store.heard(), ['sent', 'succeeded']);
    assert.equal(publisher.counts.resyncsSent, 0);
  });
});

describe('LiveHub: a subscription that was lost and is back tells its clients to resync', () => {
  it('relays resync (subscription_restored) when the store says the subscription came back', async () => {
    const time = new VirtualTime(1_000);
    const inner = new MemoryKeyValueStore({ clock: time });
    let resubscribed: (() => void) | undefined;
    const kv = new Proxy(inner, {
      get(target, name, receiver) {
        if (name === 'subscribe') {
          return (channel: string, handler: MessageHandler, options?: SubscribeOptions) => {
            resubscribed = options?.onResubscribed;
            return target.subscribe(channel, handler);
          };
        }
        const value = Reflect.get(target, name, receiver) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const hub = new LiveHub({ kv, logger: silent, clock: time, scheduler: time });
    await hub.start();
    const sent: string[] = [];
    const response = {
      writableLength: 0, writeHead() { return response; }, write(chunk: string) { sent.push(chunk); return true; },
      end() { return response; }, on() { return response; },
    };
    hub.attach(response as never, { name: 'op', role: 'viewer', tokenGeneration: 0, tokenExpiresAtMs: time.nowMs() + 60_000 });
    assert.ok(resubscribed !== undefined, 'the hub asks to hear of a lost subscription');
    resubscribed();
    assert.match(sent.at(-1)!, /^event: resync\ndata: \{"type":"resync","reason":"subscription_restored","at_ms":\d+\}\n\n$/);
    await hub.stop();
  });
});
