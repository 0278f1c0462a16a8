/**
 * {@linkcode BatchBuffer}: many producers add items, one run loop hands them
 * to `flush` in batches.
 *
 * @module
 */
import { Channel, RESOLVED } from "./channel.ts";
import { describe, resolveConfig, type ResolvedConfig } from "./config.ts";
import { DeadlineTimer } from "./deadline_timer.ts";
import { AddAllError, BufferClosedError } from "./errors.ts";
import type { AddOptions, BatchBufferConfig, BatchBufferStats, FlushReason } from "./types.ts";

/** A `flush()` call waiting for the items accepted before it. */
interface FlushRequest {
  /** Done once this many items have been taken by the run loop. */
  readonly upTo: number;
  /** The flushes (by batch) holding those items that have not settled yet. */
  readonly unsettled: Set<unknown[]>;
  readonly promise: Promise<void>;
  readonly resolve: () => void;
}

type State = "new" | "running" | "done";

/** How far addAll() got: items accepted, and the one waiting for room. */
interface AddAllProgress<T> {
  accepted: number;
  held: T | typeof DONE;
}

const NEVER_ABORTS: AbortSignal = new AbortController().signal;

/** Marks the end of addAll()'s items. */
const DONE: unique symbol = Symbol("done");

/**
 * A batching buffer. Producers `await buffer.add(item)`; one run loop gathers
 * the items into batches and hands each to `flush` when it is full, when the
 * next item would overflow it, when its oldest item has waited
 * `flushInterval`, when `flush()` is called, and on `close()`.
 *
 * While the run loop is busy, added items wait in a bounded channel of
 * `chanSize` items; once it is full, `add()` waits for room (backpressure).
 * No item is dropped silently: every accepted item reaches exactly one
 * `flush` (successful or failed, then `onFlushError`) or `onReject`, and every
 * refused `add()` rejects, so the caller still owns the item.
 *
 * Shutdown: stop the producers, call `close()`, then await `run()` (or use
 * `await using`, which does both).
 *
 * @typeParam T The item type.
 *
 * @example Batching with a run loop
 * ```ts
 * import { BatchBuffer } from "@batchkit/buffer";
 * import assert from "node:assert/strict";
 *
 * const batches: number[][] = [];
 * const buffer = new BatchBuffer<number>({
 *   capacity: 3,
 *   flush: (batch) => { batches.push(batch); },
 * });
 * const running = buffer.run();
 * for (let i = 0; i < 7; i++) await buffer.add(i);
 * buffer.close();
 * await running;
 * assert.deepEqual(batches, [[0, 1, 2], [3, 4, 5], [6]]);
 * ```
 */
export class BatchBuffer<T> implements AsyncDisposable {
  readonly #config: ResolvedConfig<T>;
  readonly #channel: Channel<T>;
  readonly #timer: DeadlineTimer;
  #state: State = "new";
  #closed = false;
  #runSignal: AbortSignal = NEVER_ABORTS;
  #done: Promise<void> | undefined;
  #resolveDone: () => void = () => {};

  #batch: T[] = [];
  #batchBytes = 0;
  /** A flush that is due but waits for a free slot (only when at the limit). */
  #owed: FlushReason | undefined;
  #flushRequests: FlushRequest[] = [];
  #flushesInFlight = 0;
  /** The batches of the flushes in flight. */
  #inFlight = new Set<unknown[]>();
  /** Answered flush() requests still waiting for their flushes to settle. */
  #answered = new Set<FlushRequest>();
  #looping = false;
  #loopAgain = false;
  /** True while the user's flush runs synchronously (for re-entrant flush() calls). */
  #insideFlush = false;
  #writable: WritableStream<T> | undefined;

  // Counters for stats(). `#taken` counts items placed in a batch or rejected;
  // `#inHand` is 1 while the run loop holds an item it has not placed yet, so
  // that `added` never dips while a hook or an "overflow" flush runs.
  #taken = 0;
  #inHand = 0;
  #rejected = 0;
  #flushedItems = 0;
  #failedItems = 0;
  #inFlightItems = 0;
  #flushes = 0;
  #failedFlushes = 0;

  /**
   * Creates a buffer. Nothing runs until `run()` is called, but items may be
   * added before (they wait in the channel).
   *
   * @param config How to batch; only `flush` is required.
   * @throws {TypeError} when `flush` is missing or a hook is not a function.
   * @throws {RangeError} when a number is out of range.
   */
  constructor(config: BatchBufferConfig<T>) {
    this.#config = resolveConfig(config);
    this.#channel = new Channel<T>(this.#config.chanSize);
    this.#timer = new DeadlineTimer(this.#config.flushInterval, () => {
      this.#owed ??= "interval"; // paid by the run loop, so no flush starts outside it
      this.#runLoop();
    });
  }

  /**
   * Items accepted and not yet taken by the run loop; never more than
   * `chanSize`. A snapshot for monitoring.
   */
  get itemsInChannel(): number {
    return this.#channel.size;
  }

  /**
   * Adds an item. Resolves once the buffer has accepted it; while the channel
   * is full it waits for room, in line with other waiting producers.
   *
   * Rejects, and the caller keeps the item, with:
   * - {@linkcode BufferClosedError} after `close()`, including for adds still
   *   waiting when `close()` is called;
   * - `signal.reason` when `options.signal` is already aborted or aborts
   *   while waiting (`AbortSignal.timeout(ms)` bounds the wait);
   * - a TypeError when `options.signal` is not an AbortSignal.
   *
   * @param item The item; any value, `undefined` included.
   * @param options An optional signal that stops the wait.
   */
  add(item: T, options?: AddOptions): Promise<void> {
    const signal = options?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      return Promise.reject(this.#badSignal(signal));
    }
    if (this.#closed) return Promise.reject(new BufferClosedError(item));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#takesDirectly()) {
      this.#processDirectly(item);
      return RESOLVED;
    }
    return this.#channel.send(item, signal);
  }

  /**
   * Adds an item without waiting. Returns true when it was accepted, false
   * when the channel is full or other producers are already waiting (it never
   * jumps the line).
   *
   * @param item The item.
   * @throws {BufferClosedError} after `close()`.
   */
  tryAdd(item: T): boolean {
    if (this.#closed) throw new BufferClosedError(item);
    if (this.#takesDirectly()) {
      this.#processDirectly(item);
      return true;
    }
    return this.#channel.trySend(item);
  }

  /**
   * Adds the items in order, waiting for room as `add()` does, at a fraction
   * of the per-item cost of `add()` (it only awaits when it must wait).
   *
   * If the signal aborts, the buffer closes or the iterable throws part-way,
   * it rejects with an {@linkcode AddAllError} whose `accepted` says how many
   * leading items were queued; the rest still belong to the caller.
   *
   * @param items Any iterable.
   * @param options An optional signal that stops the wait.
   */
  async addAll(items: Iterable<T>, options?: AddOptions): Promise<void> {
    const signal = options?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw this.#badSignal(signal);
    if (items === null || typeof (items as Iterable<T>)?.[Symbol.iterator] !== "function") {
      throw new TypeError(`items must be iterable, received ${describe(items)}`);
    }
    // Arrays are read by index: an iterator's next() costs as much as adding the item.
    let source: readonly T[] | Iterator<T> | undefined;
    const progress: AddAllProgress<T> = { accepted: 0, held: DONE };
    try {
      source = Array.isArray(items) ? items : items[Symbol.iterator]();
      for (;;) {
        if (this.#addWhileReady(source, signal, progress)) return;
        await this.#channel.send(progress.held as T, signal); // checks close and abort itself
        progress.accepted++;
      }
    } catch (cause) {
      if (source !== undefined && !Array.isArray(source)) {
        try {
          (source as Iterator<T>).return?.(); // let a generator run its finally blocks
        } catch (error) {
          this.#report(error);
        }
      }
      throw new AddAllError(progress.accepted, cause);
    }
  }

  /**
   * Adds items synchronously for as long as none has to wait; true once the
   * source is exhausted, false with the item that has to wait in
   * `progress.held`. Kept out of addAll() because a loop inside an async
   * function compiles to much slower code. Pulling an item may run the
   * iterable's own code (which may add, close or abort), so every check comes
   * after the pull.
   */
  #addWhileReady(
    source: readonly T[] | Iterator<T>,
    signal: AbortSignal | undefined,
    progress: AddAllProgress<T>,
  ): boolean {
    let item = this.#pull(source, progress.accepted);
    for (;;) {
      if (item === DONE) return true;
      if (this.#closed) throw new BufferClosedError(item);
      if (signal?.aborted) throw signal.reason;
      if (this.#takesDirectly()) {
        // One hand-off for a whole run of items, for as long as the run loop stays idle.
        this.#looping = true;
        try {
          do {
            this.#process(item);
            progress.accepted++;
            item = this.#pull(source, progress.accepted);
          } while (
            item !== DONE && !this.#loopAgain && !this.#closed && this.#hasFreeSlot() &&
            this.#channel.size === 0 && !signal?.aborted
          );
        } finally {
          this.#looping = false;
          if (this.#loopAgain) this.#runLoop();
        }
        continue; // the item just pulled goes through the checks above
      }
      if (!this.#channel.trySend(item)) {
        progress.held = item;
        return false;
      }
      progress.accepted++;
      item = this.#pull(source, progress.accepted);
    }
  }

  /** The next item of addAll()'s source, or DONE. */
  #pull(source: readonly T[] | Iterator<T>, index: number): T | typeof DONE {
    if (Array.isArray(source)) return index < source.length ? source[index] : DONE;
    const next = (source as Iterator<T>).next();
    return next.done ? DONE : next.value;
  }

  /**
   * Flushes now: resolves once every item whose add resolved before this call
   * has been through a flush (or `onReject`) and those flushes have settled.
   * The partial batch goes out with reason `"manual"`. Concurrent calls share
   * the work. With nothing pending, or after `run()` has finished, it resolves
   * without calling `flush`.
   *
   * Called from inside `flush` (before its first `await`), it schedules the
   * manual flush and resolves at once, because waiting could mean waiting for
   * the very flush that called it. From `onFlushError` it waits as usual (the
   * failed flush has already settled). An async `flush` that awaits
   * `buffer.flush()` after its own first `await` would wait for itself: don't.
   * (Likewise a flush that awaits `buffer.add()` while the channel is full.)
   *
   * Rejects when items are pending and `run()` has not been called.
   *
   * @example At the end of an edge request
   * ```ts
   * import { BatchBuffer } from "@batchkit/buffer";
   * import assert from "node:assert/strict";
   *
   * const sent: string[][] = [];
   * const buffer = new BatchBuffer<string>({ flush: (batch) => { sent.push(batch); } });
   * void buffer.run();
   * await buffer.add("page_view");
   * await buffer.flush(); // in a Worker: ctx.waitUntil(buffer.flush())
   * assert.deepEqual(sent, [["page_view"]]);
   * await buffer[Symbol.asyncDispose]();
   * ```
   */
  flush(): Promise<void> {
    if (this.#state === "done") return RESOLVED;
    const nothingPending = this.#channel.size === 0 && this.#batch.length === 0;
    if (nothingPending && this.#inFlight.size === 0) return RESOLVED;
    if (this.#state === "new" && !nothingPending) {
      return Promise.reject(new Error("flush() needs the run loop: call run() first"));
    }
    const upTo = this.#taken + this.#inHand + this.#channel.size;
    let request = this.#flushRequests.at(-1);
    if (request === undefined || request.upTo !== upTo) {
      let resolve!: () => void;
      // Resolved by a plain call, never through a promise made elsewhere: Workers
      // drop promise reactions queued in the context of a request that ended.
      const promise = new Promise<void>((r) => (resolve = r));
      request = { upTo, unsettled: new Set(this.#inFlight), promise, resolve };
      this.#flushRequests.push(request);
      this.#runLoop();
    }
    // Waiting here could mean waiting for the very flush that called us.
    return this.#insideFlush ? RESOLVED : request.promise;
  }

  /**
   * Closes the buffer: later adds reject with {@linkcode BufferClosedError},
   * and so do adds still waiting for room. Items already accepted are kept:
   * the run loop processes them, flushes the last batch (reason `"close"`)
   * and then `run()` resolves. Calling it again does nothing.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#channel.close((item) => new BufferClosedError(item));
    this.#runLoop();
  }

  /**
   * Runs the buffer. Call it once; a second call rejects and leaves the first
   * undisturbed. Resolves after `close()` has been called, every accepted item
   * has been processed and every flush has settled; no timer is left behind.
   *
   * Aborting `signal` does not stop the run: that would drop items. It is
   * passed to every flush as `context.signal` so flushes can hurry. Without
   * it, flushes get a signal that never aborts.
   *
   * @param signal Handed to every flush as `context.signal`.
   */
  run(signal?: AbortSignal): Promise<void> {
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      return Promise.reject(
        new TypeError(`signal must be an AbortSignal, received ${describe(signal)}`),
      );
    }
    if (this.#state !== "new") {
      return Promise.reject(new Error("run() was already called: a BatchBuffer has one run loop"));
    }
    this.#state = "running";
    this.#runSignal = signal ?? NEVER_ABORTS;
    this.#done = new Promise<void>((resolve) => (this.#resolveDone = resolve));
    this.#channel.open(() => this.#runLoop());
    this.#runLoop();
    return this.#done;
  }

  /**
   * Closes the buffer and waits for the run to finish, running it here if
   * `run()` was never called. For `await using buffer = new BatchBuffer(...)`.
   * Calling it again waits for the same run.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    if (this.#state === "new") await this.run();
    else await this.#done;
  }

  /**
   * A WritableStream that adds every chunk (with backpressure), the same
   * object on every access. Closing or aborting it closes the buffer; the
   * items it already accepted are still flushed.
   *
   * @example Piping a stream of events
   * ```ts
   * import { BatchBuffer } from "@batchkit/buffer";
   * import assert from "node:assert/strict";
   *
   * const batches: number[][] = [];
   * const buffer = new BatchBuffer<number>({ capacity: 2, flush: (b) => { batches.push(b); } });
   * const running = buffer.run();
   * await ReadableStream.from([1, 2, 3]).pipeTo(buffer.writable);
   * await running; // the stream's close closed the buffer
   * assert.deepEqual(batches, [[1, 2], [3]]);
   * ```
   */
  get writable(): WritableStream<T> {
    return this.#writable ??= new WritableStream<T>({
      // The stream's signal lets abort() stop a write that waits for room.
      write: (item, controller) => this.add(item, { signal: controller.signal }),
      close: () => this.close(),
      abort: () => this.close(),
    });
  }

  /**
   * A snapshot of the counters; see {@linkcode BatchBufferStats} for the
   * invariant they keep.
   */
  stats(): BatchBufferStats {
    return {
      added: this.#taken + this.#inHand + this.#channel.size,
      rejected: this.#rejected,
      flushedItems: this.#flushedItems,
      failedItems: this.#failedItems,
      inFlightItems: this.#inFlightItems,
      itemsInChannel: this.#channel.size,
      itemsInBatch: this.#batch.length + this.#inHand,
      flushes: this.#flushes,
      failedFlushes: this.#failedFlushes,
      flushesInFlight: this.#flushesInFlight,
    };
  }

  /**
   * The run loop. It runs whenever something changes (an item arrives, a
   * flush settles, the interval elapses, `flush()` or `close()` is called)
   * and does all it can without waiting. While `maxConcurrentFlushes` flushes
   * are in flight it takes nothing, so the channel fills and producers wait.
   */
  #runLoop(): void {
    if (this.#looping) {
      this.#loopAgain = true; // a callback re-entered; go round once more
      return;
    }
    this.#looping = true;
    try {
      do {
        this.#loopAgain = false;
        while (this.#state === "running" && this.#hasFreeSlot()) {
          if (this.#owed !== undefined) this.#startFlush(this.#owed);
          else if (this.#flushRequestIsDue()) this.#answerFlushRequest();
          else if (this.#channel.hasItem) this.#process(this.#channel.take());
          else if (this.#channel.pull()) continue; // pending items go to the stream now
          else if (!this.#closed || this.#channel.size > 0) break; // wait for items
          else if (this.#batch.length > 0) this.#startFlush("close");
          else if (this.#flushesInFlight === 0) this.#finish();
          else break; // wait for the last flushes to settle
        }
      } while (this.#loopAgain);
    } finally {
      this.#looping = false;
    }
  }

  /** One item: size, overflow, canAdd, append, shouldFlush (see BatchBufferConfig). */
  #process(item: T): void {
    const config = this.#config;
    if (config.plain) {
      // No hook and no byte budget (which needs sizeOf): steps 1-3 cannot apply.
      // This shortcut is worth about 3 ns an item, a tenth of add()'s own cost.
      const batch = this.#batch;
      batch.push(item);
      this.#taken++;
      if (batch.length === 1) this.#timer.start();
      if (batch.length >= config.capacity) this.#flushFull();
      return;
    }
    this.#inHand = 1;
    let size = 0;
    if (config.sizeOf !== undefined) {
      size = this.#measure(item);
      const valid = typeof size === "number" && Number.isFinite(size) && size >= 0;
      if (!valid || size > config.maxItemBytes) return this.#reject(item);
    }
    if (
      this.#batch.length > 0 &&
      (this.#batchBytes + size > config.maxBatchBytes ||
        (config.willOverflow !== undefined &&
          this.#ask(config.willOverflow, this.#batch, item, false)))
    ) {
      this.#startFlush("overflow");
    }
    if (config.canAdd !== undefined && !this.#ask(config.canAdd, this.#batch, item, true)) {
      return this.#reject(item);
    }
    const batch = this.#batch;
    batch.push(item);
    this.#batchBytes += size;
    this.#inHand = 0;
    this.#taken++;
    if (batch.length === 1) this.#timer.start();
    const full = config.shouldFlush === undefined
      ? batch.length >= config.capacity
      : this.#ask(config.shouldFlush, batch, undefined, batch.length >= config.capacity);
    if (full || this.#batchBytes >= config.maxBatchBytes) this.#flushFull();
  }

  #startFlush(reason: FlushReason): void {
    this.#owed = undefined;
    const batch = this.#batch;
    if (batch.length === 0) return;
    this.#batch = [];
    this.#batchBytes = 0;
    // Only a batch that filled up is likely to be followed at once by the next.
    if (reason === "full" || reason === "overflow") this.#timer.stop();
    else this.#timer.clear();
    // Counted now: the array belongs to flush, which may empty or change it.
    const size = batch.length;
    this.#flushesInFlight++;
    this.#inFlightItems += size;
    let result: void | Promise<void> = undefined;
    let threw = false;
    let thrown: unknown;
    const outer = this.#insideFlush; // flushes can nest when N > 1
    this.#insideFlush = true;
    try {
      result = this.#config.flush(batch, { signal: this.#runSignal, reason });
    } catch (error) {
      threw = true;
      thrown = error;
    } finally {
      this.#insideFlush = outer;
    }
    if (threw || typeof (result as Promise<void> | undefined)?.then !== "function") {
      this.#settle(batch, size, thrown, threw); // a synchronous flush settles here, at no cost
      this.#waitUntil(RESOLVED);
      return;
    }
    const settled: Promise<void> = Promise.resolve(result).then(
      () => this.#settle(batch, size, undefined, false),
      (error) => this.#settle(batch, size, error, true),
    );
    this.#inFlight.add(batch);
    for (const request of this.#flushRequests) request.unsettled.add(batch);
    this.#waitUntil(settled);
  }

  #settle(batch: T[], size: number, error: unknown, failed: boolean): void {
    this.#inFlight.delete(batch);
    for (const request of this.#flushRequests) request.unsettled.delete(batch);
    for (const request of this.#answered) {
      request.unsettled.delete(batch);
      if (request.unsettled.size === 0) {
        this.#answered.delete(request);
        request.resolve();
      }
    }
    this.#flushesInFlight--;
    this.#inFlightItems -= size;
    if (failed) {
      this.#failedFlushes++;
      this.#failedItems += size;
      const onFlushError = this.#config.onFlushError;
      if (onFlushError === undefined) {
        this.#report(
          new Error(`flush failed; its ${size} items were not delivered`, { cause: error }),
        );
      } else {
        this.#call(() => onFlushError(error, batch));
      }
    } else {
      this.#flushes++;
      this.#flushedItems += size;
    }
    this.#runLoop();
  }

  /** Flushes a full batch now, or as soon as a slot frees (ahead of an owed interval flush). */
  #flushFull(): void {
    if (this.#hasFreeSlot()) this.#startFlush("full");
    else this.#owed = "full";
  }

  #flushRequestIsDue(): boolean {
    return this.#flushRequests.length > 0 && this.#taken >= this.#flushRequests[0].upTo;
  }

  #answerFlushRequest(): void {
    this.#startFlush("manual"); // joins the request's flushes while still queued
    const request = this.#flushRequests.shift()!;
    if (request.unsettled.size === 0) request.resolve();
    else this.#answered.add(request);
  }

  #finish(): void {
    this.#state = "done";
    this.#timer.clear();
    this.#resolveDone();
  }

  /** True when an item may skip the channel: the run loop would take it now. */
  #takesDirectly(): boolean {
    return this.#state === "running" && !this.#closed && this.#channel.size === 0 &&
      !this.#looping && this.#hasFreeSlot();
  }

  /** Runs one item through the run loop's per-item step, in the producer's call. */
  #processDirectly(item: T): void {
    this.#looping = true;
    try {
      this.#process(item);
    } finally {
      this.#looping = false;
    }
    if (this.#loopAgain) this.#runLoop();
  }

  #hasFreeSlot(): boolean {
    return this.#flushesInFlight < this.#config.maxConcurrentFlushes;
  }

  #reject(item: T): void {
    this.#inHand = 0;
    this.#taken++;
    this.#rejected++;
    const onReject = this.#config.onReject;
    if (onReject !== undefined) this.#call(() => onReject(item));
  }

  #measure(item: T): number {
    try {
      return this.#config.sizeOf!(item);
    } catch (error) {
      this.#report(error);
      return NaN;
    }
  }

  /** Asks a predicate hook; a hook that throws gets its default answer. */
  #ask<A, B>(hook: (a: A, b: B) => unknown, a: A, b: B, fallback: boolean): boolean {
    try {
      return Boolean(hook(a, b));
    } catch (error) {
      this.#report(error);
      return fallback;
    }
  }

  #waitUntil(promise: Promise<void>): void {
    const waitUntil = this.#config.waitUntil;
    if (waitUntil !== undefined) this.#call(() => waitUntil(promise));
  }

  /** Calls a void hook; what it throws, or rejects with if it is async, goes to onError. */
  #call(callback: () => unknown): void {
    try {
      const result = callback();
      if (typeof (result as Promise<unknown> | undefined)?.then === "function") {
        (result as Promise<unknown>).then(undefined, (error) => this.#report(error));
      }
    } catch (error) {
      this.#report(error);
    }
  }

  #report(error: unknown): void {
    try {
      (this.#config.onError ?? console.error)(error);
    } catch (secondError) {
      console.error(secondError);
    }
  }

  #badSignal(signal: unknown): TypeError {
    return new TypeError(`options.signal must be an AbortSignal, received ${describe(signal)}`);
  }
}
