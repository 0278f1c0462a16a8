// Issue 13, point 6: with flushTimeout, each try's context.signal aborts after
// flushTimeout ms (and when the run signal aborts); a try not settled by then
// fails with a TimeoutError DOMException and frees its slot; its late result
// is ignored and counted nowhere twice.
import assert from "node:assert/strict";
import { BatchBuffer } from "../mod.ts";
import { test } from "./harness.ts";
import { track, withFakeClock } from "./helpers.ts";
import {
  assertInvariant,
  drive,
  EXACT,
  recordFailures,
  recordTries,
  runThrough,
} from "./delivery_helpers.ts";

const hang = (): Promise<never> => new Promise<never>(() => {});
const after = <T>(ms: number, value: T): Promise<T> =>
  new Promise((resolve) => setTimeout(() => resolve(value), ms));
const rejectAfter = (ms: number, error: unknown): Promise<never> =>
  new Promise((_, reject) => setTimeout(() => reject(error), ms));

function assertTimeoutError(error: unknown): void {
  assert.ok(error instanceof DOMException, `expected a DOMException, got ${error}`);
  assert.equal(error.name, "TimeoutError");
}

test("a try's context.signal aborts after flushTimeout ms, and the try fails with a TimeoutError", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>(hang);
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = new BatchBuffer<number>({
      flushInterval: Infinity,
      flushTimeout: 50,
      flush,
      onFlushError,
    });
    const running = buffer.run();
    await buffer.add(1);
    void buffer.flush();
    await clock.tickAsync(49);
    assert.equal(tries[0].signal.aborted, false);
    assert.equal(failures.length, 0);
    await clock.tickAsync(1);
    assert.equal(tries[0].signal.aborted, true);
    assertTimeoutError(tries[0].signal.reason);
    assert.equal(failures.length, 1);
    assertTimeoutError(failures[0].error);
    assert.deepEqual([failures[0].batch, failures[0].at], [[1], 50]);
    buffer.close();
    await drive(clock, running);
    assert.deepEqual([buffer.stats().failedItems, buffer.stats().inFlightItems], [1, 0]);
  }));

test("a timed-out try frees its slot although its promise never settles", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>((batch) => (batch[0] === 1 ? hang() : undefined));
    const buffer = new BatchBuffer<number>({
      capacity: 1,
      flushTimeout: 50,
      flush,
      onFlushError: () => {},
    });
    const running = buffer.run();
    await buffer.add(1);
    await buffer.add(2); // waits in the channel behind the hung flush
    await clock.tickAsync(49);
    assert.equal(tries.length, 1);
    await clock.tickAsync(1);
    assert.deepEqual(tries.map((t) => [t.batch, t.at]), [[[1], 0], [[2], 50]]);
    buffer.close();
    await drive(clock, running);
    assert.equal(clock.countTimers(), 0);
  }));

test("each try gets its own flushTimeout, and a timed-out try is retried after its wait", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>((
      _batch,
      t,
    ) => (t.attempt < 3 ? hang() : undefined));
    const buffer = await runThrough<number>(clock, {
      flushInterval: Infinity,
      flushTimeout: 50,
      retry: EXACT,
      flush,
    }, [1]);
    // Try 1 times out at 50, waits 100; try 2 at 150 times out at 200, waits 200.
    assert.deepEqual(tries.map((t) => [t.attempt, t.at]), [[1, 0], [2, 150], [3, 400]]);
    assert.notEqual(tries[0].signal, tries[1].signal, "a fresh signal per try");
    assert.equal(tries[2].signal.aborted, false, "the successful try's signal never aborted");
    assert.deepEqual([buffer.stats().flushedItems, buffer.stats().retries], [1, 2]);
  }));

test("the late success of a timed-out try is ignored; the item is counted once, by its retry", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>((_batch, t) =>
      t.attempt === 1 ? after(80, undefined) : undefined
    );
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = new BatchBuffer<number>({
      flushInterval: Infinity,
      flushTimeout: 50,
      retry: EXACT,
      flush,
      onFlushError,
    });
    const running = buffer.run();
    await buffer.add(1);
    void buffer.flush();
    await clock.tickAsync(80); // timed out at 50; its late success comes at 80
    let stats = buffer.stats();
    assert.deepEqual([stats.flushedItems, stats.inFlightItems, stats.flushes], [0, 1, 0]);
    assertInvariant(stats, "after the late success");
    await clock.tickAsync(70); // the retry at 150
    buffer.close();
    await drive(clock, running);
    assert.equal(tries.length, 2);
    assert.deepEqual(failures, []);
    stats = buffer.stats();
    assert.deepEqual(
      [stats.flushedItems, stats.failedItems, stats.flushes, stats.failedFlushes, stats.retries],
      [1, 0, 1, 0, 1],
    );
  }));

test("without retry, a timed-out try goes to onFlushError once and its late success changes nothing", () =>
  withFakeClock(async (clock) => {
    const reported: unknown[] = [];
    const { flush } = recordTries<number>(() => after(80, undefined));
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = await runThrough<number>(clock, {
      flushTimeout: 50,
      flush,
      onFlushError,
      onError: (error) => void reported.push(error),
    }, [1]);
    await clock.tickAsync(100); // the late success, if run() resolved before it
    assert.equal(failures.length, 1);
    assertTimeoutError(failures[0].error);
    assert.deepEqual(reported, []);
    const stats = buffer.stats();
    assert.deepEqual([stats.flushedItems, stats.failedItems, stats.flushes, stats.failedFlushes], [
      0,
      1,
      0,
      1,
    ]);
    assertInvariant(stats, "after the late success");
  }));

for (const late of ["rejection", "outcome"] as const) {
  test(`a timed-out try's late ${late} is ignored: no second onFlushError, nothing for onError`, () =>
    withFakeClock(async (clock) => {
      const reported: unknown[] = [];
      const { flush } = recordTries<number>((batch) =>
        late === "rejection"
          ? rejectAfter(80, new Error("late failure"))
          : after(80, { retry: batch, error: new Error("late partial failure") })
      );
      const { failures, onFlushError } = recordFailures<number>();
      const buffer = new BatchBuffer<number>({
        capacity: 2,
        flushTimeout: 50,
        flush,
        onFlushError,
        onError: (error) => void reported.push(error),
      });
      const running = buffer.run();
      for (const item of [1, 2]) await buffer.add(item);
      buffer.close();
      await clock.tickAsync(200);
      await drive(clock, running);
      assert.equal(failures.length, 1);
      assertTimeoutError(failures[0].error);
      assert.deepEqual(failures[0].batch, [1, 2]);
      assert.deepEqual(reported, []);
      assert.deepEqual([buffer.stats().failedItems, buffer.stats().failedFlushes], [2, 1]);
    }));
}

test("context.signal also aborts when the run signal aborts, with the run signal's reason", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>((_batch, t) =>
      new Promise((_, reject) => {
        t.signal.addEventListener("abort", () => reject(t.signal.reason), { once: true });
      })
    );
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = new BatchBuffer<number>({
      flushInterval: Infinity,
      flushTimeout: 10_000,
      flush,
      onFlushError,
    });
    const shutdown = new AbortController();
    const reason = new Error("shutting down");
    const running = buffer.run(shutdown.signal);
    await buffer.add(1);
    void buffer.flush();
    await clock.tickAsync(5);
    assert.equal(tries[0].signal.aborted, false);
    shutdown.abort(reason);
    assert.equal(tries[0].signal.aborted, true);
    assert.equal(tries[0].signal.reason, reason);
    await clock.tickAsync(0);
    assert.deepEqual(failures.map((f) => [f.error, f.at]), [[reason, 5]]);
    assert.equal(clock.countTimers(), 0, "the try's timeout was cleared");
    buffer.close();
    await drive(clock, running);
  }));

test("a try that settles in time clears its timeout", () =>
  withFakeClock(async (clock) => {
    const { flush } = recordTries<number>(() => after(10, undefined));
    const buffer = new BatchBuffer<number>({
      flushInterval: Infinity,
      flushTimeout: 60_000,
      flush,
    });
    const running = buffer.run();
    await buffer.add(1);
    const flushed = track(buffer.flush());
    await clock.tickAsync(10);
    assert.equal(flushed.settled, true);
    assert.equal(clock.countTimers(), 0);
    buffer.close();
    await drive(clock, running);
    assert.equal(buffer.stats().flushedItems, 1);
  }));

test("a synchronous flush with flushTimeout leaves no timer", () =>
  withFakeClock(async (clock) => {
    const { flush } = recordTries<number>();
    const buffer = new BatchBuffer<number>({
      capacity: 1,
      flushInterval: Infinity,
      flushTimeout: 1_000,
      flush,
    });
    const running = buffer.run();
    for (const item of [1, 2, 3]) await buffer.add(item);
    await clock.tickAsync(0);
    assert.equal(clock.countTimers(), 0);
    assert.equal(buffer.stats().flushedItems, 3);
    buffer.close();
    await drive(clock, running);
  }));

test("a timeout is retryable by default and retryable() sees the TimeoutError", () =>
  withFakeClock(async (clock) => {
    const asked: unknown[] = [];
    const { tries, flush } = recordTries<number>(hang);
    const { failures, onFlushError } = recordFailures<number>();
    await runThrough<number>(clock, {
      flushTimeout: 50,
      retry: {
        ...EXACT,
        retryable: (error) => {
          asked.push(error);
          return asked.length < 2;
        },
      },
      flush,
      onFlushError,
    }, [1]);
    assert.equal(tries.length, 2);
    assert.equal(asked.length, 2);
    for (const error of asked) assertTimeoutError(error);
    assert.equal(failures.length, 1);
    assertTimeoutError(failures[0].error);
  }));
