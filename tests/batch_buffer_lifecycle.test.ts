// run(), close() and ordering (issue 2 points 3, 4, 8, 9).
import assert from "node:assert/strict";
import { BatchBuffer, BufferClosedError } from "../mod.ts";
import { controlledFlush, recordingFlush, settle } from "./helpers.ts";
import { test } from "./harness.ts";

test("BatchBuffer.run() called twice rejects the second call and the first run keeps working", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 2 });
  const running = buffer.run();
  await assert.rejects(
    buffer.run(),
    new Error("run() was already called: a BatchBuffer has one run loop"),
  );
  for (let i = 0; i < 5; i++) await buffer.add(i);
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => c.batch), [[0, 1], [2, 3], [4]]);
  await assert.rejects(buffer.run(), Error, "after the run finished too");
});

test("BatchBuffer.run() with a signal that is not an AbortSignal rejects with a TypeError", async () => {
  const buffer = new BatchBuffer<number>({ flush: () => {} });
  await assert.rejects(
    buffer.run("stop" as unknown as AbortSignal),
    new TypeError('signal must be an AbortSignal, received "stop"'),
  );
  await buffer[Symbol.asyncDispose]();
});

test("BatchBuffer accepts adds before run() and blocks producers once chanSize is reached", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 2, chanSize: 3 });
  const accepted: number[] = [];
  const adds = [0, 1, 2, 3, 4].map((i) => buffer.add(i).then(() => void accepted.push(i)));
  await settle(1);
  assert.deepEqual(accepted, [0, 1, 2]);
  assert.equal(buffer.itemsInChannel, 3);
  assert.equal(calls.length, 0, "nothing is flushed before run()");
  const running = buffer.run();
  await Promise.all(adds);
  assert.deepEqual(accepted, [0, 1, 2, 3, 4]);
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => c.batch), [[0, 1], [2, 3], [4]]);
});

test("BatchBuffer.run() resolves only after close(), the full settle and the final flush settled", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 2, chanSize: 10 });
  let runDone = false;
  const running = buffer.run().then(() => void (runDone = true));
  for (let i = 0; i < 5; i++) await buffer.add(i); // [0,1] in flight, 2..4 in the channel
  await settle(1);
  assert.equal(runDone, false, "not closed yet");
  buffer.close();
  await settle(1);
  assert.equal(runDone, false, "items still queued");
  calls[0].done.resolve();
  await settle(1);
  calls[1].done.resolve();
  await settle(1);
  assert.deepEqual(calls.map((c) => [c.batch, c.reason]), [
    [[0, 1], "full"],
    [[2, 3], "full"],
    [[4], "close"],
  ]);
  assert.equal(runDone, false, "the final flush has not settled");
  calls[2].done.resolve();
  await running;
  assert.equal(runDone, true);
});

test("BatchBuffer keeps running and flushing after its run signal aborts", async () => {
  const { calls, flush } = recordingFlush<number>();
  const controller = new AbortController();
  const buffer = new BatchBuffer<number>({ flush, capacity: 2 });
  let runDone = false;
  const running = buffer.run(controller.signal).then(() => void (runDone = true));
  await buffer.add(0);
  controller.abort(new Error("shutdown requested"));
  for (let i = 1; i < 5; i++) await buffer.add(i);
  await settle(1);
  assert.equal(runDone, false, "only close() ends the run");
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => c.batch), [[0, 1], [2, 3], [4]]);
  assert.ok(calls.every((c) => c.signal === controller.signal && c.signal.aborted));
});

test("BatchBuffer.close() is idempotent", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ flush });
  const running = buffer.run();
  await buffer.add(1);
  buffer.close();
  buffer.close();
  await running;
  buffer.close();
  assert.deepEqual(calls.map((c) => [c.batch, c.reason]), [[[1], "close"]]);
  await assert.rejects(buffer.add(2), BufferClosedError);
});

test("BatchBuffer drains after close() through willOverflow and canAdd, then flushes with reason close", async () => {
  const { calls, flush } = recordingFlush<string>();
  const rejected: string[] = [];
  const buffer = new BatchBuffer<string>({
    flush,
    chanSize: 10,
    willOverflow: (_batch, item) => item.startsWith("new"),
    canAdd: (_batch, item) => item !== "bad",
    onReject: (item) => void rejected.push(item),
  });
  for (const item of ["a", "bad", "b", "new-c", "d"]) await buffer.add(item);
  buffer.close();
  await buffer.run();
  assert.deepEqual(calls.map((c) => [c.batch, c.reason]), [
    [["a", "b"], "overflow"],
    [["new-c", "d"], "close"],
  ]);
  assert.deepEqual(rejected, ["bad"]);
});

test("BatchBuffer.close() rejects adds still waiting for room with BufferClosedError carrying each item", async () => {
  const { calls, flush } = recordingFlush<string>();
  const buffer = new BatchBuffer<string>({ flush, chanSize: 2 });
  await buffer.add("a");
  await buffer.add("b");
  const waiting = ["c", "d"].map((item) => buffer.add(item));
  buffer.close();
  for (const [i, add] of waiting.entries()) {
    await assert.rejects(add, (error) => {
      assert.ok(error instanceof BufferClosedError);
      assert.equal(error.item, ["c", "d"][i]);
      return true;
    });
  }
  await buffer.run();
  assert.deepEqual(calls.map((c) => c.batch), [["a", "b"]], "accepted items are still flushed");
});

test("BatchBuffer runs one flush at a time and flushes items in acceptance order", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 3, chanSize: 4 });
  let runDone = false;
  const running = buffer.run().then(() => void (runDone = true));
  const acceptedOrder: number[] = [];
  let producersDone = false;
  const producers = Promise.all([0, 1].map(async (producer) => {
    for (let i = 0; i < 10; i++) {
      const item = producer * 100 + i;
      await buffer.add(item);
      acceptedOrder.push(item);
    }
  })).then(() => void (producersDone = true));
  let settled = 0;
  // Settle flushes by hand, one per step, checking that never two are pending.
  while (!runDone) {
    await settle(1);
    assert.ok(calls.length - settled <= 1, `${calls.length - settled} flushes pending at once`);
    assert.ok(buffer.stats().flushesInFlight <= 1);
    if (settled < calls.length) calls[settled++].done.resolve();
    if (producersDone) buffer.close();
  }
  await producers;
  await running;
  assert.deepEqual(calls.flatMap((c) => c.batch), acceptedOrder);
  assert.equal(acceptedOrder.length, 20);
});

test("BatchBuffer flushes items in exactly the order their adds were accepted", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 2, chanSize: 3 });
  let runDone = false;
  const running = buffer.run().then(() => void (runDone = true));
  const acceptedOrder: number[] = [];
  const adds = Promise.all(
    Array.from({ length: 9 }, (_, i) => buffer.add(i).then(() => void acceptedOrder.push(i))),
  ).then(() => buffer.close());
  while (!runDone) {
    await settle(1);
    for (const call of calls) call.done.resolve();
  }
  await adds;
  await running;
  assert.deepEqual(acceptedOrder, [0, 1, 2, 3, 4, 5, 6, 7, 8], "waiting producers in call order");
  assert.deepEqual(calls.flatMap((c) => c.batch), acceptedOrder);
});
