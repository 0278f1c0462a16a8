import assert from "node:assert/strict";
import { BatchBuffer, type FlushContext, type FlushReason } from "../mod.ts";
import { test } from "./harness.ts";
import { installClock, prng, settle, track } from "./helpers.ts";

interface Started<T> {
  readonly batch: T[];
  readonly reason: FlushReason;
  readonly release: () => void;
  released: boolean;
}

/** A flush whose every call waits until the test releases it; it counts calls in flight. */
function gatedFlush<T>() {
  const started: Started<T>[] = [];
  const counts = { inFlight: 0, maxInFlight: 0 };
  const flush = (batch: T[], { reason }: FlushContext): Promise<void> => {
    counts.inFlight++;
    counts.maxInFlight = Math.max(counts.maxInFlight, counts.inFlight);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const call: Started<T> = {
      batch,
      reason,
      release: () => {
        call.released = true;
        release();
      },
      released: false,
    };
    started.push(call);
    return gate.then(() => void counts.inFlight--);
  };
  const pending = () => started.filter((call) => !call.released);
  return { flush, started, counts, pending };
}

test("maxConcurrentFlushes allows up to N flushes in flight and never more", async () => {
  const random = prng(7);
  const gated = gatedFlush<number>();
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    chanSize: 4,
    maxConcurrentFlushes: 3,
    flush: gated.flush,
  });
  const running = buffer.run();
  const items = Array.from({ length: 60 }, (_, i) => i);
  void buffer.addAll(items).then(() => buffer.close());
  const finished = track(running);
  while (!finished.settled) {
    await settle(1);
    const stats = buffer.stats();
    assert.ok(gated.counts.inFlight <= 3, `${gated.counts.inFlight} flushes in flight`);
    assert.equal(stats.flushesInFlight, gated.counts.inFlight);
    assert.ok(stats.itemsInChannel <= 4);
    assert.ok(stats.inFlightItems <= 3 * 2);
    // Settle a random flush in flight, so flushes finish out of order.
    const pending = gated.pending();
    if (pending.length > 0) pending[Math.floor(random() * pending.length)].release();
  }
  assert.equal(gated.counts.maxInFlight, 3);
  assert.deepEqual(
    gated.started.flatMap((call) => call.batch),
    items,
    "formed and started in order",
  );
  assert.equal(buffer.stats().flushedItems, items.length);
});

test("maxConcurrentFlushes: with N flushes in flight the run loop takes no items and add() waits", async () => {
  const gated = gatedFlush<number>();
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    chanSize: 3,
    maxConcurrentFlushes: 2,
    flush: gated.flush,
  });
  const running = buffer.run();
  for (const item of [1, 2, 3, 4]) await buffer.add(item); // two full batches in flight
  for (const item of [5, 6, 7]) await buffer.add(item);
  const eighth = buffer.add(8);
  const added = track(eighth);
  await settle();

  let stats = buffer.stats();
  assert.equal(stats.flushesInFlight, 2);
  assert.equal(stats.itemsInChannel, 3);
  assert.equal(stats.itemsInBatch, 0, "the run loop took nothing");
  assert.equal(added.settled, false, "add() waits for room");
  assert.equal(gated.started.length, 2);

  gated.started[1].release(); // a slot frees: the loop takes 5 and 6 and flushes them
  await settle();
  assert.deepEqual(gated.started.map((call) => call.batch), [[1, 2], [3, 4], [5, 6]]);
  assert.equal(added.settled, true);
  stats = buffer.stats();
  assert.equal(stats.flushesInFlight, 2);
  assert.equal(stats.itemsInChannel, 2);

  buffer.close();
  while (gated.pending().length > 0) {
    for (const call of gated.pending()) call.release();
    await settle();
  }
  await running;
  assert.deepEqual(gated.started.flatMap((call) => call.batch), [1, 2, 3, 4, 5, 6, 7, 8]);
});

test("run() resolves only after every flush in flight has settled", async () => {
  const gated = gatedFlush<number>();
  const buffer = new BatchBuffer<number>({
    capacity: 1,
    maxConcurrentFlushes: 3,
    flush: gated.flush,
  });
  const running = buffer.run();
  for (const item of [1, 2, 3]) await buffer.add(item);
  buffer.close();
  const finished = track(running);
  for (const index of [2, 0]) {
    gated.started[index].release();
    await settle();
    assert.equal(finished.settled, false);
  }
  gated.started[1].release();
  await settle();
  assert.equal(finished.settled, true);
  assert.equal(gated.started.length, 3);
});

test("flush() waits for every flush in flight and for the items behind them", async () => {
  const gated = gatedFlush<number>();
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    maxConcurrentFlushes: 3,
    flush: gated.flush,
  });
  const running = buffer.run();
  for (const item of [0, 1, 2, 3, 4, 5]) await buffer.add(item); // three flushes in flight
  await buffer.add(6); // waits in the channel
  const flushed = track(buffer.flush());
  for (const index of [1, 2]) {
    gated.started[index].release();
    await settle();
    assert.equal(flushed.settled, false);
  }
  assert.equal(gated.started.length, 4);
  assert.deepEqual(gated.started[3].batch, [6]);
  assert.equal(gated.started[3].reason, "manual");
  gated.started[0].release();
  await settle();
  assert.equal(flushed.settled, false, "the manual flush of item 6 is still in flight");
  gated.started[3].release();
  await settle();
  assert.equal(flushed.settled, true);
  buffer.close();
  await running;
});

test("[Symbol.asyncDispose]() waits for every flush in flight", async () => {
  const gated = gatedFlush<number>();
  const buffer = new BatchBuffer<number>({
    capacity: 1,
    maxConcurrentFlushes: 2,
    flush: gated.flush,
  });
  void buffer.run();
  await buffer.add(1);
  await buffer.add(2);
  const disposed = track(buffer[Symbol.asyncDispose]());
  gated.started[1].release();
  await settle();
  assert.equal(disposed.settled, false);
  gated.started[0].release();
  await settle();
  assert.equal(disposed.settled, true);
});

test("maxConcurrentFlushes: a flush that falls due while every slot is busy goes first when one frees", async () => {
  const clock = installClock();
  try {
    const gated = gatedFlush<number>();
    const buffer = new BatchBuffer<number>({
      capacity: 10,
      flushInterval: 1000,
      maxConcurrentFlushes: 1,
      willOverflow: (_batch, item) => item < 0,
      flush: gated.flush,
    });
    const running = buffer.run();
    await buffer.add(1);
    await buffer.add(-2); // overflow: [1] takes the only slot, [-2] starts the next batch
    await clock.tickAsync(1000); // [-2] is due but no slot is free
    await buffer.add(3);
    assert.equal(gated.started.length, 1);

    gated.started[0].release();
    await clock.tickAsync(0);
    assert.deepEqual(gated.started.map(({ batch, reason }) => ({ batch, reason })), [
      { batch: [1], reason: "overflow" },
      { batch: [-2], reason: "interval" },
    ]);
    buffer.close();
    gated.started[1].release();
    await clock.tickAsync(0);
    gated.started[2].release();
    await running;
    assert.deepEqual(gated.started[2].batch, [3]);
    assert.equal(gated.started[2].reason, "close");
  } finally {
    clock.uninstall();
  }
});

test("maxConcurrentFlushes must be a positive integer", () => {
  for (const bad of [0, -1, 1.5, NaN, Infinity]) {
    assert.throws(
      () => new BatchBuffer<number>({ maxConcurrentFlushes: bad, flush: () => {} }),
      RangeError,
    );
  }
});
