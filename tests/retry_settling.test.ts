// Issue 13, point 10: flush(), run(), dispose and the promise handed to
// waitUntil resolve only after every retry of the batches they wait for has
// ended, in a delivery or in onFlushError.
import assert from "node:assert/strict";
import { BatchBuffer } from "../mod.ts";
import { test } from "./harness.ts";
import { track, withFakeClock } from "./helpers.ts";
import {
  drive,
  EXACT,
  fail,
  failFirstTry,
  recordFailures,
  recordTries,
} from "./delivery_helpers.ts";

test("flush() resolves only once the retry of its batch has succeeded", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>(failFirstTry);
    const buffer = new BatchBuffer<number>({ flushInterval: Infinity, retry: EXACT, flush });
    const running = buffer.run();
    await buffer.add(1);
    const flushed = track(buffer.flush());
    await clock.tickAsync(99);
    assert.equal(tries.length, 1);
    assert.equal(flushed.settled, false, "the batch still waits to retry");
    await clock.tickAsync(1);
    assert.equal(tries.length, 2);
    assert.equal(flushed.settled, true);
    assert.equal(flushed.rejected, false);
    buffer.close();
    await drive(clock, running);
  }));

test("flush() resolves only once the retries have ended in onFlushError", () =>
  withFakeClock(async (clock) => {
    const { flush } = recordTries<number>(() => fail("down"));
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = new BatchBuffer<number>({
      flushInterval: Infinity,
      retry: { ...EXACT, attempts: 3 },
      flush,
      onFlushError,
    });
    const running = buffer.run();
    await buffer.add(1);
    const flushed = track(buffer.flush());
    await clock.tickAsync(299);
    assert.equal(flushed.settled, false);
    await clock.tickAsync(1); // the third try, then give up
    assert.equal(failures.length, 1);
    assert.equal(flushed.settled, true);
    assert.equal(flushed.rejected, false, "flush() resolves whatever the outcome");
    buffer.close();
    await drive(clock, running);
  }));

test("flush() called while a batch backs off waits for that batch's retry", () =>
  withFakeClock(async (clock) => {
    const { flush } = recordTries<number>(failFirstTry);
    const buffer = new BatchBuffer<number>({ capacity: 1, retry: EXACT, flush });
    const running = buffer.run();
    await buffer.add(1); // full: fails, backs off
    await clock.tickAsync(50);
    const flushed = track(buffer.flush());
    await clock.tickAsync(49);
    assert.equal(flushed.settled, false, "item 1 has not been through a successful try yet");
    await clock.tickAsync(1);
    assert.equal(flushed.settled, true);
    buffer.close();
    await drive(clock, running);
  }));

test("flush() after an outcome waits for the retry of the outcome's items only", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>((batch, t) =>
      t.attempt === 1 ? { retry: batch.slice(1) } : undefined
    );
    const buffer = new BatchBuffer<number>({ capacity: 10, retry: EXACT, flush });
    const running = buffer.run();
    for (const item of [1, 2]) await buffer.add(item);
    const flushed = track(buffer.flush());
    await clock.tickAsync(99);
    assert.equal(flushed.settled, false);
    await clock.tickAsync(1);
    assert.deepEqual(tries.map((t) => t.batch), [[1, 2], [2]]);
    assert.equal(flushed.settled, true);
    buffer.close();
    await drive(clock, running);
  }));

test("run() resolves only after every retry has ended", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>((
      _batch,
      t,
    ) => (t.attempt < 3 ? fail("again") : undefined));
    const buffer = new BatchBuffer<number>({ capacity: 2, retry: EXACT, flush });
    const running = buffer.run();
    for (const item of [1, 2, 3]) await buffer.add(item);
    buffer.close();
    const finished = track(running);
    // [1, 2] tries at 0, 100, 300; then [3] (close) at 300, 400, 600.
    await clock.tickAsync(599);
    assert.equal(finished.settled, false);
    await clock.tickAsync(1);
    assert.equal(finished.settled, true);
    assert.deepEqual(tries.map((t) => [t.batch, t.at]), [
      [[1, 2], 0],
      [[1, 2], 100],
      [[1, 2], 300],
      [[3], 300],
      [[3], 400],
      [[3], 600],
    ]);
  }));

test("dispose resolves only after every retry has ended", () =>
  withFakeClock(async (clock) => {
    const { flush } = recordTries<number>(failFirstTry);
    const buffer = new BatchBuffer<number>({ retry: EXACT, flush });
    void buffer.run();
    await buffer.add(1);
    const disposed = track(buffer[Symbol.asyncDispose]());
    await clock.tickAsync(99);
    assert.equal(disposed.settled, false);
    await clock.tickAsync(1);
    assert.equal(disposed.settled, true);
    assert.equal(buffer.stats().flushedItems, 1);
  }));

test("dispose without run() retries too, and resolves after the last try", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>(failFirstTry);
    const buffer = new BatchBuffer<number>({ retry: EXACT, flush });
    await buffer.add(1);
    const disposed = track(buffer[Symbol.asyncDispose]());
    await clock.tickAsync(99);
    assert.equal(disposed.settled, false);
    await clock.tickAsync(1);
    assert.equal(disposed.settled, true);
    assert.deepEqual(tries.map((t) => [t.reason, t.attempt]), [["close", 1], ["close", 2]]);
  }));

test("the promises handed to waitUntil settle only after the batch's last try", () =>
  withFakeClock(async (clock) => {
    const handed: { settled: boolean; rejected: boolean }[] = [];
    const { flush } = recordTries<number>((
      _batch,
      t,
    ) => (t.attempt < 3 ? fail("again") : undefined));
    const buffer = new BatchBuffer<number>({
      retry: EXACT,
      flush,
      waitUntil: (promise) => void handed.push(track(promise)),
    });
    const running = buffer.run();
    await buffer.add(1);
    void buffer.flush();
    await clock.tickAsync(299);
    assert.ok(handed.length > 0, "waitUntil got a promise");
    assert.ok(handed.some((h) => !h.settled), "something still keeps the isolate alive");
    await clock.tickAsync(1);
    assert.ok(handed.every((h) => h.settled && !h.rejected), "all fulfilled after the third try");
    buffer.close();
    await drive(clock, running);
  }));
