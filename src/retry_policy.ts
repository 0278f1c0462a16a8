/**
 * Retries: the options a user gives, the outcome a flush may return, and the
 * pure decisions the engine makes from them (how long to wait, whether to try
 * again). Nothing here reads a clock or a timer: the caller passes time and
 * randomness in, so every decision can be tested exactly.
 *
 * Public: {@linkcode RetryOptions} and {@linkcode FlushOutcome}. The rest is
 * internal and not exported from mod.ts.
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

/**
 * What a flush may resolve to when some of its items failed, like Kinesis
 * `PutRecords` or SQS `SendMessageBatch` do record by record. Only a resolved
 * value that is an object with a `retry` array counts as an outcome; anything
 * else (`undefined`, a `Response`, ...) counts as success for the whole batch.
 *
 * An outcome with an empty `retry` is a success. With a non-empty `retry`, the
 * try failed for those items only: the others count as delivered, and these
 * are tried again on their own (with `retry` configured) or go to
 * `onFlushError` (without it, or once retrying stops).
 *
 * @typeParam T The item type.
 *
 * @example Retrying only the records a bulk API refused
 * ```ts
 * import type { FlushOutcome } from "@batchkit/buffer";
 * import assert from "node:assert/strict";
 *
 * interface Row {
 *   id: number;
 * }
 * // A bulk API that answers one status per row, in order.
 * async function insert(rows: Row[]): Promise<number[]> {
 *   return rows.map((row) => (row.id % 2 === 0 ? 200 : 503));
 * }
 * async function flush(rows: Row[]): Promise<FlushOutcome<Row>> {
 *   const statuses = await insert(rows);
 *   const retry = rows.filter((_, i) => statuses[i] !== 200);
 *   return { retry, error: new Error(`${retry.length} rows refused`), retryAfter: 500 };
 * }
 * const outcome = await flush([{ id: 1 }, { id: 2 }, { id: 3 }]);
 * assert.deepEqual(outcome.retry, [{ id: 1 }, { id: 3 }]);
 * ```
 */
export interface FlushOutcome<T> {
  /**
   * The items of this batch that failed and may succeed on another try.
   * Empty or absent: every item was delivered. Items are matched to the batch
   * by identity (`===`, and NaN to NaN), so return the batch's own items.
   */
  retry?: T[];
  /**
   * Why they failed, handed to `retryable` and, if they never succeed, to
   * `onFlushError`. Absent: an `Error` saying how many items failed.
   */
  error?: unknown;
  /**
   * How long the backend asked us to wait before the next try, in ms (see
   * `parseRetryAfter`). A finite number `>= 0`; anything else is ignored.
   */
  retryAfter?: number;
}

// ---------------------------------------------------------------- internal

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

/**
 * The `retryAfter` of an outcome or a thrown error, in ms: a finite number
 * `>= 0`, else `undefined`. Never throws (a throwing getter counts as absent).
 */
export function retryAfterOf(source: unknown): number | undefined {
  if (source === null || (typeof source !== "object" && typeof source !== "function")) {
    return undefined;
  }
  let value: unknown;
  try {
    value = (source as { retryAfter?: unknown }).retryAfter;
  } catch {
    return undefined;
  }
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/**
 * What a flush resolved to, read once and safely:
 *
 * - `"success"`: not an outcome (not an object, or `retry` is not an array),
 *   or an outcome with an empty `retry`. Every item was delivered.
 * - `"partial"`: an outcome with a non-empty `retry`. `retry` is a copy (the
 *   flush may keep changing its array), `error` is the outcome's `error`
 *   (`undefined` when it gave none), `retryAfter` the outcome's, or else its
 *   error's (see {@linkcode retryAfterOf}).
 * - `"threw"`: reading the value threw (a throwing getter, a revoked Proxy):
 *   the try failed with that error, for the whole batch.
 */
export type OutcomeRead<T> =
  | { readonly kind: "success" }
  | {
    readonly kind: "partial";
    readonly retry: T[];
    readonly error: unknown;
    readonly retryAfter: number | undefined;
  }
  | { readonly kind: "threw"; readonly error: unknown };

const SUCCESS: OutcomeRead<never> = { kind: "success" };

/**
 * Reads what a flush resolved to. Each property (`retry`, `length`, each
 * element, `error`, `retryAfter`) is read once, so a getter's side effects
 * happen once. Never throws.
 */
export function readOutcome<T>(value: unknown): OutcomeRead<T> {
  // Every try of a plain flush that resolves to undefined ends here, at no cost.
  if (value === null || typeof value !== "object") return SUCCESS;
  try {
    const retry: unknown = (value as FlushOutcome<T>).retry;
    if (!Array.isArray(retry)) return SUCCESS;
    const length = retry.length;
    if (length === 0) return SUCCESS;
    // Not slice() or Array.from(): a subclass's species or iterator could run user code twice.
    const copy = new Array<T>(length);
    for (let i = 0; i < length; i++) copy[i] = retry[i];
    const error = (value as FlushOutcome<T>).error;
    return {
      kind: "partial",
      retry: copy,
      error,
      retryAfter: retryAfterOf(value) ?? retryAfterOf(error),
    };
  } catch (error) {
    return { kind: "threw", error };
  }
}

/**
 * Which items of `batch` an outcome's `retry` names, as ascending indices
 * into `batch` (so the retry keeps the batch's order), matched by
 * SameValueZero with multiplicity: two equal items in `retry` take two equal
 * items of the batch, first ones first. `strangers` counts entries of `retry`
 * with no match left in the batch; they are not the buffer's to retry.
 */
export function matchRetry<T>(
  batch: readonly T[],
  retry: readonly T[],
): { indices: number[]; strangers: number } {
  const indices: number[] = [];
  // The common case: `retry` is the batch filtered, in order. One pass, no Map.
  let b = 0;
  let r = 0;
  for (; r < retry.length; r++) {
    while (b < batch.length && !sameValueZero(batch[b], retry[r])) b++;
    if (b === batch.length) break;
    indices.push(b++);
  }
  if (r === retry.length) return { indices, strangers: 0 };
  // Out of order, or strangers: match every remaining entry against the unused positions.
  const used = new Set(indices);
  const positions = new Map<unknown, number[]>();
  for (let i = batch.length - 1; i >= 0; i--) {
    if (used.has(i)) continue;
    const list = positions.get(batch[i]);
    if (list === undefined) positions.set(batch[i], [i]);
    else list.push(i); // descending, so pop() yields the first position
  }
  let strangers = 0;
  for (; r < retry.length; r++) {
    const index = positions.get(retry[r])?.pop();
    if (index === undefined) strangers++;
    else indices.push(index);
  }
  indices.sort((x, y) => x - y);
  return { indices, strangers };
}

function sameValueZero(a: unknown, b: unknown): boolean {
  return a === b || (a !== a && b !== b);
}

/** The error handed on for an outcome that failed items without saying why. */
export function failedItemsError(failed: number, total: number): Error {
  return new Error(`flush reported ${failed} of ${total} items as failed`);
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
  /** Why: the thrown error, or the outcome's error (or {@linkcode failedItemsError}). */
  readonly error: unknown;
  /** The wait the backend asked for (from {@linkcode retryAfterOf} or the outcome). */
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
