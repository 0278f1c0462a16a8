// The two ways an add reaches the run loop (issue 2 "Performance is part of the design"):
// handed straight to an idle run loop, or queued in the channel while a flush is in flight.
import assert from "node:assert/strict";
import { BatchBuffer } from "../mod.ts";
import { controlledFlush, deferred, settle } from "./helpers.ts";
import { test } from "./harness.ts";

test("BatchBuffer.add() on an idle run loop places the item in the batch at once, not in the channel", async () => {
  const buffer = new BatchBuffer<string>({ flush: () => {}, capacity: 10 });
  const running = buffer.run();
  await settle(1);
  const added = buffer.add("a");
  assert.equal(buffer.itemsInChannel, 0);
  assert.deepEqual(
    [buffer.stats().added, buffer.stats().itemsInBatch, buffer.stats().itemsInChannel],
    [1, 1, 0],
  );
  await added;
  buffer.close();
  await running;
});

test("BatchBuffer.add() while a flush is in flight queues the item in the channel", async () => {
  const { calls, flush } = controlledFlush<string>();
  const buffer = new BatchBuffer<string>({ flush, capacity: 1 });
  const running = buffer.run();
  await buffer.add("a"); // full: its flush stays in flight
  const added = buffer.add("b");
  assert.equal(buffer.itemsInChannel, 1);
  assert.deepEqual(
    [buffer.stats().added, buffer.stats().itemsInBatch, buffer.stats().inFlightItems],
    [2, 0, 1],
  );
  await added;
  calls[0].done.resolve();
  await settle(1);
  assert.equal(buffer.itemsInChannel, 0);
  assert.deepEqual(calls.map((c) => c.batch), [["a"], ["b"]]);
  buffer.close();
  calls[1].done.resolve();
  await running;
});

test("BatchBuffer.add() queues the item in the channel once a flush() call has taken the only flush slot", async () => {
  const { calls, flush } = controlledFlush<string>();
  const buffer = new BatchBuffer<string>({ flush, capacity: 10, maxConcurrentFlushes: 1 });
  const running = buffer.run();
  await buffer.add("a"); // opens the batch
  await buffer.add("b"); // joins it, straight from the producer
  const flushed = buffer.flush(); // its flight takes the only slot
  assert.deepEqual(calls.map((c) => c.snapshot), [["a", "b"]]);
  const added = buffer.add("c");
  assert.deepEqual([buffer.itemsInChannel, buffer.stats().itemsInBatch], [1, 0]);
  await added;
  calls[0].done.resolve();
  await flushed;
  buffer.close();
  await settle(1);
  assert.deepEqual(calls.map((c) => c.snapshot), [["a", "b"], ["c"]]);
  calls[1].done.resolve();
  await running;
});

type Path = "direct" | "channel";

/**
 * The same items and hooks, with every add after the first taking one path.
 * The first item fills a batch on its own; its flush is held open on the
 * channel path until every other add has been made.
 */
async function scenario(path: Path) {
  const gate = deferred();
  const flushes: [number[], string][] = [];
  const rejected: number[] = [];
  const channelSizes: number[] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 4,
    chanSize: 100,
    shouldFlush: (batch) => batch[0] === -1 || batch.length >= 4,
    willOverflow: (_batch, item) => item % 10 === 5,
    canAdd: (_batch, item) => item % 7 !== 3,
    onReject: (item) => void rejected.push(item),
    flush: (batch, { reason }) => {
      flushes.push([batch, reason]);
      if (batch[0] === -1 && path === "channel") return gate.promise;
    },
  });
  const running = buffer.run();
  await buffer.add(-1);
  const adds: Promise<void>[] = [];
  for (let i = 0; i < 30; i++) {
    adds.push(buffer.add(i));
    channelSizes.push(buffer.itemsInChannel);
  }
  const midway = buffer.stats();
  gate.resolve();
  await Promise.all(adds);
  buffer.close();
  await running;
  return { flushes, rejected, channelSizes, midway, stats: buffer.stats() };
}

test("BatchBuffer gives the same batches, rejects and stats on the direct path and the channel path", async () => {
  const direct = await scenario("direct");
  const channel = await scenario("channel");
  assert.ok(direct.channelSizes.every((size) => size === 0), "direct adds skip the channel");
  assert.deepEqual(channel.channelSizes, Array.from({ length: 30 }, (_, i) => i + 1));
  assert.equal(direct.midway.added, 31);
  assert.equal(channel.midway.added, 31);
  assert.equal(channel.midway.itemsInChannel, 30);
  assert.deepEqual(channel.flushes, direct.flushes);
  assert.deepEqual(channel.rejected, direct.rejected);
  assert.deepEqual(channel.stats, direct.stats);
  // And the batches are the expected ones, not merely equal to each other.
  assert.deepEqual(direct.flushes.slice(0, 6), [
    [[-1], "full"],
    [[0, 1, 2, 4], "full"],
    [[5, 6, 7, 8], "full"],
    [[9, 11, 12, 13], "full"],
    [[14], "overflow"],
    [[15, 16, 18, 19], "full"],
  ]);
  assert.deepEqual(direct.rejected, [3, 10, 17, 24]);
  assert.equal(direct.stats.flushedItems + direct.stats.rejected, 31);
});

test("BatchBuffer.add() right after run() does not overtake items still in the channel", async () => {
  const batches: string[][] = [];
  const buffer = new BatchBuffer<string>({ flush: (batch) => void batches.push(batch) });
  await buffer.add("a");
  await buffer.add("b");
  const running = buffer.run();
  await buffer.add("c");
  buffer.close();
  await running;
  assert.deepEqual(batches, [["a", "b", "c"]]);
});

test("BatchBuffer keeps acceptance order when adds switch between the direct and channel paths", async () => {
  const { calls, flush } = controlledFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 2, chanSize: 10 });
  let runDone = false;
  const running = buffer.run().then(() => void (runDone = true));
  const paths: string[] = [];
  for (let i = 0; i < 12; i++) {
    const before = buffer.itemsInChannel;
    const added = buffer.add(i);
    paths.push(buffer.itemsInChannel > before ? "channel" : "direct");
    await added;
    if (i % 3 === 2) {
      for (const call of calls) call.done.resolve(); // the loop goes idle again
      await settle(1);
    }
  }
  buffer.close();
  while (!runDone) {
    for (const call of calls) call.done.resolve();
    await settle(1);
  }
  await running;
  assert.ok(paths.includes("direct") && paths.includes("channel"), paths.join());
  assert.deepEqual(calls.flatMap((c) => c.batch), Array.from({ length: 12 }, (_, i) => i));
  const stats = buffer.stats();
  assert.deepEqual([stats.added, stats.flushedItems, stats.itemsInChannel], [12, 12, 0]);
});
