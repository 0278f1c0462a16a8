// The flushes in flight. Internal: not exported from mod.ts.
import { RESOLVED } from "./channel.ts";
import type { ResolvedConfig } from "./config.ts";
import type { Counters } from "./counters.ts";
import type { FlushRequests } from "./flush_requests.ts";
import { type Hooks, isThenable } from "./hooks.ts";
import type { FlushReason } from "./types.ts";

/**
 * Starts the user's flush for each batch and settles it: counts it, hands a
 * failed batch to onFlushError, hands every flush to waitUntil, tells the
 * flush() requests, and calls `onSettled` so the run loop can go on. At most
 * `maxConcurrentFlushes` are in flight; the run loop checks `hasFreeSlot`.
 */
export class Flights<T> {
  readonly #config: ResolvedConfig<T>;
  readonly #hooks: Hooks<T>;
  readonly #counters: Counters;
  readonly #requests: FlushRequests;
  /** Called once a flight has settled, with the bytes it no longer holds. */
  readonly #onSettled: (bytes: number) => void;
  /** The batches of the asynchronous flushes in flight. */
  readonly #inFlight = new Set<T[]>();
  /** With `key` configured: the keys that have a flight. */
  readonly #keysInFlight: Set<unknown> | undefined;
  #insideFlush = false;
  /** The run signal; made by run(), never at module scope (workerd refuses it there). */
  signal: AbortSignal | undefined;

  constructor(
    config: ResolvedConfig<T>,
    hooks: Hooks<T>,
    counters: Counters,
    requests: FlushRequests,
    onSettled: (bytes: number) => void,
  ) {
    this.#config = config;
    this.#hooks = hooks;
    this.#counters = counters;
    this.#requests = requests;
    this.#onSettled = onSettled;
    if (config.key !== undefined) this.#keysInFlight = new Set();
  }

  /** True while the user's flush runs synchronously (for re-entrant flush() calls). */
  get insideFlush(): boolean {
    return this.#insideFlush;
  }

  /** True while fewer than `maxConcurrentFlushes` flushes are in flight. */
  get hasFreeSlot(): boolean {
    return this.#counters.flushesInFlight < this.#config.maxConcurrentFlushes;
  }

  /**
   * True when a batch of this key may fly now: a slot is free and, with `key`
   * configured, the key has no flight (so a key's batches arrive in order).
   */
  canFly(key: unknown): boolean {
    return this.hasFreeSlot && (this.#keysInFlight === undefined || !this.#keysInFlight.has(key));
  }

  /** True when no flush is in flight. */
  get idle(): boolean {
    return this.#counters.flushesInFlight === 0;
  }

  /** The asynchronous flights not settled yet (what a new flush() request waits for). */
  get unsettled(): Iterable<T[]> {
    return this.#inFlight;
  }

  /**
   * Calls flush with the batch, which it now owns. `releaseOpener` settles the
   * keep-alive of the request that opened the batch, once the flush's own
   * promise has been handed to waitUntil.
   */
  start(
    batch: T[],
    reason: FlushReason,
    key: unknown,
    bytes: number,
    releaseOpener: (() => void) | undefined,
  ): void {
    // Counted now: the array belongs to flush, which may empty or change it.
    const size = batch.length;
    this.#counters.flushesInFlight++;
    this.#counters.inFlightItems += size;
    this.#keysInFlight?.add(key);
    let result: unknown;
    let isAsync = false;
    let threw = false;
    let thrown: unknown;
    const outer = this.#insideFlush; // flushes can nest when N > 1
    this.#insideFlush = true;
    try {
      result = this.#config.flush(batch, { signal: this.signal!, reason, key });
      // Inside the try: a `then` getter is the user's code too, and may throw.
      isAsync = isThenable(result);
    } catch (error) {
      threw = true;
      thrown = error;
    } finally {
      this.#insideFlush = outer;
    }
    if (!isAsync) {
      this.#hooks.waitUntil(RESOLVED);
      releaseOpener?.();
      this.#settle(batch, size, key, bytes, thrown, threw); // a synchronous flush settles here
      return;
    }
    const settled: Promise<void> = Promise.resolve(result).then(
      () => this.#settle(batch, size, key, bytes, undefined, false),
      (error) => this.#settle(batch, size, key, bytes, error, true),
    );
    this.#inFlight.add(batch);
    this.#requests.flightStarted(batch);
    this.#hooks.waitUntil(settled);
    releaseOpener?.();
  }

  #settle(
    batch: T[],
    size: number,
    key: unknown,
    bytes: number,
    error: unknown,
    failed: boolean,
  ): void {
    this.#inFlight.delete(batch);
    this.#keysInFlight?.delete(key);
    this.#requests.flightSettled(batch);
    const counters = this.#counters;
    counters.flushesInFlight--;
    counters.inFlightItems -= size;
    if (failed) {
      counters.failedFlushes++;
      counters.failedItems += size;
      const onFlushError = this.#config.onFlushError;
      if (onFlushError === undefined) {
        this.#hooks.report(
          new Error(`flush failed; its ${size} items were not delivered`, { cause: error }),
        );
      } else {
        this.#hooks.call(() => onFlushError(error, batch));
      }
    } else {
      counters.flushes++;
      counters.flushedItems += size;
    }
    this.#onSettled(bytes);
  }
}
