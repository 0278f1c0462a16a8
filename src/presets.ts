/**
 * Batch limits of well-known backends, ready to spread into a
 * {@linkcode BatchBufferConfig} together with your own `sizeOf`.
 *
 * @module
 */

/**
 * The limits of one bulk API: items per batch, bytes per batch, bytes per
 * item. Spread it into a config and add a `sizeOf` that measures an item the
 * way the backend does.
 *
 * @example
 * ```ts
 * import type { BatchLimits } from "@batchkit/buffer";
 *
 * const myApi: BatchLimits = { capacity: 1_000, maxBatchBytes: 1_000_000, maxItemBytes: 10_000 };
 * ```
 */
export interface BatchLimits {
  /** Items per batch. */
  readonly capacity: number;
  /** Bytes per batch. */
  readonly maxBatchBytes: number;
  /** Bytes per item. */
  readonly maxItemBytes: number;
}

/**
 * Cloudflare Queues `sendBatch()`: at most 100 messages and 256 KB per call,
 * 128 KB per message, where 1 KB is 1000 bytes (developers.cloudflare.com,
 * Queues, Platform, Limits). Each message carries up to about 100 bytes of
 * internal metadata that counts towards both limits, so add 100 to the body
 * size in `sizeOf`.
 *
 * @example
 * ```ts
 * import { BatchBuffer, CLOUDFLARE_QUEUES_SEND_BATCH } from "@batchkit/buffer";
 *
 * const encoder = new TextEncoder();
 * const buffer = new BatchBuffer<object>({
 *   ...CLOUDFLARE_QUEUES_SEND_BATCH,
 *   sizeOf: (body) => encoder.encode(JSON.stringify(body)).byteLength + 100,
 *   flush: async (_bodies) => {
 *     // await env.QUEUE.sendBatch(bodies.map((body) => ({ body })));
 *   },
 * });
 * await buffer[Symbol.asyncDispose]();
 * ```
 */
export const CLOUDFLARE_QUEUES_SEND_BATCH: BatchLimits = Object.freeze({
  capacity: 100,
  maxBatchBytes: 256_000,
  maxItemBytes: 128_000,
});

/**
 * Amazon Kinesis Data Streams `PutRecords`: at most 500 records per request,
 * 1 MiB per record and 5 MiB per request, partition keys included (AWS API
 * reference, PutRecords). Measure a record as its partition key's UTF-8
 * length plus its data's byte length.
 *
 * @example
 * ```ts
 * import { BatchBuffer, KINESIS_PUT_RECORDS } from "@batchkit/buffer";
 *
 * interface KinesisRecord { PartitionKey: string; Data: Uint8Array }
 * const encoder = new TextEncoder();
 * const buffer = new BatchBuffer<KinesisRecord>({
 *   ...KINESIS_PUT_RECORDS,
 *   sizeOf: (r) => encoder.encode(r.PartitionKey).byteLength + r.Data.byteLength,
 *   flush: async (_records) => {
 *     // await kinesis.send(new PutRecordsCommand({ StreamName, Records: records }));
 *   },
 * });
 * await buffer[Symbol.asyncDispose]();
 * ```
 */
export const KINESIS_PUT_RECORDS: BatchLimits = Object.freeze({
  capacity: 500,
  maxBatchBytes: 5 * 1024 * 1024,
  maxItemBytes: 1024 * 1024,
});

/**
 * Amazon SQS `SendMessageBatch`: at most 10 messages per request, and both a
 * message and the whole batch at most 1 MiB (1,048,576 bytes) (AWS API
 * reference, SendMessageBatch; the limit was 256 KiB before August 2025).
 *
 * @example
 * ```ts
 * import { BatchBuffer, SQS_SEND_MESSAGE_BATCH } from "@batchkit/buffer";
 *
 * const encoder = new TextEncoder();
 * const buffer = new BatchBuffer<string>({
 *   ...SQS_SEND_MESSAGE_BATCH,
 *   sizeOf: (body) => encoder.encode(body).byteLength,
 *   flush: async (_bodies) => {
 *     // await sqs.send(new SendMessageBatchCommand({ QueueUrl, Entries }));
 *   },
 * });
 * await buffer[Symbol.asyncDispose]();
 * ```
 */
export const SQS_SEND_MESSAGE_BATCH: BatchLimits = Object.freeze({
  capacity: 10,
  maxBatchBytes: 1024 * 1024,
  maxItemBytes: 1024 * 1024,
});
