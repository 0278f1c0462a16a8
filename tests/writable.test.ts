import assert from "node:assert/strict";
import { BatchBuffer, BufferClosedError, type FlushReason } from "../mod.ts";
import { test } from "./harness.ts";
import { settle, track } from "./helpers.ts";

test("BatchBuffer.writable is the same WritableStream on every access", async () => {
  const buffer = new BatchBuffer<number>({ flush: () => {} });
  const first = buffer.writable;
  assert.ok(first instanceof WritableStream);
  assert.equal(buffer.writable, first);
  await buffer[Symbol.asyncDispose]();
  assert.equal(buffer.writable, first);
});

test("ReadableStream.from(items).pipeTo(buffer.writable) adds every chunk within chanSize", async () => {
  const delivered: number[] = [];
  let largestChannel = 0;
  const buffer = new BatchBuffer<number>({
    capacity: 4,
    chanSize: 3,
    flush: async (batch) => {
      await settle(1);
      largestChannel = Math.max(largestChannel, buffer.itemsInChannel);
      delivered.push(...batch);
    },
  });
  const running = buffer.run();
  const items = Array.from({ length: 50 }, (_, i) => i);
  await ReadableStream.from(items).pipeTo(buffer.writable);
  await running; // closing the source closed the buffer
  assert.deepEqual(delivered, items);
  assert.equal(largestChannel, 3, "the channel filled up but never beyond chanSize");
});

test("piping into BatchBuffer.writable stops pulling the source while the flush is stuck", async () => {
  const total = 1000;
  let pulled = 0;
  let largestChannel = 0;
  const source = new ReadableStream<number>({
    pull(controller) {
      largestChannel = Math.max(largestChannel, buffer.itemsInChannel);
      if (pulled === total) controller.close();
      else controller.enqueue(pulled++);
    },
  });
  let release!: () => void;
  const stuck = new Promise<void>((resolve) => (release = resolve));
  const delivered: number[] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    chanSize: 3,
    flush: async (batch) => {
      await stuck;
      delivered.push(...batch);
    },
  });
  const running = buffer.run();
  const piping = source.pipeTo(buffer.writable);
  await settle();
  // One batch in flight, chanSize items in the channel, plus a few chunks in stream queues.
  assert.ok(pulled < 20, `the source was pulled ${pulled} times while the flush was stuck`);
  assert.equal(buffer.itemsInChannel, 3);

  release();
  await piping;
  await running;
  assert.equal(pulled, total);
  assert.deepEqual(delivered, Array.from({ length: total }, (_, i) => i));
  assert.ok(largestChannel <= 3, `itemsInChannel reached ${largestChannel}`);
});

test("closing BatchBuffer.writable closes the buffer and flushes the rest", async () => {
  const calls: { batch: number[]; reason: FlushReason }[] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 10,
    flush: (batch, { reason }) => void calls.push({ batch, reason }),
  });
  const running = buffer.run();
  const writer = buffer.writable.getWriter();
  await writer.write(1);
  await writer.write(2);
  await writer.close();
  await running;
  assert.deepEqual(calls, [{ batch: [1, 2], reason: "close" }]);
  await assert.rejects(buffer.add(3), BufferClosedError);
});

test("aborting BatchBuffer.writable closes the buffer and still flushes accepted items", async () => {
  const calls: { batch: number[]; reason: FlushReason }[] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 10,
    flush: (batch, { reason }) => void calls.push({ batch, reason }),
  });
  const running = buffer.run();
  const writer = buffer.writable.getWriter();
  await writer.write(1);
  await writer.write(2);
  await writer.abort(new Error("source failed"));
  await running;
  assert.deepEqual(calls, [{ batch: [1, 2], reason: "close" }]);
  await assert.rejects(buffer.add(3), BufferClosedError);
});

test("a pipe that errors part-way closes the buffer and keeps the chunks it delivered", async () => {
  const delivered: number[] = [];
  const buffer = new BatchBuffer<number>({ flush: (batch) => void delivered.push(...batch) });
  const running = buffer.run();
  const failure = new Error("upstream broke");
  let sent = 0;
  const source = new ReadableStream<number>({
    pull(controller) {
      if (sent === 3) controller.error(failure);
      else controller.enqueue(++sent);
    },
  });
  await assert.rejects(source.pipeTo(buffer.writable), (error) => error === failure);
  await running;
  assert.deepEqual(delivered, [1, 2, 3]);
});

test("writing to BatchBuffer.writable after close() errors the stream with BufferClosedError", async () => {
  const buffer = new BatchBuffer<number>({ flush: () => {} });
  const running = buffer.run();
  buffer.close();
  const writer = buffer.writable.getWriter();
  await assert.rejects(writer.write(1), BufferClosedError);
  await assert.rejects(writer.closed, BufferClosedError);
  await running;
  assert.equal(buffer.stats().added, 0);
});

test("writes to BatchBuffer.writable before run() wait for room in the channel", async () => {
  const delivered: number[] = [];
  const buffer = new BatchBuffer<number>({
    chanSize: 2,
    flush: (batch) => void delivered.push(...batch),
  });
  const piping = ReadableStream.from([1, 2, 3, 4, 5]).pipeTo(buffer.writable);
  const watched = track(piping);
  await settle();
  assert.equal(watched.settled, false);
  assert.equal(buffer.itemsInChannel, 2);
  const running = buffer.run();
  await piping;
  await running;
  assert.deepEqual(delivered, [1, 2, 3, 4, 5]);
});
