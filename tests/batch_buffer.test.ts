// The Go package's own test cases, plus add() and the per-item steps (issue 2 points 3, 5, 6).
import assert from "node:assert/strict";
import { BatchBuffer, BufferClosedError } from "../mod.ts";
import { controlledFlush, recordingFlush, settle, withFakeClock } from "./helpers.ts";
import { test } from "./harness.ts";

test("BatchBuffer flushes a batch as soon as it reaches capacity", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 3 });
  const running = buffer.run();
  for (let i = 0; i < 7; i++) await buffer.add(i);
  assert.deepEqual(calls.map((c) => [c.batch, c.reason]), [[[0, 1, 2], "full"], [
    [3, 4, 5],
    "full",
  ]]);
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => [c.batch, c.reason]).at(-1), [[6], "close"]);
});

test("BatchBuffer flushes a partial batch when the flush interval elapses", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = recordingFlush<number>();
    const buffer = new BatchBuffer<number>({ flush, capacity: 10, flushInterval: 1000 });
    const running = buffer.run();
    for (let i = 0; i < 3; i++) await buffer.add(i);
    await clock.tickAsync(999);
    assert.equal(calls.length, 0);
    await clock.tickAsync(1);
    assert.deepEqual(calls.map((c) => [c.batch, c.reason]), [[[0, 1, 2], "interval"]]);
    buffer.close();
    await running;
    assert.equal(calls.length, 1);
  });
});

test("BatchBuffer drains every queued item on close", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 4, chanSize: 10 });
  for (let i = 0; i < 10; i++) await buffer.add(i);
  buffer.close();
  await buffer.run();
  assert.deepEqual(calls.map((c) => [c.batch, c.reason]), [
    [[0, 1, 2, 3], "full"],
    [[4, 5, 6, 7], "full"],
    [[8, 9], "close"],
  ]);
  assert.equal(buffer.itemsInChannel, 0);
});

test("BatchBuffer flushes the batch first when willOverflow says the next item will not fit", async () => {
  const { calls, flush } = recordingFlush<string>();
  const seenBatches: number[] = [];
  const buffer = new BatchBuffer<string>({
    flush,
    willOverflow: (batch, item) => {
      seenBatches.push(batch.length);
      return batch.join("").length + item.length > 10;
    },
  });
  const running = buffer.run();
  for (const item of ["aaaa", "bbbb", "cccc", "dd", "eeeeeeeeee"]) await buffer.add(item);
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => [c.batch, c.reason]), [
    [["aaaa", "bbbb"], "overflow"],
    [["cccc", "dd"], "overflow"],
    [["eeeeeeeeee"], "close"],
  ]);
  assert.ok(!seenBatches.includes(0), "willOverflow is only asked about a non-empty batch");
});

test("BatchBuffer hands items refused by canAdd to onReject and leaves them out", async () => {
  const { calls, flush } = recordingFlush<number>();
  const rejected: number[] = [];
  const buffer = new BatchBuffer<number>({
    flush,
    capacity: 2,
    canAdd: (_batch, item) => item % 2 === 0,
    onReject: (item) => void rejected.push(item),
  });
  const running = buffer.run();
  for (let i = 0; i < 7; i++) await buffer.add(i);
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => c.batch), [[0, 2], [4, 6]]);
  assert.deepEqual(rejected, [1, 3, 5]);
  assert.equal(buffer.stats().rejected, 3);
});

test("BatchBuffer hands a failed flush's error and batch to onFlushError and moves on", async () => {
  const failures: [unknown, number[]][] = [];
  const flushed: number[][] = [];
  const boom = new Error("backend down");
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    flush: async (batch) => {
      await Promise.resolve();
      if (batch.includes(2)) throw boom;
      flushed.push(batch);
    },
    onFlushError: (error, batch) => void failures.push([error, batch]),
  });
  const running = buffer.run();
  for (let i = 0; i < 6; i++) await buffer.add(i);
  buffer.close();
  await running;
  assert.deepEqual(flushed, [[0, 1], [4, 5]]);
  assert.equal(failures.length, 1);
  assert.equal(failures[0][0], boom);
  assert.deepEqual(failures[0][1], [2, 3]);
  const stats = buffer.stats();
  assert.deepEqual([stats.flushes, stats.failedFlushes, stats.failedItems], [2, 1, 2]);
});

test("BatchBuffer reports a synchronously throwing flush to onFlushError with the same batch array", async () => {
  const failures: [unknown, number[]][] = [];
  const passed: number[][] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    flush: (batch) => {
      passed.push(batch);
      throw new Error(`sync ${batch[0]}`);
    },
    onFlushError: (error, batch) => void failures.push([error, batch]),
  });
  const running = buffer.run();
  for (let i = 0; i < 4; i++) await buffer.add(i);
  buffer.close();
  await running;
  assert.deepEqual(failures.map(([e]) => (e as Error).message), ["sync 0", "sync 2"]);
  assert.equal(failures[0][1], passed[0]);
  assert.equal(failures[1][1], passed[1]);
});

test("BatchBuffer delivers 10 concurrent producers x 100 items exactly once, each in its order", async () => {
  const flushed: { producer: number; seq: number }[] = [];
  const buffer = new BatchBuffer<{ producer: number; seq: number }>({
    capacity: 7,
    chanSize: 5,
    flush: async (batch) => {
      await Promise.resolve(); // a slow backend, so producers meet backpressure
      flushed.push(...batch);
    },
  });
  const running = buffer.run();
  let maxInChannel = 0;
  await Promise.all(Array.from({ length: 10 }, async (_, producer) => {
    for (let seq = 0; seq < 100; seq++) {
      await buffer.add({ producer, seq });
      maxInChannel = Math.max(maxInChannel, buffer.itemsInChannel);
    }
  }));
  buffer.close();
  await running;
  assert.equal(flushed.length, 1000);
  for (let producer = 0; producer < 10; producer++) {
    const seqs = flushed.filter((item) => item.producer === producer).map((item) => item.seq);
    assert.deepEqual(seqs, Array.from({ length: 100 }, (_, i) => i), `producer ${producer}`);
  }
  assert.ok(maxInChannel <= 5);
});

test("BatchBuffer keeps itemsInChannel within chanSize and admits 3000 concurrent producers in call order", async () => {
  const chanSize = 16;
  let largest = 0;
  const observe = () => {
    largest = Math.max(largest, buffer.itemsInChannel);
    assert.ok(buffer.itemsInChannel <= chanSize, `itemsInChannel ${buffer.itemsInChannel}`);
  };
  const flushed: number[] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 10,
    chanSize,
    flush: async (batch) => {
      observe();
      await Promise.resolve();
      flushed.push(...batch);
    },
  });
  const running = buffer.run();
  const admitted: number[] = [];
  const adds = Array.from({ length: 3000 }, (_, i) => {
    const add = buffer.add(i).then(() => {
      admitted.push(i);
      observe();
    });
    observe();
    return add;
  });
  await Promise.all(adds);
  buffer.close();
  await running;
  const inOrder = Array.from({ length: 3000 }, (_, i) => i);
  assert.deepEqual(admitted, inOrder);
  assert.deepEqual(flushed, inOrder);
  assert.equal(largest, chanSize, "the channel did fill up");
});

test("BatchBuffer.add() under backpressure rejects when AbortSignal.timeout() fires and the item is never flushed", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 1, chanSize: 1 });
  const running = buffer.run();
  await buffer.add(0); // its flush stays in flight
  await buffer.add(1); // fills the channel
  let reason: unknown;
  buffer.add(2, { signal: AbortSignal.timeout(5) }).then(
    () => assert.fail("the add should have timed out"),
    (error) => void (reason = error),
  );
  // Node's AbortSignal.timeout() does not keep the event loop alive; these yields do.
  while (reason === undefined) await settle(1);
  assert.ok(reason instanceof DOMException);
  assert.equal(reason.name, "TimeoutError");
  assert.equal(buffer.itemsInChannel, 1);
  buffer.close();
  calls[0].done.resolve();
  while (calls.length < 2) await settle(1);
  calls[1].done.resolve();
  await running;
  assert.deepEqual(calls.map((c) => c.batch), [[0], [1]]);
});

test("BatchBuffer.add() waiting for room rejects with the abort reason and the item is never flushed", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 1, chanSize: 1 });
  const running = buffer.run();
  await buffer.add(0);
  await buffer.add(1);
  const controller = new AbortController();
  const waiting = buffer.add(2, { signal: controller.signal });
  const reason = new Error("shutting down");
  controller.abort(reason);
  await assert.rejects(waiting, (error) => error === reason);
  const stats = buffer.stats();
  assert.deepEqual([stats.added, stats.itemsInChannel], [2, 1]);
  buffer.close();
  calls[0].done.resolve();
  while (calls.length < 2) await settle(1);
  calls[1].done.resolve();
  await running;
  assert.deepEqual(calls.map((c) => c.batch), [[0], [1]]);
});

test("BatchBuffer passes the run signal to every flush as context.signal", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 2 });
  const controller = new AbortController();
  const running = buffer.run(controller.signal);
  for (let i = 0; i < 5; i++) await buffer.add(i);
  buffer.close();
  await running;
  assert.equal(calls.length, 3);
  for (const call of calls) assert.equal(call.signal, controller.signal);
});

test("BatchBuffer without a run signal gives every flush one signal that is not aborted", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 2 });
  const running = buffer.run();
  for (let i = 0; i < 5; i++) await buffer.add(i);
  buffer.close();
  await running;
  assert.equal(calls.length, 3);
  for (const call of calls) {
    assert.ok(call.signal instanceof AbortSignal);
    assert.equal(call.signal.aborted, false);
    assert.equal(call.signal, calls[0].signal);
  }
});

test("BatchBuffer never calls flush with an empty batch", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = recordingFlush<number>();
    const buffer = new BatchBuffer<number>({
      flush,
      capacity: 3,
      flushInterval: 100,
      willOverflow: () => true,
      canAdd: (_batch, item) => item !== 4,
    });
    const running = buffer.run();
    await clock.tickAsync(1000); // interval with nothing batched
    for (let i = 0; i < 6; i++) await buffer.add(i);
    await clock.tickAsync(1000);
    buffer.close(); // nothing left for a close flush
    await running;
    assert.ok(calls.length > 0);
    for (const call of calls) assert.ok(call.batch.length > 0, `empty ${call.reason} flush`);
  });
});

test("BatchBuffer closed with an empty batch resolves run without calling flush", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 2 });
  const running = buffer.run();
  await buffer.add(1);
  await buffer.add(2); // a full flush empties the batch
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => c.reason), ["full"]);
});

test("BatchBuffer.add() resolves once the item is accepted and waits while the channel is full", async () => {
  const buffer = new BatchBuffer<number>({ flush: () => {}, chanSize: 2 });
  await buffer.add(1);
  assert.equal(buffer.itemsInChannel, 1);
  await buffer.add(2);
  let thirdAccepted = false;
  const third = buffer.add(3).then(() => void (thirdAccepted = true));
  await settle(1);
  assert.equal(thirdAccepted, false);
  assert.equal(buffer.itemsInChannel, 2);
  const running = buffer.run();
  await third;
  buffer.close();
  await running;
});

test("BatchBuffer.add() with an already-aborted signal rejects with its reason and queues nothing", async () => {
  const { calls, flush } = recordingFlush<string>();
  const buffer = new BatchBuffer<string>({ flush });
  const reason = new Error("already aborted");
  await assert.rejects(
    buffer.add("before run", { signal: AbortSignal.abort(reason) }),
    (e) => e === reason,
  );
  assert.equal(buffer.itemsInChannel, 0);
  const running = buffer.run();
  await assert.rejects(
    buffer.add("running", { signal: AbortSignal.abort(reason) }),
    (e) => e === reason,
  );
  assert.equal(buffer.stats().added, 0);
  await buffer.add("kept");
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => c.batch), [["kept"]]);
});

test("BatchBuffer.add() after close() rejects with BufferClosedError before looking at the signal", async () => {
  const buffer = new BatchBuffer<string>({ flush: () => {} });
  buffer.close();
  await assert.rejects(buffer.add("late", { signal: AbortSignal.abort() }), (error) => {
    assert.ok(error instanceof BufferClosedError);
    assert.equal(error.item, "late");
    return true;
  });
  await buffer.run();
});

test("BatchBuffer.add() with a signal that is not an AbortSignal rejects with a TypeError", async () => {
  const buffer = new BatchBuffer<string>({ flush: () => {} });
  await assert.rejects(
    buffer.add("x", { signal: {} as AbortSignal }),
    new TypeError("options.signal must be an AbortSignal, received an object"),
  );
  assert.equal(buffer.itemsInChannel, 0);
  await buffer[Symbol.asyncDispose]();
});

test("BatchBuffer runs each item through willOverflow, canAdd, append, then shouldFlush", async () => {
  const log: string[] = [];
  const buffer = new BatchBuffer<string>({
    flush: (batch, { reason }) => void log.push(`flush ${reason} [${batch}]`),
    willOverflow: (batch, item) => {
      log.push(`willOverflow [${batch}] ${item}`);
      return item === "big";
    },
    canAdd: (batch, item) => {
      log.push(`canAdd [${batch}] ${item}`);
      return item !== "bad";
    },
    onReject: (item) => void log.push(`onReject ${item}`),
    shouldFlush: (batch) => {
      log.push(`shouldFlush [${batch}]`);
      return batch.includes("last");
    },
  });
  const running = buffer.run();
  for (const item of ["a", "big", "bad", "last"]) await buffer.add(item);
  buffer.close();
  await running;
  assert.deepEqual(log, [
    "canAdd [] a",
    "shouldFlush [a]",
    "willOverflow [a] big",
    "flush overflow [a]",
    "canAdd [] big",
    "shouldFlush [big]",
    "willOverflow [big] bad",
    "canAdd [big] bad",
    "onReject bad",
    "willOverflow [big] last",
    "canAdd [big] last",
    "shouldFlush [big,last]",
    "flush full [big,last]",
  ]);
});

test("BatchBuffer flushes the batch on overflow even when canAdd then refuses the item", async () => {
  const { calls, flush } = recordingFlush<string>();
  const rejected: string[] = [];
  const buffer = new BatchBuffer<string>({
    flush,
    willOverflow: (_batch, item) => item === "huge",
    canAdd: (_batch, item) => item !== "huge",
    onReject: (item) => void rejected.push(item),
  });
  const running = buffer.run();
  for (const item of ["a", "huge", "b"]) await buffer.add(item);
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => [c.batch, c.reason]), [[["a"], "overflow"], [["b"], "close"]]);
  assert.deepEqual(rejected, ["huge"]);
});

test("BatchBuffer never mutates or reuses an array it handed to flush", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 3 });
  const running = buffer.run();
  for (let i = 0; i < 10; i++) await buffer.add(i);
  for (let i = 10; i < 20; i++) await buffer.add(i); // more batches after the first were kept
  buffer.close();
  await running;
  assert.equal(calls.length, 7);
  for (const call of calls) assert.deepEqual(call.batch, call.snapshot);
  assert.equal(new Set(calls.map((c) => c.batch)).size, calls.length, "every batch is a new array");
  assert.deepEqual(calls.flatMap((c) => c.batch), Array.from({ length: 20 }, (_, i) => i));
});

test("BatchBuffer is unaffected by a flush that empties or reorders its batch", async () => {
  const seen: number[][] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 3,
    flush: (batch) => {
      seen.push([...batch]);
      batch.reverse();
      batch.length = 0;
    },
  });
  const running = buffer.run();
  for (let i = 0; i < 8; i++) await buffer.add(i);
  buffer.close();
  await running;
  assert.deepEqual(seen, [[0, 1, 2], [3, 4, 5], [6, 7]]);
  assert.equal(buffer.stats().flushedItems, 8);
});

test("an async flush that empties its batch before its first await still has every item counted", async () => {
  const failed: number[] = [];
  let calls = 0;
  const buffer = new BatchBuffer<number>({
    capacity: 3,
    flush: async (batch) => {
      batch.length = 0; // the array is the flush's to keep and change
      await Promise.resolve();
      if (++calls === 2) throw new Error("backend down");
    },
    onFlushError: (_error, items) => void failed.push(items.length),
  });
  const running = buffer.run();
  for (let i = 0; i < 8; i++) await buffer.add(i);
  buffer.close();
  await running;
  const stats = buffer.stats();
  assert.equal(stats.flushedItems, 5);
  assert.equal(stats.failedItems, 3);
  assert.equal(stats.inFlightItems, 0);
  assert.deepEqual(failed, [0], "onFlushError gets the array flush had, as flush left it");
});
