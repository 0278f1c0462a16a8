// The flushes in flight. Internal: not exported from mod.ts.
import { RESOLVED } from "./channel.ts";
import type { ResolvedConfig } from "./config.ts";
import type { Counters } from "./counters.ts";
import { DeliveryError } from "./errors.ts";
import type { Ticket } from "./entry.ts";
import { Flight, Pending, Thrown } from "./flight.ts";
import type { FlushRequests } from "./flush_requests.ts";
import { type Hooks, isThenable } from "./hooks.ts";
import type { ResolvedRetry } from "./retry_policy.ts";
import type { FlushReason } from "./types.ts";

/**
 * The flights: at most `maxConcurrentFlushes` at once (the run loop checks
 * `hasFreeSlot`), and with `key` at most one per key. It counts each item at
 * its final outcome, settles send() tickets, hands failed items to
 * onFlushError, hands every flight to waitUntil, tells the flush() requests,
 * and calls `onSettled` once a flight has ended so the run loop can go on.
 */
export class Flights<T> {
  readonly config: ResolvedConfig<T>;
  readonly hooks: Hooks<T>;
  readonly counters: Counters;
  readonly retry: ResolvedRetry | undefined;
  /** The run signal; made by run(), never at module scope (workerd refuses it there). */
  signal: AbortSignal | undefined;
  /** How many of the user's flush calls are running synchronously (for flush() calls). */
  insideFlush = 0;
  readonly #requests: FlushRequests;
  readonly #release: (bytes: number) => void;
  readonly #onSettled: () => void;
  /** The flights still to end, but for those already handing items to onFlushError. */
  readonly #inFlight = new Set<Flight<T>>();
  /** With `key` configured: the keys that have a flight. */
  readonly #keysInFlight: Set<unknown> | undefined;
  #starting = false;
  /** No retry and no flushTimeout: a try needs no copy of its batch, nor a timer. */
  readonly #triesAlone: boolean;

  constructor(
    config: ResolvedConfig<T>,
    hooks: Hooks<T>,
    counters: Counters,
    requests: FlushRequests,
    release: (bytes: number) => void,
    onSettled: () => void,
  ) {
    this.config = config;
    this.hooks = hooks;
    this.counters = counters;
    this.retry = config.retry;
    this.#requests = requests;
    this.#release = release;
    this.#onSettled = onSettled;
    if (config.key !== undefined) this.#keysInFlight = new Set();
    this.#triesAlone = config.retry === undefined && config.flushTimeout === Infinity;
  }

  /** True while fewer than `maxConcurrentFlushes` flights are in the air. */
  get hasFreeSlot(): boolean {
    return this.counters.flushesInFlight < this.config.maxConcurrentFlushes;
  }

  /**
   * True when a batch of this key may fly now: a slot is free and, with `key`
   * configured, the key has no flight (so a key's batches arrive in order).
   */
  canFly(key: unknown): boolean {
    return this.hasFreeSlot && (this.#keysInFlight === undefined || !this.#keysInFlight.has(key));
  }

  /** True when no flight is in the air. */
  get idle(): boolean {
    return this.counters.flushesInFlight === 0;
  }

  /** The flights a new flush() request waits for. */
  get unsettled(): Iterable<object> {
    return this.#inFlight;
  }

  /**
   * Hands a batch to flush, which owns the array from now on. `releaseOpener`
   * settles the keep-alive of the request that opened the batch, once the
   * flight's own promise has been handed to waitUntil.
   */
  start(
    items: T[],
    reason: FlushReason,
    key: unknown,
    sizes: number[] | undefined,
    tickets: (Ticket | undefined)[] | undefined,
    releaseOpener: (() => void) | undefined,
  ): void {
    const counters = this.counters;
    counters.flushesInFlight++;
    counters.inFlightItems += items.length; // counted now: flush may empty the array
    this.#keysInFlight?.add(key);
    let flight: Flight<T> | undefined;
    this.#starting = true;
    if (this.#triesAlone && sizes === undefined && tickets === undefined) {
      // Nothing to match a result to: flush is called here, and a plain value settles the
      // batch with no Flight (about a quarter of a synchronous flush's cost).
      const count = items.length;
      const call = this.callFlush(items, this.signal!, reason, key, 1);
      if (call === null || typeof call !== "object") {
        this.delivered(count, 0, undefined);
        this.#countEnded(key, false);
      } else {
        flight = new Flight(this, items, sizes, tickets, reason, key);
        flight.tookFirstTry(call, count);
      }
    } else {
      flight = new Flight(this, items, sizes, tickets, reason, key);
      flight.try();
    }
    this.#starting = false;
    if (flight === undefined || flight.ended) {
      // A synchronous flush settles here, at no cost.
      this.hooks.waitUntil(RESOLVED);
      releaseOpener?.();
      return this.#onSettled();
    }
    this.#inFlight.add(flight);
    this.#requests.flightStarted(flight);
    if (this.config.waitUntil !== undefined) this.hooks.waitUntil(flight.whenEnded());
    releaseOpener?.();
  }

  /**
   * Calls the user's flush once, counted in insideFlush (flushes can nest when
   * N > 1). Returns its plain result, its thenable as Pending, or what it threw
   * as Thrown; `then` is read inside the guard, as a getter is user code too.
   */
  callFlush(
    batch: T[],
    signal: AbortSignal,
    reason: FlushReason,
    key: unknown,
    attempt: number,
  ): unknown {
    this.insideFlush++;
    try {
      const result: unknown = this.config.flush(batch, { signal, reason, key, attempt });
      return isThenable(result) ? new Pending(result) : result;
    } catch (error) {
      return new Thrown(error);
    } finally {
      this.insideFlush--;
    }
  }

  /** Items of a flight were delivered (a try that carried them succeeded). */
  delivered(count: number, bytes: number, tickets: (Ticket | undefined)[] | undefined): void {
    if (count === 0) return;
    this.counters.flushedItems += count;
    this.counters.inFlightItems -= count;
    if (tickets !== undefined) { for (const ticket of tickets) ticket?.resolve(); }
    if (bytes > 0) this.#release(bytes);
  }

  /**
   * Retrying stopped for these items (`handed` is the array onFlushError
   * gets): they go to onFlushError (or are reported), whose promise is
   * awaited before `then` ends the flight.
   */
  gaveUp(
    flight: Flight<T>,
    items: T[],
    handed: T[],
    count: number,
    bytes: number,
    tickets: (Ticket | undefined)[] | undefined,
    error: unknown,
    then: () => void,
  ): void {
    this.counters.failedItems += count;
    this.counters.inFlightItems -= count;
    if (tickets !== undefined) {
      tickets.forEach((ticket, i) => ticket?.reject(new DeliveryError(items[i], error)));
    }
    if (bytes > 0) this.#release(bytes);
    // A flush() called from onFlushError must not wait for the very flight calling it.
    this.#inFlight.delete(flight);
    const onFlushError = this.config.onFlushError;
    if (onFlushError === undefined) {
      this.hooks.report(
        new Error(`flush failed; its ${count} items were not delivered`, { cause: error }),
      );
      return then();
    }
    try {
      const result: unknown = onFlushError(error, handed);
      if (isThenable(result)) return this.#awaitHook(result, then);
    } catch (thrown) {
      this.hooks.report(thrown);
    }
    then();
  }

  /**
   * Waits for an async onFlushError before the flight ends, so a dead-letter
   * write cannot be cut off: run(), flush(), dispose and waitUntil wait too.
   */
  #awaitHook(result: PromiseLike<unknown>, then: () => void): void {
    Promise.resolve(result).then(then, (rejection) => {
      this.hooks.report(rejection);
      then();
    });
  }

  /** A flight ended: every item reached its final outcome. */
  ended(flight: Flight<T>, failedSome: boolean): void {
    this.#countEnded(flight.key, failedSome);
    this.#inFlight.delete(flight);
    this.#requests.flightSettled(flight);
    if (!this.#starting) this.#onSettled(); // start() goes on itself
  }

  /** A batch's flight, or the try that stood for it, ended: its slot is free. */
  #countEnded(key: unknown, failedSome: boolean): void {
    const counters = this.counters;
    counters.flushesInFlight--;
    if (failedSome) counters.failedFlushes++;
    else counters.flushes++;
    this.#keysInFlight?.delete(key);
  }
}
