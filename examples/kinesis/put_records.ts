/**
 * A recipe: a BatchBuffer that sends records to Amazon Kinesis Data Streams
 * with `PutRecords`, and lets the buffer retry only the records Kinesis
 * refused.
 *
 * `PutRecords` succeeds or fails record by record: the response has a
 * `FailedRecordCount`, and each failed entry of `Records` an `ErrorCode`
 * (`ProvisionedThroughputExceededException` or `InternalFailure`) at the
 * position of its request record. {@linkcode toOutcome} maps that to a
 * `FlushOutcome`, so those records alone are tried again, with backoff,
 * and the rest count as delivered.
 *
 * Tested against kinesalite (tests/kinesis_example.test.ts). See README.md
 * next to this file.
 *
 * @module
 */
import {
  type KinesisClient,
  PutRecordsCommand,
  type PutRecordsOutput,
  type PutRecordsRequestEntry,
  type PutRecordsResultEntry,
} from "@aws-sdk/client-kinesis";
import {
  BatchBuffer,
  type BatchBufferConfig,
  type FlushContext,
  type FlushOutcome,
  KINESIS_PUT_RECORDS,
} from "../../mod.ts"; // in your app: "@batchkit/buffer"

/** One record for `PutRecords`: `{ PartitionKey, Data, ExplicitHashKey? }`. */
export type KinesisRecord = PutRecordsRequestEntry;

/** The per-record error codes that may succeed on another try. */
const TRANSIENT_CODES = new Set([
  "ProvisionedThroughputExceededException",
  "InternalFailure",
  "KMSThrottlingException",
]);

/** Whole-request errors of the AWS SDK that are worth another try. */
const TRANSIENT_ERRORS = new Set([
  "ProvisionedThroughputExceededException",
  "LimitExceededException",
  "KMSThrottlingException",
  "ThrottlingException",
  "InternalFailureException",
  "ServiceUnavailable",
  "RequestTimeout",
  "TimeoutError", // flushTimeout, or a socket timeout
]);

/**
 * Some records of one `PutRecords` call failed. `codes` counts them by
 * `ErrorCode`; `messages` holds the first `ErrorMessage` of each code.
 */
export class PutRecordsFailure extends Error {
  /** How many records failed, by ErrorCode. */
  readonly codes: ReadonlyMap<string, number>;
  /** The first ErrorMessage seen for each ErrorCode. */
  readonly messages: ReadonlyMap<string, string>;

  /**
   * @param failed How many records failed.
   * @param total How many records the call sent.
   * @param entries The response's entries, one per record.
   */
  constructor(failed: number, total: number, entries: readonly PutRecordsResultEntry[]) {
    const codes = new Map<string, number>();
    const messages = new Map<string, string>();
    for (const entry of entries) {
      if (entry.ErrorCode === undefined) continue;
      codes.set(entry.ErrorCode, (codes.get(entry.ErrorCode) ?? 0) + 1);
      if (!messages.has(entry.ErrorCode)) messages.set(entry.ErrorCode, entry.ErrorMessage ?? "");
    }
    const summary = [...codes].map(([code, n]) => `${n} ${code}`).join(", ");
    super(`PutRecords: ${failed} of ${total} records failed (${summary})`);
    this.name = "PutRecordsFailure";
    this.codes = codes;
    this.messages = messages;
  }
}

/**
 * Maps a `PutRecords` response to a `FlushOutcome`: the records whose entry
 * has an `ErrorCode`, in request order, with a {@linkcode PutRecordsFailure}
 * saying why. A response without failures maps to `{}` (a success).
 *
 * @throws {Error} when the response has not one entry per request record, or
 * its `FailedRecordCount` disagrees with the entries: then nothing is known
 * per record, and the buffer treats the whole batch as failed.
 */
export function toOutcome(
  records: KinesisRecord[],
  output: PutRecordsOutput,
): FlushOutcome<KinesisRecord> {
  const entries = output.Records ?? [];
  if (entries.length !== records.length) {
    throw new Error(
      `PutRecords answered ${entries.length} entries for ${records.length} records`,
    );
  }
  const retry = records.filter((_, i) => entries[i].ErrorCode !== undefined);
  const reported = output.FailedRecordCount ?? 0;
  if (reported !== retry.length) {
    throw new Error(
      `PutRecords reported FailedRecordCount ${reported} but ${retry.length} entries have an ErrorCode`,
    );
  }
  if (retry.length === 0) return {};
  return { retry, error: new PutRecordsFailure(retry.length, records.length, entries) };
}

/**
 * True when another try may succeed: a throttling or internal error for the
 * whole request, a network error or timeout, or records that failed only
 * with transient codes. False for the caller's own mistakes (a missing
 * stream, a bad record, missing permissions), which fail every try alike.
 */
export function isRetryable(error: unknown): boolean {
  if (error instanceof PutRecordsFailure) {
    return [...error.codes.keys()].every((code) => TRANSIENT_CODES.has(code));
  }
  if (error === null || typeof error !== "object") return true;
  const { name, $fault, $metadata } = error as {
    name?: string;
    $fault?: "client" | "server";
    $metadata?: { httpStatusCode?: number };
  };
  if (name !== undefined && TRANSIENT_ERRORS.has(name)) return true;
  // An error the service answered with: 5xx and 429 are transient, other 4xx are ours.
  const status = $metadata?.httpStatusCode;
  if (status !== undefined) return status >= 500 || status === 429;
  return $fault !== "client"; // no answer at all: a network error
}

/** The client surface the flush needs, so a test can wrap it. */
export interface PutRecordsSender {
  send(
    command: PutRecordsCommand,
    options?: { abortSignal?: AbortSignal },
  ): Promise<PutRecordsOutput>;
}

/**
 * A flush that sends each batch with one `PutRecords` call and returns the
 * records Kinesis refused as a `FlushOutcome`. A thrown error (throttling of
 * the whole request, a network error) fails the whole batch.
 */
export function putRecordsFlush(
  client: PutRecordsSender | KinesisClient,
  streamName: string,
): (records: KinesisRecord[], context: FlushContext) => Promise<FlushOutcome<KinesisRecord>> {
  const sender = client as PutRecordsSender;
  return async (records, { signal }) => {
    const output = await sender.send(
      new PutRecordsCommand({ StreamName: streamName, Records: records }),
      { abortSignal: signal },
    );
    return toOutcome(records, output);
  };
}

const encoder = new TextEncoder();

/** A record's weight against the PutRecords limits: its data and its partition key. */
export function recordSize(record: KinesisRecord): number {
  return (record.Data?.byteLength ?? 0) + encoder.encode(record.PartitionKey ?? "").byteLength;
}

/**
 * A buffer for one stream: the `PutRecords` limits (500 records, 5 MiB, 1 MiB
 * per record), {@linkcode putRecordsFlush}, and retries with backoff that give
 * up on errors {@linkcode isRetryable} rejects. Give the client
 * `maxAttempts: 1`, so that the SDK does not retry inside each try as well.
 *
 * @param overrides Any other config (`onFlushError`, `flushInterval`, a
 * different `retry`, ...).
 */
export function kinesisBuffer(
  client: PutRecordsSender | KinesisClient,
  streamName: string,
  overrides: Partial<BatchBufferConfig<KinesisRecord>> = {},
): BatchBuffer<KinesisRecord> {
  return new BatchBuffer<KinesisRecord>({
    ...KINESIS_PUT_RECORDS,
    sizeOf: recordSize,
    flushInterval: 1_000,
    flush: putRecordsFlush(client, streamName),
    retry: { attempts: 8, initialDelay: 100, maxDelay: 5_000, retryable: isRetryable },
    ...overrides,
  });
}
