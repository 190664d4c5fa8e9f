import { eventNames } from './events.js';

/**
 * The model's trace: every event it handles, `(virtual ms, kind, a, b)`, folded into two 32-bit
 * hash lanes (FNV-1a and a murmur3-style mix over 32-bit words; hex of both is the trace hash).
 * A SHA-256 per event, as the full tier keeps, would cost more than the event itself at 10^7
 * events; a fingerprint for determinism needs no collision resistance. The last events are kept
 * in a ring for the report.
 */
export class ModelTrace {
  #fnv = 0x811c9dc5;
  #mix = 0x9e3779b9;
  events = 0;
  readonly #recentMax: number;
  readonly #recent: Float64Array;

  constructor(recentMax = 40) {
    this.#recentMax = recentMax;
    this.#recent = new Float64Array(recentMax * 4);
  }

  add(nowMs: number, kind: number, a: number, b: number): void {
    this.#word(nowMs >>> 0);
    this.#word(kind);
    this.#word(a >>> 0);
    this.#word(b >>> 0);
    const at = (this.events % this.#recentMax) * 4;
    this.#recent[at] = nowMs;
    this.#recent[at + 1] = kind;
    this.#recent[at + 2] = a;
    this.#recent[at + 3] = b;
    this.events += 1;
  }

  #word(word: number): void {
    this.#fnv = Math.imul(this.#fnv ^ word, 0x01000193) >>> 0;
    let k = Math.imul(word, 0xcc9e2d51);
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593);
    const h = this.#mix ^ k;
    this.#mix = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) >>> 0;
  }

  digest(): string {
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    return `${hex(this.#fnv)}${hex(this.#mix)}`;
  }

  /** The last events as `<ms> <kind> <a> <b>` lines, oldest first. */
  recent(): string[] {
    const lines: string[] = [];
    const kept = Math.min(this.events, this.#recentMax);
    for (let i = this.events - kept; i < this.events; i += 1) {
      const at = (i % this.#recentMax) * 4;
      const r = this.#recent;
      lines.push(`${r[at]} ${eventNames.get(r[at + 1]!) ?? r[at + 1]} ${r[at + 2]} ${r[at + 3]}`);
    }
    return lines;
  }
}
