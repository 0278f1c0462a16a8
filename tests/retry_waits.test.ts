// Issue 13, point 3: the wait before try n+1 is min(maxDelay, initialDelay ×
// multiplier^(n−1)), uniform in [0, that] with jitter; a retryAfter from the
// outcome or the thrown error is used exactly (no jitter, no cap).
import assert from "node:assert/strict";
import { BatchBuffer, parseRetryAfter, type RetryOptions } from "../mod.ts";
import { test } from "./harness.ts";
import { type Clock, withFakeClock } from "./helpers.ts";
import {
  BackendError,
  drive,
  fail,
  recordFailures,
  recordTries,
  type Try,
} from "./delivery_helpers.ts";

/**
 * Sends one item through a buffer whose flush answers with `respond`, runs the
 * clock until the run ends and returns the start time of every try.
 */
async function tryTimes(
  clock: Clock,
  retry: RetryOptions,
  respond: (batch: number[], t: Try<number>) => unknown = () => fail("down"),
): Promise<{ starts: number[]; failedAt: number[] }> {
  const { tries, flush } = recordTries<number>(respond);
  const { failures, onFlushError } = recordFailures<number>();
  const buffer = new BatchBuffer<number>({ capacity: 1, retry, flush, onFlushError });
  const running = buffer.run();
  const t0 = Date.now();
  await buffer.add(1);
  buffer.close();
  await drive(clock, running);
  return { starts: tries.map((t) => t.at - t0), failedAt: failures.map((f) => f.at - t0) };
}

test("with jitter off, the wait before try n+1 is initialDelay × multiplier^(n−1)", () =>
  withFakeClock(async (clock) => {
    const { starts, failedAt } = await tryTimes(clock, {
      attempts: 5,
      initialDelay: 100,
      multiplier: 2,
      jitter: false,
    });
    // Waits 100, 200, 400, 800.
    assert.deepEqual(starts, [0, 100, 300, 700, 1500]);
    assert.deepEqual(failedAt, [1500], "gives up right after the last try");
  }));

test("maxDelay caps the computed wait", () =>
  withFakeClock(async (clock) => {
    const { starts } = await tryTimes(clock, {
      attempts: 6,
      initialDelay: 100,
      multiplier: 3,
      maxDelay: 500,
      jitter: false,
    });
    // Waits 100, 300, then 900, 2700, 8100 capped at 500.
    assert.deepEqual(starts, [0, 100, 400, 900, 1400, 1900]);
  }));

test("multiplier 1 waits initialDelay between every two tries", () =>
  withFakeClock(async (clock) => {
    const { starts } = await tryTimes(clock, {
      attempts: 4,
      initialDelay: 250,
      multiplier: 1,
      jitter: false,
    });
    assert.deepEqual(starts, [0, 250, 500, 750]);
  }));

test("the defaults are 5 tries, initialDelay 100 and multiplier 2", () =>
  withFakeClock(async (clock) => {
    const { starts } = await tryTimes(clock, { jitter: false });
    assert.deepEqual(starts, [0, 100, 300, 700, 1500]);
  }));

test("the wait starts when the try fails, not when it started", () =>
  withFakeClock(async (clock) => {
    const { starts } = await tryTimes(
      clock,
      { attempts: 3, initialDelay: 100, multiplier: 2, jitter: false },
      () => new Promise((_, reject) => setTimeout(() => reject(new Error("slow failure")), 40)),
    );
    // Try 1 fails at 40, waits 100; try 2 runs 140-180, waits 200.
    assert.deepEqual(starts, [0, 140, 380]);
  }));

test("jitter is on by default: each wait is uniform in [0, computed], not always the maximum", () =>
  withFakeClock(async (clock) => {
    const { starts } = await tryTimes(clock, {
      attempts: 41,
      initialDelay: 1000,
      multiplier: 1,
    });
    assert.equal(starts.length, 41);
    const waits = starts.slice(1).map((start, i) => start - starts[i]);
    for (const wait of waits) {
      assert.ok(wait >= 0 && wait <= 1000, `wait ${wait} outside [0, 1000]`);
    }
    // 40 uniform draws all on one side of the middle: odds 2^-39.
    assert.ok(Math.min(...waits) < 500, `waits ${waits}`);
    assert.ok(Math.max(...waits) > 500, `waits ${waits}`);
  }));

test("with jitter, wait n stays within [0, min(maxDelay, initialDelay × multiplier^(n−1))]", () =>
  withFakeClock(async (clock) => {
    const retry = { attempts: 8, initialDelay: 100, multiplier: 2, maxDelay: 1000, jitter: true };
    for (let run = 0; run < 10; run++) {
      const { starts } = await tryTimes(clock, retry);
      assert.equal(starts.length, 8);
      starts.slice(1).forEach((start, i) => {
        const wait = start - starts[i];
        const bound = Math.min(1000, 100 * 2 ** i);
        assert.ok(wait >= 0 && wait <= bound, `wait ${i + 1} is ${wait}, bound ${bound}`);
      });
    }
  }));

test("an outcome's retryAfter is the exact wait, without jitter and above maxDelay", () =>
  withFakeClock(async (clock) => {
    const { starts } = await tryTimes(
      clock,
      { attempts: 3, initialDelay: 10, maxDelay: 100, jitter: true },
      (batch, t) => (t.attempt === 1 ? { retry: batch, retryAfter: 2_500 } : undefined),
    );
    assert.deepEqual(starts, [0, 2_500]);
  }));

for (const mode of ["thrown", "rejected"] as const) {
  test(`a ${mode} error's numeric retryAfter property is the exact wait, without jitter and above maxDelay`, () =>
    withFakeClock(async (clock) => {
      const { starts } = await tryTimes(
        clock,
        { attempts: 3, initialDelay: 10, maxDelay: 100, jitter: true },
        (_batch, t) => {
          if (t.attempt > 1) return;
          const error = new BackendError("429 Too Many Requests", 1_234);
          if (mode === "thrown") throw error;
          return Promise.reject(error);
        },
      );
      assert.deepEqual(starts, [0, 1_234]);
    }));
}

test("retryAfter 0 retries in a new try without waiting", () =>
  withFakeClock(async (clock) => {
    const { starts } = await tryTimes(
      clock,
      { attempts: 2, initialDelay: 1_000, jitter: false },
      (_batch, t) => (t.attempt === 1 ? fail("retry now", 0) : undefined),
    );
    assert.deepEqual(starts, [0, 0]);
  }));

for (const retryAfter of [-5, NaN, Infinity, "300"]) {
  test(`a retryAfter of ${String(retryAfter)} is no number of ms: the computed wait applies`, () =>
    withFakeClock(async (clock) => {
      const { starts } = await tryTimes(
        clock,
        { attempts: 2, initialDelay: 100, jitter: false },
        (batch, t) => (t.attempt === 1 ? { retry: batch, retryAfter } : undefined),
      );
      assert.deepEqual(starts, [0, 100]);
    }));
}

test("retryAfter sets one wait only: the next wait is computed from the try count again", () =>
  withFakeClock(async (clock) => {
    const { starts } = await tryTimes(
      clock,
      { attempts: 3, initialDelay: 100, multiplier: 2, jitter: false },
      (_batch, t) => (t.attempt === 1 ? fail("throttled", 1_000) : fail("plain failure")),
    );
    // Try 1 asks for 1000 ms; the wait after try 2 is 100 × 2^1.
    assert.deepEqual(starts, [0, 1_000, 1_200]);
  }));

test("parseRetryAfter turns a Retry-After header into ms for a fetch-shaped flush's outcome", () =>
  withFakeClock(async (clock) => {
    assert.equal(parseRetryAfter("2"), 2_000);
    assert.equal(parseRetryAfter(null), undefined);
    assert.equal(parseRetryAfter("soon"), undefined);
    const { starts } = await tryTimes(
      clock,
      { attempts: 2, initialDelay: 10, maxDelay: 10 },
      async (batch, t) => {
        // Stands in for `await fetch(url, { method: "POST", body: JSON.stringify(batch) })`.
        const response = await Promise.resolve(
          t.attempt === 1
            ? new Response(null, { status: 503, headers: { "retry-after": "2" } })
            : new Response(null, { status: 200 }),
        );
        if (response.status === 503 || response.status === 429) {
          return { retry: batch, retryAfter: parseRetryAfter(response.headers.get("retry-after")) };
        }
      },
    );
    assert.deepEqual(starts, [0, 2_000]);
  }));
