import assert from "node:assert/strict";
import { BatchBuffer, BatchStream, type BatchStreamOptions } from "../mod.ts";
import { test } from "./harness.ts";
import { installClock, settle } from "./helpers.ts";

async function collect<T>(stream: ReadableStream<T>): Promise<T[]> {
  const chunks: T[] = [];
  const reader = stream.getReader();
  for (let result = await reader.read(); !result.done; result = await reader.read()) {
    chunks.push(result.value);
  }
  return chunks;
}

test("BatchStream turns items into batches of capacity and emits the rest on close", async () => {
  const batches = await collect(
    ReadableStream.from([1, 2, 3, 4, 5, 6, 7]).pipeThrough(
      new BatchStream<number>({ capacity: 3 }),
    ),
  );
  assert.deepEqual(batches, [[1, 2, 3], [4, 5, 6], [7]]);
});

test("BatchStream emits nothing for an empty stream", async () => {
  const batches = await collect(
    ReadableStream.from<number>([]).pipeThrough(new BatchStream<number>()),
  );
  assert.deepEqual(batches, []);
});

test("BatchStream starts a new batch when willOverflow says the item does not fit", async () => {
  const words = ["apple", "avocado", "banana", "blueberry", "cherry", "apricot"];
  const batches = await collect(
    ReadableStream.from(words).pipeThrough(
      new BatchStream<string>({ willOverflow: (batch, word) => batch[0][0] !== word[0] }),
    ),
  );
  assert.deepEqual(batches, [["apple", "avocado"], ["banana", "blueberry"], ["cherry"], [
    "apricot",
  ]]);
});

test("BatchStream keeps every batch within maxBatchBytes and rejects oversized items", async () => {
  const rejected: string[] = [];
  const words = ["aa", "bbb", "cccccccccccc", "dd", "eeee", "f", "gg"];
  const batches = await collect(
    ReadableStream.from(words).pipeThrough(
      new BatchStream<string>({
        sizeOf: (word) => word.length,
        maxBatchBytes: 5,
        onReject: (word) => void rejected.push(word),
      }),
    ),
  );
  // "aa"+"bbb" reach 5 exactly (full); "dd"+"eeee" would be 6 (overflow); "eeee"+"f" reach 5.
  assert.deepEqual(batches, [["aa", "bbb"], ["dd"], ["eeee", "f"], ["gg"]]);
  assert.deepEqual(rejected, ["cccccccccccc"]);
});

test("BatchStream leaves out the items canAdd refuses and hands them to onReject", async () => {
  const rejected: number[] = [];
  const batches = await collect(
    ReadableStream.from([1, -2, 3, 4, -5, 6]).pipeThrough(
      new BatchStream<number>({
        capacity: 2,
        canAdd: (_batch, item) => item > 0,
        onReject: (item) => void rejected.push(item),
      }),
    ),
  );
  assert.deepEqual(batches, [[1, 3], [4, 6]]);
  assert.deepEqual(rejected, [-2, -5]);
});

test("BatchStream emits a partial batch once its oldest item has waited flushInterval", async () => {
  const clock = installClock();
  try {
    const stream = new BatchStream<number>({ capacity: 10, flushInterval: 1000 });
    const writer = stream.writable.getWriter();
    const reader = stream.readable.getReader();
    let first: ReadableStreamReadResult<number[]> | undefined;
    const reading = reader.read().then((result) => (first = result));
    await writer.write(1);
    await clock.tickAsync(400);
    await writer.write(2);
    await clock.tickAsync(599);
    assert.equal(first, undefined, "999 ms after the first item nothing is emitted");
    await clock.tickAsync(1);
    await reading;
    assert.deepEqual(first, { done: false, value: [1, 2] });

    // A pending read is what lets the stream take the next item (backpressure).
    const second = reader.read();
    await writer.write(3);
    const closing = writer.close();
    assert.deepEqual(await second, { done: false, value: [3] });
    assert.deepEqual(await reader.read(), { done: true, value: undefined });
    await closing;
  } finally {
    clock.uninstall();
  }
});

test("BatchStream stops taking items while nobody reads its batches", async () => {
  let measured = 0;
  const stream = new BatchStream<number>({
    capacity: 2,
    sizeOf: () => {
      measured++;
      return 1;
    },
  });
  const writer = stream.writable.getWriter();
  const writes: Promise<void>[] = [];
  for (let item = 0; item < 100; item++) writes.push(writer.write(item));
  await settle();
  const unread = measured;
  assert.ok(unread <= 4, `${unread} items were batched while nobody read`);
  assert.ok(writer.desiredSize !== null && writer.desiredSize < 0);

  const reader = stream.readable.getReader();
  const first = await reader.read();
  assert.deepEqual(first, { done: false, value: [0, 1] });
  await settle();
  assert.ok(measured <= unread + 4, `one read let ${measured - unread} more items in`);

  const closing = writer.close();
  const rest: number[][] = [];
  for (let result = await reader.read(); !result.done; result = await reader.read()) {
    rest.push(result.value);
  }
  await Promise.all(writes);
  await closing;
  assert.deepEqual([first.value, ...rest].flat(), Array.from({ length: 100 }, (_, i) => i));
  assert.ok(rest.every((batch) => batch.length === 2));
  assert.equal(measured, 100);
});

test("BatchStream emits the last partial batch when the writable side closes", async () => {
  const stream = new BatchStream<string>({ capacity: 2 });
  const writer = stream.writable.getWriter();
  const batches = collect(stream.readable);
  await writer.write("a");
  await writer.write("b");
  await writer.write("c");
  await writer.close();
  assert.deepEqual(await batches, [["a", "b"], ["c"]]);
});

test("BatchStream rejects invalid options with the same errors as BatchBuffer", () => {
  const invalid: BatchStreamOptions<string>[] = [
    { capacity: 0 },
    { capacity: 2.5 },
    { capacity: "10" as unknown as number },
    { chanSize: -1 },
    { flushInterval: 0 },
    { flushInterval: NaN },
    { maxBatchBytes: 10 },
    { sizeOf: (s) => s.length, maxBatchBytes: 10, maxItemBytes: 20 },
    { sizeOf: (s) => s.length, maxBatchBytes: -1 },
    { sizeOf: 5 as unknown as (s: string) => number },
    { willOverflow: "yes" as unknown as () => boolean },
    { onReject: {} as unknown as () => void },
  ];
  for (const options of invalid) {
    let expected: unknown;
    try {
      new BatchBuffer<string>({ ...options, flush: () => {} });
    } catch (error) {
      expected = error;
    }
    assert.ok(
      expected instanceof TypeError || expected instanceof RangeError,
      `BatchBuffer accepted ${JSON.stringify(options)}`,
    );
    assert.throws(
      () => new BatchStream<string>(options),
      (error: unknown) =>
        error instanceof Error && error.constructor === expected.constructor &&
        error.message === expected.message,
    );
  }
  assert.throws(() => new BatchStream(null as unknown as BatchStreamOptions<string>), TypeError);
  assert.throws(() => new BatchStream(7 as unknown as BatchStreamOptions<string>), TypeError);
});
