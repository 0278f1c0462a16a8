import assert from "node:assert/strict";
import { BatchBuffer, type BatchBufferConfig, type FlushReason } from "../mod.ts";
import { test } from "./harness.ts";
import { deferred, installClock, settle, track } from "./helpers.ts";

/** One call of the waitUntil hook. */
interface HandOff {
  /**
   * The flush started just before, in the same call stack; undefined for the
   * keep-alive promise of a batch that just opened.
   */
  readonly reason: FlushReason | undefined;
  readonly promise: Promise<unknown>;
}

/**
 * Wraps a config's flush and waitUntil so the test sees which waitUntil call
 * hands over which flush. A flush's hand-off comes right after it starts.
 */
function recordHandOffs<T>(config: BatchBufferConfig<T>): {
  config: BatchBufferConfig<T>;
  handOffs: HandOff[];
  reasons: FlushReason[];
} {
  const handOffs: HandOff[] = [];
  const reasons: FlushReason[] = [];
  let started: FlushReason | undefined;
  return {
    handOffs,
    reasons,
    config: {
      ...config,
      flush: (batch, context) => {
        reasons.push(context.reason);
        started = context.reason;
        return config.flush(batch, context);
      },
      waitUntil: (promise) => {
        handOffs.push({ reason: started, promise });
        started = undefined;
        config.waitUntil?.(promise);
      },
    },
  };
}

const flushHandOffs = (handOffs: HandOff[]) => handOffs.filter((h) => h.reason !== undefined);
const keepAlives = (handOffs: HandOff[]) => handOffs.filter((h) => h.reason === undefined);

for (const mode of ["synchronous", "asynchronous"] as const) {
  test(`waitUntil receives the promise of every ${mode} flush, whatever the reason`, async () => {
    const clock = installClock();
    try {
      const { config, handOffs, reasons } = recordHandOffs<number>({
        capacity: 3,
        flushInterval: 1000,
        willOverflow: (_batch, item) => item < 0,
        flush: () => mode === "asynchronous" ? Promise.resolve() : undefined,
      });
      const buffer = new BatchBuffer<number>(config);
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
      assert.deepEqual(flushHandOffs(handOffs).map((h) => h.reason), expected);
      for (const { promise } of handOffs) assert.ok(promise instanceof Promise);
      await Promise.all(handOffs.map((h) => h.promise));
    } finally {
      clock.uninstall();
    }
  });
}

test("a batch's opening call hands waitUntil a promise that settles once the batch is flushed", async () => {
  const gate = deferred();
  const { config, handOffs } = recordHandOffs<number>({ capacity: 3, flush: () => gate.promise });
  const buffer = new BatchBuffer<number>(config);
  const running = buffer.run();
  await buffer.add(1); // opens the batch
  assert.equal(handOffs.length, 1, "the opening add() made one hand-off, in its own call");
  const keepAlive = track(handOffs[0].promise);
  await buffer.add(2);
  await settle();
  assert.equal(keepAlive.settled, false, "still open: the opener must stay alive");
  await buffer.add(3); // full: handed to flush
  await settle();
  assert.equal(keepAlive.settled, true);
  assert.equal(keepAlive.rejected, false);
  assert.deepEqual(flushHandOffs(handOffs).map((h) => h.reason), ["full"]);
  gate.resolve();
  buffer.close();
  await running;
});

test("a batch flushed in the call that opened it needs no keep-alive promise", async () => {
  const { config, handOffs } = recordHandOffs<number>({ capacity: 1, flush: () => {} });
  const buffer = new BatchBuffer<number>(config);
  const running = buffer.run();
  for (const item of [1, 2, 3]) await buffer.add(item);
  buffer.close();
  await running;
  assert.equal(keepAlives(handOffs).length, 0);
  assert.equal(flushHandOffs(handOffs).length, 3);
});

test("a full batch that waits for a free flush slot keeps its opener alive until it is flushed", async () => {
  const gate = deferred();
  const { config, handOffs, reasons } = recordHandOffs<number>({
    capacity: 10,
    maxConcurrentFlushes: 1,
    willOverflow: (_batch, item) => item === 2, // [1] goes out and takes the only slot...
    shouldFlush: (batch) => batch.includes(2), // ...and [2] is full at once, but must wait
    flush: () => gate.promise,
  });
  const buffer = new BatchBuffer<number>(config);
  const running = buffer.run();
  await buffer.add(1);
  await buffer.add(2);
  assert.deepEqual(reasons, ["overflow"]);
  const kept = keepAlives(handOffs);
  assert.equal(kept.length, 2, "one per opened batch");
  const [first, second] = kept.map((h) => track(h.promise));
  await settle();
  assert.equal(first.settled, true, "[1] was handed to flush");
  assert.equal(second.settled, false, "[2] waits for the slot: its opener stays alive");
  gate.resolve();
  await settle();
  assert.deepEqual(reasons, ["overflow", "full"]);
  assert.equal(second.settled, true);
  buffer.close();
  await running;
});

test("with waitUntil each batch arms its own interval timeout; none is reused across batches", async () => {
  const clock = installClock();
  try {
    const armed: number[] = [];
    const setTimeoutBefore = globalThis.setTimeout;
    globalThis.setTimeout = ((fn: () => void, ms?: number) => {
      armed.push(ms ?? 0);
      return setTimeoutBefore(fn, ms);
    }) as typeof setTimeout;
    const batches: number[][] = [];
    const buffer = new BatchBuffer<number>({
      capacity: 2,
      flushInterval: 100,
      flush: (batch) => void batches.push(batch),
      waitUntil: () => {},
    });
    const running = buffer.run();
    // Back-to-back full batches: without waitUntil the first timeout is reused.
    for (let i = 0; i < 6; i++) await buffer.add(i);
    await buffer.add(6);
    await clock.tickAsync(100);
    globalThis.setTimeout = setTimeoutBefore;
    buffer.close();
    await running;
    assert.deepEqual(batches, [[0, 1], [2, 3], [4, 5], [6]]);
    assert.equal(armed.filter((ms) => ms === 100).length, 4, "one timeout per batch");
    assert.equal(clock.countTimers(), 0);
  } finally {
    clock.uninstall();
  }
});

test("without waitUntil back-to-back batches reuse one interval timeout", async () => {
  const clock = installClock();
  try {
    const armed: number[] = [];
    const setTimeoutBefore = globalThis.setTimeout;
    globalThis.setTimeout = ((fn: () => void, ms?: number) => {
      armed.push(ms ?? 0);
      return setTimeoutBefore(fn, ms);
    }) as typeof setTimeout;
    const buffer = new BatchBuffer<number>({ capacity: 2, flushInterval: 100, flush: () => {} });
    const running = buffer.run();
    for (let i = 0; i < 6; i++) await buffer.add(i);
    globalThis.setTimeout = setTimeoutBefore;
    buffer.close();
    await running;
    assert.ok(armed.filter((ms) => ms === 100).length < 3, `armed ${armed.length} timeouts`);
  } finally {
    clock.uninstall();
  }
});

test("every flush() call gets a promise of its own; calls due together share one flush", async () => {
  const gate = deferred();
  const reasons: FlushReason[] = [];
  const buffer = new BatchBuffer<number>({
    flush: (_batch, { reason }) => {
      reasons.push(reason);
      return gate.promise;
    },
  });
  const running = buffer.run();
  await buffer.add(1);
  const first = buffer.flush();
  const second = buffer.flush();
  assert.notEqual(first, second);
  const [a, b] = [track(first), track(second)];
  await settle();
  assert.deepEqual(reasons, ["manual"], "one manual flush serves both calls");
  assert.equal(a.settled || b.settled, false);
  gate.resolve();
  await Promise.all([first, second]);
  buffer.close();
  await running;
});

test("waitUntil with a flushInterval over 25 s is reported once through onError", () => {
  const errors: unknown[] = [];
  const make = (flushInterval: number, waitUntil?: () => void) =>
    new BatchBuffer<number>({
      flush: () => {},
      flushInterval,
      waitUntil,
      onError: (error) => void errors.push(error),
    });
  make(25_000, () => {});
  make(60_000); // no waitUntil: not on Workers
  make(Infinity, () => {}); // no timer at all
  assert.equal(errors.length, 0);
  make(25_001, () => {});
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof RangeError);
  assert.match(String((errors[0] as Error).message), /flushInterval is 25001 ms.*30 s/);
});

test("waitUntil's promise settles only after its flush settles", async () => {
  const gate = deferred();
  const { config, handOffs } = recordHandOffs<number>({ flush: () => gate.promise });
  const buffer = new BatchBuffer<number>(config);
  const running = buffer.run();
  await buffer.add(1);
  buffer.close();
  await settle();
  const flushes = flushHandOffs(handOffs);
  assert.equal(flushes.length, 1);
  const watched = track(flushes[0].promise);
  await settle();
  assert.equal(watched.settled, false);

  gate.resolve();
  await settle();
  assert.equal(watched.settled, true);
  await running;
});

test("waitUntil's promise resolves even when the flush rejects", async () => {
  const gate = deferred();
  const failed: number[][] = [];
  const { config, handOffs } = recordHandOffs<number>({
    flush: () => gate.promise,
    onFlushError: (_error, batch) => void failed.push(batch),
  });
  const buffer = new BatchBuffer<number>(config);
  const running = buffer.run();
  await buffer.add(1);
  buffer.close();
  await settle();
  const flushes = flushHandOffs(handOffs);
  assert.equal(flushes.length, 1);
  const watched = track(flushes[0].promise);

  gate.reject(new Error("backend down"));
  await settle();
  assert.equal(watched.settled, true);
  assert.equal(watched.rejected, false);
  assert.deepEqual(failed, [[1]]);
  await running;
});

test("waitUntil receives a resolving promise for a flush that throws synchronously", async () => {
  const failed: number[][] = [];
  const { config, handOffs } = recordHandOffs<number>({
    capacity: 2,
    flush: () => {
      throw new Error("backend down");
    },
    onFlushError: (_error, batch) => void failed.push(batch),
  });
  const buffer = new BatchBuffer<number>(config);
  const running = buffer.run();
  for (const item of [1, 2, 3]) await buffer.add(item);
  buffer.close();
  await running;
  assert.deepEqual(failed, [[1, 2], [3]]);
  assert.equal(flushHandOffs(handOffs).length, 2, "every flush started is handed to waitUntil");
  await Promise.all(handOffs.map((h) => h.promise));
});

test("a throwing waitUntil goes to onError and the flush still happens", async () => {
  const errors: unknown[] = [];
  const batches: number[][] = [];
  const boom = new Error("waitUntil failed");
  let calls = 0;
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    flush: (batch) => void batches.push(batch),
    waitUntil: () => {
      calls++;
      throw boom;
    },
    onError: (error) => void errors.push(error),
  });
  const running = buffer.run();
  for (const item of [1, 2, 3]) await buffer.add(item);
  buffer.close();
  await running;
  assert.deepEqual(batches, [[1, 2], [3]]);
  assert.equal(calls, 4, "two keep-alives (batches that opened) and two flushes");
  assert.deepEqual(errors, [boom, boom, boom, boom]);
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
  assert.equal(errors.length, 2, "the keep-alive and the flush");
  assert.equal(finished.settled, false, "run() still waits for the flush");
  gate.resolve();
  await running;
  assert.equal(delivered, true);
});
