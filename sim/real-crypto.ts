import { createNodeEd25519Provider, defaultKeyCacheEntriesMax, type NodeEd25519Counts, type NodeEd25519Provider } from '../runtime/ed25519-node.js';
import type { Ed25519Provider } from '../core/ports/ports.js';

/**
 * The prepared-key cache must hold every device's keys: three private keys per simulated device
 * (the device's seed, its kernel bridge's agent seed and its mock kernel's service seed) and the
 * services' few; below that, Ed25519 calls rebuild their KeyObjects (issue 17's key-cache cliff).
 * Sized to the fleet alone (as it was), a 2,000-agent run imported 8,034 private keys, not 6,006.
 */
const privateKeysPerSimDevice = 3;
/** The services' own keys (command and gateway signers) and a margin. */
const serviceKeysMax = 64;
/**
 * Verified signatures kept per simulated device. The gateway and the control plane run on one
 * provider here, and both verify a device's signed POLICY_BUNDLE_REPORT (the control plane does
 * not take a signed frame on the gateway's word); the second verify is of the very bytes the first
 * checked, and is answered from the cache (issue 17: one of a session's seven verifies). The
 * two come close together: at 2,000 agents one entry per device already kept every one (6.01
 * OpenSSL verifies per agent with one, two or four entries a device); two leave a margin. An
 * entry holds a message of a few hundred bytes: about 1.4 KB a device.
 */
const verifiedSignaturesPerSimDevice = 2;

const sharedProvider = createNodeEd25519Provider({ verifiedCacheEntriesMax: verifiedSignaturesPerSimDevice * Math.floor(defaultKeyCacheEntriesMax / privateKeysPerSimDevice) });

/**
 * Ed25519 on node:crypto for a run of `agents` devices (`--crypto real`). Fleets within the
 * default key cache share one provider across runs (its caches then stay warm); larger ones get
 * a provider of their own, sized to them.
 */
export function realProviderFor(agents: number): NodeEd25519Provider {
  const entriesNeeded = privateKeysPerSimDevice * agents + serviceKeysMax;
  if (entriesNeeded <= defaultKeyCacheEntriesMax) return sharedProvider;
  return createNodeEd25519Provider({ keyCacheEntriesMax: entriesNeeded, verifiedCacheEntriesMax: verifiedSignaturesPerSimDevice * agents + serviceKeysMax });
}

export type SimEd25519Counts = NodeEd25519Counts;

/** The provider's counts now, when it keeps them (the real provider; the modelled one does not). */
export function ed25519CountsOf(provider: Ed25519Provider): SimEd25519Counts | undefined {
  const counts = (provider as Partial<NodeEd25519Provider>).counts;
  return typeof counts === 'function' ? counts.call(provider) : undefined;
}

/** What the provider counted since `before` (undefined when it keeps no counts). */
export function ed25519CountsSince(before: SimEd25519Counts | undefined, provider: Ed25519Provider): SimEd25519Counts | undefined {
  const now = ed25519CountsOf(provider);
  if (before === undefined || now === undefined) return undefined;
  return {
    signs: now.signs - before.signs, verifies: now.verifies - before.verifies, verifiedCacheHits: now.verifiedCacheHits - before.verifiedCacheHits,
    privateKeyImports: now.privateKeyImports - before.privateKeyImports, publicKeyImports: now.publicKeyImports - before.publicKeyImports,
  };
}
