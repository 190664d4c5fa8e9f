import { OneTimer } from './one-timer.js';
import { attribute, type AttributeValues, type HeldData, type StageContext, type ToxicKind, type ToxicStage } from './types.js';

/** slow_close: bytes pass; the end of the stream (the FIN) is passed on `delay` ms after it came. */
class SlowCloseStage implements ToxicStage {
  readonly #timer: OneTimer;
  #endHeld = false;
  readonly heldBytes = 0;
  readonly heldPieces = 0;

  constructor(private readonly values: AttributeValues, private readonly context: StageContext) {
    this.#timer = new OneTimer(context.time);
  }

  write(chunk: Buffer): void {
    this.context.output.write(chunk);
  }

  end(): void {
    const delayMs = attribute(this.values, 'delay');
    if (delayMs === 0) return this.context.output.end();
    this.#endHeld = true;
    this.#timer.start(delayMs, () => {
      this.#endHeld = false;
      this.context.output.end();
    });
  }

  release(): HeldData {
    this.#timer.cancel();
    const held = { chunks: [], ended: this.#endHeld };
    this.#endHeld = false;
    return held;
  }

  dispose(): void {
    this.release();
  }
}

export const slowCloseToxic: ToxicKind = {
  type: 'slow_close',
  attributes: [{ name: 'delay', min: 0, max: (l) => l.attributeMsMax, fallback: 0 }],
  createStage: (values, context) => new SlowCloseStage(values, context),
};
