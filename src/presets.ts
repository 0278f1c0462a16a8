/**
 * Batch limits of well-known backends, each with a `sizeOf` that measures an
 * item the way that backend does, ready to spread into a
 * {@linkcode BatchBufferConfig}.
 *
 * @module
 */
import { bytesOf, jsonBytes, utf8Length } from "./wire_bytes.ts";

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
 * A backend's limits together with the measure they apply to, and a
 * recommended bound on the memory held by one buffer. Spread it into a config
 * (`{ ...PRESET, flush }`); any key can be overridden after the spread.
 *
 * @typeParam T The item shape `sizeOf` understands.
 *
 * @example
 * ```ts
 * import type { BatchPreset } from "@batchkit/buffer";
 *
 * const lines: BatchPreset<string> = {
 *   capacity: 1_000,
 *   maxBatchBytes: 1_000_000,
 *   maxItemBytes: 10_000,
 *   maxBufferedBytes: 4_000_000,
 *   sizeOf: (line) => line.length,
 * };
 * ```
 */
export interface BatchPreset<T> extends BatchLimits {
  /**
   * An item's size as the backend counts it. `NaN` for an item the backend
   * cannot take at all (wrong shape, or a body that does not serialize), so
   * the buffer hands it to `onReject`.
   */
  readonly sizeOf: (item: T) => number;
  /**
   * A recommended bound on the bytes one buffer holds in all (channel, forming
   * batch and flushes in flight): room for about 16 full batches, and never
   * more than 16 MiB, an eighth of a Workers isolate's 128 MB.
   */
  readonly maxBufferedBytes: number;
}

/**
 * A Kinesis `PutRecords` entry, as far as its size goes. The AWS SDK's
 * `PutRecordsRequestEntry` fits this shape.
 *
 * @example
 * ```ts
 * import type { KinesisRecordEntry } from "@batchkit/buffer";
 *
 * const record: KinesisRecordEntry = { PartitionKey: "user-1", Data: new Uint8Array([1, 2]) };
 * ```
 */
export interface KinesisRecordEntry {
  /** The record's payload: bytes, or a string sent as its UTF-8 bytes. Required. */
  readonly Data?: Uint8Array | string;
  /** The partition key; its UTF-8 bytes count toward the limits. Required. */
  readonly PartitionKey?: string;
}

/**
 * One message attribute of an SQS message, as far as its size goes. The AWS
 * SDK's `MessageAttributeValue` fits this shape.
 *
 * @example
 * ```ts
 * import type { SqsMessageAttribute } from "@batchkit/buffer";
 *
 * const attribute: SqsMessageAttribute = { DataType: "String", StringValue: "checkout" };
 * ```
 */
export interface SqsMessageAttribute {
  /** `"String"`, `"Number"` or `"Binary"`, optionally with a custom label; it counts. */
  readonly DataType?: string;
  /** The value of a String or Number attribute; its UTF-8 bytes count. */
  readonly StringValue?: string;
  /** The value of a Binary attribute; its bytes count. */
  readonly BinaryValue?: Uint8Array;
}

/**
 * An SQS `SendMessageBatch` entry, as far as its size goes. The AWS SDK's
 * `SendMessageBatchRequestEntry` fits this shape.
 *
 * @example
 * ```ts
 * import type { SqsMessageEntry } from "@batchkit/buffer";
 *
 * const entry: SqsMessageEntry = {
 *   MessageBody: '{"order":1}',
 *   MessageAttributes: { kind: { DataType: "String", StringValue: "checkout" } },
 * };
 * ```
 */
export interface SqsMessageEntry {
  /** The message body. Required. */
  readonly MessageBody?: string;
  /** Attributes; each one's name, type and value count toward the limits. */
  readonly MessageAttributes?: Readonly<Record<string, SqsMessageAttribute>>;
}

function kinesisRecordBytes(record: KinesisRecordEntry): number {
  if (record === null || typeof record !== "object") return NaN;
  const key = record.PartitionKey;
  if (typeof key !== "string") return NaN;
  return bytesOf(record.Data) + utf8Length(key);
}

function sqsMessageBytes(message: string | SqsMessageEntry): number {
  if (typeof message === "string") return utf8Length(message);
  if (message === null || typeof message !== "object") return NaN;
  const body = message.MessageBody;
  if (typeof body !== "string") return NaN;
  let bytes = utf8Length(body);
  const attributes = message.MessageAttributes;
  if (attributes === undefined) return bytes;
  if (attributes === null || typeof attributes !== "object") return NaN;
  for (const name of Object.keys(attributes)) {
    const attribute = attributes[name];
    if (attribute === null || typeof attribute !== "object") return NaN;
    const type = attribute.DataType;
    if (typeof type !== "string") return NaN;
    const value = attribute.StringValue !== undefined
      ? (typeof attribute.StringValue === "string" ? utf8Length(attribute.StringValue) : NaN)
      : bytesOf(attribute.BinaryValue);
    bytes += utf8Length(name) + utf8Length(type) + value;
  }
  return bytes;
}

/**
 * Cloudflare Queues `sendBatch()`, for items that are message bodies
 * (`sendBatch(batch.map((body) => ({ body })))`).
 *
 * **Content type "json".** `sizeOf` is the body's JSON text
 * (`JSON.stringify`) in UTF-8 bytes, which is exactly what `sendBatch`
 * counts for content type `"json"`, the default since compatibility date
 * 2024-03-18. A body JSON cannot carry (`undefined`, a function, a BigInt, a
 * cycle) measures `NaN` and goes to `onReject`.
 *
 * **Content type "v8"** (an older compatibility date, the
 * `no_queues_json_messages` flag, or `contentType: "v8"`) is counted by V8
 * serialization, and this `sizeOf` undercounts it by up to 2×: a string with
 * one character beyond Latin-1 takes 2 bytes per UTF-16 unit, so a body
 * `{ id, text }` of 70,001 JSON bytes whose text holds one "€" is 139,980
 * bytes in V8 form and is refused (measured in Miniflare; the documented
 * "JSON length + 100" misses this too). Either send `contentType: "json"`
 * explicitly, or override `sizeOf` with `v8.serialize(body).byteLength` from
 * `node:v8` where it exists (Node, Deno, Bun; Workers has no `node:v8`).
 *
 * **Limits.** Measured in Miniflare 4.20260426.0 (workerd 1.20260426.1):
 * `sendBatch` refuses more than 100 messages, a message over 128,000 bytes
 * and a batch over 288,000 bytes. Cloudflare documents 128 KB per message and
 * 256 KB per batch (1 KB = 1000 bytes), with up to about 100 bytes of
 * internal metadata per message counting toward them (developers.cloudflare.com,
 * Queues, Platform, Limits). The preset stays under both with that metadata
 * reserved: 127,900 bytes per message and 256,000 - 100 × 100 = 246,000
 * bytes per batch. `maxBufferedBytes` is 4 MiB (about 17 full batches).
 *
 * @example
 * ```ts
 * import { BatchBuffer, CLOUDFLARE_QUEUES_SEND_BATCH } from "@batchkit/buffer";
 *
 * const buffer = new BatchBuffer<object>({
 *   ...CLOUDFLARE_QUEUES_SEND_BATCH,
 *   flush: async (_bodies) => {
 *     // await env.QUEUE.sendBatch(bodies.map((body) => ({ body, contentType: "json" })));
 *   },
 * });
 * await buffer[Symbol.asyncDispose]();
 * ```
 */
export const CLOUDFLARE_QUEUES_SEND_BATCH: BatchPreset<unknown> = Object.freeze({
  capacity: 100,
  maxBatchBytes: 246_000,
  maxItemBytes: 127_900,
  maxBufferedBytes: 4 * 1024 * 1024,
  sizeOf: jsonBytes,
});

/**
 * Amazon Kinesis Data Streams `PutRecords`, for items that are
 * `{ Data, PartitionKey }` entries: at most 500 records per request, 1 MiB
 * per record and 5 MiB per request, partition keys included (AWS API
 * reference, PutRecords). `sizeOf` is the data's byte length (a string
 * `Data` counts as its UTF-8 bytes) plus the partition key's UTF-8 length;
 * an entry without a string `PartitionKey`, or whose `Data` is neither bytes
 * nor a string, measures `NaN` and goes to `onReject`. `maxBufferedBytes` is
 * 16 MiB (three full requests), an eighth of a Workers isolate.
 *
 * @example
 * ```ts
 * import { BatchBuffer, KINESIS_PUT_RECORDS, type KinesisRecordEntry } from "@batchkit/buffer";
 *
 * const buffer = new BatchBuffer<KinesisRecordEntry>({
 *   ...KINESIS_PUT_RECORDS,
 *   flush: async (_records) => {
 *     // await kinesis.send(new PutRecordsCommand({ StreamName, Records: records }));
 *   },
 * });
 * await buffer[Symbol.asyncDispose]();
 * ```
 */
export const KINESIS_PUT_RECORDS: BatchPreset<KinesisRecordEntry> = Object.freeze({
  capacity: 500,
  maxBatchBytes: 5 * 1024 * 1024,
  maxItemBytes: 1024 * 1024,
  maxBufferedBytes: 16 * 1024 * 1024,
  sizeOf: kinesisRecordBytes,
});

/**
 * Amazon SQS `SendMessageBatch`: at most 10 messages per request, and both a
 * message and the whole batch at most 1 MiB (1,048,576 bytes) (AWS API
 * reference, SendMessageBatch; the limit was 256 KiB before August 2025).
 * Items are message bodies (strings) or `SendMessageBatch` entries. `sizeOf`
 * is the body's UTF-8 length plus, for each message attribute, the UTF-8
 * length of its name, its `DataType` and its `StringValue` (or the bytes of
 * its `BinaryValue`), since all of them count toward the limit (AWS API
 * reference, MessageAttributeValue). An entry without a string `MessageBody`
 * measures `NaN` and goes to `onReject`. `maxBufferedBytes` is 16 MiB.
 *
 * @example
 * ```ts
 * import { BatchBuffer, SQS_SEND_MESSAGE_BATCH } from "@batchkit/buffer";
 *
 * const buffer = new BatchBuffer<string>({
 *   ...SQS_SEND_MESSAGE_BATCH,
 *   flush: async (_bodies) => {
 *     // await sqs.send(new SendMessageBatchCommand({ QueueUrl, Entries }));
 *   },
 * });
 * await buffer[Symbol.asyncDispose]();
 * ```
 */
export const SQS_SEND_MESSAGE_BATCH: BatchPreset<string | SqsMessageEntry> = Object.freeze({
  capacity: 10,
  maxBatchBytes: 1024 * 1024,
  maxItemBytes: 1024 * 1024,
  maxBufferedBytes: 16 * 1024 * 1024,
  sizeOf: sqsMessageBytes,
});
