import { gatewayCommandStream, groups, kvKeys } from '../bus-contract/streams.js';
import type { TimerHandle } from '../../core/ports/ports.js';
import type { CommandRouter } from './command-router.js';
import type { GatewayContext } from './gateway-context.js';

/** Gateway ids kept in kvKeys.gatewayIds; beyond this a gateway still works but is not watched. */
export const gatewayIdsMax = 1024;
/** Entries one check hands back per dead gateway; the rest wait for the next check. */
const handBackPerCheckMax = 256;
const claimBatch = 64;

export function aliveTtlMs(refreshIntervalMs: number): number {
  return refreshIntervalMs * 3;
}

/**
 * Liveness between gateways sharing one store. Each gateway refreshes its liveness key (TTL 3
 * refresh periods) and lists its id in kvKeys.gatewayIds. Every peer check, a gateway whose
 * peer's key has expired claims that peer's pending command entries (idle at least the
 * liveness TTL) and reads its unread ones, and hands each back to the control plane (`requeue`).
 */
export class PeerWatch {
  #running = false;
  #aliveTimer: TimerHandle | undefined;
  #peerTimer: TimerHandle | undefined;

  constructor(private readonly context: GatewayContext, private readonly router: CommandRouter) {}

  async start(): Promise<void> {
    this.#running = true;
    await this.refreshAlive();
    await this.#register();
    this.#scheduleAlive();
    this.#schedulePeers();
  }

  stop(): void {
    this.#running = false;
    const { scheduler } = this.context.options;
    if (this.#aliveTimer !== undefined) scheduler.cancel(this.#aliveTimer);
    if (this.#peerTimer !== undefined) scheduler.cancel(this.#peerTimer);
  }

  /** Removes the liveness key at an orderly stop, so peers take over at their next check. */
  async retire(): Promise<void> {
    await this.context.options.stores.kv.del(kvKeys.gatewayAlive(this.context.options.gatewayId));
  }

  async refreshAlive(): Promise<void> {
    const { stores, gatewayId, aliveRefreshIntervalMs } = this.context.options;
    await stores.kv.set(kvKeys.gatewayAlive(gatewayId), JSON.stringify({ at_ms: this.context.nowMs() }), { ttlMs: aliveTtlMs(aliveRefreshIntervalMs) });
  }

  /** One pass over the other gateways; returns how many entries were handed back. */
  async checkPeers(): Promise<number> {
    const { stores, gatewayId } = this.context.options;
    let handedBack = 0;
    for (const peer of await this.#gatewayIds()) {
      if (peer === gatewayId) continue;
      if ((await stores.kv.get(kvKeys.gatewayAlive(peer))) !== null) continue;
      handedBack += await this.#reclaim(peer);
    }
    return handedBack;
  }

  async #reclaim(peer: string): Promise<number> {
    const { stores, gatewayId, aliveRefreshIntervalMs, logger } = this.context.options;
    const stream = gatewayCommandStream(peer);
    const why = `gateway ${peer} is not alive`;
    await stores.bus.ensureGroup(stream, groups.gateway, '0');
    let handedBack = 0;
    // Pending: delivered to the dead gateway, never finished.
    while (handedBack < handBackPerCheckMax) {
      const claimed = await stores.bus.claim(stream, groups.gateway, gatewayId, { minIdleMs: aliveTtlMs(aliveRefreshIntervalMs), count: claimBatch });
      for (const entry of claimed) await this.router.handBack(stream, entry, why);
      handedBack += claimed.length;
      if (claimed.length < claimBatch) break;
    }
    // Unread: appended before the control plane saw the devices go offline.
    while (handedBack < handBackPerCheckMax) {
      const unread = await stores.bus.readGroup(stream, groups.gateway, gatewayId, { count: claimBatch });
      for (const entry of unread) await this.router.handBack(stream, entry, why);
      handedBack += unread.length;
      if (unread.length < claimBatch) break;
    }
    if (handedBack > 0) logger.warn({ peer, handed_back: handedBack }, 'handed back the commands of a dead gateway');
    return handedBack;
  }

  async #gatewayIds(): Promise<string[]> {
    const text = await this.context.options.stores.kv.get(kvKeys.gatewayIds);
    if (text === null) return [];
    try {
      const value: unknown = JSON.parse(text);
      return Array.isArray(value) ? value.filter((id): id is string => typeof id === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(id)).slice(0, gatewayIdsMax) : [];
    } catch {
      return [];
    }
  }

  /**
   * Adds our id to the list. Read-modify-write is not atomic: two gateways registering at the same
   * moment can drop one id; every refresh re-registers, so the list heals within one period.
   */
  async #register(): Promise<void> {
    const { stores, gatewayId } = this.context.options;
    const ids = await this.#gatewayIds();
    if (ids.includes(gatewayId) || ids.length >= gatewayIdsMax) return;
    await stores.kv.set(kvKeys.gatewayIds, JSON.stringify([...ids, gatewayId]));
  }

  #scheduleAlive(): void {
    if (!this.#running) return;
    this.#aliveTimer = this.context.schedule(this.context.options.aliveRefreshIntervalMs, () => {
      void (async () => {
        try {
          await this.refreshAlive();
          await this.#register();
        } catch (error) {
          this.context.options.logger.error({ err: error }, 'liveness refresh failed');
        }
        this.#scheduleAlive();
      })();
    });
  }

  #schedulePeers(): void {
    if (!this.#running) return;
    this.#peerTimer = this.context.schedule(this.context.options.peerCheckIntervalMs, () => {
      void (async () => {
        try {
          if (this.#running) await this.checkPeers();
        } catch (error) {
          this.context.options.logger.error({ err: error }, 'peer check failed');
        }
        this.#schedulePeers();
      })();
    });
  }
}
