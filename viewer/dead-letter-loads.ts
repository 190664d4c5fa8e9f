/**
 * The dead-letter view's list reads, newest asked wins. The view reads its list when it is shown,
 * when its device filter or API client changes, and after each retry or discard; reads overlap
 * (the first one still on its way when a retry's read starts, or a quick change of the device
 * filter), and their answers can come back in any order. Applied as they came, an older answer
 * landing last would show a list from before the retry (a row the device's answer already took
 * off), or another device's rows under this device's title. So each read takes a number, and only
 * the answer (or the error) of the newest read asked is applied; older ones are dropped.
 */
export interface DeadLetterLoadsOptions<T> {
  /** Reads the list; called once per load. */
  readonly read: () => Promise<T>;
  /** Shows a read's answer; called only for the newest read asked. */
  readonly apply: (answer: T) => void;
  /** Shows a read's failure; called only for the newest read asked. */
  readonly fail: (error: unknown) => void;
}

export class DeadLetterLoads<T> {
  readonly #options: DeadLetterLoadsOptions<T>;
  /** How many reads were asked; the newest's number is this. */
  #asked = 0;

  constructor(options: DeadLetterLoadsOptions<T>) {
    this.#options = options;
  }

  /** Reads once; resolves when this read's answer is applied or dropped. Answers whether it was applied. */
  async load(): Promise<boolean> {
    const ticket = ++this.#asked;
    let answer: T;
    try {
      answer = await this.#options.read();
    } catch (error) {
      if (ticket !== this.#asked) return false;
      this.#options.fail(error);
      return true;
    }
    if (ticket !== this.#asked) return false;
    this.#options.apply(answer);
    return true;
  }
}
