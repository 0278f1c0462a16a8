// A one-shot timer for any delay. Internal: not exported from mod.ts.

/**
 * setTimeout stores its delay in a signed 32-bit integer, and every runtime
 * fires a longer delay at once. Longer delays are walked in steps of this size.
 */
const MAX_TIMEOUT = 2 ** 31 - 1;

/**
 * Calls `onDeadline` once `delay` milliseconds after `start()`, for any delay
 * up to `Infinity` (never). At most one timeout is pending at a time, and none
 * after `cancel()`. It reads the global `setTimeout` on every call, so a fake
 * clock installed after construction still drives it.
 */
export class DeadlineTimer {
  readonly #delay: number;
  readonly #onDeadline: () => void;
  #id: ReturnType<typeof setTimeout> | undefined;
  #remaining = 0;

  constructor(delay: number, onDeadline: () => void) {
    this.#delay = delay;
    this.#onDeadline = onDeadline;
  }

  /** Starts counting from now; a timer already pending starts over. */
  start(): void {
    if (this.#delay === Infinity) return;
    this.cancel();
    this.#remaining = this.#delay;
    this.#schedule();
  }

  /** Stops the timer; `onDeadline` will not be called until the next `start()`. */
  cancel(): void {
    if (this.#id === undefined) return;
    clearTimeout(this.#id);
    this.#id = undefined;
  }

  #schedule(): void {
    const step = Math.min(this.#remaining, MAX_TIMEOUT);
    this.#remaining -= step;
    this.#id = setTimeout(this.#fire, step);
  }

  #fire = (): void => {
    this.#id = undefined;
    if (this.#remaining > 0) this.#schedule();
    else this.#onDeadline();
  };
}
