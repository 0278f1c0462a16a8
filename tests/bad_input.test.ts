// Bad input at every public entry point other than the config (tests/config.test.ts
// covers that): wrong options, non-iterables, methods in the wrong state and odd
// items. Each gets its documented error or behaviour, and the items accepted
// before it are still flushed (Ledger.assertConserved).
import assert from "node:assert/strict";
import { AddAllError, BatchBuffer, BufferClosedError } from "../mod.ts";
import { test } from "./harness.ts";
import { Ledger } from "./ledger.ts";

function setup<T = unknown>(capacity = 3) {
  const ledger = new Ledger<T>();
  const buffer = new BatchBuffer<T>({ capacity, ...ledger.hooks(), flush: ledger.flush() });
  return { ledger, buffer };
}

/** Values that are not AbortSignals, with how the error message names them. */
const notSignals: [unknown, string][] = [
  ["abort", '"abort"'],
  [42, "42"],
  [null, "null"],
  [true, "true"],
  [{}, "an object"],
  [{ aborted: true, reason: "fake", addEventListener() {} }, "an object"],
  [new EventTarget(), "an instance of EventTarget"],
  [new AbortController(), "an instance of AbortController"],
  [() => {}, "a function"],
];

// ---------------------------------------------------------------- wrong options

for (const [signal, described] of notSignals) {
  test(`add() rejects a signal that is ${described} with a TypeError and keeps earlier items`, async () => {
    const { ledger, buffer } = setup<number>();
    const running = buffer.run();
    await ledger.add(buffer, 1);
    await assert.rejects(
      buffer.add(2, { signal: signal as AbortSignal }),
      new TypeError(`options.signal must be an AbortSignal, received ${described}`),
    );
    await ledger.add(buffer, 3);
    buffer.close();
    await running;
    ledger.assertConserved(buffer);
    assert.deepEqual(ledger.delivered(), [1, 3]);
  });

  test(`addAll() rejects a signal that is ${described} with a TypeError before taking any item`, async () => {
    const { ledger, buffer } = setup<number>();
    const running = buffer.run();
    await ledger.add(buffer, 1);
    const error = await buffer.addAll([2, 3], { signal: signal as AbortSignal }).then(
      () => assert.fail("addAll resolved"),
      (e) => e,
    );
    assert.ok(!(error instanceof AddAllError), "a TypeError, not a part-way failure");
    assert.deepEqual(
      error,
      new TypeError(`options.signal must be an AbortSignal, received ${described}`),
    );
    buffer.close();
    await running;
    ledger.assertConserved(buffer);
    assert.deepEqual(ledger.delivered(), [1]);
  });

  test(`run() rejects a signal that is ${described} with a TypeError; run() still works after`, async () => {
    const { ledger, buffer } = setup<number>();
    await ledger.add(buffer, 1); // waits in the channel
    await assert.rejects(
      buffer.run(signal as AbortSignal),
      new TypeError(`signal must be an AbortSignal, received ${described}`),
    );
    const running = buffer.run();
    await ledger.add(buffer, 2);
    buffer.close();
    await running;
    ledger.assertConserved(buffer);
    assert.deepEqual(ledger.delivered(), [1, 2]);
  });
}

test("add() and addAll() accept options without a signal", async () => {
  const { ledger, buffer } = setup<number>();
  const running = buffer.run();
  await buffer.add(1, {});
  await buffer.add(2, { signal: undefined });
  await buffer.addAll([3, 4], {});
  ledger.accepted.push(1, 2, 3, 4);
  buffer.close();
  await running;
  ledger.assertConserved(buffer);
  assert.deepEqual(ledger.delivered(), [1, 2, 3, 4]);
});

const notIterables: [unknown, string][] = [
  [42, "42"],
  [null, "null"],
  [undefined, "undefined"],
  [{}, "an object"],
  [{ length: 2, 0: "a", 1: "b" }, "an object"],
  [Promise.resolve([1]), "an instance of Promise"],
  [new ReadableStream(), "an instance of ReadableStream"],
  [{ [Symbol.iterator]: 1 }, "an object"],
];

for (const [items, described] of notIterables) {
  test(`addAll() rejects ${described} (not iterable) with a TypeError and keeps earlier items`, async () => {
    const { ledger, buffer } = setup<unknown>();
    const running = buffer.run();
    await ledger.add(buffer, "before");
    await assert.rejects(
      buffer.addAll(items as Iterable<unknown>),
      new TypeError(`items must be iterable, received ${described}`),
    );
    await ledger.add(buffer, "after");
    buffer.close();
    await running;
    ledger.assertConserved(buffer);
    assert.deepEqual(ledger.delivered(), ["before", "after"]);
  });
}

test("addAll() of a string adds its characters (a string is iterable)", async () => {
  const { ledger, buffer } = setup<string>();
  const running = buffer.run();
  await buffer.addAll("abc");
  ledger.accepted.push("a", "b", "c");
  buffer.close();
  await running;
  ledger.assertConserved(buffer);
  assert.deepEqual(ledger.delivered(), ["a", "b", "c"]);
});

test("addAll() whose iterator cannot be made rejects AddAllError(0) with the cause", async () => {
  const { ledger, buffer } = setup<number>();
  const running = buffer.run();
  const cause = new Error("no iterator today");
  const iterable = {
    [Symbol.iterator](): Iterator<number> {
      throw cause;
    },
  };
  const error = await buffer.addAll(iterable).catch((e) => e);
  assert.ok(error instanceof AddAllError);
  assert.equal(error.accepted, 0);
  assert.equal(error.cause, cause);
  buffer.close();
  await running;
  ledger.assertConserved(buffer);
});

test("addAll() whose iterator throws part-way keeps the items before it", async () => {
  const { ledger, buffer } = setup<number>();
  const running = buffer.run();
  const cause = new Error("source broke");
  function* source() {
    yield 1;
    yield 2;
    throw cause;
  }
  const error = await buffer.addAll(source()).catch((e) => e);
  assert.ok(error instanceof AddAllError);
  assert.equal(error.accepted, 2);
  assert.equal(error.cause, cause);
  ledger.accepted.push(1, 2);
  buffer.close();
  await running;
  ledger.assertConserved(buffer);
  assert.deepEqual(ledger.delivered(), [1, 2]);
});

// ---------------------------------------------------------------- wrong state

test("add() after close() rejects BufferClosedError with the item, even with an aborted signal", async () => {
  const { ledger, buffer } = setup<object>();
  const running = buffer.run();
  const kept = { n: 1 };
  await ledger.add(buffer, kept);
  buffer.close();
  const late = { n: 2 };
  const error = await buffer.add(late).catch((e) => e);
  assert.ok(error instanceof BufferClosedError);
  assert.equal(error.item, late);
  const aborted = AbortSignal.abort(new Error("aborted too"));
  const second = await buffer.add(late, { signal: aborted }).catch((e) => e);
  assert.ok(second instanceof BufferClosedError, "closed is checked before the signal");
  await running;
  ledger.assertConserved(buffer);
  assert.deepEqual(ledger.delivered(), [kept]);
});

test("tryAdd() after close() throws BufferClosedError with the item", async () => {
  const { ledger, buffer } = setup<string>();
  const running = buffer.run();
  assert.equal(buffer.tryAdd("kept"), true);
  ledger.accepted.push("kept");
  buffer.close();
  assert.throws(
    () => buffer.tryAdd("late"),
    (e: unknown) => e instanceof BufferClosedError && e.item === "late",
  );
  await running;
  ledger.assertConserved(buffer);
  assert.deepEqual(ledger.delivered(), ["kept"]);
});

test("addAll() after close() rejects AddAllError(0) caused by BufferClosedError for the first item", async () => {
  const { ledger, buffer } = setup<string>();
  const running = buffer.run();
  await ledger.add(buffer, "kept");
  buffer.close();
  const error = await buffer.addAll(["x", "y"]).catch((e) => e);
  assert.ok(error instanceof AddAllError);
  assert.equal(error.accepted, 0);
  assert.ok(error.cause instanceof BufferClosedError);
  assert.equal(error.cause.item, "x");
  await running;
  ledger.assertConserved(buffer);
});

test("adds waiting for room when close() is called reject BufferClosedError; accepted items flush", async () => {
  const ledger = new Ledger<number>();
  const buffer = new BatchBuffer<number>({ capacity: 10, chanSize: 2, flush: ledger.flush() });
  await ledger.add(buffer, 1);
  await ledger.add(buffer, 2); // the channel is full: run() was not called
  const waiting = [3, 4].map((i) => buffer.add(i).catch((e) => e));
  buffer.close();
  const errors = await Promise.all(waiting);
  assert.deepEqual(errors.map((e) => e instanceof BufferClosedError && e.item), [3, 4]);
  await buffer.run();
  ledger.assertConserved(buffer);
  assert.deepEqual(ledger.delivered(), [1, 2]);
});

test("run() twice: the second rejects and the first run is undisturbed", async () => {
  const { ledger, buffer } = setup<number>();
  const first = buffer.run();
  await ledger.add(buffer, 1);
  await assert.rejects(buffer.run(), /run\(\) was already called/);
  await ledger.add(buffer, 2);
  buffer.close();
  await first;
  await assert.rejects(buffer.run(), /run\(\) was already called/);
  ledger.assertConserved(buffer);
  assert.deepEqual(ledger.delivered(), [1, 2]);
});

test("flush() before run() rejects while items are pending and loses none of them", async () => {
  const { ledger, buffer } = setup<number>();
  await buffer.flush(); // nothing pending: resolves
  await ledger.add(buffer, 1);
  await assert.rejects(buffer.flush(), /flush\(\) needs the run loop: call run\(\) first/);
  assert.equal(buffer.stats().itemsInChannel, 1);
  const running = buffer.run();
  await buffer.flush();
  assert.deepEqual(ledger.delivered(), [1]);
  buffer.close();
  await running;
  ledger.assertConserved(buffer);
});

test("flush() after the run finished resolves without calling flush", async () => {
  const { ledger, buffer } = setup<number>();
  const running = buffer.run();
  await ledger.add(buffer, 1);
  buffer.close();
  await running;
  await buffer.flush();
  assert.equal(ledger.flushes.length, 1);
  ledger.assertConserved(buffer);
});

test("close() before run(), then run(): queued items are flushed and run() resolves", async () => {
  const { ledger, buffer } = setup<number>();
  for (let i = 0; i < 4; i++) await ledger.add(buffer, i);
  buffer.close();
  buffer.close(); // a second close does nothing
  await buffer.run();
  ledger.assertConserved(buffer);
  assert.deepEqual(ledger.flushes.map((f) => [f.batch, f.reason]), [
    [[0, 1, 2], "full"],
    [[3], "close"],
  ]);
});

test("dispose twice: both wait for the same run, which flushes once", async () => {
  const { ledger, buffer } = setup<number>();
  await ledger.add(buffer, 1);
  const first = buffer[Symbol.asyncDispose](); // runs the buffer itself
  const second = buffer[Symbol.asyncDispose]();
  await Promise.all([first, second]);
  await buffer[Symbol.asyncDispose]();
  ledger.assertConserved(buffer);
  assert.deepEqual(ledger.flushes.map((f) => f.batch), [[1]]);
  await assert.rejects(buffer.run(), /already called/);
});

test("dispose while run() is going waits for that run", async () => {
  const { ledger, buffer } = setup<number>();
  const running = buffer.run();
  await ledger.add(buffer, 1);
  await buffer[Symbol.asyncDispose]();
  await running;
  ledger.assertConserved(buffer);
  assert.deepEqual(ledger.delivered(), [1]);
});

// ---------------------------------------------------------------- odd items

test("odd items (undefined, null, NaN, a symbol, a function) are batched as they are", async () => {
  const fn = () => {};
  const sym = Symbol("item");
  const odd: unknown[] = [undefined, null, NaN, 0, "", false, sym, fn];
  for (const viaChannel of [false, true]) {
    const { ledger, buffer } = setup<unknown>(4);
    if (!viaChannel) void buffer.run();
    for (const item of odd) await ledger.add(buffer, item); // before run(): in the channel
    const running = viaChannel ? buffer.run() : undefined;
    await buffer[Symbol.asyncDispose]();
    await running;
    ledger.assertConserved(buffer);
    const out = ledger.delivered();
    assert.equal(out.length, odd.length);
    out.forEach((item, i) => assert.ok(Object.is(item, odd[i]), `item ${i} changed`));
  }
});

test("the same object added twice is flushed twice, by identity", async () => {
  const { ledger, buffer } = setup<{ n: number }>(2);
  const running = buffer.run();
  const twice = { n: 1 };
  await ledger.add(buffer, twice);
  await ledger.add(buffer, twice);
  assert.equal(buffer.tryAdd(twice), true);
  ledger.accepted.push(twice);
  buffer.close();
  await running;
  ledger.assertConserved(buffer);
  const out = ledger.delivered();
  assert.equal(out.length, 3);
  assert.ok(out.every((item) => item === twice));
});

test("huge items pass through untouched: a 16 MiB string and a million-element array", async () => {
  const { ledger, buffer } = setup<unknown>(2);
  const running = buffer.run();
  const text = "x".repeat(16 * 1024 * 1024);
  const array = new Array(1_000_000).fill(7);
  await ledger.add(buffer, text);
  await ledger.add(buffer, array);
  await ledger.add(buffer, { nested: { array } });
  buffer.close();
  await running;
  ledger.assertConserved(buffer);
  const [a, b, c] = ledger.delivered() as [string, number[], { nested: { array: number[] } }];
  assert.equal(a, text);
  assert.equal(b, array);
  assert.equal(c.nested.array, array);
  assert.equal(b.length, 1_000_000);
});

test("a frozen or proxied item is handed over as the same object", async () => {
  const { ledger, buffer } = setup<object>(10);
  const running = buffer.run();
  const frozen = Object.freeze({ a: 1 });
  let touched = 0;
  const proxy = new Proxy({}, {
    get: () => (touched++, undefined),
    has: () => (touched++, false),
  });
  await ledger.add(buffer, frozen);
  await ledger.add(buffer, proxy);
  buffer.close();
  await running;
  ledger.assertConserved(buffer);
  assert.deepEqual(ledger.delivered().length, 2);
  assert.equal(ledger.delivered()[0], frozen);
  assert.equal(ledger.delivered()[1], proxy);
  assert.equal(touched, 0, "the buffer never reads an item's properties");
});
