import { createHash } from 'node:crypto';
import { chooseRange } from '../../server/ota/blob-store.js';

/**
 * The artifact's download server in the simulator, on virtual time: the published release's
 * bytes, answered as the control plane's blob store answers a GET (server/ota/blob-store.ts
 * `chooseRange`: one `bytes=N-` range with a matching If-Range is 206 with its Content-Range,
 * anything else the whole object with 200, past the end 416), with the scenario's download cuts:
 * within a cut window a connection breaks once the device holds `cutAtPercent` of the artifact,
 * and a new request finds no server at all.
 */
export interface CutWindow {
  readonly startMs: number;
  readonly endMs: number;
  readonly cutAtPercent: number;
}

export type ArtifactResponse =
  | { readonly status: 200; readonly etag: string; readonly first: 0; readonly length: number }
  | { readonly status: 206; readonly etag: string; readonly first: number; readonly contentRange: string }
  | { readonly status: 416; readonly etag: string }
  | { readonly status: 'unreachable' };

export class SimArtifactServer {
  readonly bytes: Uint8Array;
  readonly sha256: string;
  readonly etag: string;
  readonly #cuts: readonly CutWindow[];

  constructor(bytes: Uint8Array, cuts: readonly CutWindow[]) {
    this.bytes = bytes;
    this.sha256 = createHash('sha256').update(bytes).digest('hex');
    // A strong ETag, as the blob store gives (its value is the content's digest).
    this.etag = `"${this.sha256}"`;
    this.#cuts = cuts;
  }

  get length(): number {
    return this.bytes.length;
  }

  /** A GET at `nowMs`, with the Range and If-Range headers a resuming client sends. */
  get(nowMs: number, headers: { range?: string; ifRange?: string }): ArtifactResponse {
    if (this.#windowAt(nowMs) !== undefined) return { status: 'unreachable' };
    const choice = chooseRange(headers.range, headers.ifRange, this.etag, this.length);
    if (choice === 'whole') return { status: 200, etag: this.etag, first: 0, length: this.length };
    if (choice === 'unsatisfiable') return { status: 416, etag: this.etag };
    const [first, last] = choice;
    return { status: 206, etag: this.etag, first, contentRange: `bytes ${first}-${last}/${this.length}` };
  }

  /** Whether a connection delivering bytes breaks now, for a device holding `heldBytes`. */
  cutsAt(nowMs: number, heldBytes: number): boolean {
    const window = this.#windowAt(nowMs);
    // Cross-multiplied: integer percent without floats.
    return window !== undefined && heldBytes * 100 >= window.cutAtPercent * this.length;
  }

  #windowAt(nowMs: number): CutWindow | undefined {
    return this.#cuts.find((w) => nowMs >= w.startMs && nowMs < w.endMs);
  }
}
