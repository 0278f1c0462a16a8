// When partial batches go out on the interval. Internal: not exported from mod.ts.
import type { ResolvedConfig } from "./config.ts";
import { DeadlineTimer } from "./deadline_timer.ts";
import type { FormingBatch } from "./forming_batch.ts";
import type { OpenBatches } from "./open_batches.ts";
import type { FlushReason } from "./types.ts";

/**
 * Owes each batch an "interval" flush once its first item has waited
 * `flushInterval`, then calls `onDeadline` so the run loop pays it.
 *
 * - Without `key`: one timer for the one batch, reused while batches fill up
 *   back to back (see DeadlineTimer), and parked while the next batch is
 *   already queued.
 * - With `key`: every batch has the same interval, so deadlines come in
 *   opening order and one timer, armed for the oldest batch not yet due,
 *   serves them all: never one timer per key.
 * - With `waitUntil`: each batch arms a timeout of its own, in the request
 *   that opened it, because Workers drop a request's timers when it ends.
 */
export class BatchDeadlines<T> {
  readonly #config: ResolvedConfig<T>;
  readonly #batches: OpenBatches<T>;
  readonly #onDeadline: () => void;
  readonly #timer: DeadlineTimer;
  /** With `key`: the batch whose deadline the shared timer is armed for. */
  #armedFor: FormingBatch<T> | undefined;

  constructor(config: ResolvedConfig<T>, batches: OpenBatches<T>, onDeadline: () => void) {
    this.#config = config;
    this.#batches = batches;
    this.#onDeadline = onDeadline;
    this.#timer = new DeadlineTimer(config.flushInterval, () => this.#passed());
  }

  /** A batch got its first item. */
  opened(batch: FormingBatch<T>): void {
    const config = this.#config;
    if (config.flushInterval === Infinity) return;
    if (config.waitUntil !== undefined) {
      batch.timer ??= new DeadlineTimer(config.flushInterval, () => {
        this.#batches.markDue(batch, "interval");
        this.#onDeadline();
      }, false);
      batch.timer.start();
    } else if (config.key === undefined) this.#timer.start();
    else {
      batch.openedAt = performance.now();
      if (this.#armedFor === undefined) this.#armNext();
    }
  }

  /**
   * A batch went out (its own timeout, if any, was cleared with it);
   * `queued`: items wait in the channel, so the next batch opens as soon as
   * the run loop places them, however long its flights take.
   */
  flushed(batch: FormingBatch<T>, reason: FlushReason, queued: boolean): void {
    if (this.#config.key === undefined) {
      // Only a batch that filled up is likely to be followed at once by the next.
      if (reason !== "full" && reason !== "overflow") this.#timer.clear();
      else if (queued) this.#timer.park();
      else this.#timer.stop();
    } else if (batch === this.#armedFor) this.#armNext();
  }

  /** The run has finished: no timer may be left behind. */
  stop(): void {
    this.#timer.clear();
  }

  /** With `key`: arms the shared timer for the oldest batch not yet due. */
  #armNext(): void {
    const next = this.#batches.oldestNotDue();
    this.#armedFor = next;
    if (next === undefined) return this.#timer.clear();
    this.#timer.start(next.openedAt + this.#config.flushInterval - performance.now());
  }

  #passed(): void {
    if (this.#config.key === undefined) {
      this.#batches.markDue(this.#batches.get(undefined)!, "interval");
    } else {
      const now = performance.now();
      for (const batch of this.#batches) {
        if (batch.openedAt + this.#config.flushInterval > now) break;
        this.#batches.markDue(batch, "interval");
      }
      this.#armNext();
    }
    this.#onDeadline();
  }
}
