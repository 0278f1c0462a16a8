// A ledger of where every item went, for tests/faults.test.ts and
// tests/bad_input.test.ts. Not a test file itself.
import assert from "node:assert/strict";
import type { BatchBuffer, BatchBufferConfig, FlushFunc, FlushReason } from "../mod.ts";

/** One flush call as the ledger saw it. */
export interface LedgerFlush<T> {
  readonly batch: T[];
  readonly reason: FlushReason;
  failed: boolean;
  error?: unknown;
}

/** Records flushes, rejects and reported errors; hands out hooks that record. */
export class Ledger<T> {
  readonly flushes: LedgerFlush<T>[] = [];
  readonly rejected: T[] = [];
  readonly errors: unknown[] = [];
  readonly flushErrors: { error: unknown; batch: T[] }[] = [];
  /** Items whose add/tryAdd/addAll said they were accepted. */
  readonly accepted: T[] = [];

  /** Hooks that record into the ledger; spread them under the test's own config. */
  hooks(): Pick<BatchBufferConfig<T>, "onReject" | "onError" | "onFlushError"> {
    return {
      onReject: (item) => void this.rejected.push(item),
      onError: (error) => void this.errors.push(error),
      onFlushError: (error, batch) => void this.flushErrors.push({ error, batch }),
    };
  }

  /**
   * Wraps a flush so the ledger sees its batch, and whether it failed. The
   * inner flush decides the outcome.
   */
  flush(inner: FlushFunc<T> = () => {}): FlushFunc<T> {
    return (batch, context) => {
      const entry: LedgerFlush<T> = { batch, reason: context.reason, failed: false };
      this.flushes.push(entry);
      const fail = (error: unknown) => {
        entry.failed = true;
        entry.error = error;
        throw error;
      };
      let result: ReturnType<FlushFunc<T>>;
      try {
        result = inner(batch, context);
      } catch (error) {
        return fail(error);
      }
      return result instanceof Promise ? result.catch(fail) : result;
    };
  }

  /** Adds and records the item when the add resolves. */
  async add(buffer: BatchBuffer<T>, item: T, options?: { signal?: AbortSignal }): Promise<void> {
    await buffer.add(item, options);
    this.accepted.push(item);
  }

  /** Every item handed out: in a flush (any outcome) or to onReject. */
  handedOut(): T[] {
    return [...this.flushes.flatMap((f) => f.batch), ...this.rejected];
  }

  /** Items in flushes that succeeded, in order. */
  delivered(): T[] {
    return this.flushes.filter((f) => !f.failed).flatMap((f) => f.batch);
  }

  /**
   * Checks conservation: every accepted item was handed out exactly once and
   * nothing else was, and the buffer's counters agree.
   */
  assertConserved(buffer: BatchBuffer<T>): void {
    const out = this.handedOut();
    assert.equal(out.length, this.accepted.length, "items handed out != items accepted");
    const counts = new Map<T, number>();
    for (const item of out) counts.set(item, (counts.get(item) ?? 0) + 1);
    for (const item of this.accepted) {
      const n = counts.get(item) ?? 0;
      if (n === 0) assert.fail(`accepted item ${describeItem(item)} was lost`);
      counts.set(item, n - 1);
    }
    const s = buffer.stats();
    assert.equal(s.added, this.accepted.length, "stats.added");
    assert.equal(s.rejected, this.rejected.length, "stats.rejected");
    const failed = this.flushes.filter((f) => f.failed);
    assert.equal(s.failedFlushes, failed.length, "stats.failedFlushes");
    assert.equal(s.failedItems, failed.reduce((n, f) => n + f.batch.length, 0), "failedItems");
    assert.equal(s.flushes, this.flushes.length - failed.length, "stats.flushes");
    assert.equal(s.flushedItems, this.delivered().length, "stats.flushedItems");
    assert.deepEqual(
      [s.inFlightItems, s.itemsInChannel, s.itemsInBatch, s.flushesInFlight],
      [0, 0, 0, 0],
      "something is still pending",
    );
  }
}

/** Replaces console.error while `body` runs and returns what it received. */
export async function captureConsoleError(body: () => Promise<void>): Promise<unknown[][]> {
  const calls: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void calls.push(args);
  try {
    await body();
  } finally {
    console.error = original;
  }
  return calls;
}

function describeItem(item: unknown): string {
  try {
    return String(item);
  } catch {
    return typeof item;
  }
}
