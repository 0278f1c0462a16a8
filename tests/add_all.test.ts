import assert from "node:assert/strict";
import { AddAllError, BatchBuffer, BufferClosedError } from "../mod.ts";
import { test } from "./harness.ts";
import { controlledFlush, settle, track } from "./helpers.ts";

/** Rejects the test unless `promise` rejects with an AddAllError; returns that error. */
async function addAllError(promise: Promise<unknown>): Promise<AddAllError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof AddAllError, `expected an AddAllError, got ${error}`);
    return error;
  }
  assert.fail("addAll() resolved, expected it to reject");
}

test("BatchBuffer.addAll() adds every item in order and never overfills the channel", async () => {
  const delivered: number[] = [];
  let largestChannel = 0;
  const buffer = new BatchBuffer<number>({
    capacity: 3,
    chanSize: 2,
    flush: async (batch) => {
      await settle(1);
      // While this flush is in flight the producer fills the channel.
      largestChannel = Math.max(largestChannel, buffer.itemsInChannel);
      delivered.push(...batch);
    },
  });
  const running = buffer.run();
  const items = Array.from({ length: 40 }, (_, i) => i);
  await buffer.addAll(items);
  buffer.close();
  await running;
  assert.deepEqual(delivered, items);
  assert.equal(largestChannel, 2, "the channel filled up (backpressure) but never beyond chanSize");
});

test("BatchBuffer.addAll() waits while the channel is full", async () => {
  const batches: number[][] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 10,
    chanSize: 2,
    flush: (batch) => void batches.push(batch),
  });
  const adding = buffer.addAll([1, 2, 3, 4]);
  const watched = track(adding);
  await settle();
  assert.equal(watched.settled, false);
  assert.equal(buffer.stats().added, 2);

  const running = buffer.run();
  await adding;
  buffer.close();
  await running;
  assert.deepEqual(batches, [[1, 2, 3, 4]]);
});

test("BatchBuffer.addAll() aborted part-way reports how many leading items were queued", async () => {
  const batches: number[][] = [];
  const buffer = new BatchBuffer<number>({
    chanSize: 2,
    flush: (batch) => void batches.push(batch),
  });
  const controller = new AbortController();
  const items = [1, 2, 3, 4, 5];
  const adding = buffer.addAll(items, { signal: controller.signal });
  await settle();
  const reason = new Error("caller gave up");
  controller.abort(reason);
  const error = await addAllError(adding);
  assert.equal(error.accepted, 2);
  assert.equal(error.cause, reason);
  assert.deepEqual(items.slice(error.accepted), [3, 4, 5]);

  await buffer[Symbol.asyncDispose]();
  assert.deepEqual(batches, [[1, 2]], "exactly the accepted items were flushed");
});

test("BatchBuffer.addAll() with an already aborted signal queues nothing", async () => {
  const buffer = new BatchBuffer<number>({ flush: () => {} });
  const reason = new Error("too late");
  const error = await addAllError(buffer.addAll([1, 2], { signal: AbortSignal.abort(reason) }));
  assert.equal(error.accepted, 0);
  assert.equal(error.cause, reason);
  assert.equal(buffer.stats().added, 0);
  await buffer[Symbol.asyncDispose]();
});

test("BatchBuffer.addAll() closed part-way rejects with BufferClosedError as cause", async () => {
  const batches: number[][] = [];
  const buffer = new BatchBuffer<number>({
    chanSize: 2,
    flush: (batch) => void batches.push(batch),
  });
  const adding = buffer.addAll([1, 2, 3, 4]);
  await settle();
  buffer.close();
  const error = await addAllError(adding);
  assert.equal(error.accepted, 2);
  assert.ok(error.cause instanceof BufferClosedError);
  assert.equal(error.cause.item, 3);

  await buffer.run();
  assert.deepEqual(batches, [[1, 2]]);
});

test("BatchBuffer.addAll() after close() queues nothing and says so", async () => {
  const buffer = new BatchBuffer<number>({ flush: () => {} });
  buffer.close();
  const error = await addAllError(buffer.addAll([7, 8]));
  assert.equal(error.accepted, 0);
  assert.ok(error.cause instanceof BufferClosedError);
  await buffer.run();
  assert.equal(buffer.stats().added, 0);
});

test("BatchBuffer.addAll(), add() and tryAdd() refuse items while the close flush is still in flight", async () => {
  // With a free flush slot and an empty channel, the run loop looks idle after close().
  const { flush, calls } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, maxConcurrentFlushes: 2 });
  const running = buffer.run();
  await buffer.add(1);
  buffer.close(); // the close flush of [1] is now in flight; one slot is free
  const error = await addAllError(buffer.addAll([2, 3]));
  assert.equal(error.accepted, 0);
  assert.ok(error.cause instanceof BufferClosedError);
  await assert.rejects(buffer.add(4), BufferClosedError);
  assert.throws(() => buffer.tryAdd(5), BufferClosedError);
  calls[0].done.resolve();
  await running;
  assert.deepEqual(calls.map((call) => call.batch), [[1]]);
  assert.equal(buffer.stats().added, 1);
});

test("BatchBuffer.addAll() reports an iterable that throws as the cause", async () => {
  const batches: number[][] = [];
  const buffer = new BatchBuffer<number>({ flush: (batch) => void batches.push(batch) });
  const running = buffer.run();
  const broken = new Error("source broke");
  function* source(): Generator<number> {
    yield 1;
    yield 2;
    throw broken;
  }
  const error = await addAllError(buffer.addAll(source()));
  assert.equal(error.accepted, 2);
  assert.equal(error.cause, broken);
  buffer.close();
  await running;
  assert.deepEqual(batches, [[1, 2]]);
});

test("BatchBuffer.addAll() accepts generators and Sets", async () => {
  const delivered: string[] = [];
  const buffer = new BatchBuffer<string>({
    capacity: 2,
    flush: (batch) => void delivered.push(...batch),
  });
  const running = buffer.run();
  function* letters(): Generator<string> {
    yield* ["a", "b", "c"];
  }
  await buffer.addAll(letters());
  await buffer.addAll(new Set(["d", "e", "d"]));
  await buffer.addAll([]);
  buffer.close();
  await running;
  assert.deepEqual(delivered, ["a", "b", "c", "d", "e"]);
  assert.equal(buffer.stats().added, 5);
});

test("BatchBuffer.addAll() rejects a non-iterable with a TypeError", async () => {
  const buffer = new BatchBuffer<number>({ flush: () => {} });
  await assert.rejects(buffer.addAll(42 as unknown as Iterable<number>), TypeError);
  await assert.rejects(buffer.addAll(null as unknown as Iterable<number>), TypeError);
  await assert.rejects(buffer.addAll({} as unknown as Iterable<number>), TypeError);
  await buffer[Symbol.asyncDispose]();
});

test("BatchBuffer.addAll() keeps its own order while another producer adds meanwhile", async () => {
  const delivered: number[] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 4,
    chanSize: 2,
    flush: async (batch) => {
      await settle(1);
      delivered.push(...batch);
    },
  });
  const running = buffer.run();
  const bulk = buffer.addAll([1, 2, 3, 4, 5, 6, 7, 8]);
  await settle(1);
  const single = buffer.add(100);
  await Promise.all([bulk, single]);
  buffer.close();
  await running;
  assert.equal(delivered.length, 9);
  assert.deepEqual(delivered.filter((item) => item !== 100), [1, 2, 3, 4, 5, 6, 7, 8]);
});
