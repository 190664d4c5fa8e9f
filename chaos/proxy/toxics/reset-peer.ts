import { Hold } from './hold.js';
import { OneTimer } from './one-timer.js';
import { attribute, type AttributeValues, type HeldData, type StageContext, type ToxicKind, type ToxicStage } from './types.js';

/**
 * reset_peer: when the first bytes (or the end) reach the toxic, the connection is reset (RST to
 * both the client and the upstream) after `timeout` ms, at once with 0. Nothing passes meanwhile.
 */
class ResetPeerStage implements ToxicStage {
  readonly #hold: Hold;
  readonly #timer: OneTimer;
  #triggered = false;

  constructor(private readonly values: AttributeValues, private readonly context: StageContext) {
    this.#hold = new Hold(context);
    this.#timer = new OneTimer(context.time);
  }

  get heldBytes(): number {
    return this.#hold.bytes;
  }

  get heldPieces(): number {
    return this.#hold.pieces;
  }

  write(chunk: Buffer): void {
    this.#hold.write(chunk);
    this.#trigger();
  }

  end(): void {
    this.#hold.end();
    this.#trigger();
  }

  release(): HeldData {
    this.#timer.cancel();
    return this.#hold.release();
  }

  dispose(): void {
    this.release();
  }

  #trigger(): void {
    if (this.#triggered) return;
    this.#triggered = true;
    const timeoutMs = attribute(this.values, 'timeout');
    if (timeoutMs === 0) this.context.closeConnection('reset');
    else this.#timer.start(timeoutMs, () => this.context.closeConnection('reset'));
  }
}

export const resetPeerToxic: ToxicKind = {
  type: 'reset_peer',
  attributes: [{ name: 'timeout', min: 0, max: (l) => l.attributeMsMax, fallback: 0 }],
  createStage: (values, context) => new ResetPeerStage(values, context),
};
