import { attribute, type AttributeValues, type HeldData, type StageContext, type ToxicKind, type ToxicStage } from './types.js';

/**
 * limit_data: the first `bytes` bytes of this direction pass; once they have, the connection is
 * closed (FIN after those bytes). Bytes beyond the limit are dropped. The count is per connection
 * and starts again when the toxic is updated (Toxiproxy keeps it; see docs/chaos.md).
 */
class LimitDataStage implements ToxicStage {
  #passedBytes = 0;
  #closed = false;
  readonly heldBytes = 0;
  readonly heldPieces = 0;

  constructor(private readonly values: AttributeValues, private readonly context: StageContext) {}

  write(chunk: Buffer): void {
    if (this.#closed) return;
    const limit = attribute(this.values, 'bytes');
    const part = chunk.subarray(0, Math.max(0, limit - this.#passedBytes));
    if (part.length > 0) this.context.output.write(part);
    this.#passedBytes += part.length;
    if (this.#passedBytes >= limit) {
      this.#closed = true;
      this.context.closeConnection('close');
    }
  }

  end(): void {
    if (!this.#closed) this.context.output.end();
  }

  release(): HeldData {
    return { chunks: [], ended: false };
  }

  dispose(): void {}
}

export const limitDataToxic: ToxicKind = {
  type: 'limit_data',
  attributes: [{ name: 'bytes', min: 0, max: (l) => l.limitDataBytesMax, fallback: 0 }],
  createStage: (values, context) => new LimitDataStage(values, context),
};
