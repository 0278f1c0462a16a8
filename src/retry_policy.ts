/**
 * Retries: the options a user gives, and the pure decisions the engine makes
 * from them (how long to wait, whether to try again). Nothing here reads a
 * clock or a timer: the caller passes time and randomness in, so every
 * decision can be tested exactly.
 *
 * Public: {@linkcode RetryOptions}. The rest is internal and not exported
 * from mod.ts.
 *
 * @module
 */
import { describe } from "./config.ts";

/**
 * How a {@linkcode BatchBuffer} retries a failed flush. Give `retry: {}` for
 * the defaults; without `retry` a failed flush goes straight to
 * `onFlushError`, as before.
 *
 * The wait before try n+1 is `min(maxDelay, initialDelay × multiplier^(n−1))`,
 * and with `jitter` a uniform random value in `[0, that]`. When the flush's
 * outcome has a `retryAfter`, or the error it threw has a numeric
 * `retryAfter` property, the wait is exactly that many ms instead (no jitter,
 * no `maxDelay` cap): the backend asked for it.
 *
 * Retrying stops when the attempts are used up, `retryable(error)` is false,
 * the next wait would end later than `maxElapsed` ms after the first try
 * started, or the run signal aborts. Then `onFlushError` receives the items
 * that never succeeded.
 *
 * @example Five tries over at most a minute, giving up on client errors
 * ```ts
 * import { BatchBuffer, type RetryOptions } from "@batchkit/buffer";
 *
 * class HttpError extends Error {
 *   constructor(readonly status: number) {
 *     super(`backend answered ${status}`);
 *   }
 * }
 * const retry: RetryOptions = {
 *   attempts: 5,
 *   initialDelay: 200,
 *   maxElapsed: 60_000,
 *   // 4xx other than 429 will not get better by trying again.
 *   retryable: (error) =>
 *     !(error instanceof HttpError) || error.status === 429 || error.status >= 500,
 * };
 * const buffer = new BatchBuffer<string>({ flush: () => {}, retry });
 * await buffer[Symbol.asyncDispose]();
 * ```
 */
export interface RetryOptions {
  /**
   * Tries in all, the first included: `1` never retries. A positive integer,
   * or `Infinity` to retry until `maxElapsed` or `retryable` says stop.
   * Default: 5.
   */
  attempts?: number;
  /** Milliseconds before the second try (before jitter). A number `>= 0`. Default: 100. */
  initialDelay?: number;
  /**
   * The longest computed wait between two tries, in ms. A number `>= 0`, or
   * `Infinity` for no cap. A `retryAfter` the backend asked for is not capped.
   * Default: 30_000.
   */
  maxDelay?: number;
  /** How much the wait grows per try. A finite number `>= 1`. Default: 2. */
  multiplier?: number;
  /**
   * Full jitter: each computed wait is uniform in `[0, computed]`, so the
   * retries of many clients spread out instead of arriving together.
   * Default: true.
   */
  jitter?: boolean;
  /**
   * No try starts later than this many ms after the first try started; a
   * wait that would end later gives up at once instead. A number `>= 0`, or
   * `Infinity`. Default: `Infinity`.
   */
  maxElapsed?: number;
  /**
   * False gives up on this error at once. Asked after every failed try that
   * has attempts left, with the error thrown (or the outcome's `error`). One
   * that throws counts as false, and its error goes to `onError`. Default:
   * every error is retryable.
   */
  retryable?: (error: unknown) => boolean;
}

/** {@linkcode RetryOptions} checked and with every default filled in. */
export interface ResolvedRetry {
  readonly attempts: number;
  readonly initialDelay: number;
  readonly maxDelay: number;
  readonly multiplier: number;
  readonly jitter: boolean;
  readonly maxElapsed: number;
  /** Absent: every error is retryable (no call to make). */
  readonly retryable: ((error: unknown) => boolean) | undefined;
}

function number(
  name: string,
  value: unknown,
  fallback: number,
  valid: (n: number) => boolean,
  rule: string,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !valid(value)) {
    throw new RangeError(`retry.${name} must be ${rule}, received ${describe(value)}`);
  }
  return value;
}

/**
 * Checks the `retry` option and fills in the defaults. The caller handles an
 * absent option (no retry) before calling this.
 *
 * @throws {TypeError} when `options` is not an object, `jitter` not a boolean
 * or `retryable` not a function.
 * @throws {RangeError} when a number is out of range; the message names the
 * field and the value received.
 */
export function resolveRetryOptions(options: unknown): ResolvedRetry {
  if (options === null || typeof options !== "object") {
    throw new TypeError(`retry must be an object, received ${describe(options)}`);
  }
  const o = options as RetryOptions;
  const attempts = number(
    "attempts",
    o.attempts,
    5,
    (n) => (Number.isSafeInteger(n) && n > 0) || n === Infinity,
    "a positive integer or Infinity",
  );
  const initialDelay = number(
    "initialDelay",
    o.initialDelay,
    100,
    (n) => Number.isFinite(n) && n >= 0,
    "a finite number >= 0",
  );
  const maxDelay = number("maxDelay", o.maxDelay, 30_000, (n) => n >= 0, "a number >= 0");
  const multiplier = number(
    "multiplier",
    o.multiplier,
    2,
    (n) => Number.isFinite(n) && n >= 1,
    "a finite number >= 1",
  );
  const maxElapsed = number("maxElapsed", o.maxElapsed, Infinity, (n) => n >= 0, "a number >= 0");
  const jitter = o.jitter ?? true;
  if (typeof jitter !== "boolean") {
    throw new TypeError(`retry.jitter must be a boolean, received ${describe(jitter)}`);
  }
  const retryable = o.retryable;
  if (retryable !== undefined && typeof retryable !== "function") {
    throw new TypeError(`retry.retryable must be a function, received ${describe(retryable)}`);
  }
  return { attempts, initialDelay, maxDelay, multiplier, jitter, maxElapsed, retryable };
}

/**
 * The computed wait after try `attempt` failed (so before try `attempt + 1`):
 * `min(maxDelay, initialDelay × multiplier^(attempt−1))`, and with jitter
 * `random()` times that.
 *
 * @param attempt The try that just failed, 1 for the first.
 * @param random Returns a number in `[0, 1)`; only called with jitter on.
 */
export function backoffDelay(
  resolved: ResolvedRetry,
  attempt: number,
  random: () => number = Math.random,
): number {
  // 0 × Infinity is NaN once multiplier^(attempt−1) overflows.
  const grown = resolved.initialDelay === 0
    ? 0
    : resolved.initialDelay * resolved.multiplier ** (attempt - 1);
  const computed = Math.min(resolved.maxDelay, grown);
  return resolved.jitter ? random() * computed : computed;
}

/** Why retrying stopped. */
export type GiveUpReason = "attempts" | "not-retryable" | "retryable-threw" | "max-elapsed";

/**
 * Whether to try again after a failed try:
 *
 * - `{ retry: true, delay }`: wait `delay` ms, then try again.
 * - `{ retry: false, reason }`: hand the items to `onFlushError`. With
 *   reason `"retryable-threw"`, `hookError` is what `retryable` threw, for
 *   `onError`.
 */
export type RetryDecision =
  | { readonly retry: true; readonly delay: number }
  | { readonly retry: false; readonly reason: Exclude<GiveUpReason, "retryable-threw"> }
  | { readonly retry: false; readonly reason: "retryable-threw"; readonly hookError: unknown };

/** What {@linkcode decideRetry} needs to know about the try that failed. */
export interface FailedTry {
  /** The try that failed, 1 for the first. */
  readonly attempt: number;
  /** Why: the thrown error, or the outcome's error (or `failedItemsError` in flush_outcome.ts). */
  readonly error: unknown;
  /** The wait the backend asked for (`retryAfterOf` in flush_outcome.ts, or the outcome). */
  readonly retryAfter: number | undefined;
  /** Ms from the start of the first try to now. */
  readonly elapsed: number;
}

/**
 * Decides whether to try again, checking in this order: attempts left, then
 * `retryable(error)` (not called when no attempt is left), then the wait
 * (`retryAfter` exactly, else {@linkcode backoffDelay}), which gives up when
 * it would end later than `maxElapsed` after the first try, or never end.
 * The run signal is the caller's to check.
 */
export function decideRetry(
  resolved: ResolvedRetry,
  failed: FailedTry,
  random: () => number = Math.random,
): RetryDecision {
  if (failed.attempt >= resolved.attempts) return { retry: false, reason: "attempts" };
  const retryable = resolved.retryable;
  if (retryable !== undefined) {
    try {
      if (!retryable(failed.error)) return { retry: false, reason: "not-retryable" };
    } catch (hookError) {
      return { retry: false, reason: "retryable-threw", hookError };
    }
  }
  const delay = failed.retryAfter ?? backoffDelay(resolved, failed.attempt, random);
  if (!(failed.elapsed + delay <= resolved.maxElapsed) || delay === Infinity) {
    return { retry: false, reason: "max-elapsed" };
  }
  return { retry: true, delay };
}
