import { SdcError } from '../../core/errors/index.js';
import type { ConnectionEnv } from './connection.js';
import { ChaosProxy } from './proxy.js';
import type { ProxySpec } from './proxy-requests.js';

/**
 * The proxies by name (Toxiproxy's ProxyCollection). Callers serialise mutations (the HTTP API
 * runs one at a time), so a name is never taken twice while a listen is in progress.
 */
export class ProxyRegistry {
  readonly #proxies = new Map<string, ChaosProxy>();

  constructor(private readonly env: ConnectionEnv) {}

  list(): ChaosProxy[] {
    return [...this.#proxies.values()];
  }

  get(name: string): ChaosProxy {
    const proxy = this.#proxies.get(name);
    if (proxy === undefined) throw new SdcError('CHAOS_PROXY_NOT_FOUND', 'proxy not found', { proxy: name });
    return proxy;
  }

  /** Adds and (when enabled) starts a proxy; one that cannot listen is not added. */
  async create(spec: ProxySpec): Promise<ChaosProxy> {
    if (this.#proxies.has(spec.name)) throw new SdcError('CHAOS_PROXY_EXISTS', 'proxy already exists', { proxy: spec.name });
    this.#checkRoom(1);
    const proxy = new ChaosProxy(spec, this.env);
    if (spec.enabled) await proxy.start();
    this.#proxies.set(spec.name, proxy);
    return proxy;
  }

  async remove(name: string): Promise<void> {
    const proxy = this.get(name);
    this.#proxies.delete(name);
    await proxy.stop();
  }

  /**
   * Creates or replaces each proxy in order: one with the same addresses is kept (toxics and
   * connections too) and only its `enabled` applied; one with other addresses is replaced. On a
   * failure the proxies applied before it stay, and are returned with the error.
   */
  async populate(specs: readonly ProxySpec[], applied: ChaosProxy[]): Promise<void> {
    this.#checkRoom(specs.filter((s) => !this.#proxies.has(s.name)).length);
    for (const spec of specs) applied.push(await this.#populateOne(spec));
  }

  /** Toxiproxy's reset: every proxy enabled again, every toxic removed. */
  async reset(): Promise<void> {
    for (const proxy of this.#proxies.values()) {
      await proxy.start();
      proxy.removeAllToxics();
    }
  }

  async closeAll(): Promise<void> {
    const proxies = this.list();
    this.#proxies.clear();
    await Promise.all(proxies.map((p) => p.stop()));
  }

  async #populateOne(spec: ProxySpec): Promise<ChaosProxy> {
    const existing = this.#proxies.get(spec.name);
    if (existing !== undefined && existing.sameAddresses(spec)) {
      await (spec.enabled ? existing.start() : existing.stop());
      return existing;
    }
    if (existing !== undefined) await this.remove(spec.name);
    return this.create(spec);
  }

  #checkRoom(adding: number): void {
    const max = this.env.limits.proxiesMax;
    if (this.#proxies.size + adding > max) throw new SdcError('CHAOS_LIMIT_REACHED', `the server holds at most ${max} proxies`, { proxiesMax: max });
  }
}
