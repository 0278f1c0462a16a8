// Regression tests for the eight bugs of the outside review (issue 11) and its
// "also fix" list. Each test names the behaviour the fix gives; on the code the
// review ran against, each of them failed for the reason the issue states.
import assert from "node:assert/strict";
import process from "node:process";
import { AddAllError, BatchBuffer } from "../mod.ts";
import { test } from "./harness.ts";
import {
  controlledFlush,
  deferred,
  recordingFlush,
  settle,
  track,
  withFakeClock,
} from "./helpers.ts";

// ---------------------------------------------------------------- helpers

/**
 * Collects unhandled promise rejections while `body` runs, without letting
 * them end the process: Deno's `unhandledrejection` event is cancelled, and in
 * Node and Bun a `process` listener counts as handling them. (node:test still
 * reports one against the running test, which is also a failure.)
 */
async function unhandledDuring(body: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const g = globalThis as unknown as {
    Deno?: unknown;
    addEventListener(type: string, listener: (event: PromiseRejectionEvent) => void): void;
    removeEventListener(type: string, listener: (event: PromiseRejectionEvent) => void): void;
  };
  let stop: () => void;
  if (g.Deno !== undefined) {
    const listener = (event: PromiseRejectionEvent) => {
      event.preventDefault();
      seen.push(event.reason);
    };
    g.addEventListener("unhandledrejection", listener);
    stop = () => g.removeEventListener("unhandledrejection", listener);
  } else {
    const listener = (reason: unknown) => void seen.push(reason);
    process.on("unhandledRejection", listener);
    stop = () => process.off("unhandledRejection", listener);
  }
  try {
    await body();
    await settle(); // rejections are reported once the microtask queue has drained
  } finally {
    stop();
  }
  return seen;
}

function assertNoneUnhandled(seen: unknown[]): void {
  assert.deepEqual(seen.map(String), [], "a promise rejection was left unhandled");
}

/** Replaces console.error while `body` runs; `throws` makes it throw like a strict test setup. */
async function withConsoleError(
  throws: boolean,
  body: (printed: unknown[][]) => Promise<void>,
): Promise<unknown[][]> {
  const printed: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => {
    printed.push(args);
    if (throws) throw new Error("console.error is not allowed in this test setup");
  };
  try {
    await body(printed);
  } finally {
    console.error = original;
  }
  return printed;
}

/** Calls `fn`, failing the test if it throws synchronously; returns what it returned. */
function noSyncThrow<R>(what: string, fn: () => R): R {
  try {
    return fn();
  } catch (error) {
    assert.fail(`${what} threw synchronously: ${error}`);
  }
}

/** A flush result whose `then` getter throws. */
function throwingThenGetter(error: unknown): void {
  return {
    get then() {
      throw error;
    },
  } as unknown as void;
}

// ---------------------------------------------------------------- 1. a throwing `then` getter

test("a flush result with a throwing then getter does not make add() throw after accepting the item", async () => {
  const buffer = new BatchBuffer<number>({
    capacity: 1,
    flush: () => throwingThenGetter(new Error("then getter failed")),
    onFlushError: () => {},
  });
  void buffer.run();
  const added = noSyncThrow("add()", () => buffer.add(1));
  await added;
  buffer.close();
});

test("a flush result with a throwing then getter counts as a failed flush and run() still resolves", async () => {
  const thenError = new Error("then getter failed");
  const flushErrors: { error: unknown; batch: number[] }[] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 1,
    flush: () => throwingThenGetter(thenError),
    onFlushError: (error, batch) => void flushErrors.push({ error, batch }),
  });
  const running = track(buffer.run());
  try {
    await buffer.add(1);
  } catch {
    // the other test covers the synchronous throw; this one looks at what follows it
  }
  buffer.close();
  await settle();
  assert.deepEqual(flushErrors, [{ error: thenError, batch: [1] }]);
  const s = buffer.stats();
  assert.deepEqual(
    [s.failedFlushes, s.failedItems, s.flushes, s.flushesInFlight, s.inFlightItems],
    [1, 1, 0, 0, 0],
    "the flush should be counted as failed, not left in flight",
  );
  assert.ok(running.settled, "run() never resolved: the flush stayed in flight");
});

test("a flush result with a throwing then getter on the channel path leaves no unhandled rejection", async () => {
  const thenError = new Error("then getter failed");
  const flushErrors: unknown[] = [];
  let running: ReturnType<typeof track> | undefined;
  const buffer = new BatchBuffer<number>({
    capacity: 1,
    flush: () => throwingThenGetter(thenError),
    onFlushError: (error) => void flushErrors.push(error),
  });
  const unhandled = await unhandledDuring(async () => {
    await buffer.add(1); // before run(): the item travels through the channel's stream
    await buffer.add(2);
    running = track(buffer.run());
    await settle();
    buffer.close();
    await settle();
  });
  assertNoneUnhandled(unhandled);
  assert.deepEqual(flushErrors, [thenError, thenError], "both flushes should count as failed");
  assert.ok(running!.settled, "run() never resolved");
});

// ---------------------------------------------------------------- 2. a throwing console.error

test("a failed flush does not stop the run loop when there is no onError and console.error throws", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({ capacity: 1, chanSize: 1, flush });
  let running: ReturnType<typeof track> | undefined;
  const printed = await withConsoleError(true, async () => {
    const unhandled = await unhandledDuring(async () => {
      running = track(buffer.run());
      await buffer.add(1); // flush #1 in flight
      await buffer.add(2); // waits in the channel
      const third = track(buffer.add(3)); // waits for room
      calls[0].done.reject(new Error("backend down"));
      await settle();
      assert.equal(calls.length, 2, "the run loop should take item 2 once flush #1 settled");
      calls[1].done.resolve();
      await settle();
      assert.ok(third.settled && !third.rejected, "the producer of item 3 stays blocked");
      for (const call of calls.slice(2)) call.done.resolve();
      buffer.close();
      await settle();
      for (const call of calls.slice(2)) call.done.resolve();
      await settle();
    });
    assertNoneUnhandled(unhandled);
  });
  assert.ok(printed.length > 0, "the failed flush should have been offered to console.error");
  assert.ok(running!.settled, "run() never resolved");
  assert.equal(buffer.stats().failedItems, 1);
});

test("the promise handed to waitUntil fulfils even when console.error throws", async () => {
  const promises: ReturnType<typeof track>[] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 1,
    flush: () => Promise.reject(new Error("backend down")),
    waitUntil: (promise) => void promises.push(track(promise)),
  });
  await withConsoleError(true, async () => {
    const running = buffer.run();
    await buffer.add(1);
    await settle();
    buffer.close();
    await running;
  });
  assert.equal(promises.length, 1);
  assert.ok(promises[0].settled, "the waitUntil promise never settled");
  assert.equal(promises[0].rejected, false, `waitUntil's promise rejected: ${promises[0].error}`);
});

test("a synchronous flush that throws does not make add() throw when console.error throws", async () => {
  const buffer = new BatchBuffer<number>({
    capacity: 1,
    flush: () => {
      throw new Error("backend down");
    },
  });
  await withConsoleError(true, async () => {
    const running = buffer.run();
    await noSyncThrow("add()", () => buffer.add(1));
    await noSyncThrow("add()", () => buffer.add(2));
    buffer.close();
    await running;
  });
  assert.equal(buffer.stats().failedFlushes, 2);
});

// ---------------------------------------------------------------- 3. addAll() and primitive iterator results

/** An iterable whose iterator answers `results` in turn, then `{ done: true }`. */
function scriptedIterable(results: unknown[]): { iterable: Iterable<number>; nextCalls(): number } {
  let calls = 0;
  const iterable = {
    [Symbol.iterator]: () => ({
      next: () => (calls < results.length ? results[calls++] : { done: true, value: undefined }),
    }),
  } as unknown as Iterable<number>;
  return { iterable, nextCalls: () => calls };
}

test("addAll() rejects with an AddAllError wrapping a TypeError when next() returns a primitive", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ capacity: 10, flush });
  const running = buffer.run();
  const { iterable } = scriptedIterable([{ done: false, value: 1 }, 42, { done: false, value: 2 }]);
  const error = await buffer.addAll(iterable).then(() => undefined, (e) => e);
  assert.ok(
    error instanceof AddAllError,
    `addAll() should reject with an AddAllError, got ${error}`,
  );
  assert.equal(error.accepted, 1);
  assert.ok(
    error.cause instanceof TypeError,
    `the cause should be a TypeError, got ${error.cause}`,
  );
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => c.batch), [[1]], "no item may be invented");
  assert.equal(buffer.stats().added, 1);
});

test("addAll() of an iterator that always returns a primitive rejects at once instead of looping", async () => {
  const { calls, flush } = recordingFlush<number>();
  // Before run(), so the items would travel through the channel; the script ends after
  // 1,000 answers only to keep the bug from hanging the test.
  const buffer = new BatchBuffer<number>({ capacity: 10, chanSize: 2_000, flush });
  const script = scriptedIterable(Array(1_000).fill(42));
  const error = await buffer.addAll(script.iterable).then(() => undefined, (e) => e);
  assert.ok(
    error instanceof AddAllError,
    `addAll() should reject with an AddAllError, got ${error}`,
  );
  assert.equal(error.accepted, 0);
  assert.ok(error.cause instanceof TypeError);
  assert.equal(script.nextCalls(), 1, "addAll() should stop at the first primitive");
  assert.equal(buffer.stats().added, 0);
  await buffer[Symbol.asyncDispose]();
  assert.deepEqual(calls, []);
});

// ---------------------------------------------------------------- 4. producers sharing one AbortSignal

/** Counts the abort listeners registered on `signal` (by the buffer: the test adds none). */
function countListeners(signal: AbortSignal): { live: Set<unknown>; added: number } {
  const counts = { live: new Set<unknown>(), added: 0 };
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((type: string, listener: EventListener, options?: unknown) => {
    if (type === "abort") {
      counts.added++;
      counts.live.add(listener);
    }
    add(type, listener, options as AddEventListenerOptions);
  }) as typeof signal.addEventListener;
  signal.removeEventListener = ((type: string, listener: EventListener, options?: unknown) => {
    if (type === "abort") counts.live.delete(listener);
    remove(type, listener, options as EventListenerOptions);
  }) as typeof signal.removeEventListener;
  return counts;
}

test("1,000 producers waiting with one shared AbortSignal register one abort listener on it", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ capacity: 100, chanSize: 1, flush });
  const shared = new AbortController().signal;
  const listeners = countListeners(shared);
  await buffer.add(0); // fills the channel: run() is not called yet
  const waiting = Array.from({ length: 1_000 }, (_, i) => buffer.add(i + 1, { signal: shared }));
  await settle();
  assert.equal(buffer.stats().added, 1, "the producers should all be waiting");
  assert.equal(listeners.live.size, 1, "one listener per distinct signal, not one per waiter");
  assert.equal(listeners.added, 1);
  const running = buffer.run();
  await Promise.all(waiting);
  assert.equal(listeners.live.size, 0, "the listener should go once no waiter needs it");
  buffer.close();
  await running;
  assert.equal(calls.flatMap((c) => c.batch).length, 1_001);
});

test("producers sharing one AbortSignal do not trigger Node's MaxListenersExceededWarning", async () => {
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => void warnings.push(warning);
  // First in line: Node's own printer throws if a warning was first printed while a test
  // had replaced console.error, and then later listeners would not run.
  process.prependListener("warning", onWarning);
  try {
    const buffer = new BatchBuffer<number>({ chanSize: 1, flush: () => {} });
    const shared = new AbortController().signal;
    await buffer.add(0);
    const waiting = Array.from({ length: 20 }, (_, i) => buffer.add(i + 1, { signal: shared }));
    await settle();
    const running = buffer.run();
    await Promise.all(waiting);
    buffer.close();
    await running;
  } finally {
    process.off("warning", onWarning);
  }
  assert.deepEqual(
    warnings.filter((w) => w.name === "MaxListenersExceededWarning").map(String),
    [],
  );
});

// A guard for the fix (passes before it too): one listener per signal must still reject
// exactly the waiters of that signal, with its reason, and leave the line in order.
test("aborting a shared signal rejects only the producers still waiting on it, with its reason", async () => {
  const { calls, flush } = recordingFlush<string>();
  const buffer = new BatchBuffer<string>({ capacity: 100, chanSize: 1, flush });
  const a = new AbortController();
  const b = new AbortController();
  await buffer.add("first");
  const plan: [string, AbortSignal | undefined][] = [
    ["a1", a.signal],
    ["b1", b.signal],
    ["none1", undefined],
    ["a2", a.signal],
    ["b2", b.signal],
    ["a3", a.signal],
  ];
  const adds = plan.map(([item, signal]) => track(buffer.add(item, { signal })));
  await settle();
  const reason = new Error("a gave up");
  a.abort(reason);
  await settle();
  assert.deepEqual(
    adds.map((t) => (t.rejected ? t.error : t.settled)),
    [reason, false, false, reason, false, reason],
  );
  const running = buffer.run();
  await settle();
  b.abort(new Error("too late: b's producers were already admitted"));
  buffer.close();
  await running;
  assert.deepEqual(adds.map((t) => t.rejected), [true, false, false, true, false, true]);
  assert.deepEqual(calls.flatMap((c) => c.batch), ["first", "b1", "none1", "b2"]);
});

// ---------------------------------------------------------------- 5. flush() from a hook holding an item

test("flush() called from sizeOf, which runs on admission, covers the items accepted before it", async () => {
  // sizeOf measures an item when add() admits it (issue 12), before it counts as
  // added, so a flush() from there waits for the earlier items, not for this one.
  const gate = deferred();
  const batches: number[][] = [];
  let fromHook: Promise<void> | undefined;
  const buffer = new BatchBuffer<number>({
    capacity: 10,
    flushInterval: Infinity,
    maxBatchBytes: 100,
    flush: (batch) => {
      batches.push([...batch]);
      return gate.promise;
    },
    sizeOf: (item) => {
      if (item === 2) fromHook = buffer.flush();
      return 1;
    },
  });
  const running = buffer.run();
  await buffer.add(1);
  await buffer.add(2);
  assert.ok(fromHook !== undefined, "sizeOf was not called");
  const state = track(fromHook);
  await settle();
  assert.deepEqual(batches, [[1]], "the manual flush carries item 1 only");
  assert.equal(state.settled, false, "flush() waits for the flush of item 1");
  gate.resolve();
  await settle();
  assert.equal(state.settled, true);
  buffer.close();
  await running;
  assert.deepEqual(batches, [[1], [2]]);
});

test("flush() called from canAdd waits for the item the run loop holds", async () => {
  const { calls, flush } = recordingFlush<number>();
  let resolvedWith: number[][] | undefined;
  const buffer = new BatchBuffer<number>({
    capacity: 10,
    flush,
    canAdd: () => {
      if (resolvedWith === undefined) {
        void buffer.flush().then(() => (resolvedWith = calls.map((c) => c.batch)));
        resolvedWith = [[-1]]; // "asked", until it resolves
      }
      return true;
    },
  });
  await buffer.add(1);
  const running = buffer.run();
  await settle();
  assert.deepEqual(resolvedWith, [[1]], "flush() resolved before item 1 was flushed");
  buffer.close();
  await running;
});

test("flush() called from canAdd after a synchronous overflow flush waits for the item in hand", async () => {
  const { calls, flush } = recordingFlush<number>();
  let seenAtResolve: number[][] | undefined;
  const buffer = new BatchBuffer<number>({
    capacity: 10,
    flush,
    willOverflow: (_batch, item) => item === 2,
    canAdd: (batch, item) => {
      if (item === 2) {
        assert.equal(batch.length, 0, "the overflow flush has taken the batch");
        void buffer.flush().then(() => (seenAtResolve = calls.map((c) => c.batch)));
      }
      return true;
    },
  });
  const running = buffer.run();
  await buffer.add(1);
  await buffer.add(2);
  await settle();
  assert.deepEqual(seenAtResolve, [[1], [2]], "flush() resolved before item 2 was flushed");
  buffer.close();
  await running;
});

// ---------------------------------------------------------------- 6. joining a batch owed a "full" flush

test("an item re-added from onFlushError does not join a batch already owed a full flush", async () => {
  const batches: string[][] = [];
  const first = deferred();
  const retried: boolean[] = [];
  const buffer: BatchBuffer<string> = new BatchBuffer<string>({
    capacity: 10,
    flush: (batch) => {
      batches.push([...batch]);
      if (batches.length === 1) return first.promise;
    },
    // A big item travels alone: it pushes out the batch before it and fills its own.
    willOverflow: (_batch, item) => item === "BIG",
    shouldFlush: (batch) => batch.includes("BIG"),
    onFlushError: (_error, batch) => {
      for (const item of batch) retried.push(buffer.tryAdd(item));
    },
  });
  const running = buffer.run();
  await buffer.add("a");
  await buffer.add("BIG"); // flushes ["a"] (pending), then ["BIG"] is owed a full flush
  first.reject(new Error("backend down"));
  await settle();
  buffer.close();
  await running;
  assert.deepEqual(retried, [true], "the retry should be accepted");
  for (const batch of batches) {
    if (batch.includes("BIG")) assert.deepEqual(batch, ["BIG"], "BIG must travel alone");
  }
  assert.deepEqual(batches.toSorted(), [["BIG"], ["a"], ["a"]].toSorted());
});

// A guard for the fix (passes before it too): the issue keeps this allowed.
test("an item re-added from onFlushError queues behind the batch owed an interval flush", async () => {
  // The failed flight holds its slot until onFlushError has returned (issue 13:
  // a flush settles only once onFlushError has), so the item waits in the channel.
  await withFakeClock(async (clock) => {
    const batches: { batch: number[]; reason: string }[] = [];
    const first = deferred();
    const buffer: BatchBuffer<number> = new BatchBuffer<number>({
      capacity: 3,
      flushInterval: 10,
      flush: (batch, { reason }) => {
        batches.push({ batch: [...batch], reason });
        if (batches.length === 1) return first.promise;
      },
      willOverflow: (_batch, item) => item === 2,
      onFlushError: (_error, batch) => {
        for (const item of batch) assert.ok(buffer.tryAdd(item));
      },
    });
    const running = buffer.run();
    await buffer.add(1);
    await buffer.add(2); // flushes [1] (pending); [2] starts a new batch
    await clock.tickAsync(10); // [2] is owed an interval flush, waiting for the slot
    first.reject(new Error("backend down"));
    await clock.tickAsync(0);
    buffer.close();
    await clock.tickAsync(0);
    await running;
    assert.deepEqual(batches, [
      { batch: [1], reason: "overflow" },
      { batch: [2], reason: "interval" },
      { batch: [1], reason: "close" },
    ]);
  });
});

// ---------------------------------------------------------------- 7. an async onError that rejects

test("an async onError that rejects leaves no unhandled rejection and its error goes to console.error", async () => {
  const logDown = new Error("log endpoint down");
  const buffer = new BatchBuffer<number>({
    flush: () => {},
    canAdd: () => {
      throw new Error("canAdd failed");
    },
    onError: () => Promise.reject(logDown),
  });
  let unhandled: unknown[] = [];
  const printed = await withConsoleError(false, async () => {
    unhandled = await unhandledDuring(async () => {
      const running = buffer.run();
      await buffer.add(1);
      buffer.close();
      await running;
    });
  });
  assertNoneUnhandled(unhandled);
  assert.ok(
    printed.some((args) => args.includes(logDown)),
    "onError's rejection should be printed with console.error",
  );
});

test("an async onError that rejects while console.error throws leaves nothing unhandled", async () => {
  const buffer = new BatchBuffer<number>({
    capacity: 1,
    flush: () => Promise.reject(new Error("backend down")),
    onError: () => Promise.reject(new Error("log endpoint down")),
  });
  let unhandled: unknown[] = [];
  await withConsoleError(true, async () => {
    unhandled = await unhandledDuring(async () => {
      const running = buffer.run();
      for (let i = 0; i < 3; i++) await buffer.add(i);
      buffer.close();
      await running;
    });
  });
  assertNoneUnhandled(unhandled);
  assert.equal(buffer.stats().failedFlushes, 3);
});

// ---------------------------------------------------------------- 8. describing received values

test("a BigInt option is described as a BigInt in the error message", () => {
  assert.throws(
    () => new BatchBuffer({ flush: () => {}, capacity: 10n as unknown as number }),
    new RangeError("capacity must be a positive integer, received 10n"),
  );
  assert.throws(
    () => new BatchBuffer({ flush: () => {}, flushInterval: 5n as unknown as number }),
    new RangeError("flushInterval must be a positive number, received 5n"),
  );
});

test("add() with a BigInt signal rejects with a message that shows the BigInt", async () => {
  const buffer = new BatchBuffer<number>({ flush: () => {} });
  await assert.rejects(
    buffer.add(1, { signal: 5n as unknown as AbortSignal }),
    new TypeError("options.signal must be an AbortSignal, received 5n"),
  );
});

/**
 * Values that make a careless description throw, and whether add() can still
 * name them in a TypeError (`instanceof` itself throws on the Proxy).
 */
function hostileValues(): [string, unknown, boolean][] {
  class SymbolNamed {}
  Object.defineProperty(SymbolNamed, "name", { value: Symbol("odd") });
  const throwingConstructor = Object.create({
    get constructor() {
      throw new Error("constructor getter");
    },
  });
  const throwingPrototype = new Proxy({}, {
    getPrototypeOf() {
      throw new Error("getPrototypeOf trap");
    },
  });
  return [
    ["an instance of a class whose name is a Symbol", new SymbolNamed(), true],
    ["an object whose constructor getter throws", throwingConstructor, true],
    ["a Proxy whose getPrototypeOf trap throws", throwingPrototype, false],
  ];
}

for (const [label, value, typeErrorForSignal] of hostileValues()) {
  test(`a config value that is ${label} gets the usual RangeError`, () => {
    assert.throws(
      () => new BatchBuffer({ flush: () => {}, capacity: value as number }),
      (error: unknown) => {
        assert.ok(error instanceof RangeError, `expected a RangeError, got ${error}`);
        assert.match(error.message, /^capacity must be a positive integer, received \S/);
        return true;
      },
    );
  });

  const outcome = typeErrorForSignal ? "rejects with a TypeError" : "rejects";
  test(`add() with a signal that is ${label} ${outcome} instead of throwing`, async () => {
    const buffer = new BatchBuffer<number>({ flush: () => {} });
    const added = noSyncThrow("add()", () => buffer.add(1, { signal: value as AbortSignal }));
    await assert.rejects(added, (error: unknown) => {
      if (!typeErrorForSignal) return true;
      assert.ok(error instanceof TypeError, `expected a TypeError, got ${error}`);
      assert.match(error.message, /^options\.signal must be an AbortSignal, received \S/);
      return true;
    });
    assert.equal(buffer.stats().added, 0);
  });
}

// ---------------------------------------------------------------- also fix: bad options objects

test("add() rejects, and does not throw, when reading options.signal throws", async () => {
  const getterError = new Error("signal getter failed");
  const options = {
    get signal(): AbortSignal {
      throw getterError;
    },
  };
  const buffer = new BatchBuffer<number>({ flush: () => {} });
  const running = buffer.run();
  const added = noSyncThrow("add()", () => buffer.add(1, options));
  await assert.rejects(added);
  buffer.close();
  await running;
  assert.equal(buffer.stats().added, 0, "the item stays the caller's");
});

// ---------------------------------------------------------------- also fix: synthetic abort events

test("a synthetic abort event on a signal that has not aborted does not reject a waiting add()", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ chanSize: 1, flush });
  const controller = new AbortController();
  await buffer.add(1);
  const waiting = track(buffer.add(2, { signal: controller.signal }));
  await settle();
  controller.signal.dispatchEvent(new Event("abort"));
  await settle();
  assert.equal(waiting.settled, false, `the add settled (with ${waiting.error}) on a fake abort`);
  const running = buffer.run();
  await settle();
  assert.ok(waiting.settled && !waiting.rejected, "the add should be admitted");
  buffer.close();
  await running;
  assert.deepEqual(calls.flatMap((c) => c.batch), [1, 2]);
});

test("a waiting add() still rejects when its signal really aborts after a synthetic abort event", async () => {
  const buffer = new BatchBuffer<number>({ chanSize: 1, flush: () => {} });
  const controller = new AbortController();
  await buffer.add(1);
  const waiting = track(buffer.add(2, { signal: controller.signal }));
  await settle();
  controller.signal.dispatchEvent(new Event("abort"));
  await settle();
  const reason = new Error("really aborted");
  controller.abort(reason);
  await settle();
  assert.ok(waiting.rejected, "the add should reject on the real abort");
  assert.equal(waiting.error, reason);
  await buffer[Symbol.asyncDispose]();
  assert.equal(buffer.stats().added, 1);
});

// ---------------------------------------------------------------- also fix: maxBatchBytes: Infinity

test("maxBatchBytes: Infinity, the documented default, is accepted without sizeOf", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = noSyncThrow(
    "new BatchBuffer({ maxBatchBytes: Infinity })",
    () => new BatchBuffer<number>({ capacity: 2, maxBatchBytes: Infinity, flush }),
  );
  const running = buffer.run();
  await buffer.addAll([1, 2, 3]);
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => c.batch), [[1, 2], [3]]);
});

test("maxItemBytes: Infinity with maxBatchBytes: Infinity is accepted without sizeOf", () => {
  noSyncThrow(
    "new BatchBuffer({ maxBatchBytes: Infinity, maxItemBytes: Infinity })",
    () => new BatchBuffer<number>({ maxBatchBytes: Infinity, maxItemBytes: Infinity, flush() {} }),
  );
});

// ---------------------------------------------------------------- also fix: predicates that return promises

/** onError reports that name the hook and say it answered with a promise. */
function asyncHookReports(errors: unknown[], hook: string): unknown[] {
  return errors.filter((e) =>
    e instanceof Error && e.message.includes(hook) && /promise|async|thenable/i.test(e.message)
  );
}

test("an async canAdd is reported once through onError and counts as its default answer (true)", async () => {
  const errors: unknown[] = [];
  const { calls, flush } = recordingFlush<number>();
  const rejected: number[] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 3,
    flush,
    // deno-lint-ignore require-await
    canAdd: (async () => false) as unknown as () => boolean,
    onReject: (item) => void rejected.push(item),
    onError: (error) => void errors.push(error),
  });
  const running = buffer.run();
  await buffer.addAll([0, 1, 2, 3, 4]);
  buffer.close();
  await running;
  assert.equal(asyncHookReports(errors, "canAdd").length, 1, `onError got ${errors}`);
  assert.deepEqual(rejected, []);
  assert.deepEqual(calls.map((c) => c.batch), [[0, 1, 2], [3, 4]]);
});

test("an async willOverflow is reported once through onError and counts as its default answer (false)", async () => {
  const errors: unknown[] = [];
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({
    capacity: 3,
    flush,
    // deno-lint-ignore require-await
    willOverflow: (async () => true) as unknown as () => boolean,
    onError: (error) => void errors.push(error),
  });
  const running = buffer.run();
  await buffer.addAll([0, 1, 2, 3, 4, 5]);
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => [c.reason, c.batch]), [["full", [0, 1, 2]], ["full", [
    3,
    4,
    5,
  ]]]);
  assert.equal(asyncHookReports(errors, "willOverflow").length, 1, `onError got ${errors}`);
});

test("an async shouldFlush is reported once through onError and counts as its default answer", async () => {
  const errors: unknown[] = [];
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({
    capacity: 3,
    flush,
    // deno-lint-ignore require-await
    shouldFlush: (async () => true) as unknown as () => boolean,
    onError: (error) => void errors.push(error),
  });
  const running = buffer.run();
  await buffer.addAll([0, 1, 2, 3, 4]);
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => c.batch), [[0, 1, 2], [3, 4]]);
  assert.equal(asyncHookReports(errors, "shouldFlush").length, 1, `onError got ${errors}`);
});

test("an async canAdd that rejects leaves no unhandled rejection", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({
    flush,
    // deno-lint-ignore require-await
    canAdd: (async () => {
      throw new Error("canAdd failed asynchronously");
    }) as unknown as () => boolean,
    onError: () => {},
  });
  const unhandled = await unhandledDuring(async () => {
    const running = buffer.run();
    await buffer.addAll([1, 2]);
    buffer.close();
    await running;
  });
  assertNoneUnhandled(unhandled);
  assert.deepEqual(calls.flatMap((c) => c.batch), [1, 2]);
});
