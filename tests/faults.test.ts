// Fault injection: flushes that throw, reject, hang or lag, and hooks that
// throw or answer nonsense. Every case ends with the run still working,
// every accepted item accounted for (Ledger.assertConserved) and the error
// where the docs send it (onFlushError, onError, console.error).
import assert from "node:assert/strict";
import { BatchBuffer, type BatchBufferConfig, type FlushContext } from "../mod.ts";
import { test } from "./harness.ts";
import { captureConsoleError, Ledger } from "./ledger.ts";
import { installClock } from "./helpers.ts";
import { checkRandomFaults, RANDOM_FAULTS_NAME } from "./model.ts";

type Config = Partial<BatchBufferConfig<number>>;

const boom = new Error("hook failed on purpose");
const throwing = (): never => {
  throw boom;
};

/**
 * Adds 0..9 to a buffer of capacity 3 (the ledger's hooks under `config`),
 * flushes part-way, adds 10..12 to show the run still works, then closes
 * and checks conservation.
 */
async function exercise(
  configFor: Config | ((ledger: Ledger<number>) => Config),
  { flushMidway = true } = {},
) {
  const ledger = new Ledger<number>();
  const config = typeof configFor === "function" ? configFor(ledger) : configFor;
  const buffer = new BatchBuffer<number>({
    capacity: 3,
    ...ledger.hooks(),
    ...config,
    flush: ledger.flush(config.flush),
  });
  const running = buffer.run();
  for (let i = 0; i < 10; i++) await ledger.add(buffer, i);
  if (flushMidway) await buffer.flush();
  for (let i = 10; i < 13; i++) await ledger.add(buffer, i);
  buffer.close();
  await running;
  ledger.assertConserved(buffer);
  return { ledger, buffer };
}

const reasons = (ledger: Ledger<number>) => ledger.flushes.map((f) => f.reason);
const sizes = (ledger: Ledger<number>) => ledger.flushes.map((f) => f.batch.length);
const all = Array.from({ length: 13 }, (_, i) => i);

// ---------------------------------------------------------------- flush faults

test("a flush that throws synchronously hands its batch to onFlushError and the run goes on", async () => {
  const error = new Error("sync flush failure");
  let calls = 0;
  const { ledger, buffer } = await exercise({
    flush: () => {
      if (calls++ % 2 === 0) throw error;
    },
  });
  const failed = ledger.flushes.filter((f) => f.failed);
  assert.ok(failed.length >= 2);
  assert.deepEqual(ledger.flushErrors.map((e) => e.batch), failed.map((f) => f.batch));
  assert.ok(ledger.flushErrors.every((e) => e.error === error));
  assert.equal(buffer.stats().failedFlushes, failed.length);
  assert.deepEqual(ledger.errors, []);
});

test("a flush that rejects hands its batch to onFlushError and the run goes on", async () => {
  let calls = 0;
  const { ledger } = await exercise({
    flush: async (batch) => {
      await Promise.resolve();
      if (calls++ % 2 === 1) throw new Error(`rejected ${batch.join(",")}`);
    },
  });
  const failed = ledger.flushes.filter((f) => f.failed);
  assert.ok(failed.length >= 2);
  for (const [i, { error, batch }] of ledger.flushErrors.entries()) {
    assert.equal(batch, failed[i].batch);
    assert.equal((error as Error).message, `rejected ${batch.join(",")}`);
  }
  assert.deepEqual(ledger.handedOut().toSorted((a, b) => a - b), all);
});

test("a flush that throws non-Error values (undefined, a string) still counts as failed", async () => {
  const thrown: unknown[] = [undefined, "plain string", null, 0];
  let calls = 0;
  const { ledger } = await exercise({
    flush: () => {
      const value = thrown[calls++ % thrown.length];
      if (calls % 2 === 0) return Promise.reject(value);
      throw value;
    },
  });
  assert.equal(ledger.flushErrors.length, ledger.flushes.length);
  assert.deepEqual(
    ledger.flushErrors.map((e) => e.error),
    ledger.flushes.map((_, i) => thrown[i % thrown.length]),
  );
});

test("a flush that returns nonsense (42, a string, null, a thenable) counts as succeeded", async () => {
  const results: unknown[] = [42, "yes", null, { then: (resolve: () => void) => resolve() }];
  let calls = 0;
  const { ledger, buffer } = await exercise({
    flush: () => results[calls++ % results.length] as void,
  });
  assert.equal(buffer.stats().failedFlushes, 0);
  assert.deepEqual(ledger.delivered(), all);
});

test("without onFlushError a failed flush is reported to onError with the error as cause", async () => {
  const error = new Error("backend down");
  const errors: unknown[] = [];
  const ledger = new Ledger<number>();
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    flush: ledger.flush(() => Promise.reject(error)),
    onError: (e) => void errors.push(e),
  });
  const running = buffer.run();
  for (let i = 0; i < 5; i++) await ledger.add(buffer, i);
  buffer.close();
  await running;
  ledger.assertConserved(buffer);
  assert.equal(errors.length, 3);
  assert.deepEqual(errors.map((e) => (e as Error).cause), [error, error, error]);
  assert.deepEqual(errors.map((e) => (e as Error).message.match(/its (\d+) items/)?.[1]), [
    "2",
    "2",
    "1",
  ]);
});

test("a flush that hangs until the run signal aborts blocks producers, then fails and the run goes on", async () => {
  const ledger = new Ledger<number>();
  const controller = new AbortController();
  const reason = new Error("shutting down");
  let hang = true;
  const buffer = new BatchBuffer<number>({
    capacity: 2,
    chanSize: 2,
    ...ledger.hooks(),
    flush: ledger.flush((_batch, { signal }: FlushContext) => {
      if (!hang) return;
      return new Promise<void>((_, reject) => {
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    }),
  });
  const running = buffer.run(controller.signal);
  for (let i = 0; i < 4; i++) await ledger.add(buffer, i); // [0, 1] in flight, [2, 3] waiting
  let fifthAccepted = false;
  const fifth = ledger.add(buffer, 4).then(() => (fifthAccepted = true));
  for (let i = 0; i < 20; i++) await Promise.resolve();
  assert.equal(fifthAccepted, false, "the producer should wait while the flush hangs");
  assert.equal(buffer.stats().flushesInFlight, 1);
  assert.equal(buffer.itemsInChannel, 2);
  hang = false; // flushes after the abort succeed
  controller.abort(reason);
  await fifth;
  buffer.close();
  await running;
  ledger.assertConserved(buffer);
  assert.deepEqual(ledger.flushErrors, [{ error: reason, batch: [0, 1] }]);
  assert.deepEqual(ledger.delivered(), [2, 3, 4]);
});

test("a flush that resolves after a delay holds run() until it settles, on a fake clock", async () => {
  const clock = installClock();
  try {
    const ledger = new Ledger<number>();
    const buffer = new BatchBuffer<number>({
      capacity: 2,
      chanSize: 1,
      flushInterval: 50,
      ...ledger.hooks(),
      flush: ledger.flush(() => new Promise<void>((resolve) => setTimeout(resolve, 1_000))),
    });
    let runDone = false;
    const running = buffer.run().then(() => (runDone = true));
    await ledger.add(buffer, 0);
    await ledger.add(buffer, 1); // flush 1 starts, lasts 1 s
    await ledger.add(buffer, 2); // waits in the channel
    const blocked = ledger.add(buffer, 3);
    await clock.tickAsync(999);
    assert.equal(ledger.accepted.length, 3, "item 3 waits for room until the flush settles");
    await clock.tickAsync(1);
    await blocked;
    buffer.close();
    await clock.tickAsync(999);
    assert.equal(runDone, false, "run() waits for the last flush");
    await clock.tickAsync(1);
    await running;
    ledger.assertConserved(buffer);
    assert.deepEqual(reasons(ledger), ["full", "full"]);
    assert.equal(clock.countTimers(), 0);
  } finally {
    clock.uninstall();
  }
});

// ---------------------------------------------------------------- hooks that throw

test("willOverflow that throws counts as false and its error goes to onError", async () => {
  const { ledger } = await exercise({ willOverflow: throwing });
  assert.ok(!reasons(ledger).includes("overflow"));
  assert.ok(sizes(ledger).every((n) => n <= 3));
  assert.ok(ledger.errors.length > 0 && ledger.errors.every((e) => e === boom));
});

test("canAdd that throws counts as true and its error goes to onError", async () => {
  const { ledger } = await exercise({ canAdd: throwing });
  assert.deepEqual(ledger.delivered(), all);
  assert.deepEqual(ledger.rejected, []);
  assert.equal(ledger.errors.length, 13);
  assert.ok(ledger.errors.every((e) => e === boom));
});

test("shouldFlush that throws falls back to batch.length >= capacity and reports", async () => {
  const { ledger } = await exercise({ shouldFlush: throwing }, { flushMidway: false });
  assert.deepEqual(sizes(ledger), [3, 3, 3, 3, 1]);
  assert.equal(ledger.errors.length, 13);
  assert.ok(ledger.errors.every((e) => e === boom));
});

test("sizeOf that throws sends the item to onReject and the error to onError", async () => {
  const { ledger } = await exercise({
    sizeOf: (item) => (item % 2 === 1 ? throwing() : 1),
    maxBatchBytes: 100,
  });
  assert.deepEqual(ledger.rejected, [1, 3, 5, 7, 9, 11]);
  assert.deepEqual(ledger.delivered(), [0, 2, 4, 6, 8, 10, 12]);
  assert.equal(ledger.errors.length, 6);
  assert.ok(ledger.errors.every((e) => e === boom));
});

test("onReject that throws reports to onError; the item still counts as rejected", async () => {
  const seen: number[] = [];
  const { ledger, buffer } = await exercise((ledger) => ({
    canAdd: (_batch, item) => item % 3 !== 0,
    onReject: (item) => {
      seen.push(item);
      ledger.rejected.push(item);
      throw boom;
    },
  }));
  assert.deepEqual(seen, [0, 3, 6, 9, 12]);
  assert.equal(buffer.stats().rejected, 5);
  assert.deepEqual(ledger.errors, [boom, boom, boom, boom, boom]);
});

test("onFlushError that throws reports to onError; the run goes on", async () => {
  let calls = 0;
  const { ledger } = await exercise({
    flush: () => {
      if (calls++ % 2 === 0) throw new Error("flush failed");
    },
    onFlushError: throwing,
  });
  const failed = ledger.flushes.filter((f) => f.failed).length;
  assert.ok(failed >= 2);
  assert.equal(ledger.errors.length, failed);
  assert.ok(ledger.errors.every((e) => e === boom));
});

test("waitUntil that throws reports to onError; every flush still happens", async () => {
  let calls = 0;
  const { ledger } = await exercise({
    waitUntil: () => {
      calls++;
      throw boom;
    },
  });
  assert.deepEqual(ledger.delivered(), all);
  // Every flush is handed over, and so is each batch's keep-alive promise.
  assert.ok(calls >= ledger.flushes.length, `${calls} calls for ${ledger.flushes.length} flushes`);
  assert.equal(ledger.errors.length, calls);
});

test("onError that throws: the second error goes to console.error and the run goes on", async () => {
  const second = new Error("onError failed too");
  let seen = 0;
  const printed = await captureConsoleError(async () => {
    const { ledger } = await exercise({
      willOverflow: throwing,
      onError: () => {
        seen++;
        throw second;
      },
    });
    assert.deepEqual(ledger.delivered(), all);
  });
  assert.ok(seen > 0);
  assert.equal(printed.length, seen);
  assert.ok(printed.every((args) => args[0] === second));
});

test("without onError, hook errors go to console.error", async () => {
  const printed = await captureConsoleError(async () => {
    const { ledger } = await exercise({ canAdd: throwing, onError: undefined });
    assert.deepEqual(ledger.delivered(), all);
  });
  assert.equal(printed.length, 13);
  assert.ok(printed.every((args) => args[0] === boom));
});

// ---------------------------------------------------------------- hooks that answer nonsense

const truthy: unknown[] = ["yes", {}, [], 1, -1, "false", Symbol("s")];
const falsy: unknown[] = [0, "", null, undefined, NaN, 0n];

for (const answer of truthy) {
  const label = typeof answer === "symbol" ? "a symbol" : JSON.stringify(answer);
  test(`willOverflow answering ${label} counts as true: each batch goes out before the next item`, async () => {
    const { ledger } = await exercise({ willOverflow: () => answer as boolean });
    assert.deepEqual(sizes(ledger), Array(13).fill(1));
    assert.ok(reasons(ledger).filter((r) => r === "overflow").length >= 10);
    assert.deepEqual(ledger.errors, []);
  });
  test(`canAdd answering ${label} counts as true: the item is batched`, async () => {
    const { ledger } = await exercise({ canAdd: () => answer as boolean });
    assert.deepEqual(ledger.delivered(), all);
    assert.deepEqual(ledger.rejected, []);
  });
  test(`shouldFlush answering ${label} counts as true: every item is flushed at once`, async () => {
    const { ledger } = await exercise({ shouldFlush: () => answer as boolean });
    assert.deepEqual(sizes(ledger), Array(13).fill(1));
    assert.ok(reasons(ledger).every((r) => r === "full"));
  });
}

for (const answer of falsy) {
  const label = typeof answer === "bigint" ? "0n" : String(answer);
  test(`willOverflow answering ${label} counts as false: no overflow flush`, async () => {
    const { ledger } = await exercise({ willOverflow: () => answer as boolean });
    assert.ok(!reasons(ledger).includes("overflow"));
    assert.deepEqual(ledger.delivered(), all);
  });
  test(`canAdd answering ${label} counts as false: every item goes to onReject`, async () => {
    const { ledger } = await exercise({ canAdd: () => answer as boolean });
    assert.deepEqual(ledger.rejected, all);
    assert.deepEqual(ledger.flushes, []);
  });
  test(`shouldFlush answering ${label} counts as false: batches grow past capacity`, async () => {
    const { ledger } = await exercise({ shouldFlush: () => answer as boolean });
    assert.deepEqual(sizes(ledger), [10, 3]);
    assert.deepEqual(reasons(ledger), ["manual", "close"]);
  });
}

/** Sizes that are not finite numbers >= 0, or are over maxItemBytes: the item goes to onReject. */
const badSizes: [string, unknown][] = [
  ["NaN", NaN],
  ["-1", -1],
  ["-0.5", -0.5],
  ["-Infinity", -Infinity],
  ["Infinity", Infinity],
  ["1e300 (over maxItemBytes)", 1e300],
  ["Number.MAX_VALUE (over maxItemBytes)", Number.MAX_VALUE],
  ['"5" (a numeric string)', "5"],
  ["null", null],
  ["undefined", undefined],
  ["true", true],
  ["an object", {}],
  ["[3] (an array)", [3]],
  ["an object with valueOf", { valueOf: () => 2 }],
  ["1n (a BigInt)", 1n],
];

for (const budget of [{ maxBatchBytes: 100 }, {}]) {
  const where = "maxBatchBytes" in budget ? "with maxBatchBytes" : "without a byte budget";
  for (const [label, size] of badSizes) {
    if (label.includes("over maxItemBytes") && !("maxBatchBytes" in budget)) continue;
    test(`sizeOf answering ${label} ${where} sends the item to onReject`, async () => {
      const { ledger } = await exercise({
        ...budget,
        sizeOf: (item) => (item % 4 === 1 ? size : 1) as number,
      });
      assert.deepEqual(ledger.rejected, [1, 5, 9]);
      assert.deepEqual(ledger.delivered(), all.filter((i) => i % 4 !== 1));
      assert.deepEqual(ledger.errors, []);
    });
  }
}

test("sizes at the limits are accepted: 0 and exactly maxItemBytes", async () => {
  const { ledger } = await exercise({
    sizeOf: (item) => (item % 2 === 0 ? 0 : 10),
    maxBatchBytes: 20,
    maxItemBytes: 10,
  });
  assert.deepEqual(ledger.rejected, []);
  assert.deepEqual(ledger.delivered(), all);
  for (const { batch } of ledger.flushes) {
    assert.ok(batch.reduce((n, i) => n + (i % 2 === 0 ? 0 : 10), 0) <= 20);
  }
});

// ---------------------------------------------------------------- random faults (property)

// The property lives in tests/model.ts, so that tests/soak.ts runs it 100x too.
test(RANDOM_FAULTS_NAME, () => checkRandomFaults());
