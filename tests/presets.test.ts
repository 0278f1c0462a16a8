import assert from "node:assert/strict";
import type { PutRecordsRequestEntry } from "@aws-sdk/client-kinesis";
import fc from "fast-check";
import {
  BatchBuffer,
  type BatchBufferConfig,
  type BatchPreset,
  CLOUDFLARE_QUEUES_SEND_BATCH,
  type FlushReason,
  KINESIS_PUT_RECORDS,
  SQS_SEND_MESSAGE_BATCH,
  type SqsMessageEntry,
} from "../mod.ts";
import { test } from "./harness.ts";
import { prng } from "./helpers.ts";

const PRESETS: Record<string, BatchPreset<never>> = {
  CLOUDFLARE_QUEUES_SEND_BATCH,
  KINESIS_PUT_RECORDS,
  SQS_SEND_MESSAGE_BATCH,
};

const encoder = new TextEncoder();
/** The reference measure: what TextEncoder (like workerd and the AWS SDKs) writes. */
const utf8 = (text: string): number => encoder.encode(text).byteLength;
const MiB = 1024 * 1024;

/** Strings over every code point, lone surrogates included, and multibyte-heavy ones. */
const anyText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({
    unit: fc.constantFrom("a", "é", "€", "😀", "\ud800", "\udc00", '"', "\n"),
    maxLength: 40,
  }),
);

test("CLOUDFLARE_QUEUES_SEND_BATCH allows 100 messages, 246,000 bytes per batch, 127,900 per message", () => {
  const { sizeOf: _, ...limits } = CLOUDFLARE_QUEUES_SEND_BATCH;
  assert.deepEqual(limits, {
    capacity: 100,
    // Cloudflare's 256 KB per batch and 128 KB per message, less 100 bytes of metadata per message.
    maxBatchBytes: 256_000 - 100 * 100,
    maxItemBytes: 128_000 - 100,
    maxBufferedBytes: 4 * MiB,
  });
});

test("KINESIS_PUT_RECORDS allows 500 records, 5 MiB per request, 1 MiB per record", () => {
  const { sizeOf: _, ...limits } = KINESIS_PUT_RECORDS;
  assert.deepEqual(limits, {
    capacity: 500,
    maxBatchBytes: 5 * MiB,
    maxItemBytes: MiB,
    maxBufferedBytes: 16 * MiB,
  });
});

test("SQS_SEND_MESSAGE_BATCH allows 10 messages and 1 MiB per batch and per message", () => {
  const { sizeOf: _, ...limits } = SQS_SEND_MESSAGE_BATCH;
  assert.deepEqual(limits, {
    capacity: 10,
    maxBatchBytes: MiB,
    maxItemBytes: MiB,
    maxBufferedBytes: 16 * MiB,
  });
});

test("CLOUDFLARE_QUEUES_SEND_BATCH measures a body as its JSON text in UTF-8 bytes", () => {
  const bodies: unknown[] = [
    "plain",
    "é€😀",
    { id: "a-1", tags: ["x", "ÿ"], nested: { n: 1.5, ok: true, none: null } },
    [1, "two", { three: 3 }],
    { skipped: undefined, kept: 1 },
    new Date(0),
    { toJSON: () => "€" },
    null,
    0,
    "\ud800 alone",
  ];
  for (const body of bodies) {
    assert.equal(CLOUDFLARE_QUEUES_SEND_BATCH.sizeOf(body), utf8(JSON.stringify(body)));
  }
  fc.assert(
    fc.property(fc.jsonValue(), anyText, (value, text) => {
      for (const body of [value, text, { text, value }]) {
        assert.equal(CLOUDFLARE_QUEUES_SEND_BATCH.sizeOf(body), utf8(JSON.stringify(body)));
      }
    }),
    { numRuns: 1000 },
  );
});

test("CLOUDFLARE_QUEUES_SEND_BATCH measures NaN for a body JSON cannot carry", () => {
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  const bodies: unknown[] = [
    undefined,
    () => {},
    Symbol("s"),
    10n,
    { count: 10n },
    cycle,
    {
      toJSON: () => {
        throw new Error("no JSON");
      },
    },
  ];
  for (const body of bodies) {
    assert.ok(Number.isNaN(CLOUDFLARE_QUEUES_SEND_BATCH.sizeOf(body)), String(typeof body));
  }
});

test("KINESIS_PUT_RECORDS measures a record as its data bytes plus its partition key's UTF-8 bytes", () => {
  const bytes = new Uint8Array(1234);
  assert.equal(
    KINESIS_PUT_RECORDS.sizeOf({ Data: bytes, PartitionKey: "käy-€" }),
    1234 + utf8("käy-€"),
  );
  assert.equal(
    KINESIS_PUT_RECORDS.sizeOf({ Data: "données 😀", PartitionKey: "k" }),
    utf8("données 😀") + 1,
  );
  const view = new Uint8Array(new ArrayBuffer(100), 10, 50);
  assert.equal(KINESIS_PUT_RECORDS.sizeOf({ Data: view, PartitionKey: "" }), 50);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), anyText, anyText, (data, key, text) => {
      assert.equal(
        KINESIS_PUT_RECORDS.sizeOf({ Data: data, PartitionKey: key }),
        data.byteLength + utf8(key),
      );
      assert.equal(
        KINESIS_PUT_RECORDS.sizeOf({ Data: text, PartitionKey: key }),
        utf8(text) + utf8(key),
      );
    }),
    { numRuns: 1000 },
  );
  // The AWS SDK's own entry type spreads in as it is.
  const entry: PutRecordsRequestEntry = { Data: bytes, PartitionKey: "p" };
  const config: BatchBufferConfig<PutRecordsRequestEntry> = {
    ...KINESIS_PUT_RECORDS,
    flush: () => {},
  };
  assert.equal(config.sizeOf?.(entry), 1235);
});

test("KINESIS_PUT_RECORDS measures NaN for a record without a partition key or data", () => {
  const records: unknown[] = [
    null,
    "data",
    { Data: new Uint8Array(1) },
    { Data: new Uint8Array(1), PartitionKey: 7 },
    { PartitionKey: "k" },
    { Data: 42, PartitionKey: "k" },
    { Data: [1, 2], PartitionKey: "k" },
  ];
  for (const record of records) {
    assert.ok(
      Number.isNaN(KINESIS_PUT_RECORDS.sizeOf(record as PutRecordsRequestEntry)),
      JSON.stringify(record),
    );
  }
});

test("SQS_SEND_MESSAGE_BATCH measures a body, and an entry's body plus each attribute's name, type and value", () => {
  assert.equal(SQS_SEND_MESSAGE_BATCH.sizeOf("corps ☃"), utf8("corps ☃"));
  assert.equal(SQS_SEND_MESSAGE_BATCH.sizeOf({ MessageBody: "😀" }), 4);
  const entry: SqsMessageEntry = {
    MessageBody: '{"order":"ünïcode"}',
    MessageAttributes: {
      kind: { DataType: "String", StringValue: "checkout€" },
      amount: { DataType: "Number", StringValue: "12.5" },
      blob: { DataType: "Binary.gzip", BinaryValue: new Uint8Array(33) },
    },
  };
  assert.equal(
    SQS_SEND_MESSAGE_BATCH.sizeOf(entry),
    utf8('{"order":"ünïcode"}') +
      utf8("kind") + utf8("String") + utf8("checkout€") +
      utf8("amount") + utf8("Number") + utf8("12.5") +
      utf8("blob") + utf8("Binary.gzip") + 33,
  );
  fc.assert(
    fc.property(anyText, fc.dictionary(anyText, anyText, { maxKeys: 4 }), (body, values) => {
      const attributes = Object.fromEntries(
        Object.entries(values).map((
          [name, value],
        ) => [name, { DataType: "String", StringValue: value }]),
      );
      const expected = Object.entries(values).reduce(
        (sum, [name, value]) => sum + utf8(name) + utf8("String") + utf8(value),
        utf8(body),
      );
      assert.equal(SQS_SEND_MESSAGE_BATCH.sizeOf(body), utf8(body));
      assert.equal(
        SQS_SEND_MESSAGE_BATCH.sizeOf({ MessageBody: body, MessageAttributes: attributes }),
        expected,
      );
    }),
    { numRuns: 1000 },
  );
});

test("SQS_SEND_MESSAGE_BATCH measures NaN for an entry without a body or with a malformed attribute", () => {
  const entries: unknown[] = [
    null,
    42,
    {},
    { MessageBody: 1 },
    { MessageBody: "b", MessageAttributes: null },
    { MessageBody: "b", MessageAttributes: { a: null } },
    { MessageBody: "b", MessageAttributes: { a: { StringValue: "no type" } } },
    { MessageBody: "b", MessageAttributes: { a: { DataType: "String" } } },
    { MessageBody: "b", MessageAttributes: { a: { DataType: "String", StringValue: 5 } } },
  ];
  for (const entry of entries) {
    assert.ok(
      Number.isNaN(SQS_SEND_MESSAGE_BATCH.sizeOf(entry as SqsMessageEntry)),
      JSON.stringify(entry),
    );
  }
});

test("CLOUDFLARE_QUEUES_SEND_BATCH spread into a config rejects a body over maxItemBytes or without JSON text", async () => {
  interface Event {
    readonly id: number;
    readonly text?: string;
    readonly count?: bigint;
  }
  const limit = CLOUDFLARE_QUEUES_SEND_BATCH.maxItemBytes;
  // A body whose JSON is exactly `bytes` long: {"id":N,"text":"…"} padded with 3-byte "€".
  const sized = (id: number, bytes: number): Event => {
    const overhead = utf8(JSON.stringify({ id, text: "" }));
    const euros = Math.floor((bytes - overhead) / 3);
    return { id, text: "€".repeat(euros) + "a".repeat(bytes - overhead - 3 * euros) };
  };
  const events: Event[] = [
    sized(0, limit),
    sized(1, limit + 1),
    { id: 2, count: 1n },
    sized(3, 100),
  ];
  assert.equal(utf8(JSON.stringify(events[0])), limit);
  assert.equal(utf8(JSON.stringify(events[1])), limit + 1);
  const flushed: Event[] = [];
  const rejected: Event[] = [];
  const buffer = new BatchBuffer<Event>({
    ...CLOUDFLARE_QUEUES_SEND_BATCH,
    onReject: (event) => void rejected.push(event),
    flush: (batch) => void flushed.push(...batch),
  });
  const running = buffer.run();
  await buffer.addAll(events);
  buffer.close();
  await running;
  assert.deepEqual(flushed.map((event) => event.id), [0, 3]);
  assert.deepEqual(rejected.map((event) => event.id), [1, 2]);
});

test("every preset keeps an item and a batch within its recommended maxBufferedBytes", () => {
  for (const [name, preset] of Object.entries(PRESETS)) {
    assert.ok(preset.maxItemBytes <= preset.maxBatchBytes, name);
    assert.ok(preset.maxBatchBytes <= preset.maxBufferedBytes, name);
    assert.ok(preset.maxBufferedBytes <= 16 * MiB, `${name}: at most an eighth of 128 MB`);
  }
});

for (const [name, preset] of Object.entries(PRESETS)) {
  test(`${name} is frozen`, () => {
    assert.ok(Object.isFrozen(preset));
    assert.throws(() => {
      (preset as { capacity: number }).capacity = 1;
    }, TypeError);
    assert.throws(() => {
      (preset as unknown as Record<string, number>).chanSize = 1;
    }, TypeError);
  });

  test(`${name} spread into a config brings its own sizeOf`, async () => {
    const buffer = new BatchBuffer<never>({ ...preset, flush: () => {} });
    await buffer[Symbol.asyncDispose]();
    const { maxBufferedBytes: _, ...withoutBound } = preset;
    await new BatchBuffer<never>({ ...withoutBound, flush: () => {} })[Symbol.asyncDispose]();
  });

  test(`${name} spread into a config keeps every batch within its limits`, async () => {
    const random = prng(name.length * 7919);
    interface Message {
      readonly id: number;
      readonly bytes: number;
    }
    const messages: Message[] = [];
    const smallest = Math.floor(preset.maxBatchBytes / preset.capacity);
    // Runs of small messages (the count limit binds) and of big ones (the byte limit binds);
    // about 5% of the big ones are over maxItemBytes.
    for (const [count, largest] of [[1200, smallest], [300, preset.maxItemBytes * 1.05]]) {
      for (let run = 0; run < 2; run++) {
        for (let i = 0; i < count; i++) {
          messages.push({ id: messages.length, bytes: Math.floor(random() * largest) });
        }
      }
    }
    const batches: Message[][] = [];
    const reasons = new Set<FlushReason>();
    const rejected: Message[] = [];
    const buffer = new BatchBuffer<Message>({
      ...preset,
      sizeOf: (message) => message.bytes,
      onReject: (message) => void rejected.push(message),
      flush: (batch, { reason }) => {
        batches.push(batch);
        reasons.add(reason);
      },
    });
    const running = buffer.run();
    await buffer.addAll(messages);
    buffer.close();
    await running;

    for (const batch of batches) {
      assert.ok(batch.length <= preset.capacity, `a batch of ${batch.length} messages`);
      const bytes = batch.reduce((sum, message) => sum + message.bytes, 0);
      assert.ok(bytes <= preset.maxBatchBytes, `a batch of ${bytes} bytes`);
    }
    const tooBig = messages.filter((message) => message.bytes > preset.maxItemBytes);
    assert.ok(tooBig.length > 0);
    assert.deepEqual(rejected, tooBig);
    assert.deepEqual(
      batches.flat(),
      messages.filter((message) => message.bytes <= preset.maxItemBytes),
    );
    assert.ok(batches.some((batch) => batch.length === preset.capacity), "count limit reached");
    assert.ok(reasons.has("overflow"), "byte limit reached");
  });
}
