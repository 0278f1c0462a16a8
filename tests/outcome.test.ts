// Issue 13, point 1 and the FlushOutcome contract: without `retry` a batch
// gets one try; an outcome's `retry` items fail and the rest are delivered;
// only an object with a `retry` array counts as an outcome.
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import process from "node:process";
import { BatchBuffer, type FlushOutcome } from "../mod.ts";
import { skip, test } from "./harness.ts";
import { findRoot, findRuntime, runProcess, withFakeClock } from "./helpers.ts";
import {
  BackendError,
  drive,
  EXACT,
  fail,
  recordFailures,
  recordTries,
  runThrough,
} from "./delivery_helpers.ts";

test("without retry, a flush that throws is tried once and its batch goes to onFlushError", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>(() => fail("backend down"));
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = new BatchBuffer<number>({
      capacity: 3,
      flushInterval: Infinity,
      flush,
      onFlushError,
    });
    const running = buffer.run();
    for (const item of [1, 2, 3]) await buffer.add(item);
    await clock.tickAsync(10 * 60_000);
    assert.equal(tries.length, 1, "one try only");
    assert.equal(tries[0].attempt, 1, "context.attempt is 1 on the first try");
    assert.equal(failures.length, 1);
    assert.ok(failures[0].error instanceof BackendError);
    assert.deepEqual(failures[0].batch, [1, 2, 3]);
    assert.equal(clock.countTimers(), 0, "no retry wait was armed");
    buffer.close();
    await drive(clock, running);
    const stats = buffer.stats();
    assert.equal(stats.retries, 0);
    assert.deepEqual([stats.flushes, stats.failedFlushes, stats.failedItems], [0, 1, 3]);
  }));

for (const mode of ["synchronous", "asynchronous"] as const) {
  test(`without retry, an outcome returned ${mode === "synchronous" ? "as is" : "in a promise"} sends just its retry items to onFlushError and the rest count as flushed`, () =>
    withFakeClock(async (clock) => {
      const error = new BackendError("records 2 and 4 were throttled");
      const { tries, flush } = recordTries<number>((batch) => {
        const outcome: FlushOutcome<number> = {
          retry: batch.filter((item) => item % 2 === 0 && item < 5),
          error,
        };
        return mode === "synchronous" ? outcome : Promise.resolve(outcome);
      });
      const { failures, onFlushError } = recordFailures<number>();
      const buffer = new BatchBuffer<number>({ capacity: 5, flush, onFlushError });
      const running = buffer.run();
      for (const item of [1, 2, 3, 4, 5]) await buffer.add(item);
      buffer.close();
      await drive(clock, running);
      assert.equal(tries.length, 1);
      assert.equal(failures.length, 1);
      assert.equal(failures[0].error, error, "the outcome's error is passed on");
      assert.deepEqual(failures[0].batch, [2, 4]);
      const stats = buffer.stats();
      assert.equal(stats.flushedItems, 3);
      assert.equal(stats.failedItems, 2);
      assert.equal(stats.failedFlushes, 1, "a batch with a failed item is a failed flush");
      assert.equal(stats.flushes, 0);
      assert.equal(stats.retries, 0);
    }));
}

test("without retry, an outcome without error hands onFlushError an Error saying how many items failed", () =>
  withFakeClock(async (clock) => {
    const { flush } = recordTries<number>((batch) => ({ retry: batch.slice(0, 3) }));
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = new BatchBuffer<number>({ capacity: 7, flush, onFlushError });
    const running = buffer.run();
    for (let item = 0; item < 7; item++) await buffer.add(item);
    buffer.close();
    await drive(clock, running);
    assert.equal(failures.length, 1);
    assert.deepEqual(failures[0].batch, [0, 1, 2]);
    assert.ok(failures[0].error instanceof Error, `got ${failures[0].error}`);
    assert.match(failures[0].error.message, /\b3\b/, "says that 3 items failed");
  }));

test("an outcome with an empty retry array is a success", () =>
  withFakeClock(async (clock) => {
    const { tries, flush } = recordTries<number>(() => ({ retry: [], error: new Error("unused") }));
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = await runThrough<number>(clock, {
      capacity: 2,
      retry: EXACT,
      flush,
      onFlushError,
    }, [1, 2]);
    assert.equal(tries.length, 1, "nothing to retry");
    assert.deepEqual(failures, []);
    const stats = buffer.stats();
    assert.deepEqual([stats.flushes, stats.flushedItems, stats.retries], [1, 2, 0]);
  }));

test("only a resolved object with a retry array counts as an outcome; any other value is a success", () =>
  withFakeClock(async (clock) => {
    const values: unknown[] = [
      undefined,
      null,
      0,
      "retry",
      true,
      {},
      { retry: "1" },
      { retry: undefined, error: new Error("no retry array") },
      { error: new Error("no retry array") },
      { retryAfter: 10 },
      [1],
      new Response(null, { status: 503 }),
    ];
    const { tries, flush } = recordTries<number>((_batch, _try, index) =>
      index % 2 === 0
        ? values[index % values.length]
        : Promise.resolve(values[index % values.length])
    );
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = new BatchBuffer<number>({ capacity: 1, retry: EXACT, flush, onFlushError });
    const running = buffer.run();
    // Each value twice: once returned as is, once inside a promise.
    for (let item = 0; item < 2 * values.length; item++) await buffer.add(item);
    buffer.close();
    await drive(clock, running);
    assert.equal(tries.length, 2 * values.length, "no try was retried");
    assert.deepEqual(failures, []);
    const stats = buffer.stats();
    assert.equal(stats.flushedItems, 2 * values.length);
    assert.equal(stats.retries, 0);
  }));

test("a fetch-shaped flush (resolving to a Response) counts as a success whatever the status", () =>
  withFakeClock(async (clock) => {
    const statuses = [200, 202, 500];
    let n = 0;
    const { failures, onFlushError } = recordFailures<number>();
    const buffer = await runThrough<number>(clock, {
      capacity: 1,
      retry: EXACT,
      // What `(batch) => fetch(url, { method: "POST", body: JSON.stringify(batch) })` returns.
      flush: (batch) =>
        Promise.resolve(new Response(JSON.stringify(batch), { status: statuses[n++] })),
      onFlushError,
    }, [1, 2, 3]);
    assert.equal(n, 3);
    assert.deepEqual(failures, []);
    assert.deepEqual([buffer.stats().flushedItems, buffer.stats().retries], [3, 0]);
  }));

// The compile-time half of the contract, as a user writes it against mod.ts
// (fetch-shaped flushes included): the snippet must type-check with `deno check`.
const SNIPPET = `import {
  BatchBuffer,
  type BatchBufferConfig,
  type BatchBufferStats,
  DeliveryError,
  type FlushContext,
  type FlushFunc,
  type FlushOutcome,
  parseRetryAfter,
  type RetryOptions,
} from "../../mod.ts";

const post: FlushFunc<number> = (batch, { signal }) =>
  fetch("http://127.0.0.1:9/bulk", { method: "POST", body: JSON.stringify(batch), signal });
const partial: FlushFunc<number> = (batch): FlushOutcome<number> => ({
  retry: batch.slice(1),
  error: new Error("throttled"),
  retryAfter: parseRetryAfter("2"),
});
const asyncPartial: FlushFunc<number> = async (batch) => ({ retry: batch });
const attempt: FlushFunc<number> = (_batch, context: FlushContext) => {
  const n: number = context.attempt;
  void n;
};
const retry: RetryOptions = {
  attempts: 5,
  initialDelay: 100,
  maxDelay: 30_000,
  multiplier: 2,
  jitter: true,
  maxElapsed: 60_000,
  retryable: (error: unknown) => !(error instanceof TypeError),
};
const config: BatchBufferConfig<number> = {
  flush: (batch) => fetch("http://127.0.0.1:9/bulk", { method: "POST", body: JSON.stringify(batch) }),
  retry,
  flushTimeout: 1_000,
  onFlushError: async (_error: unknown, _batch: number[]) => {},
};
const buffer = new BatchBuffer<number>(config);
const sent: Promise<void> = buffer.send(1, { signal: AbortSignal.timeout(10) });
const retries: number = buffer.stats().retries;
const stats: BatchBufferStats = buffer.stats();
const item: unknown = (null as unknown as DeliveryError).item;
const isError: Error = null as unknown as DeliveryError;
const ms: number | undefined = parseRetryAfter(null);
void [post, partial, asyncPartial, attempt, sent, retries, stats, item, isError, ms];
`;

const root = findRoot("deno.json");
const deno = findRuntime("deno", root);
const typeCheckName =
  "the issue-13 API type-checks: fetch-shaped flushes, outcomes, retry, send, DeliveryError";
if (deno === undefined) skip(typeCheckName, "no deno binary (run npm install)");
else {
  test(typeCheckName, async () => {
    const dir = `${root}.tmp/delivery-typecheck-${process.pid}`;
    mkdirSync(dir, { recursive: true });
    const file = `${dir}/snippet.ts`;
    try {
      writeFileSync(file, SNIPPET);
      const { code, stdout, stderr } = await runProcess(deno, ["check", "--quiet", file], {
        cwd: root,
      });
      assert.equal(code, 0, `deno check failed:\n${stdout}${stderr}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
