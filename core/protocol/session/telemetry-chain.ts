import { SdcError } from '../../errors/index.js';

/** SHA-256 of the bytes as lower-case hex; injected, so the protocol core imports no hash library. */
export type Sha256Hex = (bytes: Uint8Array) => string;

/**
 * The gateway's check of TELEMETRY `prev_hash` within one session: each sample names the SHA-256
 * of the previous TELEMETRY frame's bytes, as the agent sent them (agent-core). A TELEMETRY_BATCH
 * frame is a link of the same chain (its `prev_hash` names the previous telemetry frame of either
 * type, and the next names its hash), so a dropped or reordered batch is detected as a sample is. The first sample
 * of a session anchors the chain (its prev_hash names a frame of an earlier session, which this
 * gateway never saw). Every checked frame becomes the link the next must name, refused or not:
 * the agent chains on what it sent, so one broken link costs one refusal, not every later sample.
 */
export class TelemetryChain {
  #lastHashHex: string | undefined;

  constructor(private readonly sha256Hex: Sha256Hex) {}

  /** Undefined when the frame continues the chain; otherwise the refusal (PROTO_TELEMETRY_CHAIN_BROKEN). */
  check(frameBytes: Uint8Array, body: { readonly prev_hash?: string }): SdcError | undefined {
    const expected = this.#lastHashHex;
    this.#lastHashHex = this.sha256Hex(frameBytes);
    if (expected === undefined || body.prev_hash === expected) return undefined;
    const named = body.prev_hash === undefined ? 'no prev_hash' : `prev_hash ${body.prev_hash}`;
    return new SdcError('PROTO_TELEMETRY_CHAIN_BROKEN', `TELEMETRY has ${named}; this session's previous TELEMETRY frame hashes to ${expected}`);
  }
}
