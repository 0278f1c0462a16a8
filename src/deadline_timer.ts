// A one-shot timer for any delay, cheap to stop and restart. Internal: not exported from mod.ts.

/**
 * setTimeout stores its delay in a signed 32-bit integer, and every runtime
 * fires a longer delay at once. Longer delays are walked in steps of this size.
 */
const MAX_TIMEOUT = 2 ** 31 - 1;

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * Calls `onDeadline` once `delay` milliseconds after the latest `start()`, for
 * any delay up to `Infinity` (never). It reads the global `setTimeout`,
 * `clearTimeout` and `performance.now` (a monotonic clock) on every call, so a
 * fake clock installed after construction still drives it.
 *
 * Why `stop()` may linger: a busy buffer stops and restarts its timer for
 * every batch, and a setTimeout/clearTimeout pair costs about 3 µs in Deno,
 * more than adding 50 items. So once the timer is "hot" (it was started again
 * within two microtask turns of a stop, as when a producer loops on
 * `await add()`), `stop()` leaves the timeout pending for two microtask turns:
 * if `start()` comes in that window, the pending timeout is reused and moved
 * to the new deadline; otherwise it is cleared before any other task runs, so
 * a stopped timer never keeps a process alive or fires. A timer that is not
 * hot, and `clear()`, clear the timeout at once.
 *
 * `park()` is the longer form, for an owner that knows the next start is
 * coming (a busy buffer whose next batch already waits in its channel, while
 * a flush is in flight): the timeout stays pending until `start()` reuses
 * it, `clear()` clears it, or it fires and finds nothing to call.
 *
 * With `reuse` false, every `start()` arms a timeout of its own and `stop()`
 * clears it at once. Cloudflare Workers need that: a timeout belongs to the
 * request that armed it and is dropped when that request ends, so a timeout
 * armed for one batch must never stand in for the next.
 */
export class DeadlineTimer {
  readonly #delay: number;
  readonly #onDeadline: () => void;
  readonly #reuse: boolean;
  #id: ReturnType<typeof setTimeout> | undefined;
  /** Milliseconds still to wait after the pending timeout fires (long delays). */
  #remaining = 0;
  /** Where a reused timeout's deadline moved to; 0 when it was not moved. */
  #movedDeadline = 0;
  #running = false;
  /** True for two microtask turns after a stop(). */
  #justStopped = false;
  /** Started again right after a stop: the next stop() lingers for reuse. */
  #hot = false;
  /** Stopped by park(): the pending timeout waits for the next start(). */
  #parked = false;
  #turnsQueued = false;

  constructor(delay: number, onDeadline: () => void, reuse = true) {
    this.#delay = delay;
    this.#onDeadline = onDeadline;
    this.#reuse = reuse;
  }

  /**
   * Sets the deadline to `delay` (by default the timer's own) from now,
   * replacing any earlier one. A pending timeout that is reused can only move
   * later, so a caller passing its own delay must never move it earlier.
   */
  start(delay: number = this.#delay): void {
    if (delay === Infinity) return;
    this.#running = true;
    this.#parked = false;
    if (this.#id !== undefined) {
      if (this.#reuse) {
        this.#movedDeadline = performance.now() + delay;
        return;
      }
      clearTimeout(this.#id);
    }
    this.#hot = this.#justStopped;
    this.#movedDeadline = 0;
    this.#remaining = Math.max(delay, 0);
    this.#schedule();
  }

  /** Removes the deadline; a hot timer's timeout is cleared before the next task. */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    if (!this.#reuse) return this.clear();
    if (!this.#hot) this.clear();
    this.#justStopped = true;
    if (this.#turnsQueued) return;
    this.#turnsQueued = true;
    // Promise jobs rather than queueMicrotask, which fake clocks often replace.
    RESOLVED.then(this.#afterOneTurn);
  }

  /**
   * Removes the deadline and keeps the pending timeout for the next start(),
   * however long it takes to come; without reuse, the same as stop().
   */
  park(): void {
    if (!this.#reuse) return this.stop();
    this.#running = false;
    this.#parked = true;
  }

  /** Removes the deadline and clears the timeout now. */
  clear(): void {
    this.#running = false;
    this.#hot = false;
    this.#parked = false;
    if (this.#id === undefined) return;
    clearTimeout(this.#id);
    this.#id = undefined;
  }

  #afterOneTurn = (): void => void RESOLVED.then(this.#afterTwoTurns);

  #afterTwoTurns = (): void => {
    this.#turnsQueued = false;
    this.#justStopped = false;
    if (!this.#running && !this.#parked) this.clear();
  };

  #schedule(): void {
    const step = Math.min(this.#remaining, MAX_TIMEOUT);
    this.#remaining -= step;
    this.#id = setTimeout(this.#fire, step);
  }

  #fire = (): void => {
    this.#id = undefined;
    if (!this.#running) return;
    if (this.#movedDeadline !== 0) {
      this.#remaining = this.#movedDeadline - performance.now();
      this.#movedDeadline = 0;
    }
    if (this.#remaining > 0) return this.#schedule();
    this.#running = false;
    this.#onDeadline();
  };
}
