// Issue 13, point 2: what a failed try retries. After an error, every item of
// the try; after an outcome, only `outcome.retry`; always alone, never merged
// with newer items, in order, with the original reason and a counting attempt.
import assert from "node:assert/strict";
import { BatchBuffer, type BatchBufferConfig, type FlushReason } from "../mod.ts";
import { test } from "./harness.ts";
import { type Clock, withFakeClock } from "./helpers.ts";
import {
  drive,
  EXACT,
  fail,
  recordFailures,
  recordTries,
  runThrough,
  type Try,
} from "./delivery_helpers.ts";

const shape = (tries: Try<number>[]) => tries.map((t) => ({ batch: t.batch, attempt: t.attempt }));

test("after a throw, every item of the batch is tried again, alone, while newer batches go their own way", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>((batch, t) =>
      t.attempt === 1 && batch.includes(1) ? fail("first try fails") : undefined
    );
    const buffer = new BatchBuffer<number>({
      capacity: 3,
      maxConcurrentFlushes: 2,
      flushInterval: Infinity,
      retry: EXACT,
      flush,
    });
    const running = buffer.run();
    for (const item of [1, 2, 3]) await buffer.add(item); // fails, waits 100 ms
    for (const item of [4, 5, 6]) await buffer.add(item); // the second slot
    await buffer.add(7); // stays in the batch being formed
    await clock.tickAsync(100);
    buffer.close();
    await drive(clock, running);
    assert.deepEqual(shape(tries), [
      { batch: [1, 2, 3], attempt: 1 },
      { batch: [4, 5, 6], attempt: 1 },
      { batch: [1, 2, 3], attempt: 2 },
      { batch: [7], attempt: 1 },
    ]);
    assert.equal(buffer.stats().flushedItems, 7);
  }));

test("after a rejection, the batch is tried again alone; items added meanwhile wait for their own batch", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>((_batch, t) =>
      t.attempt === 1 && t.batch[0] === 1 ? Promise.reject(new Error("503")) : Promise.resolve()
    );
    const buffer = new BatchBuffer<number>({
      capacity: 3,
      flushInterval: Infinity,
      retry: EXACT,
      flush,
    });
    const running = buffer.run();
    for (const item of [1, 2, 3]) await buffer.add(item);
    await buffer.add(4); // the one slot is held by the batch waiting to retry
    await clock.tickAsync(100);
    buffer.close();
    await drive(clock, running);
    assert.deepEqual(shape(tries), [
      { batch: [1, 2, 3], attempt: 1 },
      { batch: [1, 2, 3], attempt: 2 },
      { batch: [4], attempt: 1 },
    ]);
  }));

test("after an outcome, only outcome.retry is tried again, in the batch's order", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>((batch, t) => {
      if (t.attempt === 1) return { retry: batch.filter((item) => [2, 4, 5].includes(item)) };
      if (t.attempt === 2) return Promise.resolve({ retry: batch.filter((item) => item === 5) });
    });
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = new BatchBuffer<number>({ capacity: 6, retry: EXACT, flush, onFlushError });
    const running = buffer.run();
    for (let item = 1; item <= 6; item++) await buffer.add(item);
    buffer.close();
    await drive(clock, running);
    assert.deepEqual(shape(tries), [
      { batch: [1, 2, 3, 4, 5, 6], attempt: 1 },
      { batch: [2, 4, 5], attempt: 2 },
      { batch: [5], attempt: 3 },
    ]);
    assert.deepEqual(failures, []);
    assert.equal(buffer.stats().flushedItems, 6);
  }));

test("a retry that throws after a partial outcome tries the same remaining items again", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>((batch, t) => {
      if (t.attempt === 1) return { retry: batch.slice(1, 3) };
      if (t.attempt === 2) fail("the retry failed as a whole");
    });
    await runThrough<number>(clock, { capacity: 4, retry: EXACT, flush }, [1, 2, 3, 4]);
    assert.deepEqual(shape(tries), [
      { batch: [1, 2, 3, 4], attempt: 1 },
      { batch: [2, 3], attempt: 2 },
      { batch: [2, 3], attempt: 3 },
    ]);
  }));

/** How to make a buffer flush one batch for a given reason. */
const reasonSetups: Record<
  FlushReason,
  {
    config: Partial<BatchBufferConfig<number>>;
    trigger: (buffer: BatchBuffer<number>, clock: Clock) => Promise<void>;
    batch: number[];
  }
> = {
  full: {
    config: { capacity: 2 },
    trigger: async (buffer) => {
      for (const item of [1, 2]) await buffer.add(item);
    },
    batch: [1, 2],
  },
  overflow: {
    config: { willOverflow: (_batch, item) => item === 2 },
    trigger: async (buffer) => {
      for (const item of [1, 2]) await buffer.add(item);
    },
    batch: [1],
  },
  interval: {
    config: { flushInterval: 50 },
    trigger: async (buffer, clock) => {
      await buffer.add(1);
      await clock.tickAsync(50);
    },
    batch: [1],
  },
  manual: {
    config: {},
    trigger: async (buffer) => {
      await buffer.add(1);
      void buffer.flush();
    },
    batch: [1],
  },
  close: {
    config: {},
    trigger: async (buffer) => {
      await buffer.add(1);
      buffer.close();
    },
    batch: [1],
  },
  evict: {
    config: { key: (item) => item, maxOpenBatches: 1 },
    trigger: async (buffer) => {
      for (const item of [1, 2]) await buffer.add(item); // 2 needs a batch: [1] makes room
    },
    batch: [1],
  },
};

for (const [reason, setup] of Object.entries(reasonSetups)) {
  test(`a batch flushed for reason "${reason}" keeps that reason on every retry while context.attempt counts 1, 2, 3`, () =>
    withFakeClock(async (clock) => {
      const { tries, flush } = recordTries<number>((batch, t) => {
        // Only the batch under test fails, twice.
        if (t.attempt < 3 && batch[0] === setup.batch[0]) fail(`try ${t.attempt} fails`);
      });
      const buffer = new BatchBuffer<number>({
        flushInterval: Infinity,
        ...setup.config,
        retry: EXACT,
        flush,
      });
      const running = buffer.run();
      await setup.trigger(buffer, clock);
      await clock.tickAsync(100 + 200);
      buffer.close();
      await drive(clock, running);
      const ours = tries.filter((t) => t.batch[0] === setup.batch[0]);
      assert.deepEqual(
        ours.map((t) => ({ batch: t.batch, reason: t.reason, attempt: t.attempt })),
        [1, 2, 3].map((attempt) => ({ batch: setup.batch, reason, attempt })),
      );
    }));
}

test("a flush that empties its array before failing still has every item retried", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<string>((batch, t) => {
      if (t.attempt === 1) {
        batch.length = 0; // the array is the flush's to keep and change
        fail("emptied, then failed");
      }
      if (t.attempt === 2) {
        const retry = batch.filter((item) => item !== "b");
        batch.reverse();
        batch.push("not ours");
        return { retry };
      }
    });
    const buffer = await runThrough<string>(clock, { capacity: 3, retry: EXACT, flush }, [
      "a",
      "b",
      "c",
    ]);
    assert.deepEqual(tries.map((t) => t.batch), [["a", "b", "c"], ["a", "b", "c"], ["a", "c"]]);
    assert.equal(buffer.stats().flushedItems, 3);
  }));

test("a retried batch is a fresh array each try, so a flush may keep the previous one", () =>
  withFakeClock(async (clock) => {
    const kept: number[][] = [];
    const { flush } = recordTries<number>((batch, t) => {
      kept.push(batch);
      if (t.attempt < 3) fail("again");
    });
    await runThrough<number>(clock, { capacity: 2, retry: EXACT, flush }, [1, 2]);
    assert.equal(kept.length, 3);
    assert.notEqual(kept[0], kept[1]);
    assert.notEqual(kept[1], kept[2]);
    assert.deepEqual(kept, [[1, 2], [1, 2], [1, 2]], "no try changed an array handed out before");
  }));
