// Issue 13, point 9: stats() keeps its invariant at every moment with retries
// (an item waiting to retry counts in inFlightItems); `retries` counts every
// try after the first; items and batches are counted once, at their final
// outcome.
import assert from "node:assert/strict";
import { BatchBuffer } from "../mod.ts";
import { test } from "./harness.ts";
import { prng, withFakeClock } from "./helpers.ts";
import {
  assertInvariant,
  drive,
  EXACT,
  fail,
  guarded,
  recordTries,
  runThrough,
} from "./delivery_helpers.ts";

test("stats() starts with retries at 0", async () => {
  const buffer = new BatchBuffer<number>({ retry: EXACT, flush: () => {} });
  assert.deepEqual(buffer.stats(), {
    added: 0,
    rejected: 0,
    flushedItems: 0,
    failedItems: 0,
    inFlightItems: 0,
    itemsInChannel: 0,
    itemsInBatch: 0,
    flushes: 0,
    failedFlushes: 0,
    flushesInFlight: 0,
    retries: 0,
    openBatches: 0,
    bufferedBytes: 0,
  });
  await buffer[Symbol.asyncDispose]();
});

test("an item waiting to retry counts in inFlightItems, and its batch in flushesInFlight", () =>
  withFakeClock(async (clock) => {
    const { flush } = recordTries<number>((
      _batch,
      t,
    ) => (t.attempt < 3 ? fail("again") : undefined));
    const buffer = new BatchBuffer<number>({ capacity: 3, retry: EXACT, flush });
    const running = buffer.run();
    for (const item of [1, 2, 3]) await buffer.add(item);
    await clock.tickAsync(50);
    let stats = buffer.stats();
    assertInvariant(stats, "waiting for try 2");
    assert.deepEqual(
      [stats.inFlightItems, stats.flushesInFlight, stats.flushedItems, stats.failedItems],
      [3, 1, 0, 0],
    );
    await clock.tickAsync(100); // try 2 failed at 100, waiting for try 3 at 300
    stats = buffer.stats();
    assertInvariant(stats, "waiting for try 3");
    assert.deepEqual([stats.inFlightItems, stats.flushesInFlight], [3, 1]);
    await clock.tickAsync(150);
    stats = buffer.stats();
    assertInvariant(stats, "delivered");
    assert.deepEqual(
      [stats.inFlightItems, stats.flushesInFlight, stats.flushedItems, stats.flushes],
      [0, 0, 3, 1],
    );
    buffer.close();
    await drive(clock, running);
  }));

test("after a partial outcome, the delivered items count as flushed at once and the retried ones stay in flight", () =>
  withFakeClock(async (clock) => {
    const { flush } = recordTries<number>((batch, t) =>
      t.attempt === 1 ? { retry: batch.slice(3) } : undefined
    );
    const buffer = new BatchBuffer<number>({ capacity: 5, retry: EXACT, flush });
    const running = buffer.run();
    for (let item = 1; item <= 5; item++) await buffer.add(item);
    await clock.tickAsync(50);
    let stats = buffer.stats();
    assertInvariant(stats, "waiting to retry [4, 5]");
    assert.deepEqual(
      [stats.flushedItems, stats.inFlightItems, stats.flushesInFlight, stats.flushes],
      [3, 2, 1, 0],
      "the batch is not done until its last items are",
    );
    await clock.tickAsync(50);
    stats = buffer.stats();
    assertInvariant(stats, "delivered");
    assert.deepEqual([stats.flushedItems, stats.inFlightItems, stats.flushes], [5, 0, 1]);
    buffer.close();
    await drive(clock, running);
  }));

test("retries counts every try after the first, over all batches", () =>
  withFakeClock(async (clock) => {
    // Batch [1] takes 3 tries, [2] one, [3] two: 3 retries in all.
    const failuresOf = new Map([[1, 2], [2, 0], [3, 1]]);
    const { tries, flush } = recordTries<number>((batch, t) =>
      t.attempt <= failuresOf.get(batch[0])! ? fail("again") : undefined
    );
    const buffer = await runThrough<number>(clock, {
      capacity: 1,
      chanSize: 5,
      retry: EXACT,
      flush,
    }, [1, 2, 3]);
    assert.equal(tries.length, 6);
    assert.equal(buffer.stats().retries, 3);
  }));

test("flushes and failedFlushes count each batch once, at its final outcome", () =>
  withFakeClock(async (clock) => {
    const { flush } = recordTries<number>((batch, t) => {
      if (batch[0] === 1 && t.attempt < 3) fail("retried, then delivered");
      if (batch[0] === 4) return { retry: batch.slice(1) }; // [5, 6] fail every try
      if (batch[0] === 5) return { retry: batch };
      if (batch[0] === 7) fail("never delivered");
    });
    const buffer = new BatchBuffer<number>({
      capacity: 3,
      chanSize: 9,
      retry: { ...EXACT, attempts: 3 },
      flush,
      onFlushError: () => {},
    });
    const running = buffer.run();
    for (let item = 1; item <= 9; item++) await buffer.add(item);
    buffer.close();
    await drive(clock, running);
    const stats = buffer.stats();
    assert.equal(stats.flushes, 1, "[1, 2, 3] was delivered, after 2 retries");
    assert.equal(stats.failedFlushes, 2, "[4, 5, 6] partly and [7, 8, 9] wholly failed");
    assert.deepEqual([stats.flushedItems, stats.failedItems], [4, 5]);
    assert.equal(stats.retries, 6);
    assertInvariant(stats, "at the end");
  }));

test("the invariant holds inside every try, every onFlushError and after every timer, with retries, timeouts and outcomes", () =>
  withFakeClock(async (clock) => {
    const random = prng(2026);
    const violations: unknown[] = [];
    const under: { buffer?: BatchBuffer<number> } = {};
    const check = (where: string) =>
      guarded(violations, () => assertInvariant(under.buffer!.stats(), where));
    const { tries, flush } = recordTries<number>((batch, t) => {
      check(`inside try ${t.attempt} of [${batch}]`);
      const roll = random();
      if (roll < 0.2) fail("throws");
      if (roll < 0.3) return Promise.reject(new Error("rejects"));
      if (roll < 0.5) {
        return { retry: batch.filter(() => random() < 0.5), error: new Error("some") };
      }
      if (roll < 0.6) return new Promise(() => {}); // hangs past flushTimeout
      if (roll < 0.7) {
        return new Promise((resolve) => setTimeout(resolve, 1 + Math.floor(random() * 60)));
      }
    });
    const buffer = under.buffer = new BatchBuffer<number>({
      capacity: 3,
      chanSize: 4,
      maxConcurrentFlushes: 2,
      flushInterval: 25,
      flushTimeout: 40,
      retry: { attempts: 4, initialDelay: 10, maxDelay: 50 },
      flush,
      onFlushError: () => check("inside onFlushError"),
    });
    const running = buffer.run();
    const adding = (async () => {
      for (let item = 0; item < 60; item++) {
        await buffer.add(item);
        check(`after add(${item})`);
      }
      buffer.close();
    })();
    await clock.tickAsync(0);
    for (let i = 0; i < 10_000 && clock.countTimers() > 0; i++) {
      await clock.nextAsync();
      check(`at ${clock.now} ms`);
    }
    await drive(clock, running);
    await adding;
    assert.deepEqual(violations, []);
    const stats = buffer.stats();
    assert.ok(
      stats.retries > 0 && stats.failedItems > 0 && stats.flushedItems > 0,
      JSON.stringify(stats),
    );
    assert.equal(stats.flushedItems + stats.failedItems, 60);
    assert.equal(stats.retries, tries.filter((t) => t.attempt > 1).length);
  }));
