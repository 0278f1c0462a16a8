/**
 * {@linkcode BatchStream}: a TransformStream that turns items into batches.
 *
 * @module
 */
import { BatchBuffer } from "./batch_buffer.ts";
import { describe } from "./config.ts";
import type { BatchBufferConfig } from "./batch_buffer_config.ts";

/**
 * Options for {@linkcode BatchStream}: the batching rules of
 * {@linkcode BatchBufferConfig}, without the parts a stream provides itself
 * (the readable side is the flush, and batches are emitted one at a time).
 *
 * @typeParam T The item type.
 *
 * @example
 * ```ts
 * import type { BatchStreamOptions } from "@batchkit/buffer";
 *
 * const options: BatchStreamOptions<string> = { capacity: 50, flushInterval: 200 };
 * ```
 */
export type BatchStreamOptions<T> = Omit<
  BatchBufferConfig<T>,
  "flush" | "onFlushError" | "waitUntil" | "maxConcurrentFlushes"
>;

/**
 * A `TransformStream<T, T[]>` that turns a stream of items into a stream of
 * batches, by the same rules as {@linkcode BatchBuffer}: a batch is emitted
 * when it is full, when the next item would overflow it, when its oldest item
 * has waited `flushInterval`, and when the writable side closes. While the
 * readable side is not read, writes wait (backpressure).
 *
 * Cancelling the readable side discards the items not yet emitted, as
 * cancelling any stream does.
 *
 * @typeParam T The item type.
 *
 * @example Batches of three
 * ```ts
 * import { BatchStream } from "@batchkit/buffer";
 * import assert from "node:assert/strict";
 *
 * const batches = await Array.fromAsync(
 *   ReadableStream.from([1, 2, 3, 4, 5]).pipeThrough(new BatchStream<number>({ capacity: 3 })),
 * );
 * assert.deepEqual(batches, [[1, 2, 3], [4, 5]]);
 * ```
 */
export class BatchStream<T> extends TransformStream<T, T[]> {
  /**
   * Creates the stream.
   *
   * @param options Batching rules; all optional. Default capacity 100,
   * flushInterval 5000 ms.
   * @throws {TypeError} or {RangeError} for invalid options, as BatchBuffer does.
   */
  constructor(options: BatchStreamOptions<T> = {}) {
    if (options === null || typeof options !== "object") {
      throw new TypeError(`options must be an object, received ${describe(options)}`);
    }
    let emit: (batch: T[]) => void = () => {};
    let cancelled = false;
    const buffer = new BatchBuffer<T>({
      ...options,
      flush: (batch) => {
        if (!cancelled) emit(batch);
      },
    });
    let running: Promise<void> = Promise.resolve();
    super({
      start(controller) {
        emit = (batch) => controller.enqueue(batch);
        running = buffer.run();
      },
      transform: (item) => buffer.add(item),
      flush: () => {
        buffer.close();
        return running;
      },
      // Newer runtimes call this when the readable side is cancelled.
      cancel: () => {
        cancelled = true;
        buffer.close();
        return running;
      },
    } as Transformer<T, T[]>);
  }
}
