// The batches being formed, one per key, and the line of those owed a flush.
// Internal: not exported from mod.ts.
import { FormingBatch } from "./forming_batch.ts";
import type { FlushReason } from "./types.ts";

/**
 * The open batches in the order they opened (a Map keeps insertion order, and
 * compares keys by SameValueZero), and the batches whose flush is due, in the
 * order they became due. Without `key` there is one batch, kept for good.
 */
export class OpenBatches<T> {
  readonly #keyed: boolean;
  readonly #only: FormingBatch<T> = new FormingBatch<T>(undefined);
  readonly #byKey = new Map<unknown, FormingBatch<T>>();
  readonly #due: FormingBatch<T>[] = [];

  constructor(keyed: boolean) {
    this.#keyed = keyed;
  }

  /** The open batch of a key, if any (without `key`: the one batch, maybe empty). */
  get(key: unknown): FormingBatch<T> | undefined {
    return this.#keyed ? this.#byKey.get(key) : this.#only;
  }

  /** Opens a batch for a key that has none (keyed only). */
  open(key: unknown): FormingBatch<T> {
    const batch = new FormingBatch<T>(key);
    this.#byKey.set(key, batch);
    return batch;
  }

  /** A batch was taken for a flush: it is no longer open nor due. */
  closed(batch: FormingBatch<T>): void {
    if (this.#keyed) this.#byKey.delete(batch.key);
    const index = this.#due.indexOf(batch);
    if (index !== -1) this.#due.splice(index, 1);
  }

  /** Batches holding items. */
  get count(): number {
    return this.#keyed ? this.#byKey.size : this.#only.length > 0 ? 1 : 0;
  }

  /** The open batches, oldest first. */
  *[Symbol.iterator](): IterableIterator<FormingBatch<T>> {
    if (!this.#keyed) {
      if (this.#only.length > 0) yield this.#only;
    } else yield* this.#byKey.values();
  }

  /** The batch that opened first and is not due yet, if any. */
  oldestNotDue(): FormingBatch<T> | undefined {
    for (const batch of this) if (batch.due === undefined) return batch;
    return undefined;
  }

  /**
   * Marks a batch's flush as due. A reason that closes the batch (full,
   * overflow, evict, close) replaces an "interval" or "manual" one.
   */
  markDue(batch: FormingBatch<T>, reason: FlushReason): void {
    if (batch.length === 0) return;
    if (batch.due === undefined) this.#due.push(batch);
    else if (!batch.acceptsItems || (reason === "interval" || reason === "manual")) return;
    batch.due = reason;
  }

  /** True while some batch is owed a flush. */
  get hasDue(): boolean {
    return this.#due.length > 0;
  }

  /** True while some batch is owed a flush that closes it to new items. */
  get hasClosingDue(): boolean {
    return this.#due.length > 0 && this.#due.some((batch) => !batch.acceptsItems);
  }

  /** The first due batch that may fly now, by `canFly(key)`. */
  nextPayable(canFly: (key: unknown) => boolean): FormingBatch<T> | undefined {
    for (const batch of this.#due) if (canFly(batch.key)) return batch;
    return undefined;
  }
}
