import assert from "node:assert/strict";
import { BatchBuffer, BufferClosedError, type FlushReason } from "../mod.ts";
import { test } from "./harness.ts";
import { settle, track } from "./helpers.ts";

// Both Deno 2 and Bun 1.4 parse `await using`, so these tests use the syntax itself.

test("await using closes the buffer and waits for run() to finish", async () => {
  const delivered: number[][] = [];
  let running: Promise<void> | undefined;
  let outside: BatchBuffer<number> | undefined;
  {
    await using buffer = new BatchBuffer<number>({
      capacity: 2,
      flush: async (batch) => {
        await settle(1); // a flush that takes a while
        delivered.push(batch);
      },
    });
    outside = buffer;
    running = buffer.run();
    for (const item of [1, 2, 3]) await buffer.add(item);
  }
  // Leaving the block disposed the buffer: every flush has completed and run() has resolved.
  assert.deepEqual(delivered, [[1, 2], [3]]);
  const finished = track(running);
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(finished.settled, true);
  await assert.rejects(outside.add(4), BufferClosedError);
});

test("await using without run() drains the buffer itself", async () => {
  const calls: { batch: string[]; reason: FlushReason }[] = [];
  {
    await using buffer = new BatchBuffer<string>({
      capacity: 10,
      flush: (batch, { reason }) => void calls.push({ batch, reason }),
    });
    for (const item of ["a", "b", "c"]) await buffer.add(item);
    assert.deepEqual(calls, [], "nothing flushes before run");
  }
  assert.deepEqual(calls, [{ batch: ["a", "b", "c"], reason: "close" }]);
});

test("[Symbol.asyncDispose]() without run() flushes full batches and the rest", async () => {
  const batches: number[][] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    chanSize: 5,
    flush: (batch) => void batches.push(batch),
  });
  for (let item = 0; item < 5; item++) await buffer.add(item);
  await buffer[Symbol.asyncDispose]();
  assert.deepEqual(batches, [[0, 1], [2, 3], [4]]);
  assert.equal(buffer.stats().flushedItems, 5);
});

test("[Symbol.asyncDispose]() twice in a row flushes once and resolves both times", async () => {
  let flushes = 0;
  const buffer = new BatchBuffer<number>({ flush: () => void flushes++ });
  const running = buffer.run();
  await buffer.add(1);
  await buffer[Symbol.asyncDispose]();
  await buffer[Symbol.asyncDispose]();
  await running;
  assert.equal(flushes, 1);
});

test("[Symbol.asyncDispose]() twice at once without run() runs the buffer once", async () => {
  let flushes = 0;
  const buffer = new BatchBuffer<number>({ flush: () => void flushes++ });
  await buffer.add(1);
  await Promise.all([buffer[Symbol.asyncDispose](), buffer[Symbol.asyncDispose]()]);
  assert.equal(flushes, 1);
  await assert.rejects(buffer.run(), Error, "the buffer has already been run by dispose");
});

test("[Symbol.asyncDispose]() waits for a slow flush before resolving", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const buffer = new BatchBuffer<number>({ flush: () => gate });
  const running = buffer.run();
  await buffer.add(1);
  const disposed = track(buffer[Symbol.asyncDispose]());
  await settle();
  assert.equal(disposed.settled, false);
  release();
  await settle();
  assert.equal(disposed.settled, true);
  await running;
});
