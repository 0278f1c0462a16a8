// A byte bound on everything buffered (issue 12, "3. A byte bound", points 1-3).
import assert from "node:assert/strict";
import {
  AddAllError,
  BatchBuffer,
  type BatchBufferConfig,
  BufferClosedError,
  type FlushReason,
} from "../mod.ts";
import { test } from "./harness.ts";
import { type Deferred, deferred, settle, track } from "./helpers.ts";

interface Sized {
  readonly name: string;
  /** Not a number for the items that test invalid sizes. */
  readonly size: unknown;
}

let nextName = 0;
/** An item of `size` bytes (any value: invalid sizes too). */
function item(size: unknown, name = `i${nextName++}`): Sized {
  return { name, size };
}

interface Call {
  readonly batch: Sized[];
  readonly reason: FlushReason;
  readonly done: Deferred;
}

/** A flush whose calls stay in flight until the test resolves (or rejects) them. */
function heldFlush() {
  const calls: Call[] = [];
  const flush = (batch: Sized[], { reason }: { reason: FlushReason }) => {
    const done = deferred();
    calls.push({ batch: [...batch], reason, done });
    return done.promise;
  };
  return { calls, flush };
}

/** A config measuring items by their `size`. */
function sized(config: Omit<BatchBufferConfig<Sized>, "sizeOf">): BatchBufferConfig<Sized> {
  return { sizeOf: (entry) => entry.size as number, ...config };
}

const names = (batch: readonly Sized[]): string[] => batch.map((entry) => entry.name);

/** Resolves every held flush, again and again, until `running` settles. */
async function releaseAll(calls: readonly Call[], running: Promise<void>): Promise<void> {
  const finished = track(running);
  for (let round = 0; !finished.settled; round++) {
    assert.ok(round < 1000, "run() did not finish with every flush released");
    for (const call of calls) call.done.resolve();
    await settle(1);
  }
  await running;
}

// ---------------------------------------------------- 1. measured once, at admission

for (
  const [label, limits] of [
    ["maxBatchBytes", { maxBatchBytes: 100 }],
    ["maxBufferedBytes", { maxBufferedBytes: 1000 }],
  ] as const
) {
  test(`with ${label}, sizeOf measures each item once, when add, tryAdd or addAll admits it`, async () => {
    const measured = new Map<string, number>();
    const buffer = new BatchBuffer<Sized>({
      ...limits,
      capacity: 4,
      sizeOf: (entry) => {
        measured.set(entry.name, (measured.get(entry.name) ?? 0) + 1);
        return entry.size as number;
      },
      flush: () => {},
    });
    // Before run(): nothing leaves the channel, so any call seen now came from admission.
    const added = item(3, "added");
    void buffer.add(added);
    assert.equal(measured.get("added"), 1, "add() measured its item before returning");
    assert.equal(buffer.tryAdd(item(4, "tried")), true);
    assert.equal(measured.get("tried"), 1, "tryAdd() measured its item");
    void buffer.addAll([item(1, "all0"), item(2, "all1")]);
    assert.deepEqual([measured.get("all0"), measured.get("all1")], [1, 1], "addAll() measured");
    assert.equal(buffer.stats().bufferedBytes, 10);
    const running = buffer.run();
    for (let i = 0; i < 10; i++) await buffer.add(item(i, `later${i}`));
    buffer.close();
    await running;
    assert.equal(measured.size, 14);
    for (const [name, count] of measured) assert.equal(count, 1, `${name} measured ${count} times`);
  });
}

test("bufferedBytes counts accepted items until each reaches its final outcome", async () => {
  const { calls, flush } = heldFlush();
  const bytes = () => buffer.stats().bufferedBytes;
  const buffer = new BatchBuffer<Sized>(sized({
    capacity: 2,
    maxConcurrentFlushes: 2,
    maxBufferedBytes: 100,
    maxItemBytes: 50,
    canAdd: (_batch, entry) => entry.name !== "refused",
    onReject: () => {},
    onFlushError: () => {},
    flush,
  }));
  await buffer.add(item(3));
  await buffer.add(item(4));
  assert.equal(bytes(), 7, "in the channel");
  const running = buffer.run();
  await settle();
  assert.equal(calls.length, 1);
  assert.equal(bytes(), 7, "in flight");
  await buffer.add(item(5));
  assert.equal(bytes(), 12, "in a batch");
  await buffer.add(item(6, "refused"));
  await buffer.add(item(60)); // over maxItemBytes
  await buffer.add(item(NaN));
  await settle();
  assert.equal(bytes(), 12, "rejected items weigh nothing");
  calls[0].done.reject(new Error("backend down"));
  await settle();
  assert.equal(bytes(), 5, "a failed flush is a final outcome too");
  const flushed = buffer.flush();
  await settle();
  assert.equal(bytes(), 5, "still in flight");
  calls[1].done.resolve();
  await flushed;
  assert.equal(bytes(), 0);
  buffer.close();
  await running;
  assert.equal(bytes(), 0);
});

test("without sizeOf, bufferedBytes stays 0", async () => {
  const buffer = new BatchBuffer<number>({ flush: () => {} });
  await buffer.add(1);
  await buffer.add(2);
  assert.equal(buffer.stats().bufferedBytes, 0);
  await buffer[Symbol.asyncDispose]();
  assert.equal(buffer.stats().bufferedBytes, 0);
});

// ------------------------------------------------------------- 2. waiting for bytes

test("add() waits while admitting its item would pass maxBufferedBytes, and tryAdd() returns false", async () => {
  const { calls, flush } = heldFlush();
  const buffer = new BatchBuffer<Sized>(sized({
    capacity: 1,
    chanSize: 100,
    maxBufferedBytes: 10,
    flush,
  }));
  const running = buffer.run();
  await buffer.add(item(6, "six")); // in flight
  await buffer.add(item(4, "four")); // full, waits for the one flight slot
  assert.equal(buffer.stats().bufferedBytes, 10);
  const one = track(buffer.add(item(1, "one")));
  await settle();
  assert.equal(one.settled, false, "10 + 1 would pass 10");
  assert.equal(buffer.tryAdd(item(1)), false);
  assert.equal(buffer.tryAdd(item(0, "zero")), false, "never ahead of a waiting add");
  assert.equal(buffer.stats().added, 2);
  assert.ok(buffer.stats().bufferedBytes <= 10);
  calls[0].done.resolve(); // six settles: 4 bytes left
  await settle();
  assert.equal(one.settled, true);
  assert.equal(buffer.stats().bufferedBytes, 5);
  buffer.close();
  await releaseAll(calls, running);
  assert.deepEqual(calls.map((call) => names(call.batch)), [["six"], ["four"], ["one"]]);
});

test("adds waiting for bytes and adds waiting for channel room share one FIFO line", async () => {
  const { calls, flush } = heldFlush();
  const buffer = new BatchBuffer<Sized>(sized({
    capacity: 1,
    chanSize: 2,
    maxBufferedBytes: 10,
    flush,
  }));
  await buffer.add(item(1, "first"));
  await buffer.add(item(1, "second")); // the channel is full
  const w1 = track(buffer.add(item(1, "w1"))); // waits for room in the channel
  const w2 = track(buffer.add(item(9, "w2"))); // waits for room, then for bytes
  const w3 = track(buffer.add(item(1, "w3"))); // fits, but waits behind w2
  const running = buffer.run();
  await settle();
  assert.deepEqual([w1.settled, w2.settled, w3.settled], [true, false, false]);
  assert.equal(buffer.tryAdd(item(0)), false, "tryAdd() does not jump the line");
  calls[0].done.resolve(); // first settles: second, w1 = 2 bytes, 2 + 9 > 10
  await settle();
  assert.deepEqual([w2.settled, w3.settled], [false, false]);
  calls[1].done.resolve(); // second settles: w1 = 1 byte, 1 + 9 fits
  await settle();
  assert.deepEqual([w2.settled, w3.settled], [true, false], "w3 (1 byte) would not fit now");
  assert.equal(buffer.stats().bufferedBytes, 10);
  calls[2].done.resolve(); // w1 settles
  await settle();
  assert.equal(w3.settled, true);
  buffer.close();
  await releaseAll(calls, running);
  assert.deepEqual(calls.map((call) => names(call.batch)), [
    ["first"],
    ["second"],
    ["w1"],
    ["w2"],
    ["w3"],
  ]);
});

test("an add waiting for bytes obeys its signal and leaves the line", async () => {
  const buffer = new BatchBuffer<Sized>(sized({ maxBufferedBytes: 10, flush: () => {} }));
  await buffer.add(item(8, "eight")); // run() not started: the 8 bytes stay
  const controller = new AbortController();
  const reason = new Error("gave up");
  const aborted = track(buffer.add(item(5, "five"), { signal: controller.signal }));
  const behind = track(buffer.add(item(2, "two")));
  await settle();
  assert.deepEqual([aborted.settled, behind.settled], [false, false]);
  controller.abort(reason);
  await settle();
  assert.deepEqual([aborted.rejected, aborted.error], [true, reason]);
  assert.equal(behind.settled, true, "the add behind it fits and moves up");
  assert.equal(buffer.stats().bufferedBytes, 10);
  await assert.rejects(
    buffer.add(item(0), { signal: AbortSignal.abort(reason) }),
    (error) => error === reason,
  );
  await buffer[Symbol.asyncDispose]();
  assert.equal(buffer.stats().added, 2);
  assert.equal(buffer.stats().flushedItems, 2, "eight and two, not five");
});

test("close() rejects an add waiting for bytes with BufferClosedError carrying its item", async () => {
  const delivered: string[] = [];
  const buffer = new BatchBuffer<Sized>(sized({
    maxBufferedBytes: 10,
    flush: (batch) => void delivered.push(...names(batch)),
  }));
  await buffer.add(item(7, "seven"));
  const heavy = item(4, "heavy");
  const waiting = buffer.add(heavy);
  const watched = track(waiting);
  await settle();
  assert.equal(watched.settled, false);
  buffer.close();
  await assert.rejects(
    waiting,
    (error) => error instanceof BufferClosedError && error.item === heavy,
  );
  await buffer.run();
  assert.deepEqual(delivered, ["seven"]);
});

test("addAll() waits for bytes part-way and reports how many items it queued", async () => {
  const buffer = new BatchBuffer<Sized>(sized({ maxBufferedBytes: 10, flush: () => {} }));
  const controller = new AbortController();
  const items = [item(4), item(4), item(4), item(1)];
  const all = buffer.addAll(items, { signal: controller.signal });
  await settle();
  assert.equal(buffer.stats().added, 2, "the third 4 would pass 10");
  assert.equal(buffer.stats().bufferedBytes, 8);
  controller.abort(new Error("stop"));
  await assert.rejects(all, (error) => error instanceof AddAllError && error.accepted === 2);
  await buffer[Symbol.asyncDispose]();
});

// ------------------------------------------------- 3. invalid and oversized items

test("an item of invalid size or over maxItemBytes goes to onReject without waiting for bytes", async () => {
  const rejected: string[] = [];
  const errors: unknown[] = [];
  const boom = new Error("cannot measure");
  const buffer = new BatchBuffer<Sized>({
    maxBufferedBytes: 10,
    sizeOf: (entry) => {
      if (entry.size === "throws") throw boom;
      return entry.size as number;
    },
    onReject: (entry) => void rejected.push(entry.name),
    onError: (error) => void errors.push(error),
    flush: () => {},
  });
  await buffer.add(item(10, "ten")); // run() not started: the buffer is full of bytes
  const waiting = track(buffer.add(item(1, "waits")));
  const invalid = [NaN, -1, Infinity, "3", null, undefined, "throws"].map((size, i) =>
    item(size, `bad${i}`)
  );
  for (const entry of invalid) await buffer.add(entry); // resolves: does not wait in line
  await buffer.add(item(11, "over")); // maxItemBytes defaults to maxBufferedBytes (10)
  assert.equal(buffer.tryAdd(item(NaN, "triedBad")), true);
  await settle();
  assert.deepEqual(rejected, [...invalid.map((entry) => entry.name), "over", "triedBad"]);
  assert.deepEqual(errors, [boom]);
  assert.equal(waiting.settled, false);
  const stats = buffer.stats();
  assert.deepEqual([stats.added, stats.rejected, stats.bufferedBytes], [10, 9, 10]);
  buffer.close();
  await buffer.run();
  assert.equal(waiting.rejected, true);
});

test("maxItemBytes defaults to the smaller of maxBatchBytes and maxBufferedBytes", async () => {
  const cases: { limits: BatchBufferConfig<Sized>["maxBatchBytes"][]; largest: number }[] = [
    { limits: [undefined, 10], largest: 10 },
    { limits: [5, 10], largest: 5 },
    { limits: [20, 10], largest: 10 },
  ];
  for (const { limits: [maxBatchBytes, maxBufferedBytes], largest } of cases) {
    const rejected: unknown[] = [];
    const delivered: unknown[] = [];
    const config = sized({
      maxBufferedBytes,
      onReject: (entry) => void rejected.push(entry.size),
      flush: (batch) => void delivered.push(...batch.map((entry) => entry.size)),
    });
    if (maxBatchBytes !== undefined) config.maxBatchBytes = maxBatchBytes;
    const buffer = new BatchBuffer<Sized>(config);
    const running = buffer.run();
    await buffer.add(item(largest));
    await buffer.add(item(largest + 1));
    buffer.close();
    await running;
    const label = `maxBatchBytes ${maxBatchBytes}, maxBufferedBytes ${maxBufferedBytes}`;
    assert.deepEqual(delivered, [largest], label);
    assert.deepEqual(rejected, [largest + 1], label);
  }
});

test("maxItemBytes above maxBufferedBytes is a RangeError naming both", () => {
  assert.throws(
    () => new BatchBuffer(sized({ maxBufferedBytes: 10, maxItemBytes: 11, flush: () => {} })),
    (error: unknown) =>
      error instanceof RangeError && /maxItemBytes/.test(error.message) &&
      /maxBufferedBytes/.test(error.message),
  );
  // Equal is fine, and so is a maxBatchBytes above maxBufferedBytes.
  new BatchBuffer(sized({ maxBufferedBytes: 10, maxItemBytes: 10, flush: () => {} }));
  new BatchBuffer(sized({ maxBufferedBytes: 10, maxBatchBytes: 20, flush: () => {} }));
});

test("maxBufferedBytes needs sizeOf: a TypeError naming sizeOf", () => {
  assert.throws(
    () => new BatchBuffer<Sized>({ maxBufferedBytes: 10, flush: () => {} }),
    (error: unknown) => error instanceof TypeError && /sizeOf/.test(error.message),
  );
});

test("maxBufferedBytes must be a positive number", () => {
  for (const maxBufferedBytes of [0, -1, NaN, "10", null]) {
    assert.throws(
      () =>
        new BatchBuffer(sized({ maxBufferedBytes: maxBufferedBytes as number, flush: () => {} })),
      (error: unknown) => error instanceof RangeError && /maxBufferedBytes/.test(error.message),
      `maxBufferedBytes ${String(maxBufferedBytes)}`,
    );
  }
  new BatchBuffer(sized({ maxBufferedBytes: Infinity, flush: () => {} }));
  new BatchBuffer(sized({ maxBufferedBytes: 0.5, flush: () => {} }));
});
