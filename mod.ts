/**
 * A batching buffer for edge runtimes. Many producers `await buffer.add(item)`;
 * one run loop gathers the items into batches and hands each to your `flush`
 * when it is full, when the next item would overflow it, when the flush
 * interval elapses, on demand, or on close. Backpressure slows producers when
 * the backend is slow, and no item is ever dropped silently.
 *
 * Web standards only, zero dependencies: Deno, Bun, Node.js 20+, Cloudflare
 * Workers and browsers.
 *
 * @example Batching events before fetch
 * ```ts
 * import { BatchBuffer } from "@batchkit/buffer";
 * import assert from "node:assert/strict";
 *
 * const sent: string[][] = [];
 * await using buffer = new BatchBuffer<string>({
 *   capacity: 2,
 *   flush: (batch) => { sent.push(batch); }, // e.g. POST the batch with fetch
 * });
 * void buffer.run();
 * for (const event of ["a", "b", "c"]) await buffer.add(event);
 * await buffer.flush();
 * assert.deepEqual(sent, [["a", "b"], ["c"]]);
 * ```
 *
 * @module
 */
export * from "./src/batch_buffer.ts";
export type * from "./src/batch_buffer_config.ts";
export * from "./src/batch_stream.ts";
export * from "./src/errors.ts";
export * from "./src/presets.ts";
export type * from "./src/types.ts";
export type { FlushOutcome } from "./src/flush_outcome.ts";
export type { RetryOptions } from "./src/retry_policy.ts";
export { parseRetryAfter } from "./src/retry_after.ts";
