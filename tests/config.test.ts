import assert from "node:assert/strict";
import { BatchBuffer, type BatchBufferConfig } from "../mod.ts";
import { recordingFlush, settle, withFakeClock } from "./helpers.ts";
import { test } from "./harness.ts";

const flush = () => {};

interface BadConfig {
  readonly config: unknown;
  readonly error: typeof TypeError | typeof RangeError;
  readonly message: string;
}

function badIntegers(field: string): BadConfig[] {
  const rows: [unknown, string][] = [
    [0, "0"],
    [-1, "-1"],
    [1.5, "1.5"],
    [NaN, "NaN"],
    ["10", '"10"'],
    [2 ** 53, "9007199254740992"],
    [Infinity, "Infinity"],
    [null, "null"],
  ];
  return rows.map(([value, shown]) => ({
    config: { flush, [field]: value },
    error: RangeError,
    message: `${field} must be a positive integer, received ${shown}`,
  }));
}

function badPositiveNumbers(field: string, extra: object = {}): BadConfig[] {
  const rows: [unknown, string][] = [
    [0, "0"],
    [-5, "-5"],
    [NaN, "NaN"],
    ["5", '"5"'],
    [null, "null"],
  ];
  return rows.map(([value, shown]) => ({
    config: { flush, ...extra, [field]: value },
    error: RangeError,
    message: `${field} must be a positive number, received ${shown}`,
  }));
}

const HOOKS = [
  "willOverflow",
  "canAdd",
  "onReject",
  "shouldFlush",
  "onFlushError",
  "onError",
  "waitUntil",
  "sizeOf",
  "key",
];

const BAD_CONFIGS: BadConfig[] = [
  { config: null, error: TypeError, message: "config must be an object, received null" },
  { config: undefined, error: TypeError, message: "config must be an object, received undefined" },
  { config: 5, error: TypeError, message: "config must be an object, received 5" },
  { config: "flush", error: TypeError, message: 'config must be an object, received "flush"' },
  { config: flush, error: TypeError, message: "config must be an object, received a function" },
  { config: {}, error: TypeError, message: "flush must be a function, received undefined" },
  {
    config: { flush: "send" },
    error: TypeError,
    message: 'flush must be a function, received "send"',
  },
  { config: { flush: null }, error: TypeError, message: "flush must be a function, received null" },
  {
    config: { flush: {} },
    error: TypeError,
    message: "flush must be a function, received an object",
  },
  ...HOOKS.flatMap((hook): BadConfig[] => [
    {
      config: { flush, [hook]: true },
      error: TypeError,
      message: `${hook} must be a function, received true`,
    },
    {
      config: { flush, [hook]: null },
      error: TypeError,
      message: `${hook} must be a function, received null`,
    },
    {
      config: { flush, [hook]: [] },
      error: TypeError,
      message: `${hook} must be a function, received an array`,
    },
    {
      config: { flush, [hook]: new Map() },
      error: TypeError,
      message: `${hook} must be a function, received an instance of Map`,
    },
  ]),
  ...badIntegers("capacity"),
  ...badIntegers("chanSize"),
  ...badIntegers("maxConcurrentFlushes"),
  ...badIntegers("maxOpenBatches"),
  ...badPositiveNumbers("maxBufferedBytes", { sizeOf: () => 1 }),
  ...badPositiveNumbers("flushInterval"),
  ...badPositiveNumbers("maxBatchBytes", { sizeOf: () => 1 }),
  ...badPositiveNumbers("maxItemBytes", { sizeOf: () => 1 }),
  {
    config: { flush, sizeOf: () => 1, maxBatchBytes: 10, maxItemBytes: 20 },
    error: RangeError,
    message: "maxItemBytes must not exceed maxBatchBytes (10), received 20",
  },
  {
    config: { flush, sizeOf: () => 1, maxBatchBytes: 10, maxItemBytes: Infinity },
    error: RangeError,
    message: "maxItemBytes must not exceed maxBatchBytes (10), received Infinity",
  },
  {
    config: { flush, maxBatchBytes: 10 },
    error: TypeError,
    message:
      "sizeOf must be a function when maxBatchBytes, maxItemBytes or maxBufferedBytes is set, " +
      "received undefined",
  },
  {
    config: { flush, maxBufferedBytes: 10 },
    error: TypeError,
    message:
      "sizeOf must be a function when maxBatchBytes, maxItemBytes or maxBufferedBytes is set, " +
      "received undefined",
  },
  {
    config: { flush, sizeOf: () => 1, maxBufferedBytes: 10, maxItemBytes: 20 },
    error: RangeError,
    message: "maxItemBytes must not exceed maxBufferedBytes (10), received 20",
  },
  {
    config: { flush, maxItemBytes: 10 },
    error: TypeError,
    message:
      "sizeOf must be a function when maxBatchBytes, maxItemBytes or maxBufferedBytes is set, " +
      "received undefined",
  },
];

test("new BatchBuffer() rejects each bad config with the exact error class and message", () => {
  for (const { config, error, message } of BAD_CONFIGS) {
    assert.throws(
      () => new BatchBuffer(config as BatchBufferConfig<unknown>),
      (thrown: unknown) => {
        assert.ok(thrown instanceof Error, `not an Error for ${message}`);
        assert.equal(thrown.constructor, error, `wrong class for ${message}`);
        assert.equal(thrown.message, message);
        return true;
      },
    );
  }
});

test("new BatchBuffer() accepts every field at its smallest valid value and Infinity where allowed", async () => {
  const buffer = new BatchBuffer<number>({
    flush,
    capacity: 1,
    chanSize: 1,
    maxConcurrentFlushes: 1,
    flushInterval: Infinity,
    sizeOf: () => 1,
    maxBatchBytes: Infinity,
    maxItemBytes: 1,
    willOverflow: () => false,
    canAdd: () => true,
    onReject: () => {},
    shouldFlush: () => false,
    onFlushError: () => {},
    onError: () => {},
    waitUntil: () => {},
  });
  await buffer[Symbol.asyncDispose]();
});

test("BatchBuffer with capacity undefined flushes batches of 100", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: undefined });
  const running = buffer.run();
  for (let i = 0; i < 250; i++) await buffer.add(i);
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => [c.batch.length, c.reason]), [
    [100, "full"],
    [100, "full"],
    [50, "close"],
  ]);
});

test("BatchBuffer with chanSize undefined holds 2 * capacity items before run()", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ flush, capacity: 3, chanSize: undefined });
  const adds: Promise<void>[] = [];
  let accepted = 0;
  for (let i = 0; i < 8; i++) adds.push(buffer.add(i).then(() => void accepted++));
  await settle(1);
  assert.equal(buffer.itemsInChannel, 6);
  assert.equal(accepted, 6, "the 7th and 8th add wait for room");
  const running = buffer.run();
  await Promise.all(adds);
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => c.batch), [[0, 1, 2], [3, 4, 5], [6, 7]]);
});

test("BatchBuffer with default config holds 200 items before run() and flushes by 100", async () => {
  const { calls, flush } = recordingFlush<number>();
  const buffer = new BatchBuffer<number>({ flush });
  const adds: Promise<void>[] = [];
  let accepted = 0;
  for (let i = 0; i < 201; i++) adds.push(buffer.add(i).then(() => void accepted++));
  await settle(1);
  assert.equal(buffer.itemsInChannel, 200);
  assert.equal(accepted, 200);
  const running = buffer.run();
  await Promise.all(adds);
  buffer.close();
  await running;
  assert.deepEqual(calls.map((c) => c.batch.length), [100, 100, 1]);
});

test("BatchBuffer with flushInterval undefined flushes a partial batch after 5000 ms", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = recordingFlush<string>();
    const buffer = new BatchBuffer<string>({ flush, flushInterval: undefined });
    const running = buffer.run();
    await buffer.add("a");
    await clock.tickAsync(4999);
    assert.equal(calls.length, 0);
    await clock.tickAsync(1);
    assert.deepEqual(calls.map((c) => [c.batch, c.reason]), [[["a"], "interval"]]);
    buffer.close();
    await running;
  });
});

test("BatchBuffer with flushInterval Infinity never flushes on a timer", async () => {
  await withFakeClock(async (clock) => {
    const { calls, flush } = recordingFlush<string>();
    const buffer = new BatchBuffer<string>({ flush, flushInterval: Infinity });
    const running = buffer.run();
    await buffer.add("a");
    assert.equal(clock.countTimers(), 0, "no timer is scheduled for an infinite interval");
    await clock.tickAsync(2 ** 40);
    assert.equal(calls.length, 0);
    buffer.close();
    await running;
    assert.deepEqual(calls.map((c) => [c.batch, c.reason]), [[["a"], "close"]]);
  });
});
