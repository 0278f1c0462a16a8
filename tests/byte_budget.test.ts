import assert from "node:assert/strict";
import { BatchBuffer, type FlushReason } from "../mod.ts";
import { test } from "./harness.ts";
import { prng, settle } from "./helpers.ts";

interface Sized {
  readonly id: number;
  readonly size: unknown;
}

interface FlushCall<T> {
  readonly batch: T[];
  readonly reason: FlushReason;
}

test("sizeOf is called exactly once per item, on both the direct and the channel path", async () => {
  const random = prng(1);
  const items: Sized[] = Array.from({ length: 300 }, (_, id) => ({
    id,
    size: Math.floor(random() * 30), // up to 29; over maxItemBytes (25) is rejected
  }));
  const calls = new Map<number, number>();
  const delivered: number[] = [];
  const rejected: number[] = [];
  const buffer = new BatchBuffer<Sized>({
    capacity: 6,
    chanSize: 4,
    maxBatchBytes: 50,
    maxItemBytes: 25,
    sizeOf: (item) => {
      calls.set(item.id, (calls.get(item.id) ?? 0) + 1);
      return item.size as number;
    },
    onReject: (item) => void rejected.push(item.id),
    flush: async (batch) => {
      if (batch[0].id % 3 === 0) await settle(1); // sometimes slow, so items queue in the channel
      delivered.push(...batch.map((item) => item.id));
    },
  });
  const running = buffer.run();
  for (const item of items) await buffer.add(item);
  buffer.close();
  await running;

  assert.equal(calls.size, items.length);
  for (const [id, count] of calls) {
    assert.equal(count, 1, `sizeOf was called ${count} times for ${id}`);
  }
  assert.deepEqual([...delivered, ...rejected].sort((a, b) => a - b), items.map((item) => item.id));
  assert.deepEqual(rejected, items.filter((item) => (item.size as number) > 25).map((i) => i.id));
});

test("items with an invalid size or over maxItemBytes go to onReject, not to flush", async () => {
  const boom = new Error("cannot measure");
  const items: Sized[] = [
    { id: 0, size: 5 },
    { id: 1, size: NaN },
    { id: 2, size: -1 },
    { id: 3, size: Infinity },
    { id: 4, size: "12" },
    { id: 5, size: null },
    { id: 6, size: undefined },
    { id: 7, size: "throws" },
    { id: 8, size: 41 },
    { id: 9, size: 40 },
    { id: 10, size: 0 },
    { id: 11, size: 50 },
  ];
  const rejected: number[] = [];
  const errors: unknown[] = [];
  const calls: FlushCall<number>[] = [];
  const buffer = new BatchBuffer<Sized>({
    maxBatchBytes: 100,
    maxItemBytes: 40,
    sizeOf: (item) => {
      if (item.size === "throws") throw boom;
      return item.size as number;
    },
    onReject: (item) => void rejected.push(item.id),
    onError: (error) => void errors.push(error),
    flush: (batch, { reason }) => void calls.push({ batch: batch.map((i) => i.id), reason }),
  });
  const running = buffer.run();
  for (const item of items) await buffer.add(item);
  buffer.close();
  await running;

  assert.deepEqual(rejected, [1, 2, 3, 4, 5, 6, 7, 8, 11]);
  assert.deepEqual(calls, [{ batch: [0, 9, 10], reason: "close" }]);
  assert.deepEqual(errors, [boom], "the sizeOf error is reported");
  assert.equal(buffer.stats().rejected, 9);
});

test("invalid sizes go to onReject even without maxBatchBytes", async () => {
  const items: Sized[] = [
    { id: 0, size: 1 },
    { id: 1, size: NaN },
    { id: 2, size: -1 },
    { id: 3, size: Infinity },
    { id: 4, size: "12" },
    { id: 5, size: null },
    { id: 6, size: 1e9 },
  ];
  const rejected: number[] = [];
  const delivered: number[] = [];
  const buffer = new BatchBuffer<Sized>({
    sizeOf: (item) => item.size as number,
    onReject: (item) => void rejected.push(item.id),
    flush: (batch) => void delivered.push(...batch.map((i) => i.id)),
  });
  const running = buffer.run();
  for (const item of items) await buffer.add(item);
  buffer.close();
  await running;
  assert.deepEqual(rejected, [1, 2, 3, 4, 5]);
  assert.deepEqual(delivered, [0, 6]);
});

test("maxItemBytes defaults to maxBatchBytes", async () => {
  const rejected: number[] = [];
  const calls: FlushCall<number>[] = [];
  const buffer = new BatchBuffer<number>({
    maxBatchBytes: 100,
    sizeOf: (size) => size,
    onReject: (size) => void rejected.push(size),
    flush: (batch, { reason }) => void calls.push({ batch, reason }),
  });
  const running = buffer.run();
  await buffer.add(101);
  await buffer.add(100);
  buffer.close();
  await running;
  assert.deepEqual(rejected, [101]);
  assert.deepEqual(calls, [{ batch: [100], reason: "full" }]);
});

test("an item that would push the batch over maxBatchBytes first flushes the batch as overflow", async () => {
  const calls: FlushCall<number>[] = [];
  const buffer = new BatchBuffer<number>({
    maxBatchBytes: 10,
    sizeOf: (size) => size,
    flush: (batch, { reason }) => void calls.push({ batch, reason }),
  });
  const running = buffer.run();
  for (const size of [4, 4, 4, 7]) await buffer.add(size);
  buffer.close();
  await running;
  assert.deepEqual(calls, [
    { batch: [4, 4], reason: "overflow" },
    { batch: [4], reason: "overflow" },
    { batch: [7], reason: "close" },
  ]);
});

test("a batch that reaches maxBatchBytes exactly is flushed as full", async () => {
  const calls: FlushCall<number>[] = [];
  const buffer = new BatchBuffer<number>({
    maxBatchBytes: 10,
    sizeOf: (size) => size,
    flush: (batch, { reason }) => void calls.push({ batch, reason }),
  });
  const running = buffer.run();
  for (const size of [4, 6, 0, 10, 3]) await buffer.add(size);
  buffer.close();
  await running;
  assert.deepEqual(calls, [
    { batch: [4, 6], reason: "full" },
    { batch: [0, 10], reason: "full" },
    { batch: [3], reason: "close" },
  ]);
});

test("no flushed batch ever weighs more than maxBatchBytes", async () => {
  const random = prng(42);
  const maxBatchBytes = 1000;
  const sizes = Array.from({ length: 2000 }, () => {
    const roll = random();
    // Mostly small items, some big ones and a few exactly at the item limit.
    if (roll < 0.7) return Math.floor(random() * 50);
    if (roll < 0.95) return Math.floor(random() * 600);
    return 600;
  });
  const batches: number[][] = [];
  const reasons = new Set<FlushReason>();
  const buffer = new BatchBuffer<number>({
    capacity: 30,
    chanSize: 10,
    maxBatchBytes,
    maxItemBytes: 600,
    sizeOf: (size) => size,
    flush: async (batch, { reason }) => {
      batches.push(batch);
      reasons.add(reason);
      if (batches.length % 4 === 0) await settle(1);
    },
  });
  const running = buffer.run();
  await buffer.addAll(sizes);
  buffer.close();
  await running;

  for (const batch of batches) {
    const weight = batch.reduce((sum, size) => sum + size, 0);
    assert.ok(weight <= maxBatchBytes, `a batch weighed ${weight}`);
    assert.ok(batch.length <= 30);
  }
  assert.deepEqual(batches.flat(), sizes, "every item flushed once, in order");
  assert.ok(reasons.has("overflow") && reasons.has("full"), "both limits were exercised");
});

test("sizeOf, maxBatchBytes, willOverflow, canAdd and shouldFlush apply in the documented order", async () => {
  interface Item {
    readonly name: string;
    readonly size: number;
    /** w: willOverflow says yes; r: canAdd says no; s: shouldFlush says yes. */
    readonly flags: string;
  }
  const events: string[] = [];
  const buffer = new BatchBuffer<Item>({
    maxBatchBytes: 10,
    capacity: 100,
    sizeOf: (item) => {
      events.push(`sizeOf ${item.name}`);
      return item.size;
    },
    willOverflow: (_batch, item) => {
      events.push(`willOverflow ${item.name}`);
      return item.flags.includes("w");
    },
    canAdd: (_batch, item) => {
      events.push(`canAdd ${item.name}`);
      return !item.flags.includes("r");
    },
    shouldFlush: (batch) => {
      const last = batch[batch.length - 1];
      events.push(`shouldFlush ${last.name}`);
      return last.flags.includes("s");
    },
    onReject: (item) => void events.push(`onReject ${item.name}`),
    flush: (batch, { reason }) => {
      events.push(`flush ${reason} ${batch.map((item) => item.name).join("")}`);
    },
  });
  const items: Item[] = [
    { name: "a", size: 3, flags: "" },
    { name: "b", size: 3, flags: "" },
    { name: "c", size: 11, flags: "" }, // over maxItemBytes: no other hook sees it
    { name: "d", size: 5, flags: "" }, // 6 + 5 > 10: overflow by bytes
    { name: "e", size: 1, flags: "w" }, // overflow by willOverflow
    { name: "f", size: 1, flags: "r" }, // refused by canAdd, the batch stays [e]
    { name: "g", size: 2, flags: "s" }, // shouldFlush: full
    { name: "h", size: 4, flags: "" },
    { name: "i", size: 6, flags: "" }, // 4 + 6 = 10 exactly: full by bytes
    { name: "j", size: 1, flags: "" },
    { name: "k", size: 1, flags: "wr" }, // overflow first, then refused
    { name: "l", size: 1, flags: "" },
  ];
  const running = buffer.run();
  for (const item of items) await buffer.add(item);
  buffer.close();
  await running;

  // Whether willOverflow is asked once maxBatchBytes already forces the overflow is left open.
  const asked = events.filter((event) => event !== "willOverflow d");
  assert.deepEqual(asked, [
    "sizeOf a",
    "canAdd a",
    "shouldFlush a",
    "sizeOf b",
    "willOverflow b",
    "canAdd b",
    "shouldFlush b",
    "sizeOf c",
    "onReject c",
    "sizeOf d",
    "flush overflow ab",
    "canAdd d",
    "shouldFlush d",
    "sizeOf e",
    "willOverflow e",
    "flush overflow d",
    "canAdd e",
    "shouldFlush e",
    "sizeOf f",
    "willOverflow f",
    "canAdd f",
    "onReject f",
    "sizeOf g",
    "willOverflow g",
    "canAdd g",
    "shouldFlush g",
    "flush full eg",
    "sizeOf h",
    "canAdd h",
    "shouldFlush h",
    "sizeOf i",
    "willOverflow i",
    "canAdd i",
    "shouldFlush i",
    "flush full hi",
    "sizeOf j",
    "canAdd j",
    "shouldFlush j",
    "sizeOf k",
    "willOverflow k",
    "flush overflow j",
    "canAdd k",
    "onReject k",
    "sizeOf l",
    "canAdd l",
    "shouldFlush l",
    "flush close l",
  ]);
});

test("a refused item does not count towards the batch's bytes", async () => {
  const calls: FlushCall<number>[] = [];
  const buffer = new BatchBuffer<number>({
    maxBatchBytes: 10,
    sizeOf: (size) => size,
    canAdd: (_batch, size) => size !== 7,
    flush: (batch, { reason }) => void calls.push({ batch, reason }),
  });
  const running = buffer.run();
  for (const size of [3, 7, 7, 4]) await buffer.add(size);
  buffer.close();
  await running;
  assert.deepEqual(calls, [{ batch: [3, 4], reason: "close" }]);
});
