import assert from "node:assert/strict";
import { BatchBuffer, type BatchBufferStats } from "../mod.ts";
import { test } from "./harness.ts";
import { prng, settle } from "./helpers.ts";

function accountedFor(stats: BatchBufferStats): number {
  return stats.rejected + stats.flushedItems + stats.failedItems + stats.inFlightItems +
    stats.itemsInChannel + stats.itemsInBatch;
}

function assertInvariant(stats: BatchBufferStats, where: string): void {
  assert.equal(stats.added, accountedFor(stats), `${where}: ${JSON.stringify(stats)}`);
}

/**
 * Runs a check inside a buffer callback. The buffer catches what a callback
 * throws (a throwing hook counts as absent), so a failed assertion there would
 * go unseen: it is kept in `violations` for the test to assert on.
 */
function checkInside(violations: string[], check: () => void): void {
  try {
    check();
  } catch (error) {
    violations.push(error instanceof Error ? error.message : String(error));
  }
}

test("stats() starts at zero", async () => {
  const buffer = new BatchBuffer<number>({ flush: () => {} });
  assert.deepEqual(buffer.stats(), {
    added: 0,
    rejected: 0,
    flushedItems: 0,
    failedItems: 0,
    inFlightItems: 0,
    itemsInChannel: 0,
    itemsInBatch: 0,
    flushes: 0,
    failedFlushes: 0,
    flushesInFlight: 0,
    openBatches: 0,
    bufferedBytes: 0,
    retries: 0,
  });
  await buffer[Symbol.asyncDispose]();
});

test("stats() counts each outcome: flushed, failed, rejected, in the batch, in the channel", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    chanSize: 5,
    canAdd: (_batch, item) => item >= 0,
    flush: (batch) => {
      if (batch.includes(99)) throw new Error("backend refused 99");
      if (batch.includes(7)) return gate;
    },
    onFlushError: () => {},
  });
  await buffer.add(5); // in the channel until run()
  assert.deepEqual(
    [buffer.stats().added, buffer.stats().itemsInChannel, buffer.stats().itemsInBatch],
    [1, 1, 0],
  );
  const running = buffer.run();
  for (const item of [1, -1, 99, 3, 7]) await buffer.add(item);
  await settle(1); // item 5 (and maybe more) went through the channel
  // [5, 1] flushed, -1 rejected, [99, 3] failed, [7] in the batch.
  assert.deepEqual(buffer.stats(), {
    added: 6,
    rejected: 1,
    flushedItems: 2,
    failedItems: 2,
    inFlightItems: 0,
    itemsInChannel: 0,
    itemsInBatch: 1,
    flushes: 1,
    failedFlushes: 1,
    flushesInFlight: 0,
    openBatches: 1,
    bufferedBytes: 0,
    retries: 0,
  });
  await buffer.add(8); // [7, 8] goes out and waits for the gate
  await buffer.add(9); // waits in the channel behind it
  await settle(1);
  assert.deepEqual(buffer.stats(), {
    added: 8,
    rejected: 1,
    flushedItems: 2,
    failedItems: 2,
    inFlightItems: 2,
    itemsInChannel: 1,
    itemsInBatch: 0,
    flushes: 1,
    failedFlushes: 1,
    flushesInFlight: 1,
    openBatches: 0,
    bufferedBytes: 0,
    retries: 0,
  });
  release();
  buffer.close();
  await running;
  assert.deepEqual(buffer.stats(), {
    added: 8,
    rejected: 1,
    flushedItems: 5,
    failedItems: 2,
    inFlightItems: 0,
    itemsInChannel: 0,
    itemsInBatch: 0,
    flushes: 3,
    failedFlushes: 1,
    flushesInFlight: 0,
    openBatches: 0,
    bufferedBytes: 0,
    retries: 0,
  });
});

test("stats().added counts the item the run loop is placing, so it never dips inside a hook", async () => {
  const seen: { where: string; added: number }[] = [];
  const violations: string[] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 10,
    // sizeOf runs when the item is admitted, before it counts as added.
    sizeOf: () => {
      seen.push({ where: "sizeOf", added: buffer.stats().added });
      checkInside(violations, () => assertInvariant(buffer.stats(), "sizeOf"));
      return 1;
    },
    willOverflow: () => {
      seen.push({ where: "willOverflow", added: buffer.stats().added });
      return true;
    },
    canAdd: () => {
      seen.push({ where: "canAdd", added: buffer.stats().added });
      checkInside(violations, () => assertInvariant(buffer.stats(), "canAdd"));
      return true;
    },
    flush: (_batch, { reason }) => {
      seen.push({ where: reason, added: buffer.stats().added });
      checkInside(violations, () => assertInvariant(buffer.stats(), "flush"));
    },
  });
  assert.equal(buffer.tryAdd(1), true);
  assert.equal(buffer.tryAdd(2), true);
  const running = buffer.run();
  buffer.close();
  await running;
  assert.deepEqual(seen, [
    { where: "sizeOf", added: 0 },
    { where: "sizeOf", added: 1 },
    { where: "canAdd", added: 2 }, // item 1, in hand
    { where: "willOverflow", added: 2 }, // item 2, in hand
    { where: "overflow", added: 2 }, // [1] goes out while 2 is in hand
    { where: "canAdd", added: 2 },
    { where: "close", added: 2 },
  ]);
  assert.deepEqual(violations, []);
});

test("stats() keeps added equal to the sum of every outcome throughout a loaded run", async () => {
  const random = prng(2024);
  const producers = 6;
  const perProducer = 60;
  const maxConcurrentFlushes = 3;
  const checks = { producer: 0, flush: 0, onReject: 0, onFlushError: 0, hook: 0 };
  let resolvedAdds = 0;
  let largestInFlight = 0;
  const flushedBatches: number[][] = [];
  const failedBatches: number[][] = [];
  const handedToOnFlushError: number[][] = [];
  const rejectedItems: number[] = [];

  const violations: string[] = [];
  const check = (where: keyof typeof checks): void => {
    checks[where]++;
    checkInside(violations, () => {
      const stats = buffer.stats();
      assertInvariant(stats, where);
      assert.ok(stats.added >= resolvedAdds, `${where}: added ${stats.added} < ${resolvedAdds}`);
      assert.ok(stats.flushesInFlight <= maxConcurrentFlushes, `${where}: too many in flight`);
      largestInFlight = Math.max(largestInFlight, stats.flushesInFlight);
    });
  };

  const buffer = new BatchBuffer<number>({
    capacity: 5,
    chanSize: 6,
    maxConcurrentFlushes,
    flushInterval: Infinity,
    sizeOf: (item) => {
      check("hook");
      return item % 7;
    },
    maxBatchBytes: 20,
    canAdd: (_batch, item) => item % 11 !== 0,
    onReject: (item) => {
      rejectedItems.push(item);
      check("onReject");
    },
    flush: async (batch) => {
      check("flush");
      const fails = random() < 0.2;
      const turns = Math.floor(random() * 3);
      await settle(turns);
      check("flush");
      (fails ? failedBatches : flushedBatches).push(batch);
      if (fails) throw new Error("random failure");
    },
    onFlushError: (_error, batch) => {
      handedToOnFlushError.push(batch);
      check("onFlushError");
    },
  });
  const running = buffer.run();

  const produce = async (producer: number): Promise<void> => {
    let next = 0;
    const item = () => producer * 1000 + ++next;
    while (next < perProducer) {
      const roll = random();
      if (roll < 0.6) {
        await buffer.add(item());
        resolvedAdds++;
      } else if (roll < 0.75) {
        const candidate = item();
        if (!buffer.tryAdd(candidate)) await buffer.add(candidate);
        resolvedAdds++;
      } else if (roll < 0.95) {
        const chunk = Array.from({ length: Math.min(3, perProducer - next) }, item);
        await buffer.addAll(chunk);
        resolvedAdds += chunk.length;
      } else {
        await buffer.flush();
      }
      check("producer");
      if (random() < 0.3) await settle(1);
    }
  };
  await Promise.all(Array.from({ length: producers }, (_, producer) => produce(producer + 1)));
  buffer.close();
  await running;

  assert.deepEqual(violations.slice(0, 5), [], `${violations.length} failed checks`);
  const total = producers * perProducer;
  const stats = buffer.stats();
  assertInvariant(stats, "after run");
  assert.equal(stats.added, total);
  assert.equal(resolvedAdds, total);
  assert.equal(stats.rejected, rejectedItems.length);
  assert.equal(stats.flushedItems, flushedBatches.flat().length);
  assert.equal(stats.failedItems, failedBatches.flat().length);
  assert.equal(stats.flushes, flushedBatches.length);
  assert.equal(stats.failedFlushes, failedBatches.length);
  assert.deepEqual(handedToOnFlushError, failedBatches);
  assert.equal(stats.inFlightItems, 0);
  assert.equal(stats.itemsInChannel, 0);
  assert.equal(stats.itemsInBatch, 0);
  assert.equal(stats.flushesInFlight, 0);

  const everyItem = [...flushedBatches.flat(), ...failedBatches.flat(), ...rejectedItems];
  assert.equal(new Set(everyItem).size, total, "each item ended in exactly one place");
  assert.ok(rejectedItems.every((item) => item % 11 === 0));

  // The run was loaded enough to exercise every path the invariant is checked on.
  assert.equal(largestInFlight, maxConcurrentFlushes);
  assert.ok(stats.failedFlushes > 0 && stats.flushes > 0 && stats.rejected > 0);
  for (const [where, count] of Object.entries(checks)) assert.ok(count > 0, `no check in ${where}`);
});
