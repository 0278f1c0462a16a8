// Helpers for the delivery tests (issue 13: retry, flushTimeout, FlushOutcome,
// send, DeliveryError, parseRetryAfter, stats.retries). Not a test file itself.
//
// The tests were written before src/ had these names, so this module declares
// the API locally and reaches the new exports through the module
// namespace. Once src/ exports them, replace the local declarations marked
// "SHIM" with imports from ../mod.ts and drop the casts in deliveryBuffer().
import assert from "node:assert/strict";
import * as batchkit from "../mod.ts";
import {
  type AddOptions,
  BatchBuffer,
  type BatchBufferConfig,
  type BatchBufferStats,
  type FlushContext,
  type FlushReason,
} from "../mod.ts";
import { type Clock, track } from "./helpers.ts";

// ------------------------------------------------------------ the API

/** SHIM: `RetryOptions` from issue 13. */
export interface RetryOptions {
  attempts?: number;
  initialDelay?: number;
  maxDelay?: number;
  multiplier?: number;
  jitter?: boolean;
  maxElapsed?: number;
  retryable?: (error: unknown) => boolean;
}

/** SHIM: `FlushOutcome<T>` from issue 13. */
export interface FlushOutcome<T> {
  retry?: T[];
  error?: unknown;
  retryAfter?: number;
}

/** SHIM: `FlushContext` with issue 13's `attempt`. */
export interface AttemptContext extends FlushContext {
  readonly attempt: number;
}

/** SHIM: issue 13's `FlushFunc<T>`: void, an outcome, or any promise. */
export type DeliveryFlush<T> = (
  batch: T[],
  context: AttemptContext,
) => void | FlushOutcome<T> | Promise<unknown>;

/** SHIM: `BatchBufferConfig<T>` with issue 13's fields. */
export interface DeliveryConfig<T> extends Omit<BatchBufferConfig<T>, "flush" | "onFlushError"> {
  flush: DeliveryFlush<T>;
  onFlushError?: (error: unknown, batch: T[]) => void | Promise<unknown>;
  retry?: RetryOptions;
  flushTimeout?: number;
}

/** SHIM: `BatchBufferStats` with issue 13's `retries`. */
export interface DeliveryStats extends BatchBufferStats {
  readonly retries: number;
}

/** SHIM: `BatchBuffer<T>` with issue 13's `send()` and `stats().retries`. */
export interface DeliveryBuffer<T> extends Omit<BatchBuffer<T>, "stats"> {
  send(item: T, options?: AddOptions): Promise<void>;
  stats(): DeliveryStats;
}

/** SHIM: the shape of issue 13's `DeliveryError`. */
export interface DeliveryErrorShape extends Error {
  readonly item: unknown;
}

const exports = batchkit as unknown as Record<string, unknown>;

/** A buffer built from an issue-13 config (SHIM: the casts go once src/ has the types). */
export function deliveryBuffer<T>(config: DeliveryConfig<T>): DeliveryBuffer<T> {
  return new BatchBuffer<T>(config as unknown as BatchBufferConfig<T>) as unknown as DeliveryBuffer<
    T
  >;
}

/** SHIM: `parseRetryAfter` from ../mod.ts, failing clearly while it is not exported. */
export function parseRetryAfter(value: string | null): number | undefined {
  const parse = exports.parseRetryAfter;
  assert.equal(typeof parse, "function", "mod.ts does not export parseRetryAfter yet");
  return (parse as (value: string | null) => number | undefined)(value);
}

/** SHIM: the `DeliveryError` class from ../mod.ts, failing clearly while it is not exported. */
export function deliveryErrorClass(): abstract new (...args: never[]) => DeliveryErrorShape {
  const DeliveryError = exports.DeliveryError;
  assert.equal(typeof DeliveryError, "function", "mod.ts does not export DeliveryError yet");
  return DeliveryError as abstract new (...args: never[]) => DeliveryErrorShape;
}

/** Asserts that `error` is a DeliveryError for `item`; returns its cause. */
export function assertDeliveryError(error: unknown, item: unknown): unknown {
  const DeliveryError = deliveryErrorClass();
  assert.ok(error instanceof DeliveryError, `expected a DeliveryError, got ${error}`);
  assert.ok(error instanceof Error);
  assert.equal(error.name, "DeliveryError");
  assert.equal(error.item, item);
  return error.cause;
}

// ------------------------------------------------------------------ recording

/** One try of a batch as the backend saw it. */
export interface Try<T> {
  /** A copy of the batch taken when the try started. */
  readonly batch: T[];
  readonly reason: FlushReason;
  readonly attempt: number;
  /** Fake time (Date.now()) when the try started. */
  readonly at: number;
  readonly signal: AbortSignal;
}

/** A flush that records every try and answers with `respond` (any value a flush may return). */
export function recordTries<T>(
  respond: (batch: T[], attempt: Try<T>, index: number) => unknown = () => undefined,
): { tries: Try<T>[]; flush: DeliveryFlush<T> } {
  const tries: Try<T>[] = [];
  const flush: DeliveryFlush<T> = (batch, context) => {
    const entry: Try<T> = {
      batch: [...batch],
      reason: context.reason,
      attempt: context.attempt,
      at: Date.now(),
      signal: context.signal,
    };
    tries.push(entry);
    return respond(batch, entry, tries.length - 1) as void | FlushOutcome<T> | Promise<unknown>;
  };
  return { tries, flush };
}

/** One onFlushError call. */
export interface Failure<T> {
  readonly error: unknown;
  readonly batch: T[];
  /** Fake time when it was called. */
  readonly at: number;
}

/** An onFlushError that records its calls. */
export function recordFailures<T>(): {
  failures: Failure<T>[];
  onFlushError: (error: unknown, batch: T[]) => void;
} {
  const failures: Failure<T>[] = [];
  return {
    failures,
    onFlushError: (error, batch) =>
      void failures.push({ error, batch: [...batch], at: Date.now() }),
  };
}

/** An error a backend throws, optionally asking for a wait. */
export class BackendError extends Error {
  readonly retryAfter: number | undefined;
  constructor(message: string, retryAfter?: number) {
    super(message);
    this.name = "BackendError";
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
  }
}

/** A throwing flush answer, for `recordTries`. */
export function fail(message: string, retryAfter?: number): never {
  throw new BackendError(message, retryAfter);
}

// ---------------------------------------------------------------------- stats

/** The items the stats say are somewhere. */
export function accountedFor(stats: BatchBufferStats): number {
  return stats.rejected + stats.flushedItems + stats.failedItems + stats.inFlightItems +
    stats.itemsInChannel + stats.itemsInBatch;
}

/** Asserts stats()' invariant, with `where` in the message. */
export function assertInvariant(stats: BatchBufferStats, where: string): void {
  assert.equal(stats.added, accountedFor(stats), `${where}: ${JSON.stringify(stats)}`);
}

/**
 * Runs `check` inside a buffer callback, where a throw would be swallowed,
 * keeping the failure for the test to rethrow.
 */
export function guarded(violations: unknown[], check: () => void): void {
  try {
    check();
  } catch (error) {
    violations.push(error);
  }
}

/** Retry options whose waits are exact: 100, 200, 400, ... ms, five tries in all. */
export const EXACT: RetryOptions = {
  attempts: 5,
  initialDelay: 100,
  multiplier: 2,
  maxDelay: 30_000,
  jitter: false,
};

// ---------------------------------------------------------------------- clock

/**
 * Lets `promise` settle under the fake clock: runs pending jobs, then fires
 * timers one at a time until it has settled. Fails if it never does.
 */
export async function drive(
  clock: Clock,
  promise: Promise<unknown>,
  what = "run()",
): Promise<void> {
  const state = track(promise);
  await clock.tickAsync(0);
  for (let i = 0; i < 10_000 && !state.settled && clock.countTimers() > 0; i++) {
    await clock.nextAsync();
  }
  await clock.tickAsync(0);
  assert.ok(state.settled, `${what} did not settle; ${clock.countTimers()} timers pending`);
  await promise;
}
