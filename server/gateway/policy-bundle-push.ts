import type { TimerHandle } from '../../core/ports/ports.js';
import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import { SdcError } from '../../core/errors/index.js';
import type { SignedPolicyBundle } from '../../core/protocol/policy-bundle-schema.js';
import { policyBundleLimits } from '../../core/protocol/policy-bundle.js';
import { policyBundleChannels, policyBundleKeys } from '../bus-contract/policy-bundle-keys.js';
import type { GatewayContext } from './gateway-context.js';

/** A session that can take a POLICY_BUNDLE now; false when it is closing. */
export type BundleTarget = (signed: SignedPolicyBundle) => boolean;

export const policyBundlePushLimits = Object.freeze({
  /**
   * How often the gateway looks for connected devices whose bundle is past half its validity (a
   * week by default, so re-signed after 3.5 days): an in-memory scan of the sessions, no store
   * reads; a device is re-asked for at most once per sweep.
   */
  refreshSweepIntervalMs: 5 * 60_000,
});

/**
 * The gateway's half of the policy bundle push (docs/policy.md): after a device's AUTH, the
 * bundle the control plane stored for it is sent, or asked for when it is missing, older than
 * the revision in force or past half its validity; a `ready` notice sends a freshly signed one to
 * its device if the device is here; a `revision` notice asks for every device held here, and so
 * does an `inputs` notice (the approvers' keys or roles changed; a stored bundle issued before
 * then is stale at AUTH, and a missed notice is caught at the next sweep). The
 * gateway does not verify bundles (the agent does, against the key it pinned); it only parses
 * what the store holds, so a malformed value is not sent: one that does not parse, is too large
 * or names another device, or that the session cannot encode into a frame (the frame's schema
 * check and canonical form refuse it), is logged and, after AUTH, a new one asked for.
 */
export class PolicyBundlePush {
  readonly #context: GatewayContext;
  readonly #targetOf: (deviceId: string) => BundleTarget | undefined;
  readonly #connectedDevices: () => Iterable<string>;
  #unsubscribes: Array<() => Promise<void>> = [];
  /** The revision in force as last announced; undefined until known. */
  #revision: number | undefined;
  /** When the approvers' keys last changed (policyBundleKeys.inputsChangedAt): a bundle issued before is stale; undefined until known. */
  #inputsChangedAtMs: number | undefined;
  /** Per device held here, when the bundle last sent to it is due for a re-sign (half its validity); bounded by the sessions. */
  readonly #refreshAtMs = new Map<string, number>();
  readonly #sweepIntervalMs: number;
  #sweepTimer: TimerHandle | undefined;
  #stopped = false;

  constructor(options: {
    context: GatewayContext; targetOf: (deviceId: string) => BundleTarget | undefined; connectedDevices: () => Iterable<string>;
    /** Default policyBundlePushLimits.refreshSweepIntervalMs. */
    refreshSweepIntervalMs?: number;
  }) {
    this.#context = options.context;
    this.#targetOf = options.targetOf;
    this.#connectedDevices = options.connectedDevices;
    this.#sweepIntervalMs = options.refreshSweepIntervalMs ?? policyBundlePushLimits.refreshSweepIntervalMs;
  }

  async start(): Promise<void> {
    const { kv } = this.#context.options.stores;
    this.#unsubscribes.push(await kv.subscribe(policyBundleChannels.ready, (deviceId) => void this.#onReady(deviceId)));
    this.#unsubscribes.push(await kv.subscribe(policyBundleChannels.revision, (text) => void this.#onRevision(text)));
    this.#unsubscribes.push(await kv.subscribe(policyBundleChannels.inputs, (text) => void this.#onInputs(text)));
    this.#revision = parseRevision(await kv.get(policyBundleKeys.revision));
    this.#inputsChangedAtMs = parseRevision(await kv.get(policyBundleKeys.inputsChangedAt));
    this.#scheduleSweep();
  }

  /**
   * A device that stays connected for days would otherwise keep the bundle it got at AUTH until
   * it expires (the AUTH-time check is the only other re-sign trigger): every sweep asks for a
   * fresh one for each device held here whose bundle is past half its validity, or that has none
   * this gateway knows of (a request lost, a control plane that was down).
   */
  #scheduleSweep(): void {
    if (this.#stopped) return;
    this.#sweepTimer = this.#context.schedule(this.#sweepIntervalMs, () => {
      this.#sweepTimer = undefined;
      void this.refreshDue().finally(() => this.#scheduleSweep());
    });
  }

  /** One sweep (the timer's; tests call it on virtual time): asks for the bundles due; returns the devices asked for. Never throws. */
  async refreshDue(): Promise<string[]> {
    // An inputs notice this gateway missed (pub/sub is at most once) is caught here, one read per sweep.
    const inputsChanged = await this.#readInputsChangedAt();
    const nowMs = this.#context.nowMs();
    const connected = new Set(this.#connectedDevices());
    for (const deviceId of this.#refreshAtMs.keys()) if (!connected.has(deviceId)) this.#refreshAtMs.delete(deviceId);
    const due = [...connected].filter((deviceId) => inputsChanged || (this.#refreshAtMs.get(deviceId) ?? nowMs) <= nowMs);
    for (const deviceId of due) {
      // Asked once per sweep until the fresh bundle arrives (#sent moves the time on).
      this.#refreshAtMs.set(deviceId, nowMs + this.#sweepIntervalMs);
      await this.#request(deviceId);
    }
    return due;
  }

  /**
   * Sends a bundle to a device held here and remembers when it is due for a re-sign. 'malformed':
   * the session refused to encode it (a typed refusal of its schema check or canonical form), so
   * the stored value cannot be sent as it is; nothing went out.
   */
  #send(deviceId: string, signed: SignedPolicyBundle, target: BundleTarget | undefined = this.#targetOf(deviceId)): boolean | 'malformed' {
    if (target === undefined) return false;
    try {
      if (!target(signed)) return false;
    } catch (error) {
      if (!SdcError.is(error)) throw error;
      this.#context.options.logger.error({ err: error, device_id: deviceId }, 'stored policy bundle cannot be sent in a frame; not sent');
      return 'malformed';
    }
    const { issued_at: issuedAtMs, expires_at: expiresAtMs } = signed.bundle;
    this.#refreshAtMs.set(deviceId, issuedAtMs + Math.floor((expiresAtMs - issuedAtMs) / 2));
    return true;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#sweepTimer !== undefined) this.#context.options.scheduler.cancel(this.#sweepTimer);
    this.#sweepTimer = undefined;
    const unsubscribes = this.#unsubscribes.splice(0);
    await Promise.all(unsubscribes.map((unsubscribe) => unsubscribe().catch((error: unknown) => {
      this.#context.options.logger.warn({ err: error }, 'policy bundle channel unsubscribe failed');
    })));
  }

  /**
   * After AUTH: send the stored bundle if it is current, else ask the control plane for one. Never
   * throws; false when a store call failed (the gateway does it again later: gateway-core.ts #refreshOwed).
   */
  async onAuthenticated(deviceId: string): Promise<boolean> {
    try {
      // Read again here: a revision notice this gateway missed (pub/sub is at most once) is caught at the next AUTH.
      const revision = parseRevision(await this.#context.options.stores.kv.get(policyBundleKeys.revision));
      if (revision !== undefined && (this.#revision === undefined || revision > this.#revision)) this.#revision = revision;
      const signed = await this.#stored(deviceId);
      const sent = signed === undefined ? undefined : this.#send(deviceId, signed);
      if (signed === undefined || sent === 'malformed' || !this.#isCurrent(signed)) return await this.#request(deviceId);
      return true;
    } catch (error) {
      this.#context.options.logger.warn({ err: error, device_id: deviceId }, 'policy bundle not pushed after AUTH');
      return false;
    }
  }

  #isCurrent(signed: SignedPolicyBundle): boolean {
    const { version, issued_at: issuedAtMs, expires_at: expiresAtMs } = signed.bundle;
    if (this.#revision !== undefined && version < this.#revision) return false;
    // Cut before the approvers' keys or roles last changed: it may still list a removed approver.
    if (this.#inputsChangedAtMs !== undefined && issuedAtMs < this.#inputsChangedAtMs) return false;
    // Re-signed past half its validity, so a device that stays connected never holds an expired one for long.
    return this.#context.nowMs() < issuedAtMs + (expiresAtMs - issuedAtMs) / 2;
  }

  async #onReady(deviceId: string): Promise<void> {
    const target = this.#targetOf(deviceId);
    if (target === undefined) return;
    try {
      const signed = await this.#stored(deviceId);
      if (signed !== undefined) this.#send(deviceId, signed, target);
    } catch (error) {
      this.#context.options.logger.warn({ err: error, device_id: deviceId }, 'policy bundle not pushed');
    }
  }

  async #onRevision(text: string): Promise<void> {
    const revision = parseRevision(text);
    if (revision === undefined || (this.#revision !== undefined && revision <= this.#revision)) return;
    this.#revision = revision;
    // Bounded by the sessions this gateway holds (connectionsMax).
    for (const deviceId of this.#connectedDevices()) await this.#request(deviceId);
  }

  /**
   * The approvers' keys or roles changed (a control plane noticed: PolicyBundlePublisher.checkApprovers):
   * ask for every device held here, as for a new revision.
   */
  async #onInputs(text: string): Promise<void> {
    if (!this.#advanceInputsChangedAt(parseRevision(text))) return;
    for (const deviceId of this.#connectedDevices()) await this.#request(deviceId);
  }

  /** Reads policyBundleKeys.inputsChangedAt; true when it moved past the time known here. Never throws (false, logged). */
  async #readInputsChangedAt(): Promise<boolean> {
    try {
      return this.#advanceInputsChangedAt(parseRevision(await this.#context.options.stores.kv.get(policyBundleKeys.inputsChangedAt)));
    } catch (error) {
      this.#context.options.logger.warn({ err: error }, 'policy bundle inputs time not read');
      return false;
    }
  }

  #advanceInputsChangedAt(atMs: number | undefined): boolean {
    if (atMs === undefined || (this.#inputsChangedAtMs !== undefined && atMs <= this.#inputsChangedAtMs)) return false;
    this.#inputsChangedAtMs = atMs;
    return true;
  }

  /** False when the request could not be published (logged). */
  async #request(deviceId: string): Promise<boolean> {
    try {
      await this.#context.options.stores.kv.publish(policyBundleChannels.requests, deviceId);
      return true;
    } catch (error) {
      this.#context.options.logger.warn({ err: error, device_id: deviceId }, 'policy bundle request not published');
      return false;
    }
  }

  /**
   * The stored bundle, within the signed size limit and for this device; a malformed value is
   * logged and treated as none. JSON.parse, not the strict parser: the value is the control
   * plane's canonical text, not a frame from outside, and the strict parse was 1.6 % of a
   * simulated fleet's start-up CPU (issue 17). What it would refuse and JSON.parse takes cannot
   * get past the frame: a lone surrogate, a number out of range or deep nesting is refused by
   * the frame's encoding (#send treats it as malformed); a repeated member keeps its last value,
   * which the agent's check of the control plane's signature then judges.
   */
  async #stored(deviceId: string): Promise<SignedPolicyBundle | undefined> {
    const text = await this.#context.options.stores.kv.get(policyBundleKeys.bundle(deviceId));
    if (text === null) return undefined;
    try {
      const bytes = Buffer.byteLength(text, 'utf8');
      if (bytes > policyBundleLimits.signedBytesMax) throw new Error(`stored bundle is ${bytes} bytes, over ${policyBundleLimits.signedBytesMax}`);
      const value = JSON.parse(text) as SignedPolicyBundle | null;
      if (value?.bundle?.device_id !== deviceId) throw new Error('stored bundle names another device');
      return value;
    } catch (error) {
      this.#context.options.logger.error({ err: error, device_id: deviceId }, 'stored policy bundle is malformed; asking for a new one');
      return undefined;
    }
  }
}

function parseRevision(text: string | null): number | undefined {
  if (text === null || !/^\d{1,15}$/.test(text)) return undefined;
  return Number(text);
}

/**
 * A device's POLICY_BUNDLE_REPORT: its signed frame goes to the events stream, where the control
 * plane audits it once per (device, version, outcome) and raises a `policy_bundle_refused`
 * warning alert for a new refusal (policy-bundle-reports.ts); an acceptance also records the
 * version the device enforces under policyBundleKeys.held. Never throws.
 */
export async function reportPolicyBundle(context: GatewayContext, deviceId: string, report: MessageBody<'POLICY_BUNDLE_REPORT'>, frame: string): Promise<void> {
  const { logger } = context.options;
  try {
    await context.report('policy_bundle_report', { device_id: deviceId, gateway_id: context.options.gatewayId, at_ms: context.nowMs(), frame });
  } catch (error) {
    logger.error({ err: error, device_id: deviceId, version: report.version }, 'policy bundle report not forwarded');
  }
  if (report.status === 'refused') {
    logger.warn({ device_id: deviceId, version: report.version, code: report.error?.code }, 'device refused its policy bundle');
    return;
  }
  try {
    await context.options.stores.kv.set(policyBundleKeys.held(deviceId), String(report.version));
  } catch (error) {
    logger.warn({ err: error, device_id: deviceId }, 'accepted policy bundle version not recorded');
  }
  logger.info({ device_id: deviceId, version: report.version }, 'device accepted its policy bundle');
}
