import assert from "node:assert/strict";
import { BatchBuffer, BufferClosedError } from "../mod.ts";
import { test } from "./harness.ts";
import { settle } from "./helpers.ts";

test("BatchBuffer.tryAdd() returns true and queues the item on a running buffer", async () => {
  const batches: number[][] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    flush: (batch) => void batches.push(batch),
  });
  const running = buffer.run();
  assert.equal(buffer.tryAdd(1), true);
  assert.equal(buffer.tryAdd(2), true);
  assert.equal(buffer.tryAdd(3), true);
  buffer.close();
  await running;
  assert.deepEqual(batches, [[1, 2], [3]]);
  assert.equal(buffer.stats().added, 3);
});

test("BatchBuffer.tryAdd() returns false once the channel is full and does not queue the item", async () => {
  const batches: number[][] = [];
  const buffer = new BatchBuffer<number>({
    chanSize: 2,
    flush: (batch) => void batches.push(batch),
  });
  assert.equal(buffer.tryAdd(1), true);
  assert.equal(buffer.tryAdd(2), true);
  assert.equal(buffer.tryAdd(3), false);
  assert.equal(buffer.itemsInChannel, 2);
  assert.equal(buffer.stats().added, 2);
  await buffer[Symbol.asyncDispose]();
  assert.deepEqual(batches, [[1, 2]]);
});

test("BatchBuffer.tryAdd() returns false while a slow flush holds the run loop and the channel is full", async () => {
  const batches: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const buffer = new BatchBuffer<number>({
    capacity: 1,
    chanSize: 2,
    flush: (batch) => {
      batches.push(batch);
      return gate;
    },
  });
  const running = buffer.run();
  assert.equal(buffer.tryAdd(1), true); // flushed at once; the flush waits for the gate
  assert.equal(buffer.tryAdd(2), true);
  assert.equal(buffer.tryAdd(3), true);
  await settle();
  assert.equal(buffer.tryAdd(4), false);
  release();
  buffer.close();
  await running;
  assert.deepEqual(batches, [[1], [2], [3]]);
});

test("BatchBuffer.tryAdd() never jumps ahead of producers waiting for room", async () => {
  const delivered: number[] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 10,
    chanSize: 2,
    flush: (batch) => void delivered.push(...batch),
  });
  assert.equal(buffer.tryAdd(1), true);
  assert.equal(buffer.tryAdd(2), true);
  const waiting = [buffer.add(3), buffer.add(4)];
  assert.equal(buffer.tryAdd(5), false, "producers 3 and 4 were first");
  const running = buffer.run();
  await Promise.all(waiting);
  await settle();
  assert.equal(buffer.tryAdd(6), true);
  buffer.close();
  await running;
  assert.deepEqual(delivered, [1, 2, 3, 4, 6]);
});

test("BatchBuffer.tryAdd() throws BufferClosedError with the item after close()", async () => {
  const buffer = new BatchBuffer<string>({ flush: () => {} });
  const running = buffer.run();
  assert.equal(buffer.tryAdd("before"), true);
  buffer.close();
  assert.throws(
    () => buffer.tryAdd("late"),
    (error: unknown) => error instanceof BufferClosedError && error.item === "late",
  );
  await running;
  assert.throws(() => buffer.tryAdd("later"), BufferClosedError);
  assert.equal(buffer.stats().added, 1);
});
