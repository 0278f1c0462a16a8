/**
 * {@linkcode BatchBuffer}: many producers add items, one run loop hands them
 * to `flush` in batches.
 *
 * @module
 */
import { addAll } from "./add_all.ts";
import { describe, resolveConfig } from "./config.ts";
import { RunLoop } from "./run_loop.ts";
import type { BatchBufferConfig } from "./batch_buffer_config.ts";
import type { AddOptions, BatchBufferStats } from "./types.ts";

/** Above this flushInterval (ms), a buffer with `waitUntil` warns once: Workers cap waitUntil at 30 s. */
const WAIT_UNTIL_LIMIT_WARNING = 25_000;

/**
 * A batching buffer. Producers `await buffer.add(item)`; one run loop gathers
 * the items into batches and hands each to `flush` when it is full, when the
 * next item would overflow it, when its oldest item has waited
 * `flushInterval`, when `flush()` is called, and on `close()`.
 *
 * While the run loop is busy, added items wait in a bounded channel of
 * `chanSize` items; once it is full, `add()` waits for room (backpressure).
 * No item is dropped silently: every accepted item reaches exactly one
 * `flush` (successful or failed, then `onFlushError`) or `onReject`, and every
 * refused `add()` rejects, so the caller still owns the item.
 *
 * Shutdown: stop the producers, call `close()`, then await `run()` (or use
 * `await using`, which does both).
 *
 * @typeParam T The item type.
 *
 * @example Batching with a run loop
 * ```ts
 * import { BatchBuffer } from "@batchkit/buffer";
 * import assert from "node:assert/strict";
 *
 * const batches: number[][] = [];
 * const buffer = new BatchBuffer<number>({
 *   capacity: 3,
 *   flush: (batch) => { batches.push(batch); },
 * });
 * const running = buffer.run();
 * for (let i = 0; i < 7; i++) await buffer.add(i);
 * buffer.close();
 * await running;
 * assert.deepEqual(batches, [[0, 1, 2], [3, 4, 5], [6]]);
 * ```
 */
export class BatchBuffer<T> implements AsyncDisposable {
  readonly #loop: RunLoop<T>;
  #writable: WritableStream<T> | undefined;

  /**
   * Creates a buffer. Nothing runs until `run()` is called, but items may be
   * added before (they wait in the channel).
   *
   * @param config How to batch; only `flush` is required.
   * @throws {TypeError} when `flush` is missing or a hook is not a function.
   * @throws {RangeError} when a number is out of range.
   */
  constructor(config: BatchBufferConfig<T>) {
    const resolved = resolveConfig(config);
    this.#loop = new RunLoop(resolved);
    const { flushInterval, waitUntil } = resolved;
    if (
      waitUntil !== undefined && flushInterval > WAIT_UNTIL_LIMIT_WARNING &&
      flushInterval !== Infinity
    ) {
      this.#loop.hooks.report(
        new RangeError(
          `flushInterval is ${flushInterval} ms with waitUntil set: Cloudflare Workers give waitUntil ` +
            "work at most 30 s after the response, so keep flushInterval plus a flush's duration well under 30 s",
        ),
      );
    }
  }

  /**
   * Items accepted and not yet taken by the run loop; never more than
   * `chanSize`. A snapshot for monitoring.
   */
  get itemsInChannel(): number {
    return this.#loop.itemsInChannel;
  }

  /**
   * Adds an item. Resolves once the buffer has accepted it; while the channel
   * is full it waits for room, in line with other waiting producers.
   *
   * Rejects, and the caller keeps the item, with:
   * - {@linkcode BufferClosedError} after `close()`, including for adds still
   *   waiting when `close()` is called;
   * - `signal.reason` when `options.signal` is already aborted or aborts
   *   while waiting (`AbortSignal.timeout(ms)` bounds the wait);
   * - a TypeError when `options.signal` is not an AbortSignal.
   *
   * @param item The item; any value, `undefined` included.
   * @param options An optional signal that stops the wait.
   */
  add(item: T, options?: AddOptions): Promise<void> {
    let signal: AbortSignal | undefined;
    try {
      signal = options === undefined ? undefined : signalOf(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#loop.admission.add(item, signal);
  }

  /**
   * Adds an item, like `add()`, and resolves once it has been delivered: a
   * try of `flush` that carried it succeeded (it was not in the outcome's
   * `retry`). Like Pub/Sub's `publishMessage()`, but the wait for room comes
   * first: it waits, obeys `options.signal` and rejects with
   * {@linkcode BufferClosedError} exactly as `add()` does.
   *
   * Rejects with a {@linkcode DeliveryError} (`.item`, and `.cause` the last
   * error) when the item ends in `onFlushError` after its last try, or when
   * the buffer refuses it (`canAdd`, an invalid size, over `maxItemBytes`;
   * `onReject` still gets it). Items added with `add()` pay nothing for it.
   *
   * @param item The item.
   * @param options An optional signal that stops the wait for room.
   *
   * @example Waiting for delivery
   * ```ts
   * import { BatchBuffer } from "@batchkit/buffer";
   * import assert from "node:assert/strict";
   *
   * const sent: string[] = [];
   * const buffer = new BatchBuffer<string>({
   *   flushInterval: 10,
   *   flush: async (batch) => { sent.push(...batch); },
   * });
   * void buffer.run();
   * await buffer.send("order-1"); // resolves once a flush carried it
   * assert.deepEqual(sent, ["order-1"]);
   * await buffer[Symbol.asyncDispose]();
   * ```
   */
  send(item: T, options?: AddOptions): Promise<void> {
    let signal: AbortSignal | undefined;
    try {
      signal = options === undefined ? undefined : signalOf(options);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#loop.admission.send(item, signal);
  }

  /**
   * Adds an item without waiting. Returns true when it was accepted, false
   * when the channel is full, the byte budget has no room, or other
   * producers are already waiting (it never jumps the line).
   *
   * @param item The item.
   * @throws {BufferClosedError} after `close()`.
   */
  tryAdd(item: T): boolean {
    return this.#loop.admission.tryAdd(item);
  }

  /**
   * Adds the items in order, waiting for room as `add()` does, at a fraction
   * of the per-item cost of `add()` (it only awaits when it must wait).
   *
   * If the signal aborts, the buffer closes or the iterable throws part-way,
   * it rejects with an {@linkcode AddAllError} whose `accepted` says how many
   * leading items were queued; the rest still belong to the caller.
   *
   * @param items Any iterable.
   * @param options An optional signal that stops the wait.
   */
  addAll(items: Iterable<T>, options?: AddOptions): Promise<void> {
    try {
      return addAll(this.#loop, items, signalOf(options));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Flushes now: resolves once every item whose add resolved before this call
   * has been through a flush (or `onReject`) and those flushes have settled.
   * The partial batch goes out with reason `"manual"`. Concurrent calls share
   * the work. With nothing pending, or after `run()` has finished, it resolves
   * without calling `flush`.
   *
   * Called from inside `flush` (before its first `await`), it schedules the
   * manual flush and resolves at once, because waiting could mean waiting for
   * the very flush that called it. From `onFlushError` it waits as usual (the
   * failed flush has already settled). An async `flush` that awaits
   * `buffer.flush()` after its own first `await` would wait for itself: don't.
   * (Likewise a flush that awaits `buffer.add()` while the channel is full.)
   *
   * Rejects when items are pending and `run()` has not been called.
   *
   * @example At the end of an edge request
   * ```ts
   * import { BatchBuffer } from "@batchkit/buffer";
   * import assert from "node:assert/strict";
   *
   * const sent: string[][] = [];
   * const buffer = new BatchBuffer<string>({ flush: (batch) => { sent.push(batch); } });
   * void buffer.run();
   * await buffer.add("page_view");
   * await buffer.flush(); // in a Worker: ctx.waitUntil(buffer.flush())
   * assert.deepEqual(sent, [["page_view"]]);
   * await buffer[Symbol.asyncDispose]();
   * ```
   */
  flush(): Promise<void> {
    return this.#loop.flush();
  }

  /**
   * Closes the buffer: later adds reject with {@linkcode BufferClosedError},
   * and so do adds still waiting for room. Items already accepted are kept:
   * the run loop processes them, flushes the last batch (reason `"close"`)
   * and then `run()` resolves. Calling it again does nothing.
   */
  close(): void {
    this.#loop.close();
  }

  /**
   * Runs the buffer. Call it once; a second call rejects and leaves the first
   * undisturbed. Resolves after `close()` has been called, every accepted item
   * has been processed and every flush has settled; no timer is left behind.
   *
   * Aborting `signal` does not stop the run: that would drop items. It is
   * passed to every flush as `context.signal` so flushes can hurry. Without
   * it, flushes get a signal that never aborts.
   *
   * @param signal Handed to every flush as `context.signal`.
   */
  run(signal?: AbortSignal): Promise<void> {
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      return Promise.reject(
        new TypeError(`signal must be an AbortSignal, received ${describe(signal)}`),
      );
    }
    return this.#loop.run(signal) ??
      Promise.reject(new Error("run() was already called: a BatchBuffer has one run loop"));
  }

  /**
   * Closes the buffer and waits for the run to finish, running it here if
   * `run()` was never called. For `await using buffer = new BatchBuffer(...)`.
   * Calling it again waits for the same run.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    if (!this.#loop.started) await this.run();
    else await this.#loop.done;
  }

  /**
   * A WritableStream that adds every chunk (with backpressure), the same
   * object on every access. Closing or aborting it closes the buffer; the
   * items it already accepted are still flushed.
   *
   * @example Piping a stream of events
   * ```ts
   * import { BatchBuffer } from "@batchkit/buffer";
   * import assert from "node:assert/strict";
   *
   * const batches: number[][] = [];
   * const buffer = new BatchBuffer<number>({ capacity: 2, flush: (b) => { batches.push(b); } });
   * const running = buffer.run();
   * await ReadableStream.from([1, 2, 3]).pipeTo(buffer.writable);
   * await running; // the stream's close closed the buffer
   * assert.deepEqual(batches, [[1, 2], [3]]);
   * ```
   */
  get writable(): WritableStream<T> {
    return this.#writable ??= new WritableStream<T>({
      // The stream's signal lets abort() stop a write that waits for room.
      write: (item, controller) => this.add(item, { signal: controller.signal }),
      close: () => this.close(),
      abort: () => this.close(),
    });
  }

  /**
   * A snapshot of the counters; see {@linkcode BatchBufferStats} for the
   * invariant they keep.
   */
  stats(): BatchBufferStats {
    return this.#loop.stats();
  }
}

/** Reads `options.signal` (a getter may throw: callers turn that into a rejection). */
function signalOf(options: AddOptions | undefined): AbortSignal | undefined {
  const signal = options?.signal;
  if (signal === undefined || signal instanceof AbortSignal) return signal;
  throw new TypeError(`options.signal must be an AbortSignal, received ${describe(signal)}`);
}
