/**
 * The errors a caller of {@linkcode BatchBuffer} is expected to catch.
 *
 * @module
 */

/**
 * The buffer was closed, so it did not take the item. The caller still owns
 * {@linkcode BufferClosedError.item} and decides what happens to it (retry
 * elsewhere, nack, log).
 *
 * `add()` rejects with it after `close()`, and so does every `add()` that was
 * still waiting for room when `close()` was called. `tryAdd()` throws it.
 *
 * @example Handing a refused item back to its source
 * ```ts
 * import { BatchBuffer, BufferClosedError } from "@batchkit/buffer";
 * import assert from "node:assert/strict";
 *
 * const buffer = new BatchBuffer<string>({ flush: () => {} });
 * buffer.close();
 * try {
 *   await buffer.add("late");
 * } catch (error) {
 *   assert.ok(error instanceof BufferClosedError);
 *   assert.equal(error.item, "late");
 * }
 * ```
 */
export class BufferClosedError extends Error {
  /** The item that was not added. */
  readonly item: unknown;

  /**
   * Creates the error for an item that was not added.
   *
   * @param item The item the buffer refused.
   */
  constructor(item: unknown) {
    super("The buffer is closed, so the item was not added");
    this.name = "BufferClosedError";
    this.item = item;
  }
}

/**
 * `addAll()` stopped part-way, because its signal aborted, the buffer closed
 * or the iterable threw. The first {@linkcode AddAllError.accepted} items were
 * queued and belong to the buffer; every item after them still belongs to the
 * caller. {@linkcode AddAllError.cause} holds the abort reason, the
 * {@linkcode BufferClosedError} or the iterable's error.
 *
 * @example Knowing which items are still yours
 * ```ts
 * import { AddAllError, BatchBuffer } from "@batchkit/buffer";
 * import assert from "node:assert/strict";
 *
 * const buffer = new BatchBuffer<number>({ flush: () => {}, chanSize: 2 });
 * const items = [1, 2, 3, 4];
 * try {
 *   // The run loop is not started, so only two items fit.
 *   await buffer.addAll(items, { signal: AbortSignal.timeout(10) });
 * } catch (error) {
 *   assert.ok(error instanceof AddAllError);
 *   assert.deepEqual(items.slice(error.accepted), [3, 4]);
 * }
 * await buffer[Symbol.asyncDispose]();
 * ```
 */
export class AddAllError extends Error {
  /** How many leading items of the iterable were queued. */
  readonly accepted: number;

  /**
   * Creates the error for an `addAll()` that queued `accepted` items.
   *
   * @param accepted How many leading items were queued.
   * @param cause Why it stopped.
   */
  constructor(accepted: number, cause: unknown) {
    super(`addAll() stopped after queueing ${accepted} items`, { cause });
    this.name = "AddAllError";
    this.accepted = accepted;
  }
}

/**
 * An item given to `send()` was not delivered. {@linkcode DeliveryError.item}
 * is the item and {@linkcode DeliveryError.cause} says why: the last error of
 * its flush once retrying stopped (the same error `onFlushError` receives), or
 * an `Error` saying why the buffer refused it (`canAdd`, `sizeOf` or the byte
 * budget).
 *
 * @example Telling a caller their item was lost
 * ```ts
 * import { DeliveryError } from "@batchkit/buffer";
 * import assert from "node:assert/strict";
 *
 * const error = new DeliveryError({ id: 7 }, new Error("backend answered 503"));
 * assert.ok(error instanceof Error);
 * assert.equal(error.name, "DeliveryError");
 * assert.deepEqual(error.item, { id: 7 });
 * assert.equal((error.cause as Error).message, "backend answered 503");
 * ```
 */
export class DeliveryError extends Error {
  /** The item that was not delivered. */
  readonly item: unknown;

  /**
   * Creates the error for an item that was not delivered.
   *
   * @param item The item.
   * @param cause Why it was not delivered.
   */
  constructor(item: unknown, cause: unknown) {
    super("The item was not delivered", { cause });
    this.name = "DeliveryError";
    this.item = item;
  }
}
