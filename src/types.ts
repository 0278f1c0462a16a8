/**
 * The types that describe a {@linkcode BatchBuffer}: what its flush is given
 * and returns, the options of `add()` and the snapshot `stats()` returns.
 *
 * @module
 */
import type { FlushOutcome } from "./flush_outcome.ts";

/**
 * Why a batch was flushed.
 *
 * - `"full"`: `shouldFlush` (by default `batch.length >= capacity`) or the
 *   byte budget said the batch is complete.
 * - `"overflow"`: the next item would not fit (`willOverflow` or
 *   `maxBatchBytes`), so the batch went out without it.
 * - `"interval"`: the oldest item in the batch waited `flushInterval`.
 * - `"close"`: the last batch after `close()`.
 * - `"manual"`: `buffer.flush()` was called.
 * - `"evict"`: with `key`, `maxOpenBatches` batches were open and an item
 *   needed a new one, so the batch that opened first went out.
 *
 * @example Counting flushes by reason
 * ```ts
 * import type { FlushReason } from "@batchkit/buffer";
 *
 * const counts: Record<FlushReason, number> = {
 *   full: 0, overflow: 0, interval: 0, close: 0, manual: 0, evict: 0,
 * };
 * counts.full++;
 * ```
 */
export type FlushReason = "full" | "overflow" | "interval" | "close" | "manual" | "evict";

/**
 * What a flush is told besides its batch.
 *
 * @example Passing the run signal to fetch
 * ```ts
 * import type { FlushContext } from "@batchkit/buffer";
 *
 * async function send(batch: unknown[], context: FlushContext): Promise<void> {
 *   // On "close" the run signal has often aborted already, so give the last
 *   // batch its own deadline instead of the run signal.
 *   const signal = context.reason === "close" ? AbortSignal.timeout(5_000) : context.signal;
 *   await fetch("http://localhost:1/never-called", { method: "POST", body: JSON.stringify(batch), signal })
 *     .catch(() => {});
 * }
 * ```
 */
export interface FlushContext {
  /**
   * The signal given to `run()`, or a signal that never aborts. Aborting it
   * does not stop the buffer; it only tells flushes to hurry.
   */
  readonly signal: AbortSignal;
  /** Why this batch was flushed. */
  readonly reason: FlushReason;
  /** The key every item of the batch has; `undefined` when no `key` is configured. */
  readonly key: unknown;
  /** Which try this is for the batch's items: 1 on the first, 2 on the first retry. */
  readonly attempt: number;
}

/**
 * Sends one batch to the backend. The array belongs to the function: the
 * buffer never reads, reuses or changes it again, so it may be kept, sorted
 * or sent later. It may return anything: a promise (of any value, so
 * `(batch) => fetch(url, ...)` fits) is awaited, and its resolved value is
 * ignored. Throwing, rejecting, or returning a thenable whose `then` throws
 * hands the batch to `onFlushError`; the buffer does not retry.
 *
 * @typeParam T The item type.
 *
 * @example A flush that posts JSON
 * ```ts
 * import type { FlushFunc } from "@batchkit/buffer";
 *
 * const flush: FlushFunc<{ id: number }> = async (batch, { signal }) => {
 *   const response = await fetch("http://localhost:1/bulk", {
 *     method: "POST",
 *     body: JSON.stringify(batch),
 *     signal,
 *   }).catch(() => undefined);
 *   if (response && !response.ok) throw new Error(`bulk API answered ${response.status}`);
 * };
 * ```
 */
export type FlushFunc<T> = (
  batch: T[],
  context: FlushContext,
) => void | FlushOutcome<T> | Promise<unknown>;

/**
 * Options for `add()` and `addAll()`.
 *
 * @example Bounding the wait for room
 * ```ts
 * import type { AddOptions } from "@batchkit/buffer";
 *
 * const options: AddOptions = { signal: AbortSignal.timeout(100) };
 * ```
 */
export interface AddOptions {
  /**
   * Stops waiting for room when it aborts: the add rejects with
   * `signal.reason` and the item is not queued. Already aborted: rejects at
   * once, even when there is room.
   */
  signal?: AbortSignal;
}

/**
 * A snapshot of a buffer's counters. At every moment
 * `added === rejected + flushedItems + failedItems + inFlightItems +
 * itemsInChannel + itemsInBatch`.
 *
 * @example Checking that nothing is unaccounted for
 * ```ts
 * import { BatchBuffer } from "@batchkit/buffer";
 * import assert from "node:assert/strict";
 *
 * const buffer = new BatchBuffer<number>({ flush: () => {} });
 * await buffer.add(1);
 * const s = buffer.stats();
 * assert.equal(
 *   s.added,
 *   s.rejected + s.flushedItems + s.failedItems + s.inFlightItems + s.itemsInChannel + s.itemsInBatch,
 * );
 * await buffer[Symbol.asyncDispose]();
 * ```
 */
export interface BatchBufferStats {
  /** Items accepted by `add`, `tryAdd`, `addAll` or `writable`. */
  readonly added: number;
  /** Items handed to `onReject`. */
  readonly rejected: number;
  /** Items in flushes that succeeded. */
  readonly flushedItems: number;
  /** Items in flushes that threw or rejected. */
  readonly failedItems: number;
  /** Items in flushes that have not settled yet. */
  readonly inFlightItems: number;
  /** Items accepted and not yet taken by the run loop. */
  readonly itemsInChannel: number;
  /**
   * Items in the batch being formed, plus the item the run loop is placing
   * (while its hooks or an "overflow" flush run).
   */
  readonly itemsInBatch: number;
  /** Flushes that succeeded. */
  readonly flushes: number;
  /** Flushes that threw or rejected. */
  readonly failedFlushes: number;
  /** Flushes started and not yet settled. */
  readonly flushesInFlight: number;
  /** Tries after the first (each retry counted once). */
  readonly retries: number;
  /** Batches holding items (one at most without `key`). */
  readonly openBatches: number;
  /**
   * The sizes (by `sizeOf`) of the items accepted and not yet at a final
   * outcome: in the channel, in batches and in flights. 0 without `sizeOf`.
   */
  readonly bufferedBytes: number;
}
