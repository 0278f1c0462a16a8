// One batch's delivery: its tries, retries and timeouts. Internal: not exported from mod.ts.
import { DeadlineTimer } from "./deadline_timer.ts";
import type { Ticket } from "./entry.ts";
import type { Flights } from "./flights.ts";
import { failedItemsError, matchRetry, readOutcome, retryAfterOf } from "./flush_outcome.ts";
import { decideRetry } from "./retry_policy.ts";
import type { FlushReason } from "./types.ts";

/** What one call of flush returned: a thenable, kept apart from a plain result. */
export class Pending {
  constructor(readonly promise: PromiseLike<unknown>) {}
}

/** What one call of flush threw. */
export class Thrown {
  constructor(readonly error: unknown) {}
}

/**
 * A batch from the moment it is handed to flush until every item has reached
 * its final outcome: delivered, or handed to onFlushError after the last try.
 * A failed try is tried again (with `retry`) after a wait, with only the items
 * still failing, alone: never merged with new items. The flight keeps its
 * slot all along, so a backend that fails slows producers down.
 */
export class Flight<T> {
  readonly key: unknown;
  readonly reason: FlushReason;
  readonly #owner: Flights<T>;
  /** The items still to deliver, with their sizes and send() tickets when any. */
  #items: T[];
  /** How many: flush owns the array it was given, and may empty it. */
  #count: number;
  #sizes: number[] | undefined;
  #tickets: (Ticket | undefined)[] | undefined;
  #attempt = 0;
  #firstTryAt = 0;
  /** Which try a result belongs to: a timed-out try's late result is ignored. */
  #tryId = 0;
  #timeout: ReturnType<typeof setTimeout> | undefined;
  #failedSome = false;
  /** The array the last try's flush was given: a batch that failed whole goes to onFlushError as such. */
  #lastBatch: T[] | undefined;
  /** A result must be matched to items: for retries, sizes or send() tickets. */
  readonly #keepsCopy: boolean;
  #ended = false;
  #resolveEnded: (() => void) | undefined;

  constructor(
    owner: Flights<T>,
    items: T[],
    sizes: number[] | undefined,
    tickets: (Ticket | undefined)[] | undefined,
    reason: FlushReason,
    key: unknown,
  ) {
    this.#owner = owner;
    this.#items = items;
    this.#count = items.length;
    this.#sizes = sizes;
    this.#tickets = tickets;
    this.reason = reason;
    this.key = key;
    this.#keepsCopy = owner.retry !== undefined || sizes !== undefined || tickets !== undefined;
  }

  /** Items not yet at their final outcome. */
  get size(): number {
    return this.#count;
  }

  /** True once every item has reached its final outcome. */
  get ended(): boolean {
    return this.#ended;
  }

  /** A promise, made in this call, that resolves once the flight has ended. */
  whenEnded(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.#ended) resolve();
      else this.#resolveEnded = resolve;
    });
  }

  /** Makes one try: calls flush with a batch it owns. */
  try(): void {
    const owner = this.#owner;
    const config = owner.config;
    this.#attempt++;
    if (this.#attempt === 1) {
      if (owner.retry !== undefined) this.#firstTryAt = performance.now();
    } else owner.counters.retries++;
    const id = ++this.#tryId;
    // flush owns its array; keep ours when a result must be matched to items.
    const batch = this.#keepsCopy ? this.#items.slice() : this.#items;
    this.#lastBatch = batch;
    const signal = config.flushTimeout === Infinity ? owner.signal! : this.#armTimeout(id);
    this.#took(id, owner.callFlush(batch, signal, this.reason, this.key, this.#attempt));
  }

  /**
   * Takes over a first try that Flights made itself, as try() would have made
   * it (no copy, no timeout), with what its callFlush() gave. `count` is the
   * batch's length before the call: flush owns the array and may empty it.
   */
  tookFirstTry(call: unknown, count: number): void {
    this.#count = count;
    this.#attempt = 1;
    const id = ++this.#tryId;
    this.#lastBatch = this.#items;
    this.#took(id, call);
  }

  #took(id: number, call: unknown): void {
    if (call instanceof Thrown) return this.#failed(id, call.error);
    if (!(call instanceof Pending)) return this.#resolved(id, call);
    Promise.resolve(call.promise).then(
      (value) => this.#resolved(id, value),
      (error) => this.#failed(id, error),
    );
  }

  #armTimeout(id: number): AbortSignal {
    const controller = new AbortController();
    const timeout = this.#owner.config.flushTimeout;
    this.#timeout = setTimeout(() => {
      this.#timeout = undefined;
      const error = new DOMException(`flush did not settle within ${timeout} ms`, "TimeoutError");
      controller.abort(error);
      this.#failed(id, error);
    }, timeout);
    const runSignal = this.#owner.signal!;
    return AbortSignal.any([runSignal, controller.signal]);
  }

  #resolved(id: number, value: unknown): void {
    if (!this.#current(id)) return;
    const outcome = readOutcome<T>(value);
    if (outcome.kind === "success") {
      this.#deliverAll();
      return this.#end();
    }
    if (outcome.kind === "threw") return this.#retryOrGiveUp(outcome.error, undefined);
    const total = this.#count;
    const failing = this.#keepOnly(outcome.retry);
    this.#retryOrGiveUp(
      outcome.error ?? failedItemsError(failing, total),
      outcome.retryAfter,
    );
  }

  #failed(id: number, error: unknown): void {
    if (!this.#current(id)) return;
    this.#retryOrGiveUp(error, retryAfterOf(error), true);
  }

  /** True for the try in progress, which is now over; stale tries are ignored. */
  #current(id: number): boolean {
    if (id !== this.#tryId || this.#ended) return false;
    this.#tryId++;
    if (this.#timeout !== undefined) clearTimeout(this.#timeout);
    this.#timeout = undefined;
    return true;
  }

  /**
   * The try delivered every item but `retry` (matched to ours by identity, in
   * batch order): count those delivered, keep the rest. Returns how many failed.
   */
  #keepOnly(retry: T[]): number {
    const items = this.#items;
    if (!this.#keepsCopy) {
      // Nothing to match: the failed items are the outcome's own.
      const failed = Math.min(retry.length, this.#count);
      this.#owner.delivered(this.#count - failed, 0, undefined);
      this.#items = retry.slice(0, failed);
      this.#count = failed;
      return failed;
    }
    const { indices } = matchRetry(items, retry);
    const failing = new Set(indices);
    const sizes = this.#sizes;
    const tickets = this.#tickets;
    let bytes = 0;
    const deliveredTickets: (Ticket | undefined)[] = [];
    for (let i = 0; i < items.length; i++) {
      if (failing.has(i)) continue;
      if (sizes !== undefined) bytes += sizes[i];
      if (tickets !== undefined) deliveredTickets.push(tickets[i]);
    }
    this.#owner.delivered(items.length - indices.length, bytes, deliveredTickets);
    this.#items = indices.map((i) => items[i]);
    this.#count = indices.length;
    if (sizes !== undefined) this.#sizes = indices.map((i) => sizes[i]);
    if (tickets !== undefined) this.#tickets = indices.map((i) => tickets[i]);
    return indices.length;
  }

  /** Every remaining item was delivered. */
  #deliverAll(): void {
    this.#owner.delivered(this.#count, sum(this.#sizes), this.#tickets);
    this.#items = [];
    this.#count = 0;
  }

  /** `whole`: the last try failed as a whole, not through an outcome. */
  #retryOrGiveUp(error: unknown, retryAfter: number | undefined, whole = false): void {
    const owner = this.#owner;
    const policy = owner.retry;
    if (policy === undefined || owner.signal!.aborted) return this.#giveUp(error, whole);
    const decision = decideRetry(policy, {
      attempt: this.#attempt,
      error,
      retryAfter,
      elapsed: performance.now() - this.#firstTryAt,
    });
    if (!decision.retry) {
      if (decision.reason === "retryable-threw") owner.hooks.report(decision.hookError);
      return this.#giveUp(error, whole);
    }
    // The wait keeps the slot; aborting the run signal ends it at once.
    const signal = owner.signal!;
    const onAbort = () => {
      wait.clear();
      this.#giveUp(error);
    };
    const wait = new DeadlineTimer(decision.delay, () => {
      signal.removeEventListener("abort", onAbort);
      this.try();
    }, false);
    signal.addEventListener("abort", onAbort, { once: true });
    wait.start();
  }

  /** Retrying stopped: the remaining items go to onFlushError, awaited if async. */
  #giveUp(error: unknown, whole = false): void {
    const items = this.#items;
    // onFlushError gets the array flush had, as before retries existed, when the
    // whole try failed; else our copy of the failing items.
    const handed = whole && this.#lastBatch !== undefined ? this.#lastBatch : items;
    const count = this.#count;
    this.#items = [];
    this.#count = 0;
    this.#failedSome = true;
    this.#owner.gaveUp(this, items, handed, count, sum(this.#sizes), this.#tickets, error, () => {
      this.#end();
    });
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#owner.ended(this, this.#failedSome);
    this.#resolveEnded?.();
  }
}

function sum(sizes: number[] | undefined): number {
  let total = 0;
  if (sizes !== undefined) { for (const size of sizes) total += size; }
  return total;
}
