import assert from "node:assert/strict";
import { BatchBuffer, type FlushReason } from "../mod.ts";
import { test } from "./harness.ts";
import { controlledFlush, settle, track } from "./helpers.ts";

interface FlushCall<T> {
  readonly batch: T[];
  readonly reason: FlushReason;
}

/** The batch and reason of each call, the part these tests check. */
function batchesOf<T>(calls: readonly FlushCall<T>[]): FlushCall<T>[] {
  return calls.map(({ batch, reason }) => ({ batch, reason }));
}

test("BatchBuffer.flush() stays pending until the flush holding earlier items settles", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({
    capacity: 10,
    flush,
  });
  const running = buffer.run();
  for (const item of [1, 2, 3]) await buffer.add(item);

  const flushed = track(buffer.flush());
  await settle();
  assert.deepEqual(batchesOf(calls), [{ batch: [1, 2, 3], reason: "manual" }]);
  assert.equal(flushed.settled, false);

  calls[0].done.resolve();
  await settle();
  assert.equal(flushed.settled, true);
  assert.equal(flushed.rejected, false);

  buffer.close();
  await running;
  assert.equal(calls.length, 1);
});

test("BatchBuffer.flush() includes items still in the channel while a flush is in flight", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    chanSize: 4,
    flush,
  });
  const running = buffer.run();
  await buffer.add(1);
  await buffer.add(2); // full: the flush of [1, 2] is in flight and holds the run loop
  await buffer.add(3);
  await buffer.add(4);
  await buffer.add(5);
  assert.equal(buffer.itemsInChannel, 3);

  const flushed = track(buffer.flush());
  await settle();
  assert.equal(flushed.settled, false);

  calls[0].done.resolve(); // run loop takes 3, 4 (full), then 5
  await settle();
  assert.deepEqual(batchesOf(calls.slice(1)), [{ batch: [3, 4], reason: "full" }]);
  assert.equal(flushed.settled, false);

  calls[1].done.resolve();
  await settle();
  assert.deepEqual(batchesOf(calls.slice(2)), [{ batch: [5], reason: "manual" }]);
  assert.equal(flushed.settled, false, "the manual flush of item 5 has not settled yet");

  calls[2].done.resolve();
  await settle();
  assert.equal(flushed.settled, true);

  buffer.close();
  await running;
});

test("BatchBuffer.flush() sends the partial batch with reason manual", async () => {
  const calls: FlushCall<string>[] = [];
  const buffer = new BatchBuffer<string>({
    capacity: 3,
    flush: (batch, { reason }) => void calls.push({ batch, reason }),
  });
  const running = buffer.run();
  for (const item of ["a", "b", "c", "d"]) await buffer.add(item);
  await buffer.flush();
  assert.deepEqual(calls, [
    { batch: ["a", "b", "c"], reason: "full" },
    { batch: ["d"], reason: "manual" },
  ]);
  buffer.close();
  await running;
  assert.equal(calls.length, 2);
});

test("BatchBuffer.flush() called twice at once makes one manual flush and resolves both", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({
    capacity: 10,
    flush,
  });
  const running = buffer.run();
  await buffer.add(1);
  await buffer.add(2);
  const first = track(buffer.flush());
  const second = track(buffer.flush());
  await settle();
  assert.deepEqual(batchesOf(calls), [{ batch: [1, 2], reason: "manual" }]);
  assert.equal(first.settled, false);
  assert.equal(second.settled, false);

  calls[0].done.resolve();
  await settle();
  assert.equal(first.settled, true);
  assert.equal(second.settled, true);
  assert.equal(calls.length, 1);

  buffer.close();
  await running;
});

test("BatchBuffer.flush() called inside flush resolves at once and flushes afterwards", async () => {
  const { calls, flush } = controlledFlush<number>();
  let inner: ReturnType<typeof track> | undefined;
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    chanSize: 4,
    flush: (batch, context) => {
      const done = flush(batch, context);
      if (inner === undefined) inner = track(buffer.flush());
      return done;
    },
  });
  // Queued before run() so that item 3 is still in the channel during the first flush.
  for (const item of [1, 2, 3]) await buffer.add(item);
  const running = buffer.run();
  await settle();

  assert.deepEqual(batchesOf(calls), [{ batch: [1, 2], reason: "full" }]);
  assert.ok(inner !== undefined);
  assert.equal(inner.settled, true, "flush() inside flush must not wait for its caller");
  assert.equal(inner.rejected, false);

  calls[0].done.resolve();
  await settle();
  assert.deepEqual(batchesOf(calls.slice(1)), [{ batch: [3], reason: "manual" }]);

  calls[1].done.resolve();
  buffer.close();
  await running;
  assert.equal(calls.length, 2);
});

test("BatchBuffer.flush() called from onFlushError of a rejected flush resolves", async () => {
  const { calls, flush } = controlledFlush<number>();
  let fromHandler: ReturnType<typeof track> | undefined;
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    flush,
    onFlushError: () => {
      fromHandler = track(buffer.flush());
    },
  });
  const running = buffer.run();
  await buffer.add(1);
  await buffer.add(2);
  await buffer.add(3); // waits in the channel behind the flush of [1, 2]

  calls[0].done.reject(new Error("backend down"));
  await settle();
  assert.ok(fromHandler !== undefined);
  assert.deepEqual(batchesOf(calls.slice(1)), [{ batch: [3], reason: "manual" }]);
  assert.equal(fromHandler.settled, false, "it waits for the manual flush of item 3");

  calls[1].done.resolve();
  await settle();
  assert.equal(fromHandler.settled, true);
  assert.equal(fromHandler.rejected, false);

  buffer.close();
  await running;
});

test("BatchBuffer.flush() called from onFlushError of a throwing flush does not deadlock", async () => {
  const calls: FlushCall<number>[] = [];
  let fromHandler: ReturnType<typeof track> | undefined;
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    chanSize: 4,
    flush: (batch, { reason }) => {
      calls.push({ batch, reason });
      if (calls.length === 1) throw new Error("backend down");
    },
    onFlushError: () => {
      fromHandler ??= track(buffer.flush());
    },
  });
  for (const item of [1, 2, 3]) await buffer.add(item);
  const running = buffer.run();
  await settle();
  assert.ok(fromHandler !== undefined);
  assert.equal(fromHandler.settled, true);
  assert.equal(fromHandler.rejected, false);
  assert.deepEqual(calls, [
    { batch: [1, 2], reason: "full" },
    { batch: [3], reason: "manual" },
  ]);
  buffer.close();
  await running;
});

test("BatchBuffer.flush() resolves, not rejects, when the manual flush fails", async () => {
  const failures: number[][] = [];
  const buffer = new BatchBuffer<number>({
    flush: () => Promise.reject(new Error("backend down")),
    onFlushError: (_error, batch) => void failures.push(batch),
  });
  const running = buffer.run();
  await buffer.add(1);
  await buffer.flush();
  assert.deepEqual(failures, [[1]]);
  buffer.close();
  await running;
});

test("BatchBuffer.flush() with nothing pending resolves without calling flush", async () => {
  let flushes = 0;
  const buffer = new BatchBuffer<number>({ capacity: 2, flush: () => void flushes++ });
  await buffer.flush(); // before run(), empty
  const running = buffer.run();
  await buffer.flush(); // running, empty
  await buffer.add(1);
  await buffer.add(2); // full, flushed synchronously
  assert.equal(flushes, 1);
  await buffer.flush(); // running, everything already flushed
  assert.equal(flushes, 1);
  buffer.close();
  await running;
  assert.equal(flushes, 1);
});

test("BatchBuffer.flush() after run() has finished resolves at once", async () => {
  let flushes = 0;
  const buffer = new BatchBuffer<number>({ flush: () => void flushes++ });
  const running = buffer.run();
  await buffer.add(1);
  buffer.close();
  await running;
  assert.equal(flushes, 1);
  const late = track(buffer.flush());
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(late.settled, true);
  assert.equal(late.rejected, false);
  assert.equal(flushes, 1);
});

test("BatchBuffer.flush() before run() with items pending rejects", async () => {
  const batches: number[][] = [];
  const buffer = new BatchBuffer<number>({ flush: (batch) => void batches.push(batch) });
  await buffer.add(1);
  await assert.rejects(buffer.flush(), Error);
  assert.deepEqual(batches, [], "a rejected flush() does not flush");
  await buffer[Symbol.asyncDispose]();
  assert.deepEqual(batches, [[1]]);
});
