// Issue 13, point 4: a batch waiting to retry keeps its flush slot, so with
// one flush at a time the run loop takes nothing, the channel fills, add()
// waits and batches still go out in the order they were formed. Timers exist
// only while something waits.
import assert from "node:assert/strict";
import { BatchBuffer } from "../mod.ts";
import { test } from "./harness.ts";
import { deferred, prng, track, withFakeClock } from "./helpers.ts";
import { drive, EXACT, fail, recordTries } from "./delivery_helpers.ts";

test("a batch waiting to retry keeps its slot: the run loop takes nothing, the channel fills, add() waits", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>((batch, t) =>
      t.attempt === 1 && batch[0] === 1 ? fail("503") : undefined
    );
    const buffer = new BatchBuffer<number>({
      capacity: 2,
      chanSize: 2,
      flushInterval: Infinity,
      retry: { ...EXACT, initialDelay: 1_000 },
      flush,
    });
    const running = buffer.run();
    for (const item of [1, 2]) await buffer.add(item); // fails, waits 1000 ms
    for (const item of [3, 4]) await buffer.add(item); // into the channel
    const fifth = track(buffer.add(5));
    await clock.tickAsync(999);
    let stats = buffer.stats();
    assert.equal(fifth.settled, false, "add() waits for room");
    assert.equal(buffer.tryAdd(6), false, "tryAdd() finds no room");
    assert.deepEqual(
      [stats.flushesInFlight, stats.inFlightItems, stats.itemsInChannel, stats.itemsInBatch],
      [1, 2, 2, 0],
      "the run loop took nothing while the batch backs off",
    );
    assert.equal(tries.length, 1);

    await clock.tickAsync(1);
    assert.equal(fifth.settled, true, "the retry succeeded, so the loop moved on");
    stats = buffer.stats();
    assert.deepEqual([stats.itemsInChannel, stats.itemsInBatch], [0, 1]);
    buffer.close();
    await drive(clock, running);
    assert.deepEqual(tries.map((t) => [t.batch, t.attempt]), [
      [[1, 2], 1],
      [[1, 2], 2],
      [[3, 4], 1],
      [[5], 1],
    ]);
  }));

test("with one flush at a time, batches are delivered in the order they were formed, however often each is retried", () =>
  withFakeClock(async (clock) => {
    const random = prng(13);
    const failuresPerBatch = new Map<number, number>();
    const delivered: number[][] = [];
    const { tries, flush } = recordTries<number>((batch, t) => {
      const first = batch[0];
      if (!failuresPerBatch.has(first)) failuresPerBatch.set(first, Math.floor(random() * 4));
      if (t.attempt <= failuresPerBatch.get(first)!) {
        // Fail in different ways: whole batch, or all but the first item.
        if (t.attempt % 2 === 1) fail(`batch ${first} try ${t.attempt}`);
        delivered.push(batch.slice(0, 1));
        return Promise.resolve({ retry: batch.slice(1), error: new Error("partial") });
      }
      delivered.push([...batch]);
    });
    const buffer = new BatchBuffer<number>({
      capacity: 3,
      chanSize: 4,
      retry: { ...EXACT, attempts: 10 },
      flush,
    });
    const running = buffer.run();
    const items = Array.from({ length: 30 }, (_, i) => i);
    const adding = buffer.addAll(items).then(() => buffer.close());
    await drive(clock, running);
    await adding;
    assert.ok(tries.length > 10, "some batches were retried");
    assert.deepEqual(delivered.flat(), items, "delivered in the order added");
    // No try of a later batch starts before an earlier batch is done.
    const firstOf = tries.map((t) => items.indexOf(t.batch[0]));
    assert.deepEqual(firstOf, firstOf.toSorted((a, b) => a - b));
  }));

test("with two flushes at a time, a batch backing off holds one slot and the other keeps flushing", () =>
  withFakeClock(async (clock) => {
    const gate = deferred();
    const { tries, flush } = recordTries<number>((batch, t) => {
      if (batch[0] === 1 && t.attempt === 1) fail("down");
      if (batch[0] === 2) return gate.promise;
    });
    const buffer = new BatchBuffer<number>({
      capacity: 1,
      chanSize: 1,
      maxConcurrentFlushes: 2,
      retry: { ...EXACT, initialDelay: 1_000 },
      flush,
    });
    const running = buffer.run();
    await buffer.add(1); // backs off in slot 1
    await buffer.add(2); // in flight in slot 2
    await buffer.add(3); // the channel
    const fourth = track(buffer.add(4));
    await clock.tickAsync(500);
    assert.equal(buffer.stats().flushesInFlight, 2);
    assert.equal(fourth.settled, false, "both slots are taken");
    gate.resolve();
    await clock.tickAsync(0);
    assert.equal(fourth.settled, true, "slot 2 freed and took item 3");
    await clock.tickAsync(500);
    buffer.close();
    await drive(clock, running);
    assert.deepEqual(tries.map((t) => [t.batch[0], t.attempt, t.at]), [
      [1, 1, 0],
      [2, 1, 0],
      [3, 1, 500],
      [4, 1, 500],
      [1, 2, 1_000],
    ]);
  }));

test("no timer is pending while nothing waits, with retry and flushTimeout configured", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>((batch, t) =>
      t.attempt === 1 && batch[0] === 1
        ? fail("once")
        : new Promise<void>((resolve) => setTimeout(resolve, 5))
    );
    const buffer = new BatchBuffer<number>({
      capacity: 2,
      flushInterval: 1_000,
      flushTimeout: 10_000,
      retry: EXACT,
      flush,
    });
    const running = buffer.run();
    assert.equal(clock.countTimers(), 0, "idle before any item");
    for (const item of [1, 2]) await buffer.add(item);
    await clock.tickAsync(0);
    assert.ok(clock.countTimers() > 0, "the retry wait is pending");
    await clock.tickAsync(100 + 5);
    assert.equal(tries.length, 2);
    await clock.tickAsync(0);
    assert.equal(clock.countTimers(), 0, "delivered: no retry wait, no flushTimeout, no interval");
    await buffer.add(3);
    await drive(clock, buffer.flush(), "flush()");
    assert.equal(clock.countTimers(), 0, "idle again after a flush");
    buffer.close();
    await drive(clock, running);
    assert.equal(clock.countTimers(), 0);
  }));

test("no timer is left once run() resolves, after retries, give-ups and timeouts", () =>
  withFakeClock(async (clock) => {
    const { flush } = recordTries<number>((batch, t) => {
      if (batch[0] % 3 === 0) return new Promise(() => {}); // hangs past flushTimeout
      if (batch[0] % 3 === 1 && t.attempt < 3) fail("retried");
      if (batch[0] % 3 === 2) fail("never works");
    });
    const buffer = new BatchBuffer<number>({
      capacity: 1,
      chanSize: 10,
      flushTimeout: 50,
      retry: { ...EXACT, attempts: 3 },
      flush,
      onFlushError: () => {},
    });
    const running = buffer.run();
    for (let item = 0; item < 9; item++) await buffer.add(item);
    buffer.close();
    await drive(clock, running);
    assert.equal(clock.countTimers(), 0);
    const stats = buffer.stats();
    assert.equal(stats.flushedItems, 3);
    assert.equal(stats.failedItems, 6);
  }));
