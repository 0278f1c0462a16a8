// Interval flushes under a fake clock (issue 2 point 7).
import assert from "node:assert/strict";
import { BatchBuffer } from "../mod.ts";
import { controlledFlush, recordingFlush, withFakeClock } from "./helpers.ts";
import { test } from "./harness.ts";

test("BatchBuffer never lets an item wait in a partial batch longer than flushInterval", async () => {
  await withFakeClock(async (clock) => {
    const addedAt = new Map<number, number>();
    const waits: number[] = [];
    const reasons: string[] = [];
    const buffer = new BatchBuffer<number>({
      capacity: 4,
      flushInterval: 1000,
      flush: (batch, { reason }) => {
        reasons.push(reason);
        for (const item of batch) waits.push(clock.now - addedAt.get(item)!);
      },
    });
    const running = buffer.run();
    // Gaps chosen so batches end by interval, by capacity, and straddle deadlines.
    const gaps = [0, 300, 600, 99, 1, 2000, 999, 1, 1, 1, 1, 1500, 400, 400, 400, 400];
    for (const [item, gap] of gaps.entries()) {
      await clock.tickAsync(gap);
      addedAt.set(item, clock.now);
      await buffer.add(item);
    }
    await clock.tickAsync(5000);
    buffer.close();
    await running;
    assert.equal(waits.length, gaps.length);
    assert.ok(Math.max(...waits) <= 1000, `longest wait ${Math.max(...waits)} ms`);
    assert.ok(reasons.includes("interval") && reasons.includes("full"));
  });
});

test("BatchBuffer flushes a partial batch with reason interval exactly flushInterval after its first item", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = recordingFlush<string>();
    const flushedAt: number[] = [];
    const buffer = new BatchBuffer<string>({
      flush: (batch, context) => {
        flushedAt.push(clock.now);
        flush(batch, context);
      },
      flushInterval: 1000,
    });
    const running = buffer.run();
    await buffer.add("a");
    await clock.tickAsync(600);
    await buffer.add("b"); // a later item does not push the deadline back
    await clock.tickAsync(399);
    assert.equal(calls.length, 0);
    await clock.tickAsync(1);
    assert.deepEqual(calls.map((c) => [c.batch, c.reason]), [[["a", "b"], "interval"]]);
    assert.deepEqual(flushedAt, [1000]);
    buffer.close();
    await running;
  });
});

test("BatchBuffer starts the interval from the first item of each new batch", async () => {
  await withFakeClock(async (clock) => {
    const flushes: [string[], string, number][] = [];
    const buffer = new BatchBuffer<string>({
      capacity: 2,
      flushInterval: 1000,
      flush: (batch, { reason }) => void flushes.push([batch, reason, clock.now]),
    });
    const running = buffer.run();
    await buffer.add("a");
    await buffer.add("b"); // full at t=0
    await clock.tickAsync(500);
    await buffer.add("c"); // new batch at t=500
    await clock.tickAsync(999);
    assert.equal(flushes.length, 1);
    await clock.tickAsync(1);
    await clock.tickAsync(200);
    await buffer.add("d"); // new batch at t=1700
    await clock.tickAsync(1000);
    buffer.close();
    await running;
    assert.deepEqual(flushes, [
      [["a", "b"], "full", 0],
      [["c"], "interval", 1500],
      [["d"], "interval", 2700],
    ]);
  });
});

test("BatchBuffer makes an interval flush that fell due during a flush right after it settles", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = controlledFlush<string>();
    const startedAt: number[] = [];
    const buffer = new BatchBuffer<string>({
      flushInterval: 1000,
      flush: (batch, context) => {
        startedAt.push(clock.now);
        return flush(batch, context);
      },
      willOverflow: (_batch, item) => item === "split",
    });
    const running = buffer.run();
    await buffer.add("a");
    await buffer.add("split"); // flushes ["a"] (held open) and starts a batch at t=0
    await clock.tickAsync(1200); // the interval falls due while ["a"] is in flight
    assert.equal(calls.length, 1);
    await clock.tickAsync(300);
    calls[0].done.resolve();
    await clock.tickAsync(0);
    assert.equal(calls.length, 2);
    assert.deepEqual([calls[1].batch, calls[1].reason, startedAt[1]], [
      ["split"],
      "interval",
      1500,
    ]);
    calls[1].done.resolve();
    buffer.close();
    await running;
  });
});

test("BatchBuffer keeps no timer pending while the batch is empty or after run resolves", async () => {
  await withFakeClock(async (clock) => {
    const buffer = new BatchBuffer<number>({ flush: () => {}, capacity: 2, flushInterval: 1000 });
    assert.equal(clock.countTimers(), 0, "after construction");
    await buffer.add(0); // waits in the channel, not in a batch
    await clock.tickAsync(0);
    assert.equal(clock.countTimers(), 0, "with items only in the channel");
    const running = buffer.run();
    await clock.tickAsync(0);
    assert.equal(clock.countTimers(), 1, "a partial batch has its deadline");
    await buffer.add(1); // full flush
    await clock.tickAsync(0);
    assert.equal(clock.countTimers(), 0, "after a full flush");
    await buffer.add(2);
    await clock.tickAsync(1000); // interval flush
    assert.equal(clock.countTimers(), 0, "after an interval flush");
    await clock.tickAsync(60_000);
    assert.equal(clock.countTimers(), 0, "idle");
    await buffer.add(3);
    buffer.close();
    await running;
    assert.equal(clock.countTimers(), 0, "after run resolved");
  });
});

test("BatchBuffer with a 2**40 ms interval flushes exactly then, not early", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = recordingFlush<string>();
    const buffer = new BatchBuffer<string>({ flush, flushInterval: 2 ** 40 });
    const running = buffer.run();
    await buffer.add("a");
    await clock.tickAsync(2 ** 31); // past setTimeout's 32-bit limit
    assert.equal(calls.length, 0);
    await clock.tickAsync(2 ** 40 - 2 ** 31 - 1);
    assert.equal(calls.length, 0);
    await clock.tickAsync(1);
    assert.deepEqual(calls.map((c) => [c.batch, c.reason]), [[["a"], "interval"]]);
    await clock.tickAsync(0);
    assert.equal(clock.countTimers(), 0);
    buffer.close();
    await running;
  });
});

test("BatchBuffer with a tiny fractional interval still flushes by interval", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = recordingFlush<string>();
    const buffer = new BatchBuffer<string>({ flush, flushInterval: 0.5 });
    const running = buffer.run();
    await buffer.add("a");
    await clock.tickAsync(1);
    assert.deepEqual(calls.map((c) => [c.batch, c.reason]), [[["a"], "interval"]]);
    buffer.close();
    await running;
  });
});

test("BatchBuffer gives a batch begun right after a full flush its own full interval", async () => {
  await withFakeClock(async (clock) => {
    const flushes: [string[], string, number][] = [];
    const buffer = new BatchBuffer<string>({
      capacity: 2,
      flushInterval: 1000,
      flush: (batch, { reason }) => void flushes.push([batch, reason, clock.now]),
    });
    const running = buffer.run();
    await buffer.add("a");
    await clock.tickAsync(900);
    await buffer.add("b"); // full flush at t=900
    await buffer.add("c"); // in the same turn: the stopped timeout may be reused
    await clock.tickAsync(999);
    assert.equal(flushes.length, 1, "c's deadline is 1900, not a's 1000");
    await clock.tickAsync(1);
    assert.deepEqual(flushes, [[["a", "b"], "full", 900], [["c"], "interval", 1900]]);
    buffer.close();
    await running;
  });
});

test("BatchBuffer leaves no timer pending right after a manual flush or a first full batch", async () => {
  await withFakeClock(async (clock) => {
    const buffer = new BatchBuffer<number>({ flush: () => {}, capacity: 3, flushInterval: 1000 });
    const running = buffer.run();
    await buffer.add(1);
    assert.equal(clock.countTimers(), 1);
    await buffer.flush();
    assert.equal(clock.countTimers(), 0, "right after await flush()");
    for (const item of [2, 3, 4]) await buffer.add(item); // one full batch
    assert.equal(clock.countTimers(), 0, "right after the add that filled the batch");
    buffer.close();
    await running;
  });
});

test("BatchBuffer arms one interval timeout while producers wait behind a slow flush", async () => {
  await withFakeClock(async (clock) => {
    const { flush, calls } = controlledFlush<number>();
    const buffer = new BatchBuffer<number>({
      flush,
      capacity: 10,
      chanSize: 30,
      flushInterval: 1000,
    });
    let armed = 0;
    const fakeSetTimeout = globalThis.setTimeout;
    const counting = ((callback: () => void, delay?: number) => {
      if (delay === 1000) armed++;
      return fakeSetTimeout(callback, delay);
    }) as typeof setTimeout;
    globalThis.setTimeout = counting;
    try {
      const running = buffer.run();
      const adding = Promise.all(Array.from({ length: 100 }, (_, i) => buffer.add(i)));
      armed = 0; // the first batch went out before anything was queued behind it
      for (let settled = 0; settled < 10; settled++) {
        await clock.tickAsync(5); // the flush takes a while, as a fetch would
        assert.equal(calls.length, settled + 1, "one batch in flight at a time");
        calls[settled].done.resolve();
      }
      await adding;
      assert.deepEqual(calls.map((c) => c.batch.length), Array(10).fill(10));
      assert.equal(armed, 1, "each next batch, already queued, reuses the timeout");
      await clock.tickAsync(0);
      assert.equal(clock.countTimers(), 0, "nothing queued any more: no timer pending");
      buffer.close();
      await running;
    } finally {
      globalThis.setTimeout = fakeSetTimeout;
    }
  });
});

test("BatchBuffer reuses one timeout while batches fill up back to back", async () => {
  await withFakeClock(async (clock) => {
    const { flush, calls } = recordingFlush<number>();
    const buffer = new BatchBuffer<number>({ flush, capacity: 10, flushInterval: 1000 });
    const running = buffer.run();
    let most = 0;
    for (let i = 0; i < 1_005; i++) {
      await buffer.add(i);
      most = Math.max(most, clock.countTimers());
    }
    assert.equal(most, 1, "never more than one timeout");
    assert.equal(calls.length, 100, "100 full batches");
    await clock.tickAsync(999);
    assert.equal(calls.length, 100, "the last partial batch keeps its full interval");
    await clock.tickAsync(1);
    assert.equal(calls.at(-1)?.reason, "interval");
    assert.deepEqual(calls.at(-1)?.batch, [1000, 1001, 1002, 1003, 1004]);
    await clock.tickAsync(0);
    assert.equal(clock.countTimers(), 0);
    buffer.close();
    await running;
  });
});
