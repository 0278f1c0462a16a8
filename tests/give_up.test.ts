// Issue 13, point 5: retrying stops when the attempts are used up, retryable()
// says no, the next wait would end past maxElapsed, or the run signal aborts;
// then onFlushError(lastError, items) runs once for exactly the items that
// never succeeded.
import assert from "node:assert/strict";
import { BatchBuffer } from "../mod.ts";
import { test } from "./harness.ts";
import { track, withFakeClock } from "./helpers.ts";
import {
  BackendError,
  drive,
  EXACT,
  fail,
  recordFailures,
  recordTries,
  runThrough,
} from "./delivery_helpers.ts";

test("when the attempts are used up, onFlushError runs once with the last error and every item", () =>
  withFakeClock(async (clock) => {
    const errors: Error[] = [];
    const { tries, flush } = recordTries<number>((_batch, t) => {
      const error = new BackendError(`try ${t.attempt} failed`);
      errors.push(error);
      throw error;
    });
    const { failures, onFlushError } = recordFailures<number>();
    await runThrough<number>(clock, {
      capacity: 3,
      retry: { ...EXACT, attempts: 3 },
      flush,
      onFlushError,
    }, [1, 2, 3]);
    assert.equal(tries.length, 3);
    assert.equal(failures.length, 1, "onFlushError once, not once per try");
    assert.equal(failures[0].error, errors[2], "the last try's error");
    assert.deepEqual(failures[0].batch, [1, 2, 3]);
  }));

test("attempts: 1 means a single try", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>(() => fail("down"));
    const { failures, onFlushError } = recordFailures<number>();
    await runThrough<number>(clock, {
      retry: { ...EXACT, attempts: 1 },
      flush,
      onFlushError,
    }, [1]);
    assert.deepEqual([tries.length, failures.length, clock.now], [1, 1, 0]);
  }));

test("retryable(error) false gives up at once with that error", () =>
  withFakeClock(async (clock) => {
    const asked: unknown[] = [];
    const permanent = new TypeError("400 Bad Request");
    const { tries, flush } = recordTries<number>((_batch, t) => {
      if (t.attempt === 1) fail("503 Service Unavailable");
      throw permanent;
    });
    const { failures, onFlushError } = recordFailures<number>();
    await runThrough<number>(clock, {
      capacity: 2,
      retry: {
        ...EXACT,
        retryable: (error) => {
          asked.push(error);
          return !(error instanceof TypeError);
        },
      },
      flush,
      onFlushError,
    }, [1, 2]);
    assert.equal(tries.length, 2);
    assert.equal(asked.length, 2);
    assert.ok(asked[0] instanceof BackendError);
    assert.equal(asked[1], permanent);
    assert.deepEqual(failures.map((f) => [f.error, f.batch, f.at]), [[permanent, [1, 2], 100]]);
  }));

test("retryable() is asked with the outcome's error, and false fails just the outcome's items", () =>
  withFakeClock(async (clock) => {
    const asked: unknown[] = [];
    const error = new BackendError("ValidationException");
    const { tries, flush } = recordTries<number>((batch) => ({ retry: batch.slice(1), error }));
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = await runThrough<number>(clock, {
      capacity: 3,
      retry: {
        ...EXACT,
        retryable: (e) => {
          asked.push(e);
          return false;
        },
      },
      flush,
      onFlushError,
    }, [1, 2, 3]);
    assert.equal(tries.length, 1);
    assert.deepEqual(asked, [error]);
    assert.deepEqual(failures.map((f) => [f.error, f.batch]), [[error, [2, 3]]]);
    assert.deepEqual([buffer.stats().flushedItems, buffer.stats().failedItems], [1, 2]);
  }));

test("maxElapsed: a wait that would end later than maxElapsed after the first try gives up at once", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>(() => fail("down"));
    const { failures, onFlushError } = recordFailures<number>();
    await runThrough<number>(clock, {
      retry: { ...EXACT, attempts: 10, maxElapsed: 500 },
      flush,
      onFlushError,
    }, [1]);
    // Tries at 0, 100, 300; the next would start at 700 > 500.
    assert.deepEqual(tries.map((t) => t.at), [0, 100, 300]);
    assert.deepEqual(failures.map((f) => f.at), [300], "without waiting out the useless wait");
  }));

test("maxElapsed: a wait ending exactly at maxElapsed is still taken", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>(() => fail("down"));
    const { failures, onFlushError } = recordFailures<number>();
    await runThrough<number>(clock, {
      retry: { ...EXACT, attempts: 10, maxElapsed: 700 },
      flush,
      onFlushError,
    }, [1]);
    assert.deepEqual(tries.map((t) => t.at), [0, 100, 300, 700]);
    assert.deepEqual(failures.map((f) => f.at), [700]);
  }));

test("maxElapsed: a requested retryAfter that would end past it gives up at once", () =>
  withFakeClock(async (clock) => {
    const error = new BackendError("throttled", 5_000);
    const { tries, flush } = recordTries<number>(() => {
      throw error;
    });
    const { failures, onFlushError } = recordFailures<number>();
    await runThrough<number>(clock, {
      retry: { ...EXACT, maxElapsed: 1_000 },
      flush,
      onFlushError,
    }, [1]);
    assert.equal(tries.length, 1);
    assert.deepEqual(failures.map((f) => [f.error, f.at]), [[error, 0]]);
  }));

test("aborting the run signal ends a pending wait at once and gives up with the last error", () =>
  withFakeClock(async (clock) => {
    const error = new BackendError("down");
    const { tries, flush } = recordTries<number>(() => {
      throw error;
    });
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = new BatchBuffer<number>({
      flushInterval: Infinity,
      retry: { ...EXACT, initialDelay: 60_000 },
      flush,
      onFlushError,
    });
    const shutdown = new AbortController();
    const running = buffer.run(shutdown.signal);
    await buffer.add(1);
    void buffer.flush();
    await clock.tickAsync(10);
    assert.equal(tries.length, 1);
    assert.equal(failures.length, 0, "still waiting to retry");
    shutdown.abort(new Error("shutting down"));
    await clock.tickAsync(0);
    assert.deepEqual(failures.map((f) => [f.error, f.batch, f.at]), [[error, [1], 10]]);
    assert.equal(clock.countTimers(), 0, "the wait's timer is gone");
    buffer.close();
    const finished = track(running);
    await clock.tickAsync(0);
    assert.equal(finished.settled, true);
    assert.equal(tries.length, 1);
  }));

test("a try that fails once the run signal has aborted is not retried", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>(() => fail("down"));
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = new BatchBuffer<number>({ retry: EXACT, flush, onFlushError });
    const running = buffer.run(AbortSignal.abort(new Error("already shutting down")));
    await buffer.add(1);
    buffer.close();
    await drive(clock, running);
    assert.equal(tries.length, 1, "the batch still gets its first try");
    assert.deepEqual(failures.map((f) => [f.batch, f.at]), [[[1], 0]]);
  }));

test("shutdown stays bounded: close(), abort, await run() needs no time to pass", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>(() => fail("backend gone"));
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = new BatchBuffer<number>({
      capacity: 3,
      chanSize: 10,
      retry: { ...EXACT, initialDelay: 10_000, maxDelay: 10_000 },
      flush,
      onFlushError,
    });
    const shutdown = new AbortController();
    const running = buffer.run(shutdown.signal);
    for (let item = 1; item <= 8; item++) await buffer.add(item);
    await clock.tickAsync(0);
    const startedAt = Date.now();
    buffer.close();
    shutdown.abort();
    const finished = track(running);
    for (let i = 0; i < 20 && !finished.settled; i++) await clock.tickAsync(0);
    assert.equal(finished.settled, true, "run() resolved");
    assert.equal(Date.now(), startedAt, "without any fake time passing");
    assert.equal(clock.countTimers(), 0);
    assert.deepEqual(tries.map((t) => [t.batch, t.attempt]), [
      [[1, 2, 3], 1],
      [[4, 5, 6], 1],
      [[7, 8], 1],
    ]);
    assert.deepEqual(failures.map((f) => f.batch), [[1, 2, 3], [4, 5, 6], [7, 8]]);
  }));

test("after partial outcomes, onFlushError gets exactly the items that never succeeded", () =>
  withFakeClock(async (clock) => {
    const last = new BackendError("record 3 still throttled");
    const { flush } = recordTries<number>((batch, t) =>
      t.attempt === 1
        ? { retry: batch.filter((item) => [2, 3, 4].includes(item)), error: new Error("first") }
        : { retry: batch.filter((item) => item === 3), error: last }
    );
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = new BatchBuffer<number>({
      capacity: 5,
      retry: { ...EXACT, attempts: 2 },
      flush,
      onFlushError,
    });
    const running = buffer.run();
    for (let item = 1; item <= 5; item++) await buffer.add(item);
    buffer.close();
    await drive(clock, running);
    assert.deepEqual(failures.map((f) => [f.error, f.batch]), [[last, [3]]]);
    const stats = buffer.stats();
    assert.deepEqual([stats.flushedItems, stats.failedItems], [4, 1]);
  }));

test("when the last outcome gave no error, lastError is an Error saying how many items failed", () =>
  withFakeClock(async (clock) => {
    const { flush } = recordTries<number>((batch, t) =>
      t.attempt === 1 ? { retry: batch } : { retry: batch.slice(0, 2) }
    );
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = new BatchBuffer<number>({
      capacity: 4,
      retry: { ...EXACT, attempts: 2 },
      flush,
      onFlushError,
    });
    const running = buffer.run();
    for (let item = 1; item <= 4; item++) await buffer.add(item);
    buffer.close();
    await drive(clock, running);
    assert.equal(failures.length, 1);
    assert.deepEqual(failures[0].batch, [1, 2]);
    assert.ok(failures[0].error instanceof Error, `got ${failures[0].error}`);
    assert.match(failures[0].error.message, /\b2\b/);
  }));

test("without onFlushError, giving up is reported once through onError, with the last error as cause", () =>
  withFakeClock(async (clock) => {
    const reported: unknown[] = [];
    const error = new BackendError("down for good");
    const { tries, flush } = recordTries<number>(() => {
      throw error;
    });
    await runThrough<number>(clock, {
      capacity: 2,
      retry: { ...EXACT, attempts: 3 },
      flush,
      onError: (e) => void reported.push(e),
    }, [1, 2]);
    assert.equal(tries.length, 3);
    assert.equal(reported.length, 1);
    assert.ok(reported[0] instanceof Error);
    assert.equal(reported[0].cause, error);
  }));
