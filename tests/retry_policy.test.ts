// The pure retry decisions of src/retry_policy.ts (options, waits, when to give
// up) and the outcome reading of src/flush_outcome.ts. Time and randomness are passed in, so no clock is needed.
import assert from "node:assert/strict";
import fc from "fast-check";
import { failedItemsError, matchRetry, readOutcome, retryAfterOf } from "../src/flush_outcome.ts";
import {
  backoffDelay,
  decideRetry,
  type ResolvedRetry,
  resolveRetryOptions,
} from "../src/retry_policy.ts";
import { test } from "./harness.ts";
import { prng } from "./helpers.ts";

const noJitter = (overrides: object = {}): ResolvedRetry =>
  resolveRetryOptions({ jitter: false, ...overrides });

// ------------------------------------------------------------------ options

test("retry: {} resolves to the documented defaults", () => {
  assert.deepEqual(resolveRetryOptions({}), {
    attempts: 5,
    initialDelay: 100,
    maxDelay: 30_000,
    multiplier: 2,
    jitter: true,
    maxElapsed: Infinity,
    retryable: undefined,
  });
});

test("retry options keep every valid value given, Infinity where allowed", () => {
  const retryable = () => true;
  assert.deepEqual(
    resolveRetryOptions({
      attempts: Infinity,
      initialDelay: 0,
      maxDelay: Infinity,
      multiplier: 1,
      jitter: false,
      maxElapsed: 0,
      retryable,
    }),
    {
      attempts: Infinity,
      initialDelay: 0,
      maxDelay: Infinity,
      multiplier: 1,
      jitter: false,
      maxElapsed: 0,
      retryable,
    },
  );
  assert.equal(resolveRetryOptions({ attempts: 1, initialDelay: 2.5 }).initialDelay, 2.5);
});

test("bad retry options throw naming the field and the value received", () => {
  const cases: [unknown, ErrorConstructor, string][] = [
    [null, TypeError, "retry must be an object, received null"],
    [5, TypeError, "retry must be an object, received 5"],
    [
      { attempts: 0 },
      RangeError,
      "retry.attempts must be a positive integer or Infinity, received 0",
    ],
    [
      { attempts: 1.5 },
      RangeError,
      "retry.attempts must be a positive integer or Infinity, received 1.5",
    ],
    [
      { attempts: "3" },
      RangeError,
      'retry.attempts must be a positive integer or Infinity, received "3"',
    ],
    [
      { attempts: NaN },
      RangeError,
      "retry.attempts must be a positive integer or Infinity, received NaN",
    ],
    [
      { initialDelay: -1 },
      RangeError,
      "retry.initialDelay must be a finite number >= 0, received -1",
    ],
    [
      { initialDelay: Infinity },
      RangeError,
      "retry.initialDelay must be a finite number >= 0, received Infinity",
    ],
    [{ maxDelay: -5 }, RangeError, "retry.maxDelay must be a number >= 0, received -5"],
    [{ maxDelay: NaN }, RangeError, "retry.maxDelay must be a number >= 0, received NaN"],
    [
      { multiplier: 0.5 },
      RangeError,
      "retry.multiplier must be a finite number >= 1, received 0.5",
    ],
    [
      { multiplier: Infinity },
      RangeError,
      "retry.multiplier must be a finite number >= 1, received Infinity",
    ],
    [{ maxElapsed: -1 }, RangeError, "retry.maxElapsed must be a number >= 0, received -1"],
    [{ maxElapsed: null }, RangeError, "retry.maxElapsed must be a number >= 0, received null"],
    [{ jitter: "yes" }, TypeError, 'retry.jitter must be a boolean, received "yes"'],
    [{ jitter: 1 }, TypeError, "retry.jitter must be a boolean, received 1"],
    [{ retryable: true }, TypeError, "retry.retryable must be a function, received true"],
    [{ retryable: {} }, TypeError, "retry.retryable must be a function, received an object"],
  ];
  for (const [options, type, message] of cases) {
    assert.throws(() => resolveRetryOptions(options), (error) => {
      assert.ok(error instanceof type, `${JSON.stringify(options)}: ${error}`);
      assert.equal(error.message, message);
      return true;
    });
  }
});

// -------------------------------------------------------------------- waits

test("without jitter the wait doubles from initialDelay up to maxDelay", () => {
  const resolved = noJitter({ initialDelay: 100, maxDelay: 1_000 });
  const waits = [1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(resolved, attempt));
  assert.deepEqual(waits, [100, 200, 400, 800, 1_000, 1_000]);
});

test("the wait is min(maxDelay, initialDelay × multiplier^(attempt−1)) for any options", () => {
  fc.assert(
    fc.property(
      fc.double({ min: 0, max: 1e6, noNaN: true }),
      fc.double({ min: 1, max: 10, noNaN: true }),
      fc.double({ min: 0, max: 1e7, noNaN: true }),
      fc.integer({ min: 1, max: 60 }),
      (initialDelay, multiplier, maxDelay, attempt) => {
        const resolved = noJitter({ initialDelay, multiplier, maxDelay });
        const expected = Math.min(maxDelay, initialDelay * multiplier ** (attempt - 1));
        assert.equal(backoffDelay(resolved, attempt), expected);
      },
    ),
  );
});

test("with jitter the wait is random() times the computed wait, so within [0, computed]", () => {
  const resolved = resolveRetryOptions({ initialDelay: 100, maxDelay: 1_000 });
  assert.equal(backoffDelay(resolved, 3, () => 0), 0);
  assert.equal(backoffDelay(resolved, 3, () => 0.25), 100);
  assert.equal(backoffDelay(resolved, 3, () => 0.999), 399.6);
  const random = prng(13);
  for (let attempt = 1; attempt <= 10; attempt++) {
    const computed = Math.min(1_000, 100 * 2 ** (attempt - 1));
    for (let i = 0; i < 100; i++) {
      const wait = backoffDelay(resolved, attempt, random);
      assert.ok(wait >= 0 && wait <= computed, `attempt ${attempt}: ${wait} > ${computed}`);
    }
  }
});

test("jitter spreads waits over the whole range, not just its top", () => {
  const resolved = resolveRetryOptions({ initialDelay: 1_000 });
  const random = prng(7);
  const waits = Array.from({ length: 1_000 }, () => backoffDelay(resolved, 1, random));
  assert.ok(Math.min(...waits) < 100, "no wait in the bottom tenth");
  assert.ok(Math.max(...waits) > 900, "no wait in the top tenth");
});

test("the default random source is Math.random, called once per jittered wait", () => {
  const original = Math.random;
  let calls = 0;
  Math.random = () => (calls++, 0.5);
  try {
    assert.equal(backoffDelay(resolveRetryOptions({ initialDelay: 10 }), 1), 5);
    assert.equal(backoffDelay(noJitter({ initialDelay: 10 }), 1), 10);
  } finally {
    Math.random = original;
  }
  assert.equal(calls, 1);
});

test("a wait whose growth overflows stays a number: maxDelay, or 0 when initialDelay is 0", () => {
  assert.equal(backoffDelay(noJitter({ multiplier: 10, maxDelay: 5_000 }), 400), 5_000);
  assert.equal(backoffDelay(noJitter({ initialDelay: 0, multiplier: 10 }), 400), 0);
  assert.equal(backoffDelay(noJitter({ multiplier: 10, maxDelay: Infinity }), 400), Infinity);
});

// --------------------------------------------------------------- retryAfter

test("retryAfterOf reads a finite retryAfter >= 0 from an object or an error", () => {
  assert.equal(retryAfterOf({ retryAfter: 250 }), 250);
  assert.equal(retryAfterOf({ retryAfter: 0 }), 0);
  assert.equal(retryAfterOf(Object.assign(new Error("busy"), { retryAfter: 1.5 })), 1.5);
  const callable = Object.assign(() => {}, { retryAfter: 3 });
  assert.equal(retryAfterOf(callable), 3);
  class Throttled extends Error {
    get retryAfter() {
      return 42;
    }
  }
  assert.equal(retryAfterOf(new Throttled()), 42);
});

test("retryAfterOf ignores anything that is not a finite number >= 0, and never throws", () => {
  const values = [-1, NaN, Infinity, -Infinity, "100", null, undefined, 10n, {}];
  for (const retryAfter of values) assert.equal(retryAfterOf({ retryAfter }), undefined);
  for (const source of [undefined, null, 0, "x", Symbol("s"), true, {}]) {
    assert.equal(retryAfterOf(source), undefined);
  }
  const throwing = {
    get retryAfter(): number {
      throw new Error("getter");
    },
  };
  assert.equal(retryAfterOf(throwing), undefined);
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  assert.equal(retryAfterOf(proxy), undefined);
});

// ----------------------------------------------------------------- outcomes

test("anything but an object with a non-empty retry array reads as success", () => {
  const values = [
    undefined,
    null,
    0,
    "ok",
    true,
    [],
    [1, 2],
    {},
    { retry: undefined },
    { retry: "1,2" },
    { retry: { length: 1, 0: "a" } },
    { retry: [] },
    { retry: [], error: new Error("ignored"), retryAfter: 100 },
    new Response(null, { status: 500 }),
    Promise.resolve({ retry: [1] }),
  ];
  for (const value of values) {
    assert.deepEqual(readOutcome(value), { kind: "success" }, String(value));
  }
});

test("an outcome with a non-empty retry reads as partial with its error and retryAfter", () => {
  const error = new Error("2 failed");
  assert.deepEqual(readOutcome({ retry: ["b", "d"], error, retryAfter: 500 }), {
    kind: "partial",
    retry: ["b", "d"],
    error,
    retryAfter: 500,
  });
  assert.deepEqual(readOutcome({ retry: [undefined] }), {
    kind: "partial",
    retry: [undefined],
    error: undefined,
    retryAfter: undefined,
  });
});

test("an outcome without a usable retryAfter takes its error's retryAfter", () => {
  const error = Object.assign(new Error("throttled"), { retryAfter: 750 });
  const fromError = readOutcome({ retry: [1], error });
  assert.equal(fromError.kind === "partial" && fromError.retryAfter, 750);
  const invalid = readOutcome({ retry: [1], error, retryAfter: -1 });
  assert.equal(invalid.kind === "partial" && invalid.retryAfter, 750);
  const own = readOutcome({ retry: [1], error, retryAfter: 5 });
  assert.equal(own.kind === "partial" && own.retryAfter, 5);
});

test("the outcome's retry is copied, so later changes to the flush's array do not leak in", () => {
  const retry = [1, 2];
  const read = readOutcome({ retry });
  retry.push(3);
  retry[0] = 9;
  assert.equal(read.kind, "partial");
  assert.deepEqual(read.kind === "partial" && read.retry, [1, 2]);
  assert.notEqual(read.kind === "partial" && read.retry, retry);
});

test("an Array subclass as retry is copied by index, without its species or iterator", () => {
  let ran = 0;
  class Tricky extends Array<number> {
    static override get [Symbol.species]() {
      ran++;
      return Array;
    }
    override [Symbol.iterator](): ArrayIterator<number> {
      ran++;
      return super[Symbol.iterator]();
    }
  }
  const retry = Tricky.from([4, 5]);
  ran = 0;
  const read = readOutcome({ retry });
  assert.deepEqual(read.kind === "partial" && read.retry, [4, 5]);
  assert.ok(read.kind === "partial" && !(read.retry instanceof Tricky));
  assert.equal(ran, 0);
});

test("reading each outcome property happens once, so getters run once", () => {
  const reads: string[] = [];
  const outcome = {
    get retry() {
      reads.push("retry");
      return ["x"];
    },
    get error() {
      reads.push("error");
      return undefined;
    },
    get retryAfter() {
      reads.push("retryAfter");
      return 10;
    },
  };
  readOutcome(outcome);
  assert.deepEqual(reads, ["retry", "error", "retryAfter"]);
});

test("an outcome whose reading throws reads as a failed try with that error, never a throw", () => {
  const boom = new Error("getter");
  const throwingRetry = {
    get retry(): unknown[] {
      throw boom;
    },
  };
  assert.deepEqual(readOutcome(throwingRetry), { kind: "threw", error: boom });
  const throwingError = {
    retry: [1],
    get error(): unknown {
      throw boom;
    },
  };
  assert.deepEqual(readOutcome(throwingError), { kind: "threw", error: boom });
  const throwingElement = {
    retry: Object.defineProperty([0], 0, {
      get() {
        throw boom;
      },
    }),
  };
  assert.deepEqual(readOutcome(throwingElement), { kind: "threw", error: boom });
  const trap = new Proxy({}, {
    get() {
      throw boom;
    },
  });
  assert.deepEqual(readOutcome(trap), { kind: "threw", error: boom });
  const { proxy, revoke } = Proxy.revocable({ retry: [1] }, {});
  revoke();
  const revoked = readOutcome(proxy);
  assert.equal(revoked.kind, "threw");
  assert.ok(revoked.kind === "threw" && revoked.error instanceof TypeError);
  const revokedArray = Proxy.revocable([1], {});
  const outcome = { retry: revokedArray.proxy };
  revokedArray.revoke();
  assert.equal(readOutcome(outcome).kind, "threw");
});

test("a Proxy around a real outcome reads like the outcome", () => {
  const read = readOutcome(new Proxy({ retry: ["a"], retryAfter: 3 }, {}));
  assert.deepEqual(read, { kind: "partial", retry: ["a"], error: undefined, retryAfter: 3 });
});

test("an outcome that gave no error is reported as an Error counting the failed items", () => {
  const error = failedItemsError(3, 10);
  assert.ok(error instanceof Error);
  assert.equal(error.message, "flush reported 3 of 10 items as failed");
});

// ------------------------------------------------------------ matchRetry

test("matchRetry finds the batch positions of a filtered batch, in order", () => {
  const [a, b, c, d] = [{ id: "a" }, { id: "b" }, { id: "c" }, { id: "d" }];
  assert.deepEqual(matchRetry([a, b, c, d], [b, d]), { indices: [1, 3], strangers: 0 });
  assert.deepEqual(matchRetry([a, b, c, d], [a, b, c, d]), {
    indices: [0, 1, 2, 3],
    strangers: 0,
  });
});

test("matchRetry keeps the batch's order when retry lists the items out of order", () => {
  const [a, b, c, d] = [{ id: "a" }, { id: "b" }, { id: "c" }, { id: "d" }];
  assert.deepEqual(matchRetry([a, b, c, d], [d, a, c]), { indices: [0, 2, 3], strangers: 0 });
});

test("matchRetry matches equal items with multiplicity, first positions first, NaN included", () => {
  assert.deepEqual(matchRetry([1, 2, 1, 1], [1, 1]), { indices: [0, 2], strangers: 0 });
  assert.deepEqual(matchRetry([2, 1, 1], [1, 2]), { indices: [0, 1], strangers: 0 });
  assert.deepEqual(matchRetry([NaN, 0, -0], [-0, NaN]), { indices: [0, 1], strangers: 0 });
  assert.deepEqual(matchRetry([undefined, null], [null, undefined]), {
    indices: [0, 1],
    strangers: 0,
  });
});

test("matchRetry counts entries it cannot place as strangers and never places one item twice", () => {
  assert.deepEqual(matchRetry(["a", "b"], ["b", "x", "b"]), { indices: [1], strangers: 2 });
  assert.deepEqual(matchRetry<unknown>(["a"], [{ id: "a" }]), { indices: [], strangers: 1 });
  assert.deepEqual(matchRetry([], ["a"]), { indices: [], strangers: 1 });
});

test("matchRetry agrees with a naive multiset match on random batches", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 20 }),
      fc.array(fc.integer({ min: 0, max: 7 }), { maxLength: 20 }),
      (batch, retry) => {
        const free = batch.map(() => true);
        let strangers = 0;
        const expected: number[] = [];
        for (const item of retry) {
          const index = batch.findIndex((x, i) => free[i] && x === item);
          if (index === -1) strangers++;
          else {
            free[index] = false;
            expected.push(index);
          }
        }
        // Which of several equal items is taken does not matter, only how many and where.
        const result = matchRetry(batch, retry);
        assert.equal(result.strangers, strangers);
        assert.deepEqual(result.indices, [...result.indices].sort((x, y) => x - y));
        assert.equal(new Set(result.indices).size, result.indices.length);
        assert.deepEqual(
          result.indices.map((i) => batch[i]).sort(),
          expected.map((i) => batch[i]).sort(),
        );
      },
    ),
  );
});

// ------------------------------------------------------------- decideRetry

const failure = (attempt: number, overrides: object = {}) => ({
  attempt,
  error: new Error("failed"),
  retryAfter: undefined,
  elapsed: 0,
  ...overrides,
});

test("a retry is decided with the computed wait while attempts are left", () => {
  const resolved = noJitter({ attempts: 3 });
  assert.deepEqual(decideRetry(resolved, failure(1)), { retry: true, delay: 100 });
  assert.deepEqual(decideRetry(resolved, failure(2)), { retry: true, delay: 200 });
  assert.deepEqual(decideRetry(resolved, failure(3)), { retry: false, reason: "attempts" });
});

test("attempts: 1 never retries, and attempts: Infinity always may", () => {
  assert.deepEqual(decideRetry(noJitter({ attempts: 1 }), failure(1)), {
    retry: false,
    reason: "attempts",
  });
  const forever = noJitter({ attempts: Infinity, maxDelay: 50 });
  assert.deepEqual(decideRetry(forever, failure(1_000_000)), { retry: true, delay: 50 });
});

test("the injected random source makes the jittered wait of the decision", () => {
  const resolved = resolveRetryOptions({ initialDelay: 100 });
  assert.deepEqual(decideRetry(resolved, failure(2), () => 0.5), { retry: true, delay: 100 });
});

test("a retryAfter is the exact wait: no jitter, no maxDelay cap", () => {
  const resolved = resolveRetryOptions({ maxDelay: 1_000 });
  let randomCalls = 0;
  const random = () => (randomCalls++, 0.5);
  assert.deepEqual(decideRetry(resolved, failure(1, { retryAfter: 5_000 }), random), {
    retry: true,
    delay: 5_000,
  });
  assert.deepEqual(decideRetry(resolved, failure(1, { retryAfter: 0 }), random), {
    retry: true,
    delay: 0,
  });
  assert.equal(randomCalls, 0);
});

test("retryable decides per error, answering by truthiness, and is not asked without attempts", () => {
  const seen: unknown[] = [];
  const retryable = (error: unknown) => {
    seen.push(error);
    return (error as { code?: number }).code === 503 ? 1 : 0;
  };
  const resolved = noJitter({ attempts: 2, retryable });
  const transient = { code: 503 };
  const permanent = { code: 400 };
  assert.deepEqual(decideRetry(resolved, failure(1, { error: transient })), {
    retry: true,
    delay: 100,
  });
  assert.deepEqual(decideRetry(resolved, failure(1, { error: permanent })), {
    retry: false,
    reason: "not-retryable",
  });
  assert.deepEqual(decideRetry(resolved, failure(2, { error: transient })), {
    retry: false,
    reason: "attempts",
  });
  assert.deepEqual(seen, [transient, permanent]);
});

test("a throwing retryable gives up and hands back what it threw", () => {
  const hookError = new Error("retryable is broken");
  const resolved = noJitter({
    retryable: () => {
      throw hookError;
    },
  });
  assert.deepEqual(decideRetry(resolved, failure(1)), {
    retry: false,
    reason: "retryable-threw",
    hookError,
  });
});

test("a wait that would end later than maxElapsed after the first try gives up", () => {
  const resolved = noJitter({ maxElapsed: 1_000 });
  // attempt 3 waits 400: ending at 1_000 exactly is allowed, one ms later is not.
  assert.deepEqual(decideRetry(resolved, failure(3, { elapsed: 600 })), {
    retry: true,
    delay: 400,
  });
  assert.deepEqual(decideRetry(resolved, failure(3, { elapsed: 601 })), {
    retry: false,
    reason: "max-elapsed",
  });
  // A requested wait obeys maxElapsed too.
  assert.deepEqual(decideRetry(resolved, failure(1, { retryAfter: 2_000 })), {
    retry: false,
    reason: "max-elapsed",
  });
  assert.deepEqual(decideRetry(noJitter({ maxElapsed: 0 }), failure(1)), {
    retry: false,
    reason: "max-elapsed",
  });
  assert.deepEqual(decideRetry(noJitter({ maxElapsed: 0, initialDelay: 0 }), failure(1)), {
    retry: true,
    delay: 0,
  });
});

test("a wait that would never end gives up instead of waiting forever", () => {
  const resolved = noJitter({ attempts: Infinity, multiplier: 10, maxDelay: Infinity });
  assert.deepEqual(decideRetry(resolved, failure(400)), { retry: false, reason: "max-elapsed" });
});

test("the retryable check comes before the wait, so an unretryable error uses no randomness", () => {
  let randomCalls = 0;
  const resolved = resolveRetryOptions({ retryable: () => false });
  decideRetry(resolved, failure(1), () => (randomCalls++, 0));
  assert.equal(randomCalls, 0);
});
