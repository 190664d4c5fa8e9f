import { Hold } from './hold.js';
import { OneTimer } from './one-timer.js';
import { attribute, type AttributeValues, type HeldData, type StageContext, type ToxicKind, type ToxicStage } from './types.js';

/**
 * timeout: no byte goes through; `timeout` ms after the toxic starts on the connection, the
 * connection is closed (held bytes are dropped with it). With 0 it is never closed, and bytes are
 * held until the toxic is removed, then go on in order (Toxiproxy drops them; see docs/chaos.md).
 */
class TimeoutStage implements ToxicStage {
  readonly #hold: Hold;
  readonly #timer: OneTimer;

  constructor(values: AttributeValues, context: StageContext) {
    this.#hold = new Hold(context);
    this.#timer = new OneTimer(context.time);
    const timeoutMs = attribute(values, 'timeout');
    if (timeoutMs > 0) this.#timer.start(timeoutMs, () => context.closeConnection('close'));
  }

  get heldBytes(): number {
    return this.#hold.bytes;
  }

  get heldPieces(): number {
    return this.#hold.pieces;
  }

  write(chunk: Buffer): void {
    this.#hold.write(chunk);
  }

  end(): void {
    this.#hold.end();
  }

  release(): HeldData {
    this.#timer.cancel();
    return this.#hold.release();
  }

  dispose(): void {
    this.release();
  }
}

export const timeoutToxic: ToxicKind = {
  type: 'timeout',
  attributes: [{ name: 'timeout', min: 0, max: (l) => l.attributeMsMax, fallback: 0 }],
  createStage: (values, context) => new TimeoutStage(values, context),
};
