// Adversarial review: re-entrant calls and state transitions that the other files do not reach.
import assert from "node:assert/strict";
import { AddAllError, BatchBuffer, BatchStream, BufferClosedError } from "../mod.ts";
import type { BatchBufferStats } from "../mod.ts";
import { test } from "./harness.ts";
import { controlledFlush, deferred, settle, track, withFakeClock } from "./helpers.ts";

/** Rejects the test unless `promise` rejects with an AddAllError; returns that error. */
async function addAllError(promise: Promise<unknown>): Promise<AddAllError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof AddAllError, `expected an AddAllError, got ${error}`);
    return error;
  }
  assert.fail("addAll() resolved, expected it to reject");
}

function assertBalanced(s: BatchBufferStats): void {
  assert.equal(
    s.added,
    s.rejected + s.flushedItems + s.failedItems + s.inFlightItems + s.itemsInChannel +
      s.itemsInBatch,
    `stats out of balance: ${JSON.stringify(s)}`,
  );
}

// ------------------------------------------------------- addAll() and a re-entrant iterable

test("BatchBuffer.addAll() loses no item when the iterable fills the channel while yielding", async () => {
  const delivered: number[] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 10,
    chanSize: 2,
    flush: (batch) => void delivered.push(...batch),
  });
  // Before run() every item goes through the channel, whose room addAll() checks before it
  // asks the iterable for the next item.
  function* items(): Generator<number> {
    yield 1;
    buffer.tryAdd(99); // takes the last free slot while addAll() waits for item 2
    yield 2;
  }
  const adding = addAllError(buffer.addAll(items())).then(
    (error) => ({ accepted: error.accepted }),
    () => ({ accepted: 2 }), // addAll() resolved: it claims both items
  );
  await settle();
  const running = buffer.run();
  const { accepted } = await adding;
  buffer.close();
  await running;
  const claimed = [1, 2].slice(0, accepted);
  for (const item of claimed) {
    assert.ok(delivered.includes(item), `item ${item} counted as accepted but never flushed`);
  }
  assert.deepEqual(delivered.filter((x) => x !== 99), claimed);
  assertBalanced(buffer.stats());
  assert.equal(buffer.stats().added, delivered.length);
});

test("BatchBuffer.addAll() does not accept an item the iterable yields after closing the buffer", async () => {
  const delivered: number[] = [];
  const buffer = new BatchBuffer<number>({ flush: (batch) => void delivered.push(...batch) });
  const running = buffer.run();
  function* items(): Generator<number> {
    yield 1;
    buffer.close(); // e.g. a shutdown handler running while the source produces item 2
    yield 2;
    yield 3;
  }
  const error = await addAllError(buffer.addAll(items()));
  await running;
  assert.equal(error.accepted, 1);
  assert.ok(error.cause instanceof BufferClosedError);
  assert.equal((error.cause as BufferClosedError).item, 2);
  assert.deepEqual(delivered, [1]);
});

test("BatchBuffer.addAll() keeps acceptance order when the iterable adds an item while yielding", async () => {
  const delivered: string[] = [];
  const buffer = new BatchBuffer<string>({ flush: (batch) => void delivered.push(...batch) });
  const running = buffer.run();
  const other: Promise<void>[] = [];
  function* items(): Generator<string> {
    yield "a";
    other.push(buffer.add("x")); // accepted before addAll() has even seen "b"
    yield "b";
  }
  await buffer.addAll(items());
  await Promise.all(other);
  buffer.close();
  await running;
  assert.deepEqual(delivered, ["a", "x", "b"]);
});

test("BatchBuffer.addAll() still rejects with AddAllError when the iterable's cleanup throws", async () => {
  const buffer = new BatchBuffer<number>({ chanSize: 1, flush: () => {}, onError: () => {} });
  function* items(): Generator<number> {
    try {
      yield 1;
      yield 2;
    } finally {
      // deno-lint-ignore no-unsafe-finally
      throw new Error("cleanup failed");
    }
  }
  const controller = new AbortController();
  const adding = addAllError(buffer.addAll(items(), { signal: controller.signal }));
  await settle(); // 1 is queued, 2 waits for room (run() not called yet)
  controller.abort(new Error("stop"));
  const error = await adding; // the caller must learn that 1 is the buffer's and 2 is not
  assert.equal(error.accepted, 1);
  assert.match(String((error.cause as Error).message), /stop/);
  await buffer[Symbol.asyncDispose]();
});

// ------------------------------------------------- flush() inside an interval flush, N > 1

test("BatchBuffer.flush() called inside an interval flush resolves at once with maxConcurrentFlushes 2", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = controlledFlush<number>();
    let inner: ReturnType<typeof track> | undefined;
    const buffer = new BatchBuffer<number>({
      capacity: 10,
      flushInterval: 100,
      maxConcurrentFlushes: 2,
      flush: (batch, context) => {
        const result = flush(batch, context);
        if (context.reason === "interval") {
          buffer.tryAdd(2);
          inner = track(buffer.flush());
        }
        return result;
      },
    });
    const running = buffer.run();
    await buffer.add(1);
    await clock.tickAsync(100);
    assert.deepEqual(calls.map((c) => [c.reason, c.snapshot]), [["interval", [1]], [
      "manual",
      [2],
    ]]);
    await clock.tickAsync(0);
    // Documented: "Called from inside flush (before its first await), it ... resolves at once".
    // Waiting instead lets an async flush that awaits it wait for itself.
    assert.equal(inner?.settled, true, "flush() inside flush waited for other flushes");
    for (const call of calls) call.done.resolve();
    buffer.close();
    await running;
  });
});

// ------------------------------------------------------------ close() and flush() re-entrancy

test("BatchBuffer.close() inside a synchronous flush started by add() still flushes every accepted item", async () => {
  const delivered: number[][] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    flush: (batch) => {
      delivered.push(batch);
      buffer.close();
    },
  });
  const running = buffer.run();
  await buffer.add(1);
  await buffer.add(2); // fills the batch: the flush runs inside this add() and closes
  await assert.rejects(buffer.add(3), BufferClosedError);
  assert.throws(() => buffer.tryAdd(4), BufferClosedError);
  await running;
  assert.deepEqual(delivered, [[1, 2]]);
});

test("BatchBuffer.close() inside an overflow flush keeps the item that caused it", async () => {
  const delivered: [string, string[]][] = [];
  const buffer = new BatchBuffer<string>({
    capacity: 10,
    willOverflow: (_batch, item) => item === "big",
    flush: (batch, { reason }) => {
      delivered.push([reason, batch]);
      buffer.close();
    },
  });
  const running = buffer.run();
  await buffer.add("a");
  await buffer.add("big"); // resolves: "big" was accepted before the flush closed the buffer
  await running;
  assert.deepEqual(delivered, [["overflow", ["a"]], ["close", ["big"]]]);
});

test("BatchBuffer.addAll() stops at the item whose flush closed the buffer, with N = 2", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    maxConcurrentFlushes: 2,
    flush: (batch, context) => {
      const result = flush(batch, context);
      if (calls.length === 1) buffer.close();
      return result;
    },
  });
  const running = buffer.run();
  const error = await addAllError(buffer.addAll([1, 2, 3, 4]));
  assert.equal(error.accepted, 2);
  assert.ok(error.cause instanceof BufferClosedError);
  assert.equal((error.cause as BufferClosedError).item, 3);
  calls[0].done.resolve();
  await running;
  assert.deepEqual(calls.map((c) => c.snapshot), [[1, 2]]);
});

test("BatchBuffer.[Symbol.asyncDispose]() called from onFlushError finishes the run", async () => {
  const { calls, flush } = controlledFlush<number>();
  let disposing: Promise<void> | undefined;
  const buffer = new BatchBuffer<number>({
    capacity: 1,
    flush,
    onFlushError: () => {
      disposing = buffer[Symbol.asyncDispose]();
    },
  });
  const running = buffer.run();
  await buffer.add(1);
  await buffer.add(2); // waits in the channel behind the failing flush
  calls[0].done.reject(new Error("down"));
  await settle();
  assert.ok(disposing !== undefined);
  assert.deepEqual(calls.map((c) => c.snapshot), [[1], [2]]);
  await assert.rejects(buffer.add(3), BufferClosedError);
  calls[1].done.resolve();
  await disposing;
  await running;
  assert.deepEqual(buffer.stats().failedItems, 1);
  assert.deepEqual(buffer.stats().flushedItems, 1);
});

// ------------------------------------------------------- hooks adding items, order, books

test("BatchBuffer keeps acceptance order when hooks add items, one flush at a time", async () => {
  const delivered: string[] = [];
  const rejected: string[] = [];
  const extra: Promise<void>[] = [];
  const balanced: boolean[] = [];
  const check = () => {
    const s = buffer.stats();
    balanced.push(
      s.added ===
        s.rejected + s.flushedItems + s.failedItems + s.inFlightItems + s.itemsInChannel +
          s.itemsInBatch,
    );
  };
  const buffer = new BatchBuffer<string>({
    capacity: 3,
    canAdd: (_batch, item) => {
      check();
      if (item === "a") extra.push(buffer.add("a+canAdd"));
      return !item.startsWith("r");
    },
    onReject: (item) => {
      check();
      rejected.push(item);
      if (item === "r") assert.equal(buffer.tryAdd("r+onReject"), true);
    },
    shouldFlush: (batch) => {
      check();
      if (batch.at(-1) === "b") extra.push(buffer.add("b+shouldFlush"));
      return batch.length >= 3;
    },
    flush: (batch) => {
      check();
      delivered.push(...batch);
      if (batch.includes("c")) extra.push(buffer.add("c+flush"));
    },
  });
  const running = buffer.run();
  await buffer.add("a");
  await buffer.add("b");
  await buffer.add("r");
  await buffer.add("c");
  await buffer.add("d"); // fills [b+shouldFlush, c, d]: its flush adds one more
  await Promise.all(extra);
  await settle();
  buffer.close();
  await running;
  assert.deepEqual(
    [...delivered, ...rejected].length,
    buffer.stats().added,
    "every accepted item reached flush or onReject once",
  );
  // The item a hook adds is accepted while the item in hand is placed, so it comes after it.
  assert.deepEqual(delivered, ["a", "a+canAdd", "b", "b+shouldFlush", "c", "d", "c+flush"]);
  assert.deepEqual(rejected, ["r", "r+onReject"]);
  assert.ok(balanced.length > 0 && balanced.every(Boolean), "stats balanced inside every hook");
});

test("BatchBuffer keeps acceptance order for items added from onFlushError while a flush is owed", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = controlledFlush<string>();
    const buffer = new BatchBuffer<string>({
      capacity: 10,
      flushInterval: 100,
      willOverflow: (_batch, item) => item === "b",
      flush,
      onFlushError: () => {
        // The interval flush of ["b"] is owed; the failed flight keeps its slot
        // until onFlushError returns, so "c" queues behind "b".
        assert.equal(buffer.tryAdd("c"), true);
      },
    });
    const running = buffer.run();
    await buffer.add("a");
    await buffer.add("b"); // ["a"] goes out as overflow; "b" starts the next batch
    await clock.tickAsync(100); // "b" is due while ["a"] is still in flight
    assert.equal(calls.length, 1);
    calls[0].done.reject(new Error("down"));
    await clock.tickAsync(0);
    assert.deepEqual(calls.map((c) => [c.reason, c.snapshot]), [
      ["overflow", ["a"]],
      ["interval", ["b"]],
    ]);
    calls[1].done.resolve();
    buffer.close();
    await clock.tickAsync(0);
    calls[2].done.resolve();
    await running;
    assert.deepEqual(calls.map((c) => c.snapshot).flat(), ["a", "b", "c"]);
    assertBalanced(buffer.stats());
  });
});

// ---------------------------------------------------------------------- abort signals

test("BatchBuffer.add() whose signal aborts inside a hook, while it waits, leaves the line", async () => {
  const controller = new AbortController();
  const delivered: string[] = [];
  const buffer = new BatchBuffer<string>({
    capacity: 1,
    chanSize: 1,
    canAdd: (_batch, item) => {
      if (item === "a") controller.abort(new Error("gave up"));
      return true;
    },
    flush: (batch) => void delivered.push(...batch),
  });
  // Before run(): "a" fills the channel; taking it admits "b", so "c" still waits when the
  // hook for "a" aborts its signal.
  await buffer.add("a");
  const b = buffer.add("b");
  const c = buffer.add("c", { signal: controller.signal });
  const d = buffer.add("d");
  const running = buffer.run();
  await b;
  await assert.rejects(c, /gave up/);
  await d;
  buffer.close();
  await running;
  assert.deepEqual(delivered, ["a", "b", "d"]);
});

test("BatchBuffer.add() with AbortSignal.any of an aborted signal rejects at once, even with room", async () => {
  const reason = new Error("already");
  const signal = AbortSignal.any([new AbortController().signal, AbortSignal.abort(reason)]);
  const buffer = new BatchBuffer<number>({ flush: () => {} });
  const running = buffer.run();
  await assert.rejects(buffer.add(1, { signal }), (error) => error === reason);
  const error = await addAllError(buffer.addAll([1, 2], { signal }));
  assert.equal(error.accepted, 0);
  assert.equal(buffer.stats().added, 0);
  buffer.close();
  await running;
});

test("BatchBuffer.add() waiting on an AbortSignal.any is admitted when room frees before it aborts", async () => {
  const { calls, flush } = controlledFlush<number>();
  const controller = new AbortController();
  const buffer = new BatchBuffer<number>({ capacity: 1, chanSize: 1, flush });
  const running = buffer.run();
  await buffer.add(1); // in flight
  await buffer.add(2); // in the channel
  const waiting = buffer.add(3, { signal: AbortSignal.any([controller.signal]) });
  calls[0].done.resolve();
  await waiting;
  controller.abort(); // too late: the item is the buffer's
  await settle();
  calls[1].done.resolve();
  await settle();
  calls[2].done.resolve();
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => c.snapshot), [[1], [2], [3]]);
});

// ------------------------------------------------------------ flush() with N > 1, close

test("BatchBuffer.flush() with N = 3 waits for flushes that settle out of order", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({ capacity: 2, maxConcurrentFlushes: 3, flush });
  const running = buffer.run();
  for (const item of [1, 2, 3, 4, 5]) await buffer.add(item);
  const flushed = track(buffer.flush());
  await settle();
  assert.deepEqual(calls.map((c) => [c.reason, c.snapshot]), [
    ["full", [1, 2]],
    ["full", [3, 4]],
    ["manual", [5]],
  ]);
  calls[2].done.resolve();
  calls[0].done.resolve();
  await settle();
  assert.equal(flushed.settled, false, "flush() resolved while [3, 4] was still in flight");
  calls[1].done.resolve();
  await settle();
  assert.equal(flushed.settled, true);
  buffer.close();
  await running;
});

test("BatchBuffer.flush() pending at close() resolves once its items have been through a flush", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({ capacity: 2, flush });
  const running = buffer.run();
  await buffer.add(1);
  await buffer.add(2); // [1, 2] in flight
  await buffer.add(3); // waits in the channel
  const flushed = track(buffer.flush());
  buffer.close();
  await settle();
  assert.equal(flushed.settled, false);
  calls[0].done.resolve();
  await settle();
  assert.deepEqual(calls.map((c) => [c.reason, c.snapshot]), [["full", [1, 2]], ["manual", [3]]]);
  assert.equal(flushed.settled, false);
  calls[1].done.resolve();
  await running;
  await settle(1);
  assert.equal(flushed.settled, true);
  assert.equal(flushed.rejected, false);
});

test("aborting BatchBuffer.writable closes the buffer even while a write waits for room", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({ capacity: 1, chanSize: 1, flush });
  const running = buffer.run();
  const writer = buffer.writable.getWriter();
  await writer.write(1); // in flight, and the flush is stuck
  await writer.write(2); // in the channel
  const waiting = track(writer.write(3)); // waits for room
  const aborting = writer.abort(new Error("source gone"));
  await settle();
  // Documented: "Closing or aborting it closes the buffer". A stuck flush must not keep the
  // buffer open (and add() from other producers accepted) until room frees.
  assert.throws(() => buffer.tryAdd(4), BufferClosedError);
  calls[0].done.resolve();
  await settle();
  calls.at(-1)?.done.resolve();
  await aborting;
  await running;
  assert.equal(waiting.rejected, true, "the write that was waiting was not accepted");
  assert.deepEqual(calls.map((c) => c.snapshot), [[1], [2]]);
});

// ------------------------------------------------------------------------- BatchStream

test("BatchStream cancelled with a partial batch closes its buffer and leaves no timer", async () => {
  const stream = new BatchStream<number>({ capacity: 10, flushInterval: 60_000 });
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  const read = reader.read(); // a waiting reader lifts the backpressure, so writes go through
  await writer.write(1);
  await writer.write(2);
  await reader.cancel("not interested");
  assert.deepEqual(await read, { value: undefined, done: true });
  await assert.rejects(writer.write(3));
  await assert.rejects(writer.closed);
  // The partial batch [1, 2] held a 60 s interval timer; Deno's sanitizer fails the test
  // if closing the buffer did not clear it.
});

test("BatchStream aborted on its writable side errors the readable side and leaves no timer", async () => {
  const stream = new BatchStream<number>({ capacity: 10, flushInterval: 60_000 });
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  const read = reader.read();
  await writer.write(1);
  await writer.abort(new Error("source failed"));
  await assert.rejects(read, /source failed/);
});

// --------------------------------------------------------------------------- timers

test("BatchBuffer makes an interval flush owed during a stuck flush and then close() in order", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = controlledFlush<string>();
    const buffer = new BatchBuffer<string>({
      capacity: 10,
      flushInterval: 100,
      willOverflow: (_batch, item) => item === "b",
      flush,
    });
    const running = buffer.run();
    await buffer.add("a");
    await buffer.add("b"); // ["a"] in flight; "b" starts a new batch and its timer
    await clock.tickAsync(100); // "b" falls due while the only slot is busy
    await buffer.add("c"); // waits in the channel
    buffer.close();
    const done = track(running);
    calls[0].done.resolve();
    await clock.tickAsync(0);
    assert.deepEqual(calls.map((c) => [c.reason, c.snapshot]), [
      ["overflow", ["a"]],
      ["interval", ["b"]],
    ]);
    calls[1].done.resolve();
    await clock.tickAsync(0);
    assert.deepEqual(calls.at(-1)?.snapshot, ["c"]);
    assert.equal(calls.at(-1)?.reason, "close");
    assert.equal(done.settled, false);
    calls[2].done.resolve();
    await running;
    assert.equal(clock.countTimers(), 0);
  });
});

test("BatchBuffer.run() resolves when the last flush settles even if a waitUntil hook closes", async () => {
  const handed: Promise<unknown>[] = [];
  const gate = deferred();
  const buffer = new BatchBuffer<number>({
    capacity: 1,
    flush: () => gate.promise,
    waitUntil: (promise) => {
      handed.push(promise);
      buffer.close();
    },
  });
  const running = buffer.run();
  await buffer.add(1);
  await assert.rejects(buffer.add(2), BufferClosedError);
  gate.resolve();
  await running;
  assert.equal(handed.length, 1);
  await handed[0];
});
