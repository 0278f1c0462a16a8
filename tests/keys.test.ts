// Batches by key (issue 12, "2. Keys", points 1-7).
import assert from "node:assert/strict";
import {
  BatchBuffer,
  type BatchBufferConfig,
  BufferClosedError,
  type FlushContext,
  type FlushReason,
} from "../mod.ts";
import { test } from "./harness.ts";
import {
  type Clock,
  type Deferred,
  deferred,
  prng,
  settle,
  track,
  withFakeClock,
} from "./helpers.ts";

/** One call of a recorded flush. */
interface Call<T> {
  readonly batch: T[];
  readonly reason: FlushReason;
  readonly key: unknown;
  /** Date.now() when flush was called (fake under a fake clock). */
  readonly at: number;
  /** Settles this flush, when the recorder holds flushes. */
  readonly done: Deferred;
}

/**
 * A flush that records every call. `hold`: each call stays in flight until
 * the test resolves its `done`; otherwise it is synchronous. It also counts
 * flights by key, so a test can see two flights of one key overlap.
 */
function recorder<T>(hold: boolean, keyOf: (item: T) => unknown = () => undefined) {
  const calls: Call<T>[] = [];
  const flights = { now: 0, most: 0, sameKeyOverlaps: 0 };
  const inFlightByKey = new Map<unknown, number>();
  const flush = (batch: T[], context: FlushContext): void | Promise<void> => {
    const done = deferred();
    calls.push({
      batch: [...batch],
      reason: context.reason,
      key: context.key,
      at: Date.now(),
      done,
    });
    if (!hold) return;
    const key = keyOf(batch[0]);
    const before = inFlightByKey.get(key) ?? 0;
    if (before > 0) flights.sameKeyOverlaps++;
    inFlightByKey.set(key, before + 1);
    flights.now++;
    flights.most = Math.max(flights.most, flights.now);
    return done.promise.then(() => {
      inFlightByKey.set(key, inFlightByKey.get(key)! - 1);
      flights.now--;
    });
  };
  return { calls, flush, flights };
}

/** [key, batch, reason] of each call, for deepEqual. */
function view<T>(calls: readonly Call<T>[]): [unknown, T[], FlushReason][] {
  return calls.map((call) => [call.key, call.batch, call.reason]);
}

/** The items flushed under each key, in flush order. */
function byKey<T>(calls: readonly Call<T>[]): Map<unknown, T[]> {
  const map = new Map<unknown, T[]>();
  for (const call of calls) map.set(call.key, [...(map.get(call.key) ?? []), ...call.batch]);
  return map;
}

const firstChar = (item: string): string => item[0];

/** Resolves every held flush, again and again, until `running` settles. */
async function releaseAll<T>(
  calls: readonly Call<T>[],
  running: Promise<void>,
  clock?: Clock,
): Promise<void> {
  const finished = track(running);
  for (let round = 0; !finished.settled; round++) {
    assert.ok(round < 1000, "run() did not finish with every flush released");
    for (const call of calls) call.done.resolve();
    if (clock === undefined) await settle(1);
    else await clock.tickAsync(0);
  }
  await running;
}

// ------------------------------------------------------------ 1. the hooks

test("key is called exactly once per item, whether it is added, tried, or added in bulk", async () => {
  const keyCalls = new Map<string, number>();
  const delivered: string[] = [];
  const rejected: string[] = [];
  const buffer = new BatchBuffer<string>({
    capacity: 3,
    chanSize: 2,
    key: (item) => {
      keyCalls.set(item, (keyCalls.get(item) ?? 0) + 1);
      return item[0];
    },
    canAdd: (_batch, item) => !item.endsWith("x"),
    onReject: (item) => void rejected.push(item),
    flush: async (batch) => {
      if (batch.length % 2 === 0) await settle(1); // sometimes slow, so items queue
      delivered.push(...batch);
    },
  });
  const items = Array.from({ length: 36 }, (_, i) => `${"abc"[i % 3]}${i}${i % 7 ? "" : "x"}`);
  await buffer.add(items[0]); // before run(): waits in the channel
  const running = buffer.run();
  for (const item of items.slice(1, 12)) await buffer.add(item);
  for (const item of items.slice(12, 24)) if (!buffer.tryAdd(item)) await buffer.add(item);
  await buffer.addAll(items.slice(24, 30));
  await buffer.addAll(items.slice(30).values());
  buffer.close();
  await running;

  for (const item of items) assert.equal(keyCalls.get(item), 1, `key calls for ${item}`);
  assert.deepEqual([...delivered, ...rejected].sort(), [...items].sort());
  assert.deepEqual(rejected, items.filter((item) => item.endsWith("x")));
});

test("every batch holds items of one key, and FlushContext.key is that key", async () => {
  const random = prng(12);
  const keys = ["p", "q", "r", "s"];
  const items = Array.from({ length: 200 }, (_, i) => `${keys[Math.floor(random() * 4)]}${i}`);
  const { calls, flush } = recorder<string>(false);
  const buffer = new BatchBuffer<string>({ capacity: 5, chanSize: 3, key: firstChar, flush });
  const running = buffer.run();
  await buffer.addAll(items);
  buffer.close();
  await running;

  for (const call of calls) {
    assert.ok(call.batch.length > 0 && call.batch.length <= 5);
    for (const item of call.batch) {
      assert.equal(item[0], call.key, `${item} in ${call.key}'s batch`);
    }
  }
  const delivered = byKey(calls);
  for (const key of keys) {
    assert.deepEqual(delivered.get(key), items.filter((item) => item[0] === key), `key ${key}`);
  }
  const fullBatches = keys.reduce(
    (sum, key) => sum + Math.floor(items.filter((item) => item[0] === key).length / 5),
    0,
  );
  assert.equal(calls.filter((call) => call.reason === "full").length, fullBatches);
});

test("without a key hook FlushContext.key is undefined and one batch takes every item", async () => {
  const { calls, flush } = recorder<string>(false);
  const buffer = new BatchBuffer<string>({ capacity: 3, flush });
  const running = buffer.run();
  await buffer.add("a1");
  await buffer.add("b1");
  assert.equal(buffer.stats().openBatches, 1);
  await buffer.add("c1");
  assert.equal(buffer.stats().openBatches, 0);
  await buffer.add("a2");
  buffer.close();
  await running;
  assert.deepEqual(view(calls), [
    [undefined, ["a1", "b1", "c1"], "full"],
    [undefined, ["a2"], "close"],
  ]);
});

test("capacity, shouldFlush, willOverflow and canAdd apply to the item's own key's batch", async () => {
  const violations: string[] = [];
  /** The hooks must be given the item's own key's batch: checked, not thrown (the buffer catches). */
  const ownBatch = (hook: string, batch: readonly string[], key: string) => {
    for (const other of batch) {
      if (other[0] !== key) violations.push(`${hook}(${key}) got ${JSON.stringify(batch)}`);
    }
  };
  const { calls, flush } = recorder<string>(false);
  const buffer = new BatchBuffer<string>({
    capacity: 3,
    key: firstChar,
    // a's batches are full at 2 items; the others at capacity (3).
    shouldFlush: (batch) => {
      ownBatch("shouldFlush", batch, batch[0][0]);
      return batch.length >= (batch[0][0] === "a" ? 2 : 3);
    },
    willOverflow: (batch, item) => {
      ownBatch("willOverflow", batch, item[0]);
      return item.endsWith("!");
    },
    canAdd: (batch, item) => {
      ownBatch("canAdd", batch, item[0]);
      return !item.endsWith("x");
    },
    onReject: () => {},
    flush,
  });
  const running = buffer.run();
  for (const item of ["a1", "b1", "a2", "b2", "c1", "b3", "c2!", "bx", "c3", "a3", "b4"]) {
    await buffer.add(item);
  }
  assert.deepEqual(view(calls), [
    ["a", ["a1", "a2"], "full"],
    ["b", ["b1", "b2", "b3"], "full"],
    ["c", ["c1"], "overflow"],
  ]);
  buffer.close();
  await running;
  const closing = calls.slice(3).sort((x, y) => String(x.key).localeCompare(String(y.key)));
  assert.deepEqual(view(closing), [
    ["a", ["a3"], "close"],
    ["b", ["b4"], "close"],
    ["c", ["c2!", "c3"], "close"],
  ]);
  assert.deepEqual(violations, []);
});

test("maxBatchBytes applies to each key's batch alone", async () => {
  interface Sized {
    readonly key: string;
    readonly size: number;
  }
  const { calls, flush } = recorder<Sized>(false);
  const buffer = new BatchBuffer<Sized>({
    key: (item) => item.key,
    sizeOf: (item) => item.size,
    maxBatchBytes: 10,
    flush,
  });
  const running = buffer.run();
  const a6 = { key: "a", size: 6 };
  const b6 = { key: "b", size: 6 };
  const a4 = { key: "a", size: 4 };
  const b5 = { key: "b", size: 5 };
  for (const item of [a6, b6, a4, b5]) await buffer.add(item);
  assert.deepEqual(view(calls), [
    ["a", [a6, a4], "full"], // 6 + 4 reaches 10; b's 6 bytes do not count
    ["b", [b6], "overflow"], // 6 + 5 would pass 10
  ]);
  buffer.close();
  await running;
  assert.deepEqual(view(calls.slice(2)), [["b", [b5], "close"]]);
});

// ------------------------------------------------------- 2. order per key

test("with a key hook, a key's batches flush one at a time, in the order they were formed", async () => {
  const { calls, flush, flights } = recorder<string>(true, firstChar);
  const buffer = new BatchBuffer<string>({
    capacity: 1,
    maxConcurrentFlushes: 4,
    key: firstChar,
    flush,
  });
  const running = buffer.run();
  for (const item of ["a1", "a2", "a3"]) await buffer.add(item);
  await settle();
  assert.deepEqual(view(calls), [["a", ["a1"], "full"]]);
  assert.equal(buffer.stats().flushesInFlight, 1, "one flight although 4 are allowed");
  calls[0].done.resolve();
  await settle();
  assert.deepEqual(view(calls).slice(1), [["a", ["a2"], "full"]]);
  calls[1].done.resolve();
  await settle();
  assert.deepEqual(view(calls).slice(2), [["a", ["a3"], "full"]]);
  buffer.close();
  await releaseAll(calls, running);
  assert.equal(flights.sameKeyOverlaps, 0);
});

test("batches of different keys flush concurrently, up to maxConcurrentFlushes in all", async () => {
  const { calls, flush, flights } = recorder<string>(true, firstChar);
  const buffer = new BatchBuffer<string>({
    capacity: 1,
    maxConcurrentFlushes: 3,
    key: firstChar,
    flush,
  });
  const running = buffer.run();
  for (const item of ["a1", "b1", "c1", "d1"]) await buffer.add(item);
  await settle();
  assert.deepEqual(view(calls), [
    ["a", ["a1"], "full"],
    ["b", ["b1"], "full"],
    ["c", ["c1"], "full"],
  ]);
  assert.equal(buffer.stats().flushesInFlight, 3);
  assert.equal(buffer.itemsInChannel, 1, "with 3 flights in flight the run loop takes nothing");
  calls[1].done.resolve();
  await settle();
  assert.deepEqual(view(calls).slice(3), [["d", ["d1"], "full"]]);
  buffer.close();
  await releaseAll(calls, running);
  assert.equal(flights.most, 3);
});

test("without a key hook, consecutive batches are in flight together, as before", async () => {
  const { calls, flush, flights } = recorder<string>(true);
  const buffer = new BatchBuffer<string>({ capacity: 1, maxConcurrentFlushes: 3, flush });
  const running = buffer.run();
  for (const item of ["a1", "a2", "a3", "a4"]) await buffer.add(item);
  await settle();
  assert.deepEqual(view(calls), [
    [undefined, ["a1"], "full"],
    [undefined, ["a2"], "full"],
    [undefined, ["a3"], "full"],
  ]);
  buffer.close();
  await releaseAll(calls, running);
  assert.equal(flights.most, 3);
  assert.deepEqual(calls.map((call) => call.batch[0]), ["a1", "a2", "a3", "a4"]);
});

test("under random settling, no key ever has two flights and each key keeps its order", async () => {
  const random = prng(2024);
  const keys = ["a", "b", "c", "d", "e"];
  const items = Array.from({ length: 240 }, (_, i) => `${keys[Math.floor(random() * 5)]}${i}`);
  const { calls, flush, flights } = recorder<string>(true, firstChar);
  const buffer = new BatchBuffer<string>({
    capacity: 3,
    chanSize: 4,
    maxConcurrentFlushes: 3,
    maxOpenBatches: 3,
    key: firstChar,
    flush,
  });
  const running = buffer.run();
  void buffer.addAll(items).then(() => buffer.close());
  const finished = track(running);
  const released = new Set<Call<string>>();
  while (!finished.settled) {
    await settle(1);
    const stats = buffer.stats();
    assert.equal(stats.flushesInFlight, flights.now);
    assert.ok(flights.now <= 3, `${flights.now} flights`);
    assert.ok(stats.openBatches <= 3, `${stats.openBatches} open batches`);
    // Settle a random flight, so keys finish out of order.
    const open = calls.filter((call) => !released.has(call));
    if (open.length > 0) {
      const call = open[Math.floor(random() * open.length)];
      released.add(call);
      call.done.resolve();
    }
  }
  assert.equal(flights.sameKeyOverlaps, 0, "a key had two flights at once");
  assert.ok(flights.most >= 2, "keys never flushed concurrently");
  const delivered = byKey(calls);
  for (const key of keys) {
    assert.deepEqual(delivered.get(key), items.filter((item) => item[0] === key), `key ${key}`);
  }
});

// ------------------------------------------- 3. no head-of-line stall across keys

test("a key whose full batch waits for its flight holds up only the line behind its next item", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush, flights } = recorder<string>(true, firstChar);
    const buffer = new BatchBuffer<string>({
      capacity: 2,
      chanSize: 2,
      maxConcurrentFlushes: 4,
      flushInterval: 1000,
      key: firstChar,
      flush,
    });
    const running = buffer.run();
    // a1 a2: a's flight. a3 a4: a's next batch, full, waits for that flight.
    // b1 b2 flush at once. c1 opens c's batch. b3 b4: full, wait for b's flight.
    // a5 needs a's full batch gone, so the run loop stops at it; d1 queues behind.
    for (const item of ["a1", "a2", "a3", "a4", "b1", "b2", "c1", "b3", "b4", "a5", "d1"]) {
      await buffer.add(item);
    }
    await clock.tickAsync(0);
    assert.deepEqual(view(calls), [
      ["a", ["a1", "a2"], "full"],
      ["b", ["b1", "b2"], "full"],
    ]);
    assert.equal(buffer.itemsInChannel, 2, "a5 and d1 wait in the one line");
    const d2 = track(buffer.add("d2"));
    assert.equal(buffer.tryAdd("e1"), false);
    await clock.tickAsync(0);
    assert.equal(d2.settled, false, "the channel is full, so add() waits: the backpressure");

    calls[1].done.resolve(); // b's flight settles: b's waiting batch goes, line or no line
    await clock.tickAsync(0);
    assert.deepEqual(view(calls).slice(2), [["b", ["b3", "b4"], "full"]]);

    await clock.tickAsync(1000); // c's partial batch keeps its interval too
    assert.deepEqual(view(calls).slice(3), [["c", ["c1"], "interval"]]);
    assert.equal(calls[3].at, 1000);
    assert.equal(d2.settled, false);

    calls[0].done.resolve(); // a's flight settles: the line moves again
    await clock.tickAsync(0);
    assert.deepEqual(calls.slice(4).map((call) => [call.key, call.batch]), [
      ["a", ["a3", "a4"]],
      ["d", ["d1", "d2"]],
    ]);
    assert.ok(["full", "interval"].includes(calls[4].reason), `a3 a4 went out ${calls[4].reason}`);
    assert.equal(d2.settled, true);
    assert.equal(buffer.stats().flushesInFlight, 4);

    buffer.close();
    await releaseAll(calls, running, clock);
    assert.equal(flights.sameKeyOverlaps, 0);
    assert.deepEqual(byKey(calls).get("a"), ["a1", "a2", "a3", "a4", "a5"]);
  });
});

// --------------------------------------------------- 4. the interval per batch

test("each key's partial batch flushes flushInterval after its own first item", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = recorder<string>(false);
    const buffer = new BatchBuffer<string>({
      capacity: 10,
      flushInterval: 1000,
      key: firstChar,
      flush,
    });
    const running = buffer.run();
    let mostTimers = 0;
    for (const [at, item] of [[0, "a1"], [300, "b1"], [500, "a2"], [700, "c1"], [900, "b2"]]) {
      await clock.tickAsync((at as number) - clock.now);
      await buffer.add(item as string);
      mostTimers = Math.max(mostTimers, clock.countTimers());
    }
    await clock.tickAsync(1100 - clock.now);
    await buffer.add("a3"); // a's next batch, opened after its first one went
    for (let t = clock.now; t < 2200; t += 50) {
      await clock.tickAsync(50);
      mostTimers = Math.max(mostTimers, clock.countTimers());
    }
    assert.deepEqual(calls.map((call) => [call.key, call.batch, call.reason, call.at]), [
      ["a", ["a1", "a2"], "interval", 1000],
      ["b", ["b1", "b2"], "interval", 1300],
      ["c", ["c1"], "interval", 1700],
      ["a", ["a3"], "interval", 2100],
    ]);
    assert.equal(mostTimers, 1, "one pending timer for the earliest deadline, never one per key");
    assert.equal(clock.countTimers(), 0, "no timer once every batch is empty");
    buffer.close();
    await running;
  });
});

test("no item waits in a partial batch longer than flushInterval, whatever its key", async () => {
  await withFakeClock(async (clock) => {
    const random = prng(99);
    const addedAt = new Map<string, number>();
    const waits: number[] = [];
    const violations: string[] = [];
    let mostTimers = 0;
    const buffer = new BatchBuffer<string>({
      capacity: 4,
      flushInterval: 1000,
      key: firstChar,
      flush: (batch, { key }) => {
        for (const item of batch) {
          if (item[0] !== key) violations.push(`${item} flushed under ${String(key)}`);
          waits.push(clock.now - addedAt.get(item)!);
        }
      },
    });
    const running = buffer.run();
    for (let i = 0; i < 300; i++) {
      await clock.tickAsync(Math.floor(random() * 400));
      const item = `${"abcdefg"[Math.floor(random() * 7)]}${i}`;
      addedAt.set(item, clock.now);
      await buffer.add(item);
      mostTimers = Math.max(mostTimers, clock.countTimers());
    }
    await clock.tickAsync(1000);
    assert.equal(waits.length, 300, "every item flushed by then");
    assert.ok(Math.max(...waits) <= 1000, `longest wait ${Math.max(...waits)} ms`);
    assert.ok(waits.filter((wait) => wait === 1000).length > 0, "some batches went by interval");
    assert.equal(mostTimers, 1);
    assert.deepEqual(violations, []);
    buffer.close();
    await running;
  });
});

test("a key's batch whose interval passes during its key's flight goes right after that flight", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = recorder<string>(true, firstChar);
    const buffer = new BatchBuffer<string>({
      capacity: 2,
      maxConcurrentFlushes: 2,
      flushInterval: 1000,
      key: firstChar,
      flush,
    });
    const running = buffer.run();
    for (const item of ["a1", "a2", "a3"]) await buffer.add(item); // a1 a2 in flight, a3 waits
    await clock.tickAsync(100);
    await buffer.add("b1");
    await clock.tickAsync(900);
    assert.equal(calls.length, 1, "a3's interval passed, but a's flight is in progress");
    await clock.tickAsync(100);
    assert.deepEqual(calls.slice(1).map((call) => [call.key, call.batch, call.reason, call.at]), [
      ["b", ["b1"], "interval", 1100],
    ]);
    await clock.tickAsync(400);
    calls[0].done.resolve();
    await clock.tickAsync(0);
    assert.deepEqual(calls.slice(2).map((call) => [call.key, call.batch, call.reason, call.at]), [
      ["a", ["a3"], "interval", 1500],
    ]);
    buffer.close();
    await releaseAll(calls, running, clock);
  });
});

for (const withWaitUntil of [false, true]) {
  const timers = withWaitUntil ? "one timer per open batch" : "at most one timer";
  test(`${withWaitUntil ? "with" : "without"} waitUntil, keyed batches keep ${timers}, none when all are empty`, async () => {
    await withFakeClock(async (clock) => {
      const { calls, flush } = recorder<string>(false);
      const handed: Promise<unknown>[] = [];
      const config: BatchBufferConfig<string> = {
        capacity: 3,
        flushInterval: 1000,
        key: firstChar,
        flush,
      };
      if (withWaitUntil) config.waitUntil = (promise) => void handed.push(promise);
      const buffer = new BatchBuffer<string>(config);
      const running = buffer.run();
      const expectTimers = async (open: number, where: string) => {
        await clock.tickAsync(0);
        assert.equal(buffer.stats().openBatches, open, `open batches ${where}`);
        const expected = withWaitUntil ? open : Math.min(open, 1);
        assert.equal(clock.countTimers(), expected, `timers ${where}`);
      };
      const at = async (time: number, items: string[], open: number) => {
        await clock.tickAsync(time - clock.now);
        for (const item of items) await buffer.add(item);
        await expectTimers(open, `at ${time} ms after ${items.join(" ") || "nothing"}`);
      };
      await expectTimers(0, "before any item");
      await at(0, ["a1"], 1);
      await at(100, ["b1"], 2);
      await at(200, ["c1"], 3);
      await at(300, ["b2", "b3"], 2); // b full
      await at(400, ["d1"], 3);
      await at(1000, [], 2); // a by interval
      await at(1200, [], 1); // c
      await at(1400, [], 0); // d
      await at(1500, ["e1", "f1"], 2);
      await buffer.flush(); // both by manual flush
      await expectTimers(0, "after flush()");
      buffer.close();
      await running;
      assert.deepEqual(calls.map((call) => [call.key, call.reason]).slice(0, 4), [
        ["b", "full"],
        ["a", "interval"],
        ["c", "interval"],
        ["d", "interval"],
      ]);
      assert.equal(clock.countTimers(), 0);
      await Promise.all(handed);
    });
  });
}

test("no timer is pending while keyed flights are in progress and every batch is empty", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = recorder<string>(true, firstChar);
    const buffer = new BatchBuffer<string>({
      capacity: 2,
      maxConcurrentFlushes: 3,
      flushInterval: 1000,
      key: firstChar,
      flush,
    });
    const running = buffer.run();
    for (const item of ["a1", "b1", "a2", "c1", "b2", "c2"]) await buffer.add(item);
    await clock.tickAsync(0);
    assert.equal(calls.length, 3);
    assert.equal(buffer.stats().openBatches, 0);
    assert.equal(clock.countTimers(), 0);
    await clock.tickAsync(5000);
    assert.equal(calls.length, 3, "nothing to flush by interval");
    buffer.close();
    await releaseAll(calls, running, clock);
    assert.equal(clock.countTimers(), 0);
  });
});

// ------------------------------------------------------- 5. bounded keys

test("a new key beyond maxOpenBatches evicts the batch that opened first", async () => {
  const { calls, flush } = recorder<string>(false);
  const buffer = new BatchBuffer<string>({
    capacity: 10,
    maxOpenBatches: 2,
    key: firstChar,
    flush,
  });
  const running = buffer.run();
  const steps: [string, number][] = [["a1", 1], ["b1", 2], ["c1", 2], ["a2", 2], ["c2", 2]];
  for (const [item, open] of steps) {
    await buffer.add(item);
    assert.equal(buffer.stats().openBatches, open, `open batches after ${item}`);
  }
  assert.deepEqual(view(calls), [
    ["a", ["a1"], "evict"], // c1 needed a batch: a's opened first
    ["b", ["b1"], "evict"], // a2 needed one again: b's is now the oldest
  ]);
  await buffer.add("d1");
  assert.deepEqual(view(calls).slice(2), [["c", ["c1", "c2"], "evict"]]);
  buffer.close();
  await running;
  const closing = calls.slice(3).sort((x, y) => String(x.key).localeCompare(String(y.key)));
  assert.deepEqual(view(closing), [["a", ["a2"], "close"], ["d", ["d1"], "close"]]);
});

test("eviction picks the batch that opened first, not the key seen first", async () => {
  const { calls, flush } = recorder<string>(false);
  const buffer = new BatchBuffer<string>({
    capacity: 2,
    maxOpenBatches: 2,
    key: firstChar,
    flush,
  });
  const running = buffer.run();
  // a opens, b opens, a fills and goes, a opens again (after b), c needs a batch.
  for (const item of ["a1", "b1", "a2", "a3", "c1"]) await buffer.add(item);
  assert.deepEqual(view(calls), [
    ["a", ["a1", "a2"], "full"],
    ["b", ["b1"], "evict"],
  ]);
  buffer.close();
  await running;
});

test("maxOpenBatches defaults to 1000", async () => {
  const { calls, flush } = recorder<number>(false);
  const buffer = new BatchBuffer<number>({ key: (item) => item, flushInterval: Infinity, flush });
  const running = buffer.run();
  await buffer.addAll(Array.from({ length: 1000 }, (_, i) => i));
  assert.equal(calls.length, 0);
  assert.equal(buffer.stats().openBatches, 1000);
  await buffer.add(1000);
  assert.deepEqual(view(calls), [[0, [0], "evict"]]);
  assert.equal(buffer.stats().openBatches, 1000);
  buffer.close();
  await running;
  assert.equal(calls.length, 1001);
});

test("key must be a function and maxOpenBatches a positive integer", () => {
  for (const key of ["item.id", 1, {}, null]) {
    assert.throws(
      () => new BatchBuffer({ flush: () => {}, key: key as unknown as () => unknown }),
      (error: unknown) => error instanceof TypeError && /\bkey\b/.test(error.message),
      `key ${String(key)}`,
    );
  }
  for (const maxOpenBatches of [0, -1, 1.5, NaN, "2"]) {
    assert.throws(
      () =>
        new BatchBuffer({
          flush: () => {},
          key: firstChar,
          maxOpenBatches: maxOpenBatches as number,
        }),
      (error: unknown) => error instanceof RangeError && /maxOpenBatches/.test(error.message),
      `maxOpenBatches ${String(maxOpenBatches)}`,
    );
  }
});

// ------------------------------------------------- 6. flush(), close(), stats()

test("flush() flushes every key's partial batch and resolves once all have settled", async () => {
  const { calls, flush } = recorder<string>(true, firstChar);
  const buffer = new BatchBuffer<string>({ capacity: 5, key: firstChar, flush }); // one flight at a time
  const running = buffer.run();
  for (const item of ["a1", "b1", "c1", "a2"]) await buffer.add(item);
  const flushed = track(buffer.flush());
  for (let i = 0; i < 3; i++) {
    await settle();
    assert.equal(calls.length, i + 1, "the manual flushes go out one per free slot");
    assert.equal(flushed.settled, false);
    calls[i].done.resolve();
  }
  await settle();
  assert.equal(flushed.settled, true);
  const sorted = [...calls].sort((x, y) => String(x.key).localeCompare(String(y.key)));
  assert.deepEqual(view(sorted), [
    ["a", ["a1", "a2"], "manual"],
    ["b", ["b1"], "manual"],
    ["c", ["c1"], "manual"],
  ]);
  buffer.close();
  await running;
});

test("flush() waits for a key's flight before flushing that key's partial batch", async () => {
  const { calls, flush } = recorder<string>(true, firstChar);
  const buffer = new BatchBuffer<string>({
    capacity: 2,
    maxConcurrentFlushes: 3,
    key: firstChar,
    flush,
  });
  const running = buffer.run();
  for (const item of ["a1", "a2", "a3", "b1"]) await buffer.add(item);
  const flushed = track(buffer.flush());
  await settle();
  assert.deepEqual(view(calls), [
    ["a", ["a1", "a2"], "full"],
    ["b", ["b1"], "manual"],
  ]);
  calls[1].done.resolve();
  await settle();
  assert.equal(flushed.settled, false, "a3 has not gone out yet");
  calls[0].done.resolve();
  await settle();
  assert.deepEqual(view(calls).slice(2), [["a", ["a3"], "manual"]]);
  assert.equal(flushed.settled, false, "a3's flush is in flight");
  calls[2].done.resolve();
  await settle();
  assert.equal(flushed.settled, true);
  buffer.close();
  await running;
});

test("close() drains the channel and flushes every key's last batch", async () => {
  const { calls, flush } = recorder<string>(false);
  const buffer = new BatchBuffer<string>({ capacity: 3, chanSize: 20, key: firstChar, flush });
  const items = Array.from({ length: 11 }, (_, i) => `${"abc"[i % 3]}${i}`);
  await buffer.addAll(items); // all wait in the channel: run() has not started
  buffer.close();
  await assert.rejects(buffer.add("a99"), BufferClosedError);
  await buffer.run();
  const full = calls.filter((call) => call.reason === "full");
  const closing = calls.filter((call) => call.reason === "close");
  assert.deepEqual(full.map((call) => call.key).sort(), ["a", "b", "c"]);
  assert.deepEqual(
    closing.map((call) => [call.key, call.batch]).sort(),
    [["a", ["a9"]], ["b", ["b10"]]],
  );
  assert.equal(calls.length, 5);
  const delivered = byKey(calls);
  for (const key of ["a", "b", "c"]) {
    assert.deepEqual(delivered.get(key), items.filter((item) => item[0] === key));
  }
  assert.equal(buffer.stats().openBatches, 0);
});

test("stats() keeps its invariant over all keys and counts the open batches", async () => {
  const random = prng(5);
  const { calls, flush } = recorder<string>(true, firstChar);
  const buffer = new BatchBuffer<string>({
    capacity: 3,
    chanSize: 4,
    maxConcurrentFlushes: 2,
    maxOpenBatches: 4,
    key: firstChar,
    canAdd: (_batch, item) => !item.endsWith("7"),
    onReject: () => {},
    flush: (batch, context) => {
      if (batch[0].endsWith("3")) throw new Error("fails at once");
      return flush(batch, context);
    },
    onFlushError: () => {},
  });
  const items = Array.from({ length: 150 }, (_, i) => `${"abcdef"[Math.floor(random() * 6)]}${i}`);
  const running = buffer.run();
  void buffer.addAll(items).then(() => buffer.close());
  const finished = track(running);
  const released = new Set<Call<string>>();
  let mostOpen = 0;
  while (!finished.settled) {
    await settle(1);
    const s = buffer.stats();
    assert.equal(
      s.added,
      s.rejected + s.flushedItems + s.failedItems + s.inFlightItems + s.itemsInChannel +
        s.itemsInBatch,
      JSON.stringify(s),
    );
    assert.ok(s.openBatches <= 4 && s.openBatches <= s.itemsInBatch, JSON.stringify(s));
    mostOpen = Math.max(mostOpen, s.openBatches);
    const open = calls.filter((call) => !released.has(call));
    if (open.length > 0) {
      const call = open[Math.floor(random() * open.length)];
      released.add(call);
      call.done.resolve();
    }
  }
  const s = buffer.stats();
  assert.equal(s.added, items.length);
  assert.equal(s.rejected, items.filter((item) => item.endsWith("7")).length);
  assert.equal(s.flushedItems + s.failedItems + s.rejected, items.length);
  assert.ok(s.failedItems > 0);
  assert.ok(mostOpen > 1, "several keys had batches open at once");
  assert.deepEqual([s.openBatches, s.itemsInBatch, s.inFlightItems, s.itemsInChannel], [
    0,
    0,
    0,
    0,
  ]);
});

// ------------------------------------------------------ 7. a throwing key

test("an item whose key hook throws goes under the key undefined, and the error to onError", async () => {
  const errors: unknown[] = [];
  const boom = new Error("no key");
  const { calls, flush } = recorder<string>(false);
  const buffer = new BatchBuffer<string>({
    capacity: 3,
    key: (item) => {
      if (item.startsWith("!")) throw boom;
      return item === "u" ? undefined : item[0];
    },
    onError: (error) => void errors.push(error),
    flush,
  });
  const running = buffer.run();
  for (const item of ["a1", "!x", "u", "a2", "!y"]) await buffer.add(item);
  assert.deepEqual(view(calls), [[undefined, ["!x", "u", "!y"], "full"]]);
  buffer.close();
  await running;
  assert.deepEqual(view(calls).slice(1), [["a", ["a1", "a2"], "close"]]);
  assert.deepEqual(errors, [boom, boom]);
  assert.equal(buffer.stats().flushedItems, 5);
});

// ---------------------------------------------- keys compare by SameValueZero

test("keys compare like Map keys: NaN is NaN, -0 is 0, objects by identity, '1' is not 1", async () => {
  interface Keyed {
    readonly name: string;
    readonly key: unknown;
  }
  const shared = { tenant: "t" };
  const items: Keyed[] = [
    { name: "nan1", key: NaN },
    { name: "zero", key: 0 },
    { name: "obj1", key: shared },
    { name: "fresh1", key: { tenant: "t" } },
    { name: "one", key: 1 },
    { name: "nan2", key: NaN },
    { name: "minusZero", key: -0 },
    { name: "obj2", key: shared },
    { name: "fresh2", key: { tenant: "t" } },
    { name: "oneString", key: "1" },
  ];
  const { calls, flush } = recorder<Keyed>(false);
  const buffer = new BatchBuffer<Keyed>({ capacity: 10, key: (item) => item.key, flush });
  const running = buffer.run();
  await buffer.addAll(items);
  assert.equal(buffer.stats().openBatches, 7);
  buffer.close();
  await running;
  const groups = calls.map((call) => call.batch.map((item) => item.name).join(" ")).sort();
  assert.deepEqual(groups, [
    "fresh1",
    "fresh2",
    "nan1 nan2",
    "obj1 obj2",
    "one",
    "oneString",
    "zero minusZero",
  ]);
  for (const call of calls) {
    const first = call.batch[0].key;
    if (Number.isNaN(first)) assert.ok(Number.isNaN(call.key));
    else if (first === 0) assert.ok(call.key === 0, "0 or -0");
    else assert.equal(call.key, first, "the key itself, compared by identity");
  }
});
