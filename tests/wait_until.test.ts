import assert from "node:assert/strict";
import { BatchBuffer, type FlushReason } from "../mod.ts";
import { test } from "./harness.ts";
import { deferred, installClock, settle, track } from "./helpers.ts";

interface Handed {
  /** The reason of the flush that was started just before waitUntil was called. */
  readonly reason: FlushReason | undefined;
  readonly promise: Promise<unknown>;
}

for (const mode of ["synchronous", "asynchronous"] as const) {
  test(`waitUntil receives the promise of every ${mode} flush, whatever the reason`, async () => {
    const clock = installClock();
    try {
      const reasons: FlushReason[] = [];
      const handed: Handed[] = [];
      const buffer = new BatchBuffer<number>({
        capacity: 3,
        flushInterval: 1000,
        willOverflow: (_batch, item) => item < 0,
        flush: (_batch, { reason }) => {
          reasons.push(reason);
          return mode === "asynchronous" ? Promise.resolve() : undefined;
        },
        waitUntil: (promise) => void handed.push({ reason: reasons.at(-1), promise }),
      });
      const running = buffer.run();
      for (const item of [1, 2, 3]) await buffer.add(item); // full
      await buffer.add(4);
      await buffer.add(-5); // overflow: [4] goes out without -5
      await clock.tickAsync(0);
      await clock.tickAsync(1000); // interval: [-5]
      await buffer.add(6);
      await buffer.flush(); // manual: [6]
      await buffer.add(7);
      buffer.close(); // close: [7]
      await running;

      const expected: FlushReason[] = ["full", "overflow", "interval", "manual", "close"];
      assert.deepEqual(reasons, expected);
      assert.deepEqual(handed.map((h) => h.reason), expected);
      for (const { promise } of handed) assert.ok(promise instanceof Promise);
      await Promise.all(handed.map((h) => h.promise));
    } finally {
      clock.uninstall();
    }
  });
}

test("waitUntil's promise settles only after its flush settles", async () => {
  const gate = deferred();
  const handed: Promise<unknown>[] = [];
  const buffer = new BatchBuffer<number>({
    flush: () => gate.promise,
    waitUntil: (promise) => void handed.push(promise),
  });
  const running = buffer.run();
  await buffer.add(1);
  buffer.close();
  await settle();
  assert.equal(handed.length, 1);
  const watched = track(handed[0]);
  await settle();
  assert.equal(watched.settled, false);

  gate.resolve();
  await settle();
  assert.equal(watched.settled, true);
  await running;
});

test("waitUntil's promise resolves even when the flush rejects", async () => {
  const gate = deferred();
  const handed: Promise<unknown>[] = [];
  const failed: number[][] = [];
  const buffer = new BatchBuffer<number>({
    flush: () => gate.promise,
    onFlushError: (_error, batch) => void failed.push(batch),
    waitUntil: (promise) => void handed.push(promise),
  });
  const running = buffer.run();
  await buffer.add(1);
  buffer.close();
  await settle();
  assert.equal(handed.length, 1);
  const watched = track(handed[0]);

  gate.reject(new Error("backend down"));
  await settle();
  assert.equal(watched.settled, true);
  assert.equal(watched.rejected, false);
  assert.deepEqual(failed, [[1]]);
  await running;
});

test("waitUntil receives a resolving promise for a flush that throws synchronously", async () => {
  const handed: Promise<unknown>[] = [];
  const failed: number[][] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    flush: () => {
      throw new Error("backend down");
    },
    onFlushError: (_error, batch) => void failed.push(batch),
    waitUntil: (promise) => void handed.push(promise),
  });
  const running = buffer.run();
  for (const item of [1, 2, 3]) await buffer.add(item);
  buffer.close();
  await running;
  assert.deepEqual(failed, [[1, 2], [3]]);
  assert.equal(handed.length, 2, "every flush started is handed to waitUntil");
  await Promise.all(handed);
});

test("a throwing waitUntil goes to onError and the flush still happens", async () => {
  const errors: unknown[] = [];
  const batches: number[][] = [];
  const boom = new Error("waitUntil failed");
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    flush: (batch) => void batches.push(batch),
    waitUntil: () => {
      throw boom;
    },
    onError: (error) => void errors.push(error),
  });
  const running = buffer.run();
  for (const item of [1, 2, 3]) await buffer.add(item);
  buffer.close();
  await running;
  assert.deepEqual(batches, [[1, 2], [3]]);
  assert.deepEqual(errors, [boom, boom]);
  const stats = buffer.stats();
  assert.equal(stats.flushes, 2);
  assert.equal(stats.flushedItems, 3);
});

test("a throwing waitUntil does not stop an asynchronous flush from being awaited", async () => {
  const errors: unknown[] = [];
  const gate = deferred();
  let delivered = false;
  const buffer = new BatchBuffer<number>({
    flush: async () => {
      await gate.promise;
      delivered = true;
    },
    waitUntil: () => {
      throw new Error("waitUntil failed");
    },
    onError: (error) => void errors.push(error),
  });
  const running = buffer.run();
  await buffer.add(1);
  buffer.close();
  const finished = track(running);
  await settle();
  assert.equal(errors.length, 1);
  assert.equal(finished.settled, false, "run() still waits for the flush");
  gate.resolve();
  await running;
  assert.equal(delivered, true);
});
