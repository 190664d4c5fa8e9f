import { SdcError } from '../core/errors/index.js';
import type { Ed25519Provider, Sha256 } from '../core/ports/ports.js';
import type { SignedCommand } from '../core/protocol/messages/command.js';
import type { PolicyBundleReport, SignedPolicyBundle } from '../core/protocol/policy-bundle-schema.js';
import { commandBundleRefusal, verifyPolicyBundle, type HeldPolicyBundle, type ReceivedBundleText, type VerifiedPolicyBundle } from '../core/protocol/policy-bundle.js';

/**
 * Where the agent keeps the bundle it enforces, so a restart (or a control plane that stays
 * down) does not lose it. The real agent writes one file atomically (policy-bundle-file.ts); the
 * simulator and tests keep it in memory.
 */
export interface PolicyBundleStore {
  /** The bundle saved last, as saved; undefined when none was ever saved. */
  load(): Promise<unknown>;
  /**
   * Replaces the saved bundle; resolves once it would survive a crash. `text`, when given, is
   * exactly canonicalize(signed) (the guard has it from the signature check): saved as it is.
   */
  save(signed: SignedPolicyBundle, text?: string): Promise<void>;
}

/**
 * In memory, the bundle is kept as the JSON text a file would hold, not as a copy of its object
 * tree: every simulated agent has a store, and the copy of a bundle parsed from its frame cost
 * about 2.3 KB of heap against 1.4 KB for its text (the default policy; 100,000 agents share one
 * process, issue 17). `saved` and load() parse the text, a fresh copy each time, as a file's
 * would be.
 */
export function createMemoryPolicyBundleStore(initial?: unknown): PolicyBundleStore & { readonly saved: unknown } {
  return new MemoryPolicyBundleStore(initial === undefined ? undefined : JSON.stringify(initial));
}

/** A class, so a store is one small object and its text (its methods are shared, not closures per store). */
class MemoryPolicyBundleStore implements PolicyBundleStore {
  #text: string | undefined;

  constructor(text: string | undefined) {
    this.#text = text;
  }

  get saved(): unknown {
    return this.#text === undefined ? undefined : JSON.parse(this.#text);
  }

  async load(): Promise<unknown> {
    return this.saved;
  }

  async save(signed: SignedPolicyBundle, text?: string): Promise<void> {
    this.#text = text ?? JSON.stringify(signed);
  }
}

export interface PolicyBundleGuardOptions {
  deviceId: string;
  /** The control plane's command keys pinned at enrollment: bundles are signed with the same key. */
  resolveKey: (kid: string) => Uint8Array | undefined;
  provider: Ed25519Provider;
  /** Hashes the approval subject of a command released by approvals (core/protocol/approvals.ts). */
  sha256: Sha256;
  store: PolicyBundleStore;
}

/**
 * The agent's local policy: the last bundle it accepted, checked before every command.
 *
 * Before the first bundle (a device just enrolled, or a control plane that never pushed one) no
 * command is refused by the guard: the control plane's signature and its own policy check still
 * apply, and refusing everything would make a new device unusable until its first session.
 * From the first bundle on, the guard refuses what the bundle denies, whether or not the control
 * plane is reachable; an expired held bundle is still enforced (dropping it would loosen the
 * rules exactly when the control plane is unreachable), only a newer one replaces it.
 */
export class PolicyBundleGuard {
  readonly #o: PolicyBundleGuardOptions;
  /** What is kept of the accepted bundle (core: HeldPolicyBundle); the signed document is the store's. */
  #held: HeldPolicyBundle | undefined;
  /** The held bundle's signature (heldSignatureOf), to tell a push of the very same bundle from a new one. */
  #heldSignature: string | undefined;
  /** Serialises accepts, so two pushes in a row are compared and saved in order. */
  #saving: Promise<unknown> = Promise.resolve();

  constructor(options: PolicyBundleGuardOptions) {
    this.#o = options;
  }

  /** The version enforced now, if any. */
  get version(): number | undefined {
    return this.#held?.version;
  }

  /**
   * Reloads the saved bundle. Its signature, device and policy are checked again (the file is
   * outside the signature's protection otherwise); its expiry is not (see the class comment).
   * A saved bundle that fails is not enforced, and the error is returned for the log.
   */
  async load(): Promise<SdcError | undefined> {
    try {
      const saved = await this.#o.store.load();
      if (saved === undefined) return undefined;
      const verified = this.#verify(saved, undefined);
      this.#held = verified.held;
      this.#heldSignature = heldSignatureOf(verified);
      return undefined;
    } catch (error) {
      return SdcError.is(error) ? error : new SdcError('POLICY_BUNDLE_INVALID', String(error));
    }
  }

  /** A pushed bundle: verified against the held version, saved, then enforced. Returns the report to send. */
  async accept(signed: unknown, nowMs: number, bundleText?: ReceivedBundleText): Promise<PolicyBundleReport> {
    return (await this.offer(signed, nowMs, bundleText)).report;
  }

  /**
   * accept(), also saying what became of the bundle: `saved` (a new bundle, saved and now
   * enforced), `held` (the very bundle held already: accepted again, nothing written) or
   * `refused`. Offers are taken one at a time, in order. `bundleText`: the bundle's canonical text
   * as received (core's receivedBundleText, from a frame proven canonical), used only for the very
   * bundle object it was cut beside.
   */
  offer(signed: unknown, nowMs: number, bundleText?: ReceivedBundleText): Promise<PolicyBundleOffer> {
    const next = this.#saving.then(() => this.#accept(signed, nowMs, bundleText));
    this.#saving = next.catch(() => undefined);
    return next;
  }

  async #accept(signed: unknown, nowMs: number, bundleText: ReceivedBundleText | undefined): Promise<PolicyBundleOffer> {
    const offeredVersion = versionOf(signed);
    let verified: VerifiedPolicyBundle;
    try {
      verified = this.#verify(signed, nowMs, bundleText);
    } catch (error) {
      const typed = SdcError.is(error) ? error : new SdcError('POLICY_BUNDLE_INVALID', String(error));
      return {
        outcome: 'refused',
        report: {
          version: offeredVersion, status: 'refused', ...this.#heldVersion(),
          error: { code: typed.code, message: typed.message.slice(0, 512) },
        },
      };
    }
    const version = verified.held.version;
    const signature = heldSignatureOf(verified);
    const held = this.#held;
    // The gateway pushes the same bundle at every AUTH, and a hostile or broken one may replay it
    // without end: the very bundle held (same version and issue time, and the same signature over
    // the bundle, hence the same signed bytes) is acknowledged as before, but not written again
    // (one file write and fsync per frame wore out flash and queued work without bound).
    if (held !== undefined && held.version === version && held.issuedAtMs === verified.held.issuedAtMs && this.#heldSignature === signature) {
      return { outcome: 'held', report: { version, status: 'accepted', held_version: version } };
    }
    // Saved before it is enforced: a bundle that would not survive a restart is not taken.
    // With its canonical text, which the signature check wrote: the store does not write the bundle out again (issue 17).
    await this.#o.store.save(verified.signed, verified.signedText);
    this.#held = verified.held;
    this.#heldSignature = signature;
    return { outcome: 'saved', report: { version, status: 'accepted', held_version: version } };
  }

  /** The refusal for a command the held bundle denies; undefined when it allows or no bundle is held. */
  check(command: SignedCommand, gatewayNowMs: number): SdcError | undefined {
    const held = this.#held;
    if (held === undefined) return undefined;
    // Approvals the command carries are verified against the bundle's approver keys (commandBundleRefusal).
    return commandBundleRefusal(held, command, { nowMs: gatewayNowMs, provider: this.#o.provider, sha256: this.#o.sha256 });
  }

  #verify(signed: unknown, nowMs: number | undefined, receivedBundleText?: ReceivedBundleText): VerifiedPolicyBundle {
    const held = this.#held;
    return verifyPolicyBundle({
      signed, deviceId: this.#o.deviceId, resolveKey: this.#o.resolveKey, provider: this.#o.provider, nowMs,
      ...(receivedBundleText === undefined ? {} : { receivedBundleText }),
      ...(held === undefined ? {} : { held: { version: held.version, issuedAtMs: held.issuedAtMs } }),
    });
  }

  #heldVersion(): { held_version?: number } {
    return this.#held === undefined ? {} : { held_version: this.#held.version };
  }
}

/** What became of an offered bundle, and the report to send for it. */
export interface PolicyBundleOffer {
  readonly outcome: 'saved' | 'held' | 'refused';
  readonly report: PolicyBundleReport;
}

/**
 * A verified bundle's signature, as a new flat string (JSON.stringify writes one, sharing nothing
 * with the frame it was parsed from). The signature was checked over the bundle's canonical text,
 * and Ed25519 under one key does not verify the same signature for two texts, so an equal
 * signature means an equal bundle: no copy or hash of the bundle need be kept (about 110 bytes per
 * agent, where 100,000 simulated agents share one process).
 */
function heldSignatureOf(verified: VerifiedPolicyBundle): string {
  return JSON.stringify([verified.signed.sig.kid, verified.signed.sig.value]);
}

/** The version a pushed bundle claims, for the report; 0 when it has none readable. */
function versionOf(signed: unknown): number {
  return claimedInteger((signed as { bundle?: { version?: unknown } } | null)?.bundle?.version);
}

/** What a pushed bundle claims to be, before any check: its version and issue time (0 for either when not readable). */
export interface ClaimedBundleOrder {
  readonly version: number;
  readonly issuedAtMs: number;
}

export function claimedBundleOrder(signed: unknown): ClaimedBundleOrder {
  const bundle = (signed as { bundle?: { version?: unknown; issued_at?: unknown } } | null)?.bundle;
  return { version: claimedInteger(bundle?.version), issuedAtMs: claimedInteger(bundle?.issued_at) };
}

/**
 * Would `offered` replace `other` if both verified? A higher version, or the same version issued
 * later (verifyPolicyBundle's order); equal claims are not newer.
 */
export function claimsNewer(offered: ClaimedBundleOrder, other: ClaimedBundleOrder): boolean {
  return offered.version > other.version || (offered.version === other.version && offered.issuedAtMs > other.issuedAtMs);
}

function claimedInteger(value: unknown): number {
  return Number.isSafeInteger(value) && (value as number) >= 0 ? (value as number) : 0;
}
