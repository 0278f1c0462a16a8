// The Kinesis recipe (examples/kinesis/put_records.ts) against kinesalite, an
// in-memory Kinesis on 127.0.0.1 started here, through the AWS SDK's
// NodeHttpHandler. Kinesalite never fails a record by itself, so a wrapper
// around the client injects partial failures and throttling, and the tests
// read the stream back to check that every record landed exactly once.
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import {
  CreateStreamCommand,
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ProvisionedThroughputExceededException,
  PutRecordsCommand,
  type PutRecordsOutput,
  type PutRecordsResultEntry,
  ResourceNotFoundException,
} from "@aws-sdk/client-kinesis";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import kinesalite from "kinesalite";
import {
  isRetryable,
  kinesisBuffer,
  type KinesisRecord,
  PutRecordsFailure,
  putRecordsFlush,
  type PutRecordsSender,
  recordSize,
  toOutcome,
} from "../examples/kinesis/put_records.ts";
import type { FlushContext } from "../mod.ts";
import { test } from "./harness.ts";
import { prng } from "./helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The id a record carries as its data. */
const idOf = (r: KinesisRecord): string => decoder.decode(r.Data);

const record = (id: string, key = `key-${id}`): KinesisRecord => ({
  PartitionKey: key,
  Data: encoder.encode(id),
});

// ------------------------------------------------------------ pure mapping

test("a PutRecords response without failures maps to a success", () => {
  const records = [record("a"), record("b")];
  const output: PutRecordsOutput = {
    FailedRecordCount: 0,
    Records: [{ SequenceNumber: "1", ShardId: "s" }, { SequenceNumber: "2", ShardId: "s" }],
  };
  assert.deepEqual(toOutcome(records, output), {});
});

test("records whose entry has an ErrorCode are retried, in request order, with the reasons", () => {
  const records = ["a", "b", "c", "d", "e"].map((id) => record(id));
  const ok: PutRecordsResultEntry = { SequenceNumber: "1", ShardId: "shardId-000000000000" };
  const throttled: PutRecordsResultEntry = {
    ErrorCode: "ProvisionedThroughputExceededException",
    ErrorMessage: "Rate exceeded for shard shardId-000000000000",
  };
  const internal: PutRecordsResultEntry = { ErrorCode: "InternalFailure", ErrorMessage: "oops" };
  const outcome = toOutcome(records, {
    FailedRecordCount: 3,
    Records: [ok, throttled, internal, ok, throttled],
  });
  assert.equal(outcome.retry?.length, 3);
  assert.equal(outcome.retry?.[0], records[1]);
  assert.equal(outcome.retry?.[1], records[2]);
  assert.equal(outcome.retry?.[2], records[4]);
  const error = outcome.error;
  assert.ok(error instanceof PutRecordsFailure);
  assert.equal(
    error.message,
    "PutRecords: 3 of 5 records failed (2 ProvisionedThroughputExceededException, 1 InternalFailure)",
  );
  assert.deepEqual([...error.codes], [
    ["ProvisionedThroughputExceededException", 2],
    ["InternalFailure", 1],
  ]);
  assert.equal(error.messages.get("InternalFailure"), "oops");
  assert.equal(outcome.retryAfter, undefined);
});

test("a response that does not line up with the request throws, failing the whole batch", () => {
  const records = [record("a"), record("b")];
  assert.throws(
    () => toOutcome(records, { FailedRecordCount: 0, Records: [{ SequenceNumber: "1" }] }),
    /PutRecords answered 1 entries for 2 records/,
  );
  assert.throws(
    () =>
      toOutcome(records, {
        FailedRecordCount: 2,
        Records: [{ SequenceNumber: "1" }, { ErrorCode: "InternalFailure" }],
      }),
    /FailedRecordCount 2 but 1 entries have an ErrorCode/,
  );
});

test("throttling, server errors and network errors are retryable; the caller's mistakes are not", () => {
  const failure = (...codes: string[]) =>
    new PutRecordsFailure(
      codes.length,
      codes.length,
      codes.map((ErrorCode) => ({ ErrorCode })),
    );
  assert.equal(
    isRetryable(failure("ProvisionedThroughputExceededException", "InternalFailure")),
    true,
  );
  assert.equal(isRetryable(failure("InternalFailure", "KMSAccessDeniedException")), false);
  assert.equal(
    isRetryable(
      new ProvisionedThroughputExceededException({ message: "Rate exceeded", $metadata: {} }),
    ),
    true,
  );
  assert.equal(
    isRetryable(new ResourceNotFoundException({ message: "no stream", $metadata: {} })),
    false,
  );
  assert.equal(
    isRetryable(Object.assign(new Error("500"), { $metadata: { httpStatusCode: 500 } })),
    true,
  );
  assert.equal(
    isRetryable(Object.assign(new Error("429"), { $metadata: { httpStatusCode: 429 } })),
    true,
  );
  assert.equal(
    isRetryable(Object.assign(new Error("403"), { $metadata: { httpStatusCode: 403 } })),
    false,
  );
  assert.equal(
    isRetryable(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })),
    true,
  );
  assert.equal(isRetryable(new DOMException("flush timed out", "TimeoutError")), true);
});

test("a record weighs its data plus its partition key in UTF-8 bytes", () => {
  assert.equal(recordSize({ PartitionKey: "ké", Data: new Uint8Array(10) }), 13);
});

// -------------------------------------------------------------- kinesalite

interface Kinesis {
  client: KinesisClient;
  close(): Promise<void>;
}

async function startKinesis(): Promise<Kinesis> {
  // In memory: without a `path` option kinesalite uses memdown, not leveldown's native build.
  const server = kinesalite({ createStreamMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  const client = new KinesisClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    requestHandler: new NodeHttpHandler(),
    maxAttempts: 1, // the buffer retries, not the SDK
  });
  return {
    client,
    close: async () => {
      client.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) =>
        server.close((error?: Error) => (error ? reject(error) : resolve()))
      );
    },
  };
}

async function createStream(client: KinesisClient, name: string, shards = 2): Promise<void> {
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  // kinesalite makes the stream ACTIVE a timer turn later; ask until it is.
  for (let i = 0; i < 100; i++) {
    const { StreamDescription } = await client.send(
      new DescribeStreamCommand({ StreamName: name }),
    );
    if (StreamDescription?.StreamStatus === "ACTIVE") return;
  }
  throw new Error(`stream ${name} never became ACTIVE`);
}

/** Every record in the stream, as its data decoded, from the start of every shard. */
async function readStream(client: KinesisClient, name: string): Promise<string[]> {
  const { StreamDescription } = await client.send(new DescribeStreamCommand({ StreamName: name }));
  const ids: string[] = [];
  for (const shard of StreamDescription?.Shards ?? []) {
    let { ShardIterator: iterator } = await client.send(
      new GetShardIteratorCommand({
        StreamName: name,
        ShardId: shard.ShardId,
        ShardIteratorType: "TRIM_HORIZON",
      }),
    );
    while (iterator !== undefined) {
      const page = await client.send(new GetRecordsCommand({ ShardIterator: iterator }));
      if ((page.Records ?? []).length === 0) break;
      for (const entry of page.Records!) ids.push(decoder.decode(entry.Data));
      iterator = page.NextShardIterator;
    }
  }
  return ids;
}

/** Counts how often each id occurs. */
function tally(ids: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

interface Faults {
  /** Chance that a record of a call fails, while it has failed fewer than maxFailures times. */
  recordFailureRate: number;
  /** A record fails at most this many times (so enough attempts always get it through). */
  maxFailures: number;
  /** Every n-th call throws ProvisionedThroughputExceededException without sending anything. */
  throwEvery: number;
  /** Records that fail every time. */
  poison?: (record: KinesisRecord) => boolean;
  seed: number;
}

/** One call as the wrapper saw it. */
interface Call {
  records: KinesisRecord[];
  /** The records it failed (all of them when the call threw). */
  failed: KinesisRecord[];
  threw: boolean;
}

/**
 * Wraps a client: sends only the records it lets through to kinesalite, and
 * answers for the others with a per-record ErrorCode, exactly as Kinesis does.
 * A failed record was never stored, so a retry cannot duplicate it.
 */
function flaky(client: KinesisClient, faults: Faults): PutRecordsSender & { calls: Call[] } {
  const random = prng(faults.seed);
  const failures = new Map<KinesisRecord, number>();
  const calls: Call[] = [];
  return {
    calls,
    async send(command: PutRecordsCommand, options?: { abortSignal?: AbortSignal }) {
      const records = command.input.Records ?? [];
      if ((calls.length + 1) % faults.throwEvery === 0) {
        calls.push({ records, failed: records, threw: true });
        throw new ProvisionedThroughputExceededException({
          message: "Rate exceeded for stream",
          $metadata: { httpStatusCode: 400 },
        });
      }
      const fails = records.map((r) => {
        if (faults.poison?.(r)) return true;
        const count = failures.get(r) ?? 0;
        if (count >= faults.maxFailures || random() >= faults.recordFailureRate) return false;
        failures.set(r, count + 1);
        return true;
      });
      const passing = records.filter((_, i) => !fails[i]);
      calls.push({ records, failed: records.filter((_, i) => fails[i]), threw: false });
      const sent: PutRecordsResultEntry[] = passing.length === 0 ? [] : (await client.send(
        new PutRecordsCommand({
          ...command.input,
          Records: passing,
        }),
        options,
      )).Records ?? [];
      let next = 0;
      const entries = records.map((_, i): PutRecordsResultEntry =>
        fails[i]
          ? {
            ErrorCode: "ProvisionedThroughputExceededException",
            ErrorMessage: "Rate exceeded for shard shardId-000000000000",
          }
          : sent[next++]
      );
      return { FailedRecordCount: fails.filter(Boolean).length, Records: entries, $metadata: {} };
    },
  };
}

test("records round-trip through kinesalite with the recipe's flush", async () => {
  const kinesis = await startKinesis();
  try {
    await createStream(kinesis.client, "plain");
    const flush = putRecordsFlush(kinesis.client, "plain");
    const records = ["a", "b", "c"].map((id) => record(id));
    const context = {
      signal: new AbortController().signal,
      reason: "manual",
      attempt: 1,
    } as FlushContext;
    assert.deepEqual(await flush(records, context), {});
    assert.deepEqual((await readStream(kinesis.client, "plain")).sort(), ["a", "b", "c"]);
  } finally {
    await kinesis.close();
  }
});

test("a missing stream is not retryable: the whole batch fails at once", async () => {
  const kinesis = await startKinesis();
  try {
    const flush = putRecordsFlush(kinesis.client, "missing");
    const context = {
      signal: new AbortController().signal,
      reason: "manual",
      attempt: 1,
    } as FlushContext;
    await assert.rejects(flush([record("a")], context), (error) => {
      assert.equal((error as Error).name, "ResourceNotFoundException");
      assert.equal(isRetryable(error), false);
      return true;
    });
  } finally {
    await kinesis.close();
  }
});

for (const maxConcurrentFlushes of [1, 3]) {
  test(`with retry and ${maxConcurrentFlushes} flush(es) at a time, every record lands exactly once despite partial failures and throttling`, async () => {
    const kinesis = await startKinesis();
    try {
      await createStream(kinesis.client, "events");
      const sender = flaky(kinesis.client, {
        recordFailureRate: 0.3,
        maxFailures: 2,
        throwEvery: 4,
        seed: 11 + maxConcurrentFlushes,
      });
      const inner = putRecordsFlush(sender, "events");
      const attempts: number[] = [];
      const deadLetters: KinesisRecord[] = [];
      const buffer = kinesisBuffer(sender, "events", {
        capacity: 100,
        maxConcurrentFlushes,
        // At most 2 record failures plus 1 throttle per 4 calls: 8 tries always suffice.
        retry: { attempts: 8, initialDelay: 1, maxDelay: 4, retryable: isRetryable },
        flush: (records, context) => {
          attempts.push(context.attempt);
          return inner(records, context);
        },
        onFlushError: (_error, records) => void deadLetters.push(...records),
      });
      const ids = Array.from({ length: 1_000 }, (_, i) => `event-${i}`);
      const running = buffer.run();
      await buffer.addAll(ids.map((id) => record(id, `user-${Number(id.slice(6)) % 17}`)));
      buffer.close();
      await running;

      assert.deepEqual(deadLetters.map(idOf), []);
      const landed = tally(await readStream(kinesis.client, "events"));
      assert.equal(landed.size, ids.length, "some records never landed");
      for (const id of ids) assert.equal(landed.get(id), 1, `${id} landed ${landed.get(id)} times`);

      const stats = buffer.stats();
      assert.equal(stats.flushedItems, ids.length);
      assert.equal(stats.failedItems, 0);
      assert.ok(sender.calls.some((call) => call.threw), "no call was throttled");
      assert.ok(
        sender.calls.some((call) => !call.threw && call.failed.length > 0),
        "no partial failure",
      );
      assert.equal(stats.retries, attempts.filter((a) => a > 1).length);
      assert.equal(stats.retries, sender.calls.length - attempts.filter((a) => a === 1).length);
      if (maxConcurrentFlushes === 1) {
        // One flush at a time: a retry follows its failed try, and carries exactly what failed.
        for (let i = 1; i < sender.calls.length; i++) {
          if (attempts[i] === 1) continue;
          assert.equal(attempts[i], attempts[i - 1] + 1);
          assert.deepEqual(sender.calls[i].records.map(idOf), sender.calls[i - 1].failed.map(idOf));
        }
      }
    } finally {
      await kinesis.close();
    }
  });
}

test("a record that always fails reaches onFlushError once, after the attempts; the others land once", async () => {
  const kinesis = await startKinesis();
  try {
    await createStream(kinesis.client, "poisoned", 1);
    const poisonKey = "poison";
    const sender = flaky(kinesis.client, {
      recordFailureRate: 0.2,
      maxFailures: 1,
      throwEvery: Infinity,
      poison: (r) => r.PartitionKey === poisonKey,
      seed: 5,
    });
    const failed: { error: unknown; records: KinesisRecord[] }[] = [];
    const buffer = kinesisBuffer(sender, "poisoned", {
      capacity: 50,
      retry: { attempts: 3, initialDelay: 1, jitter: false, retryable: isRetryable },
      onFlushError: (error, records) => void failed.push({ error, records }),
    });
    const records = Array.from(
      { length: 200 },
      (_, i) => record(`r-${i}`, i === 77 ? poisonKey : `k-${i % 5}`),
    );
    const running = buffer.run();
    await buffer.addAll(records);
    buffer.close();
    await running;

    assert.equal(failed.length, 1);
    assert.deepEqual(failed[0].records.map(idOf), ["r-77"]);
    assert.equal(failed[0].records[0], records[77]);
    assert.ok(failed[0].error instanceof PutRecordsFailure);
    assert.match((failed[0].error as Error).message, /1 of 1 records failed/);
    const poisonCalls = sender.calls.filter((call) => call.records.includes(records[77]));
    assert.equal(poisonCalls.length, 3, "the poison record was not tried exactly `attempts` times");
    const landed = tally(await readStream(kinesis.client, "poisoned"));
    assert.equal(landed.has("r-77"), false);
    assert.equal(landed.size, 199);
    for (const [id, times] of landed) assert.equal(times, 1, id);
    const stats = buffer.stats();
    assert.deepEqual([stats.flushedItems, stats.failedItems], [199, 1]);
  } finally {
    await kinesis.close();
  }
});

test("a non-retryable error dead-letters the batch after one try", async () => {
  const kinesis = await startKinesis();
  try {
    const failed: KinesisRecord[][] = [];
    const buffer = kinesisBuffer(kinesis.client, "no-such-stream", {
      retry: { attempts: 5, initialDelay: 1, retryable: isRetryable },
      onFlushError: (_error, records) => void failed.push(records),
    });
    const records = [record("x"), record("y")];
    const running = buffer.run();
    await buffer.addAll(records);
    buffer.close();
    await running;
    assert.deepEqual(failed.map((batch) => batch.map(idOf)), [["x", "y"]]);
    assert.equal(buffer.stats().retries, 0);
  } finally {
    await kinesis.close();
  }
});
