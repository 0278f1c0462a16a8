// Shared by the BatchBuffer test files. Not a test file itself.
import FakeTimers from "@sinonjs/fake-timers";
import type { FlushContext, FlushReason } from "../mod.ts";

/** The clock type that `FakeTimers.install()` returns. */
export type Clock = ReturnType<typeof FakeTimers.install>;

/** A promise with its resolve and reject at hand, to settle a flush by hand. */
export interface Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
}

/** Creates a promise that the test settles by hand. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Lets every pending microtask run (the channel's WritableStream hops take
 * several) by yielding one real macrotask. Only valid without a fake clock;
 * under one, use `clock.tickAsync(0)`.
 */
export function drain(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** One call of a recorded flush. */
export interface FlushCall<T> {
  readonly batch: T[];
  /** A copy taken when flush was called, to detect later changes. */
  readonly snapshot: T[];
  readonly reason: FlushReason;
  readonly signal: AbortSignal;
}

/** A synchronous flush that records every call. */
export function recordingFlush<T>(): {
  calls: FlushCall<T>[];
  flush: (batch: T[], context: FlushContext) => void;
} {
  const calls: FlushCall<T>[] = [];
  return {
    calls,
    flush: (batch, { reason, signal }) => {
      calls.push({ batch, snapshot: [...batch], reason, signal });
    },
  };
}

/** A flush whose every call stays pending until the test settles it. */
export function controlledFlush<T>(): {
  calls: (FlushCall<T> & { readonly done: Deferred })[];
  flush: (batch: T[], context: FlushContext) => Promise<void>;
} {
  const calls: (FlushCall<T> & { readonly done: Deferred })[] = [];
  return {
    calls,
    flush: (batch, { reason, signal }) => {
      const done = deferred();
      calls.push({ batch, snapshot: [...batch], reason, signal, done });
      return done.promise;
    },
  };
}

/**
 * Runs `body` with a fake clock installed, uninstalling it whatever happens.
 * Only timers and clocks are faked: node:test schedules its next test with the
 * global setImmediate, and a faked one silently ends the Node test process.
 */
export async function withFakeClock(body: (clock: Clock) => Promise<void>): Promise<void> {
  const clock = FakeTimers.install({
    toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date", "performance"],
  });
  try {
    await body(clock);
  } finally {
    clock.uninstall();
  }
}
