// Hooks that throw (issue 2 point 6 and the decisions in the brief).
import assert from "node:assert/strict";
import { BatchBuffer, type BatchBufferConfig } from "../mod.ts";
import { recordingFlush, settle } from "./helpers.ts";
import { test } from "./harness.ts";

/** Runs items 0..count-1 through a buffer built from `config` and returns what happened. */
async function runItems(
  count: number,
  config: Omit<BatchBufferConfig<number>, "flush" | "onError" | "onReject">,
) {
  const { calls, flush } = recordingFlush<number>();
  const errors: unknown[] = [];
  const rejected: number[] = [];
  const buffer = new BatchBuffer<number>({
    flush,
    onError: (error) => void errors.push(error),
    onReject: (item) => void rejected.push(item),
    ...config,
  });
  const running = buffer.run();
  for (let i = 0; i < count; i++) await buffer.add(i);
  buffer.close();
  await running;
  return {
    batches: calls.map((c) => [c.batch, c.reason]),
    errors,
    rejected,
    stats: buffer.stats(),
  };
}

const boom = (item: number) => new Error(`hook failed on ${item}`);

test("BatchBuffer treats a throwing willOverflow as false: the item joins the batch, the error goes to onError", async () => {
  const { batches, errors, rejected } = await runItems(4, {
    capacity: 10,
    willOverflow: (_batch, item) => {
      if (item === 2) throw boom(item);
      return item === 3;
    },
  });
  assert.deepEqual(batches, [[[0, 1, 2], "overflow"], [[3], "close"]]);
  assert.deepEqual(errors, [boom(2)]);
  assert.deepEqual(rejected, []);
});

test("BatchBuffer treats a throwing canAdd as true: the item is kept, the error goes to onError", async () => {
  const { batches, errors, rejected } = await runItems(4, {
    canAdd: (_batch, item) => {
      if (item === 1) throw boom(item);
      return item !== 2;
    },
  });
  assert.deepEqual(batches, [[[0, 1, 3], "close"]]);
  assert.deepEqual(errors, [boom(1)]);
  assert.deepEqual(rejected, [2]);
});

test("BatchBuffer treats a throwing shouldFlush as the default length >= capacity", async () => {
  const { batches, errors } = await runItems(5, {
    capacity: 2,
    shouldFlush: (batch) => {
      if (batch.length === 2) throw boom(batch[1]);
      return false;
    },
  });
  assert.deepEqual(batches, [[[0, 1], "full"], [[2, 3], "full"], [[4], "close"]]);
  assert.deepEqual(errors, [boom(1), boom(3)]);
});

test("BatchBuffer sends an item whose sizeOf throws to onReject and the error to onError", async () => {
  const { batches, errors, rejected } = await runItems(3, {
    maxBatchBytes: 100,
    sizeOf: (item) => {
      if (item === 1) throw boom(item);
      return 1;
    },
  });
  assert.deepEqual(batches, [[[0, 2], "close"]]);
  assert.deepEqual(rejected, [1]);
  assert.deepEqual(errors, [boom(1)]);
});

test("BatchBuffer reports a throwing onReject to onError and keeps every other item", async () => {
  const { calls, flush } = recordingFlush<number>();
  const errors: unknown[] = [];
  const buffer = new BatchBuffer<number>({
    flush,
    canAdd: (_batch, item) => item % 2 === 0,
    onReject: (item) => {
      throw boom(item);
    },
    onError: (error) => void errors.push(error),
  });
  const running = buffer.run();
  for (let i = 0; i < 5; i++) await buffer.add(i);
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => c.batch), [[0, 2, 4]]);
  assert.deepEqual(errors, [boom(1), boom(3)]);
  assert.equal(buffer.stats().rejected, 2);
});

test("BatchBuffer reports a throwing onFlushError to onError and keeps running", async () => {
  const errors: unknown[] = [];
  const flushed: number[][] = [];
  const flushError = new Error("flush failed");
  const hookError = new Error("onFlushError failed");
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    flush: (batch) => {
      if (batch[0] === 0) throw flushError;
      flushed.push(batch);
    },
    onFlushError: () => {
      throw hookError;
    },
    onError: (error) => void errors.push(error),
  });
  const running = buffer.run();
  for (let i = 0; i < 5; i++) await buffer.add(i);
  buffer.close();
  await running;
  assert.deepEqual(flushed, [[2, 3], [4]]);
  assert.deepEqual(errors, [hookError]);
});

test("BatchBuffer without onFlushError reports a failed flush to onError with the error as cause", async () => {
  const errors: unknown[] = [];
  const cause = new Error("503");
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    flush: () => Promise.reject(cause),
    onError: (error) => void errors.push(error),
  });
  const running = buffer.run();
  for (let i = 0; i < 3; i++) await buffer.add(i);
  buffer.close();
  await running;
  assert.equal(errors.length, 2);
  assert.ok(errors[0] instanceof Error);
  assert.equal(errors[0].message, "flush failed; its 2 items were not delivered");
  assert.equal(errors[0].cause, cause);
  assert.equal((errors[1] as Error).message, "flush failed; its 1 items were not delivered");
});

test("BatchBuffer reports a throwing waitUntil to onError and still settles the flush", async () => {
  const { batches, errors, stats } = await runItems(3, {
    capacity: 2,
    waitUntil: () => {
      throw boom(-1);
    },
  });
  assert.deepEqual(batches, [[[0, 1], "full"], [[2], "close"]]);
  // Two batches opened and stayed open (keep-alive promises), and two flushes started.
  assert.deepEqual(errors, [boom(-1), boom(-1), boom(-1), boom(-1)]);
  assert.equal(stats.flushedItems, 3);
});

test("BatchBuffer hooks answer by truthiness", async () => {
  const { batches, rejected } = await runItems(6, {
    capacity: 100,
    willOverflow: (_batch, item) => (item === 3 ? "yes" : 0) as unknown as boolean,
    canAdd: (_batch, item) => (item === 1 ? "" : 1) as unknown as boolean,
    shouldFlush: (batch) => (batch.includes(4) ? {} : null) as unknown as boolean,
  });
  assert.deepEqual(batches, [[[0, 2], "overflow"], [[3, 4], "full"], [[5], "close"]]);
  assert.deepEqual(rejected, [1]);
});

test("BatchBuffer sends hook errors to console.error by default, and there when onError throws", async () => {
  const original = console.error;
  const logged: unknown[] = [];
  console.error = (...args: unknown[]) => void logged.push(args[0]);
  try {
    const { calls, flush } = recordingFlush<number>();
    const first = new BatchBuffer<number>({
      flush,
      canAdd: () => {
        throw boom(0);
      },
    });
    const running = first.run();
    await first.add(0);
    first.close();
    await running;
    assert.deepEqual(logged, [boom(0)]);
    assert.deepEqual(calls.map((c) => c.batch), [[0]]);

    const onErrorFailure = new Error("onError failed");
    const second = new BatchBuffer<number>({
      flush,
      canAdd: () => {
        throw boom(1);
      },
      onError: () => {
        throw onErrorFailure;
      },
    });
    const running2 = second.run();
    await second.add(1);
    second.close();
    await running2;
    await settle(1);
    assert.deepEqual(logged, [boom(0), onErrorFailure]);
    assert.deepEqual(calls.map((c) => c.batch), [[0], [1]]);
  } finally {
    console.error = original;
  }
});
