// Helpers for the delivery tests (issue 13: retry, flushTimeout, FlushOutcome,
// send, DeliveryError, parseRetryAfter, stats.retries). Not a test file itself.
import assert from "node:assert/strict";
import {
  BatchBuffer,
  type BatchBufferConfig,
  type BatchBufferStats,
  DeliveryError,
  type FlushFunc,
  type FlushOutcome,
  type FlushReason,
  type RetryOptions,
} from "../mod.ts";
import { type Clock, track } from "./helpers.ts";

/** Asserts that `error` is a DeliveryError for `item`; returns its cause. */
export function assertDeliveryError(error: unknown, item: unknown): unknown {
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
): { tries: Try<T>[]; flush: FlushFunc<T> } {
  const tries: Try<T>[] = [];
  const flush: FlushFunc<T> = (batch, context) => {
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

/** A {@linkcode recordTries} answer: each batch's first try fails with "once", the next succeeds. */
export function failFirstTry(_batch: unknown[], attempt: Try<unknown>): undefined {
  if (attempt.attempt === 1) fail("once");
  return undefined;
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

/**
 * Builds a buffer from `config`, starts run(signal), adds `items` one by one,
 * closes it and drives run() to the end; returns the buffer for its stats.
 */
export async function runThrough<T>(
  clock: Clock,
  config: BatchBufferConfig<T>,
  items: Iterable<T>,
  signal?: AbortSignal,
): Promise<BatchBuffer<T>> {
  const buffer = new BatchBuffer<T>(config);
  const running = buffer.run(signal);
  for (const item of items) await buffer.add(item);
  buffer.close();
  await drive(clock, running);
  return buffer;
}
