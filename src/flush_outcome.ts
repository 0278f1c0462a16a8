/**
 * What a flush may resolve to: a {@linkcode FlushOutcome} naming the items
 * that failed, read once and safely, and matched back to the batch.
 *
 * Public: {@linkcode FlushOutcome}. The rest is internal and not exported
 * from mod.ts.
 *
 * @module
 */

/**
 * What a flush may resolve to when some of its items failed, like Kinesis
 * `PutRecords` or SQS `SendMessageBatch` do record by record. Only a resolved
 * value that is an object with a `retry` array counts as an outcome; anything
 * else (`undefined`, a `Response`, ...) counts as success for the whole batch.
 *
 * An outcome with an empty `retry` is a success. With a non-empty `retry`, the
 * try failed for those items only: the others count as delivered, and these
 * are tried again on their own (with `retry` configured) or go to
 * `onFlushError` (without it, or once retrying stops).
 *
 * @typeParam T The item type.
 *
 * @example Retrying only the records a bulk API refused
 * ```ts
 * import type { FlushOutcome } from "@batchkit/buffer";
 * import assert from "node:assert/strict";
 *
 * interface Row {
 *   id: number;
 * }
 * // A bulk API that answers one status per row, in order.
 * async function insert(rows: Row[]): Promise<number[]> {
 *   return rows.map((row) => (row.id % 2 === 0 ? 200 : 503));
 * }
 * async function flush(rows: Row[]): Promise<FlushOutcome<Row>> {
 *   const statuses = await insert(rows);
 *   const retry = rows.filter((_, i) => statuses[i] !== 200);
 *   return { retry, error: new Error(`${retry.length} rows refused`), retryAfter: 500 };
 * }
 * const outcome = await flush([{ id: 1 }, { id: 2 }, { id: 3 }]);
 * assert.deepEqual(outcome.retry, [{ id: 1 }, { id: 3 }]);
 * ```
 */
export interface FlushOutcome<T> {
  /**
   * The items of this batch that failed and may succeed on another try.
   * Empty or absent: every item was delivered. Items are matched to the batch
   * by identity (`===`, and NaN to NaN), so return the batch's own items.
   */
  retry?: T[];
  /**
   * Why they failed, handed to `retryable` and, if they never succeed, to
   * `onFlushError`. Absent: an `Error` saying how many items failed.
   */
  error?: unknown;
  /**
   * How long the backend asked us to wait before the next try, in ms (see
   * `parseRetryAfter`). A finite number `>= 0`; anything else is ignored.
   */
  retryAfter?: number;
}

// ---------------------------------------------------------------- internal

/**
 * The `retryAfter` of an outcome or a thrown error, in ms: a finite number
 * `>= 0`, else `undefined`. Never throws (a throwing getter counts as absent).
 */
export function retryAfterOf(source: unknown): number | undefined {
  if (source === null || (typeof source !== "object" && typeof source !== "function")) {
    return undefined;
  }
  let value: unknown;
  try {
    value = (source as { retryAfter?: unknown }).retryAfter;
  } catch {
    return undefined;
  }
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * What a flush resolved to, read once and safely:
 *
 * - `"success"`: not an outcome (not an object, or `retry` is not an array),
 *   or an outcome with an empty `retry`. Every item was delivered.
 * - `"partial"`: an outcome with a non-empty `retry`. `retry` is a copy (the
 *   flush may keep changing its array), `error` is the outcome's `error`
 *   (`undefined` when it gave none), `retryAfter` the outcome's, or else its
 *   error's (see {@linkcode retryAfterOf}).
 * - `"threw"`: reading the value threw (a throwing getter, a revoked Proxy):
 *   the try failed with that error, for the whole batch.
 */
export type OutcomeRead<T> =
  | { readonly kind: "success" }
  | {
    readonly kind: "partial";
    readonly retry: T[];
    readonly error: unknown;
    readonly retryAfter: number | undefined;
  }
  | { readonly kind: "threw"; readonly error: unknown };

const SUCCESS: OutcomeRead<never> = { kind: "success" };

/**
 * Reads what a flush resolved to. Each property (`retry`, `length`, each
 * element, `error`, `retryAfter`) is read once, so a getter's side effects
 * happen once. Never throws.
 */
export function readOutcome<T>(value: unknown): OutcomeRead<T> {
  // Every try of a plain flush that resolves to undefined ends here, at no cost.
  if (value === null || typeof value !== "object") return SUCCESS;
  try {
    const retry: unknown = (value as FlushOutcome<T>).retry;
    if (!Array.isArray(retry)) return SUCCESS;
    const length = retry.length;
    if (length === 0) return SUCCESS;
    // Not slice() or Array.from(): a subclass's species or iterator could run user code twice.
    const copy = new Array<T>(length);
    for (let i = 0; i < length; i++) copy[i] = retry[i];
    const error = (value as FlushOutcome<T>).error;
    return {
      kind: "partial",
      retry: copy,
      error,
      retryAfter: retryAfterOf(value) ?? retryAfterOf(error),
    };
  } catch (error) {
    return { kind: "threw", error };
  }
}

/**
 * Which items of `batch` an outcome's `retry` names, as ascending indices
 * into `batch` (so the retry keeps the batch's order), matched by
 * SameValueZero with multiplicity: two equal items in `retry` take two equal
 * items of the batch, first ones first. `strangers` counts entries of `retry`
 * with no match left in the batch; they are not the buffer's to retry.
 */
export function matchRetry<T>(
  batch: readonly T[],
  retry: readonly T[],
): { indices: number[]; strangers: number } {
  const indices: number[] = [];
  // The common case: `retry` is the batch filtered, in order. One pass, no Map.
  let b = 0;
  let r = 0;
  for (; r < retry.length; r++) {
    while (b < batch.length && !sameValueZero(batch[b], retry[r])) b++;
    if (b === batch.length) break;
    indices.push(b++);
  }
  if (r === retry.length) return { indices, strangers: 0 };
  // Out of order, or strangers: match every remaining entry against the unused positions.
  const used = new Set(indices);
  const positions = new Map<unknown, number[]>();
  for (let i = batch.length - 1; i >= 0; i--) {
    if (used.has(i)) continue;
    const list = positions.get(batch[i]);
    if (list === undefined) positions.set(batch[i], [i]);
    else list.push(i); // descending, so pop() yields the first position
  }
  let strangers = 0;
  for (; r < retry.length; r++) {
    const index = positions.get(retry[r])?.pop();
    if (index === undefined) strangers++;
    else indices.push(index);
  }
  indices.sort((x, y) => x - y);
  return { indices, strangers };
}

function sameValueZero(a: unknown, b: unknown): boolean {
  return a === b || (a !== a && b !== b);
}

/** The error handed on for an outcome that failed items without saying why. */
export function failedItemsError(failed: number, total: number): Error {
  return new Error(`flush reported ${failed} of ${total} items as failed`);
}
