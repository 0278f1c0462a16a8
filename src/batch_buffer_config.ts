/**
 * {@linkcode BatchBufferConfig}: how a {@linkcode BatchBuffer} batches.
 *
 * @module
 */
import type { RetryOptions } from "./retry_policy.ts";
import type { FlushFunc } from "./types.ts";

/**
 * How a {@linkcode BatchBuffer} batches. Only `flush` is required.
 *
 * Each item goes through these steps, in this order:
 *
 * 1. `sizeOf(item)` (when given). A size that is not a finite number
 *    `>= 0`, or is over `maxItemBytes`, sends the item to `onReject`.
 * 2. If the batch is not empty and the item would push it over
 *    `maxBatchBytes`, or `willOverflow(batch, item)` is true, the batch is
 *    flushed first (reason `"overflow"`).
 * 3. If `canAdd(batch, item)` is false, the item goes to `onReject`.
 * 4. The item is appended. If `shouldFlush(batch)` is true, or the batch
 *    reached `maxBatchBytes`, the batch is flushed (reason `"full"`).
 *
 * Hooks answer by truthiness, synchronously. A hook that throws counts as
 * absent for that one call (its default answer applies; a throwing `sizeOf`
 * counts as an invalid size) and its error goes to `onError`. A predicate
 * (`willOverflow`, `canAdd`, `shouldFlush`) that returns a promise gets its
 * default answer too, and is reported once through `onError`: the buffer
 * never waits for a hook. Hooks may call the buffer back (`add`, `tryAdd`,
 * `flush`, `close`, `stats`); the answers stay consistent.
 *
 * @typeParam T The item type.
 *
 * @example A Kinesis-shaped buffer
 * ```ts
 * import { BatchBuffer, type BatchBufferConfig } from "@batchkit/buffer";
 *
 * const config: BatchBufferConfig<Uint8Array> = {
 *   flush: (_records) => {},
 *   capacity: 500,
 *   sizeOf: (record) => record.byteLength,
 *   maxBatchBytes: 5 * 1024 * 1024,
 *   flushInterval: 1_000,
 * };
 * const buffer = new BatchBuffer(config);
 * await buffer[Symbol.asyncDispose]();
 * ```
 */
export interface BatchBufferConfig<T> {
  /** Sends a batch. Required. See {@linkcode FlushFunc}. */
  flush: FlushFunc<T>;
  /**
   * True when appending `item` would make the batch too big for the backend,
   * so the current batch is flushed first (reason `"overflow"`). Only asked
   * when the batch is not empty. Must not change `batch`. Default: never.
   */
  willOverflow?: (batch: readonly T[], item: T) => boolean;
  /**
   * False leaves the item out of every batch and hands it to `onReject`.
   * Must not change `batch`. Default: always true.
   */
  canAdd?: (batch: readonly T[], item: T) => boolean;
  /**
   * Receives every item the buffer accepted but will not flush: refused by
   * `canAdd`, over `maxItemBytes`, or of an invalid size. Called inside the
   * run loop, so it must not block. Default: no-op.
   */
  onReject?: (item: T) => void;
  /**
   * True flushes the batch now (reason `"full"`). Asked after each append.
   * Default: `batch.length >= capacity`.
   */
  shouldFlush?: (batch: readonly T[]) => boolean;
  /**
   * Receives each batch whose flush threw or rejected, with the error. The
   * buffer has moved on and will not retry. Default: report the error, with
   * the number of items lost, through `onError`.
   */
  onFlushError?: (error: unknown, batch: T[]) => void;
  /**
   * Receives errors thrown by the other hooks (and by `onFlushError` itself),
   * and rejections of the async ones. What it throws, or rejects with if it
   * is async, goes to `console.error`; a `console.error` that throws is
   * ignored, so reporting never stops the run loop. Default: `console.error`.
   */
  onError?: (error: unknown) => void;
  /**
   * Keeps an edge request alive for the buffer's work after its response
   * (`import { waitUntil } from "cloudflare:workers"`, or
   * `(p) => ctx.waitUntil(p)`). It makes one buffer shared by every request of
   * a Workers isolate safe. It receives, synchronously from the call that
   * makes each one:
   * - the promise of every flush the buffer starts, whatever the reason,
   *   settling when that flush has settled;
   * - when a call opens a batch (adds its first item) and the batch stays
   *   open, a promise made in that call that settles once the batch has been
   *   handed to `flush`, so the request that opened it, and the interval
   *   timeout it armed, live until then.
   *
   * With it set, each batch arms an interval timeout of its own (Workers drop
   * a request's timers when it ends), and a `flushInterval` over 25 s is
   * reported once through `onError`: Workers give `waitUntil` work at most
   * 30 s after the response. The promises never reject. Default: none.
   */
  waitUntil?: (promise: Promise<unknown>) => void;
  /**
   * The size of one item, in whatever unit `maxBatchBytes` uses (usually
   * bytes). Called once per item. Required when `maxBatchBytes` is set.
   */
  sizeOf?: (item: T) => number;
  /**
   * The most a batch may weigh, summed over `sizeOf`. A positive number.
   * Default: `Infinity`.
   */
  maxBatchBytes?: number;
  /**
   * The most one item may weigh; heavier items go to `onReject`. A positive
   * number no larger than `maxBatchBytes`. Default: `maxBatchBytes`.
   */
  maxItemBytes?: number;
  /** The target batch size, used by the default `shouldFlush`. Default: 100. */
  capacity?: number;
  /**
   * How many accepted items may wait for the run loop before `add()` waits
   * for room. Default: `2 * capacity`.
   */
  chanSize?: number;
  /**
   * The longest an item waits in a partial batch, in milliseconds. If a flush
   * is in progress then, the interval flush follows it at once. `Infinity`
   * turns timed flushes off. Any positive value works, including ones beyond
   * setTimeout's 2^31-1 ms limit. Default: 5000.
   *
   * A timer is pending only while the buffer holds items, so an idle buffer
   * costs nothing and keeps no process alive. The one exception keeps a busy
   * buffer from paying for a setTimeout/clearTimeout pair on every batch: when
   * batches fill up back to back, a full flush leaves the timeout pending for
   * two microtask turns so the next batch can reuse it, and for as long as it
   * takes when the next batch's items already wait in the channel. The
   * timer reads `setTimeout`, `clearTimeout` and `performance.now()` when it
   * runs, so a fake clock drives it if it fakes all three (as
   * `@sinonjs/fake-timers`' default `install()` does).
   */
  flushInterval?: number;
  /**
   * Batches items by key: items whose keys are the same (SameValueZero, as a
   * Map compares them) share batches, and every batch holds one key.
   * `capacity`, `shouldFlush`, `willOverflow`, `canAdd` and the byte budget
   * apply to each key's batch alone. Called once per item, in the run loop;
   * if it throws, the error goes to `onError` and the item batches under the
   * key `undefined`.
   *
   * With `key`, at most one flush per key is in flight, so a key's batches
   * arrive in the order they were formed even with `maxConcurrentFlushes > 1`;
   * batches of different keys fly together. One channel has one line: an item
   * whose key's batch is full and still flying waits at the head of the line,
   * holding up the items behind it, so give a key whose backend is slow a
   * buffer of its own. Default: none (one batch at a time).
   */
  key?: (item: T) => unknown;
  /**
   * With `key`: how many batches (keys) may be open at once. When an item
   * needs a new batch and this many are open, the one that opened first is
   * flushed (reason `"evict"`). Default: 1000.
   */
  maxOpenBatches?: number;
  /**
   * The most bytes (by `sizeOf`) that may be buffered at once, counting every
   * item accepted and not yet at its final outcome: in the channel, in batches
   * and in flights. While admitting an item would go over it, `add()` waits
   * in line (and `tryAdd()` returns false). Requires `sizeOf`. Default:
   * `Infinity`.
   */
  maxBufferedBytes?: number;
  /**
   * Retries a failed flush with backoff (see {@linkcode RetryOptions}): a try
   * fails when flush throws, rejects, runs past `flushTimeout`, or resolves to
   * a {@linkcode FlushOutcome} with a non-empty `retry`; then the items still
   * failing are tried again, alone, after a wait, keeping their flush slot.
   * Once retrying stops, `onFlushError` gets exactly the items that never
   * succeeded. Default: none (one try, as in the Go original).
   */
  retry?: RetryOptions;
  /**
   * The longest one try may take, in ms: then its `context.signal` aborts
   * with a `TimeoutError` DOMException, the try counts as failed and its
   * slot goes to its retry (a late result is ignored). The backend may still
   * have received it, so delivery with retries is at least once: give items
   * an idempotency key. Default: `Infinity`.
   */
  flushTimeout?: number;
  /**
   * How many flushes may be in flight at once. Batches are formed and started
   * in order; while this many are in flight the run loop takes no items, so
   * producers feel backpressure. Default: 1.
   */
  maxConcurrentFlushes?: number;
}
