import type { MessageBody } from '../../core/protocol/messages/catalog.js';
import type { SignedPolicyBundle } from '../../core/protocol/policy-bundle-schema.js';
import { parseStrictJson } from '../../core/protocol/strict-json.js';
import { policyBundleLimits } from '../../core/protocol/policy-bundle.js';
import { policyBundleChannels, policyBundleKeys } from '../bus-contract/policy-bundle-keys.js';
import type { GatewayContext } from './gateway-context.js';

/** A session that can take a POLICY_BUNDLE now; false when it is closing. */
export type BundleTarget = (signed: SignedPolicyBundle) => boolean;

/**
 * The gateway's half of the policy bundle push (docs/policy.md): after a device's AUTH, the
 * bundle the control plane stored for it is sent, or asked for when it is missing, older than
 * the revision in force or past half its validity; a `ready` notice sends a freshly signed one to
 * its device if the device is here; a `revision` notice asks for every device held here. The
 * gateway does not verify bundles (the agent does, against the key it pinned); it only parses
 * what the store holds, so a malformed value is not sent.
 */
export class PolicyBundlePush {
  readonly #context: GatewayContext;
  readonly #targetOf: (deviceId: string) => BundleTarget | undefined;
  readonly #connectedDevices: () => Iterable<string>;
  #unsubscribes: Array<() => Promise<void>> = [];
  /** The revision in force as last announced; undefined until known. */
  #revision: number | undefined;

  constructor(options: { context: GatewayContext; targetOf: (deviceId: string) => BundleTarget | undefined; connectedDevices: () => Iterable<string> }) {
    this.#context = options.context;
    this.#targetOf = options.targetOf;
    this.#connectedDevices = options.connectedDevices;
  }

  async start(): Promise<void> {
    const { kv } = this.#context.options.stores;
    this.#unsubscribes.push(await kv.subscribe(policyBundleChannels.ready, (deviceId) => void this.#onReady(deviceId)));
    this.#unsubscribes.push(await kv.subscribe(policyBundleChannels.revision, (text) => void this.#onRevision(text)));
    this.#revision = parseRevision(await kv.get(policyBundleKeys.revision));
  }

  async stop(): Promise<void> {
    const unsubscribes = this.#unsubscribes.splice(0);
    await Promise.all(unsubscribes.map((unsubscribe) => unsubscribe().catch((error: unknown) => {
      this.#context.options.logger.warn({ err: error }, 'policy bundle channel unsubscribe failed');
    })));
  }

  /** After AUTH: send the stored bundle if it is current, else ask the control plane for one. Never throws. */
  async onAuthenticated(deviceId: string): Promise<void> {
    try {
      // Read again here: a revision notice this gateway missed (pub/sub is at most once) is caught at the next AUTH.
      const revision = parseRevision(await this.#context.options.stores.kv.get(policyBundleKeys.revision));
      if (revision !== undefined && (this.#revision === undefined || revision > this.#revision)) this.#revision = revision;
      const signed = await this.#stored(deviceId);
      if (signed !== undefined) this.#targetOf(deviceId)?.(signed);
      if (signed === undefined || !this.#isCurrent(signed)) await this.#request(deviceId);
    } catch (error) {
      this.#context.options.logger.warn({ err: error, device_id: deviceId }, 'policy bundle not pushed after AUTH');
    }
  }

  #isCurrent(signed: SignedPolicyBundle): boolean {
    const { version, issued_at: issuedAtMs, expires_at: expiresAtMs } = signed.bundle;
    if (this.#revision !== undefined && version < this.#revision) return false;
    // Re-signed past half its validity, so a device that stays connected never holds an expired one for long.
    return this.#context.nowMs() < issuedAtMs + (expiresAtMs - issuedAtMs) / 2;
  }

  async #onReady(deviceId: string): Promise<void> {
    const target = this.#targetOf(deviceId);
    if (target === undefined) return;
    try {
      const signed = await this.#stored(deviceId);
      if (signed !== undefined) target(signed);
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

  async #request(deviceId: string): Promise<void> {
    try {
      await this.#context.options.stores.kv.publish(policyBundleChannels.requests, deviceId);
    } catch (error) {
      this.#context.options.logger.warn({ err: error, device_id: deviceId }, 'policy bundle request not published');
    }
  }

  /** The stored bundle, parsed with the frame limits; a malformed value is logged and treated as none. */
  async #stored(deviceId: string): Promise<SignedPolicyBundle | undefined> {
    const text = await this.#context.options.stores.kv.get(policyBundleKeys.bundle(deviceId));
    if (text === null) return undefined;
    try {
      const value = parseStrictJson(text, { frameBytesMax: policyBundleLimits.signedBytesMax }) as unknown as SignedPolicyBundle;
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
