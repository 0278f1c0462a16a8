import assert from "node:assert/strict";
import {
  BatchBuffer,
  type BatchLimits,
  CLOUDFLARE_QUEUES_SEND_BATCH,
  type FlushReason,
  KINESIS_PUT_RECORDS,
  SQS_SEND_MESSAGE_BATCH,
} from "../mod.ts";
import { test } from "./harness.ts";
import { prng } from "./helpers.ts";

const PRESETS: Record<string, BatchLimits> = {
  CLOUDFLARE_QUEUES_SEND_BATCH,
  KINESIS_PUT_RECORDS,
  SQS_SEND_MESSAGE_BATCH,
};

test("CLOUDFLARE_QUEUES_SEND_BATCH allows 100 messages, 256 KB per batch, 128 KB per message", () => {
  assert.deepEqual({ ...CLOUDFLARE_QUEUES_SEND_BATCH }, {
    capacity: 100,
    maxBatchBytes: 256_000,
    maxItemBytes: 128_000,
  });
});

test("KINESIS_PUT_RECORDS allows 500 records, 5 MiB per request, 1 MiB per record", () => {
  assert.deepEqual({ ...KINESIS_PUT_RECORDS }, {
    capacity: 500,
    maxBatchBytes: 5_242_880,
    maxItemBytes: 1_048_576,
  });
});

test("SQS_SEND_MESSAGE_BATCH allows 10 messages and 1 MiB per batch and per message", () => {
  assert.deepEqual({ ...SQS_SEND_MESSAGE_BATCH }, {
    capacity: 10,
    maxBatchBytes: 1_048_576,
    maxItemBytes: 1_048_576,
  });
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

  test(`${name} spread into a config needs a sizeOf`, () => {
    assert.throws(() => new BatchBuffer<number>({ ...preset, flush: () => {} }), TypeError);
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
