// Issue 13, point 7: an async onFlushError (a dead-letter write) is awaited:
// the flush counts as settled only once its promise settles, so run(),
// flush(), dispose and the waitUntil promise wait for it; a rejection goes to
// onError.
import assert from "node:assert/strict";
import { BatchBuffer, type BatchBufferConfig } from "../mod.ts";
import { test } from "./harness.ts";
import { deferred, track, withFakeClock } from "./helpers.ts";
import { assertInvariant, drive, EXACT, fail, recordTries } from "./delivery_helpers.ts";

/** A buffer whose flush always fails and whose onFlushError waits for `written`. */
function deadLettering(config: Partial<BatchBufferConfig<number>> = {}) {
  const written = deferred();
  const deadLetters: number[][] = [];
  const { flush } = recordTries<number>(() => fail("backend down"));
  const buffer: BatchBuffer<number> = new BatchBuffer<number>({
    flushInterval: Infinity,
    flush,
    onFlushError: (_error, batch) => {
      deadLetters.push([...batch]);
      return written.promise;
    },
    ...config,
  });
  return { buffer, written, deadLetters };
}

test("run() waits for an async onFlushError, even after the run signal aborted", () =>
  withFakeClock(async (clock) => {
    const { buffer, written, deadLetters } = deadLettering();
    const shutdown = new AbortController();
    const running = buffer.run(shutdown.signal);
    await buffer.add(1);
    buffer.close();
    shutdown.abort();
    const finished = track(running);
    await clock.tickAsync(60_000);
    assert.deepEqual(deadLetters, [[1]]);
    assert.equal(finished.settled, false, "the dead-letter write is not cut off");
    assertInvariant(buffer.stats(), "while onFlushError runs");
    written.resolve();
    await clock.tickAsync(0);
    assert.equal(finished.settled, true);
  }));

test("flush() waits for an async onFlushError", () =>
  withFakeClock(async (clock) => {
    const { buffer, written } = deadLettering();
    const running = buffer.run();
    await buffer.add(1);
    const flushed = track(buffer.flush());
    await clock.tickAsync(1_000);
    assert.equal(flushed.settled, false);
    written.resolve();
    await clock.tickAsync(0);
    assert.equal(flushed.settled, true);
    buffer.close();
    await drive(clock, running);
  }));

test("dispose waits for an async onFlushError", () =>
  withFakeClock(async (clock) => {
    const { buffer, written } = deadLettering();
    await buffer.add(1);
    const disposed = track(buffer[Symbol.asyncDispose]());
    await clock.tickAsync(1_000);
    assert.equal(disposed.settled, false);
    written.resolve();
    await clock.tickAsync(0);
    assert.equal(disposed.settled, true);
  }));

test("the promise handed to waitUntil waits for an async onFlushError", () =>
  withFakeClock(async (clock) => {
    const handed: { settled: boolean }[] = [];
    const { buffer, written } = deadLettering({
      waitUntil: (promise) => void handed.push(track(promise)),
    });
    const running = buffer.run();
    await buffer.add(1);
    void buffer.flush();
    await clock.tickAsync(1_000);
    assert.ok(handed.length > 0);
    assert.ok(handed.some((h) => !h.settled), "waitUntil's promise outlives the flush");
    written.resolve();
    await clock.tickAsync(0);
    assert.ok(handed.every((h) => h.settled));
    buffer.close();
    await drive(clock, running);
  }));

test("an async onFlushError after the last retry is awaited too", () =>
  withFakeClock(async (clock) => {
    const { buffer, written, deadLetters } = deadLettering({ retry: { ...EXACT, attempts: 2 } });
    const running = buffer.run();
    await buffer.add(1);
    buffer.close();
    const finished = track(running);
    await clock.tickAsync(100);
    assert.deepEqual(deadLetters, [[1]], "given up after the second try");
    await clock.tickAsync(10_000);
    assert.equal(finished.settled, false);
    written.resolve();
    await clock.tickAsync(0);
    assert.equal(finished.settled, true);
  }));

test("a rejection of an async onFlushError goes to onError, and run() still resolves", () =>
  withFakeClock(async (clock) => {
    const reported: unknown[] = [];
    const deadLetterFailure = new Error("dead-letter queue unreachable");
    const { buffer, written, deadLetters } = deadLettering({
      onError: (error) => void reported.push(error),
    });
    const running = buffer.run();
    await buffer.add(1);
    buffer.close();
    await clock.tickAsync(0);
    assert.deepEqual(deadLetters, [[1]]);
    written.reject(deadLetterFailure);
    await drive(clock, running);
    assert.deepEqual(reported, [deadLetterFailure]);
    const stats = buffer.stats();
    assert.deepEqual([stats.failedItems, stats.failedFlushes, stats.inFlightItems], [1, 1, 0]);
  }));

test("a later batch is flushed only after an earlier batch's async onFlushError settled, with one flush at a time", () =>
  withFakeClock(async (clock) => {
    const { buffer, written, deadLetters } = deadLettering({ capacity: 1 });
    const running = buffer.run();
    await buffer.add(1);
    await buffer.add(2);
    await clock.tickAsync(1_000);
    assert.deepEqual(deadLetters, [[1]], "the slot is held until the dead-letter write ends");
    assertInvariant(buffer.stats(), "while onFlushError runs");
    written.resolve();
    await clock.tickAsync(0);
    assert.deepEqual(deadLetters, [[1], [2]]);
    buffer.close();
    await drive(clock, running);
  }));
