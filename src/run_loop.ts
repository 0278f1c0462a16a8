// The run loop: it moves items from producers to batches to flights. Internal: not exported from mod.ts.
import { type AddAllProgress, DONE, pull } from "./add_all.ts";
import { Channel, RESOLVED } from "./channel.ts";
import type { ResolvedConfig } from "./config.ts";
import { Counters } from "./counters.ts";
import { Batcher } from "./batcher.ts";
import { BufferClosedError } from "./errors.ts";
import { Flights } from "./flights.ts";
import { FlushRequests } from "./flush_requests.ts";
import { Hooks } from "./hooks.ts";
import type { BatchBufferStats } from "./types.ts";

type State = "new" | "running" | "done";

/**
 * The engine behind BatchBuffer: it takes items from the channel (or straight
 * from a producer when it is idle), forms the batch, and starts flights.
 * `step()` is the run loop; everything else is a step it takes.
 */
export class RunLoop<T> {
  readonly hooks: Hooks<T>;
  readonly #channel: Channel<T>;
  readonly #counters = new Counters();
  readonly #requests = new FlushRequests();
  readonly #flights: Flights<T>;
  readonly #batcher: Batcher<T>;
  #state: State = "new";
  #closed = false;
  #done: Promise<void> | undefined;
  #resolveDone: () => void = () => {};
  #looping = false;
  #loopAgain = false;

  constructor(config: ResolvedConfig<T>) {
    this.hooks = new Hooks(config);
    this.#channel = new Channel<T>(config.chanSize);
    this.#flights = new Flights(
      config,
      this.hooks,
      this.#counters,
      this.#requests,
      () => {}, // bytes: see maxBufferedBytes
      () => this.step(),
    );
    this.#batcher = new Batcher(config, this.hooks, this.#counters, this.#flights, () => {
      this.step();
    });
  }

  get itemsInChannel(): number {
    return this.#channel.size;
  }

  /** Adds an item for add(): at once when the loop is idle, else through the channel. */
  add(item: T, signal: AbortSignal | undefined): Promise<void> {
    if (this.#closed) return Promise.reject(new BufferClosedError(item));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#takesDirectly()) {
      this.#processDirectly(item);
      return RESOLVED;
    }
    return this.#channel.send(item, signal);
  }

  /** Adds an item for tryAdd(): false when it would have to wait. */
  tryAdd(item: T): boolean {
    if (this.#closed) throw new BufferClosedError(item);
    if (this.#takesDirectly()) {
      this.#processDirectly(item);
      return true;
    }
    return this.#channel.trySend(item);
  }

  /** Waits in line to add the item addAll() could not add at once. */
  send(item: T, signal: AbortSignal | undefined): Promise<void> {
    return this.#channel.send(item, signal); // checks close and abort itself
  }

  /**
   * Adds addAll()'s items synchronously for as long as none has to wait; true
   * once the source is exhausted, false with the item that has to wait in
   * `progress.held`. Kept out of an async function because a loop there
   * compiles to much slower code. Pulling an item may run the iterable's own
   * code (which may add, close or abort), so every check comes after the pull.
   */
  addWhileReady(
    source: readonly T[] | Iterator<T>,
    signal: AbortSignal | undefined,
    progress: AddAllProgress<T>,
  ): boolean {
    let item = pull(source, progress.accepted);
    for (;;) {
      if (item === DONE) return true;
      if (this.#closed) throw new BufferClosedError(item);
      if (signal?.aborted) throw signal.reason;
      if (this.#takesDirectly()) {
        // One hand-off for a whole run of items, for as long as the run loop stays idle.
        this.#looping = true;
        try {
          do {
            this.#batcher.place(item, 0);
            progress.accepted++;
            item = pull(source, progress.accepted);
          } while (
            item !== DONE && !this.#loopAgain && !this.#closed && this.#flights.hasFreeSlot &&
            this.#channel.size === 0 && !signal?.aborted
          );
        } finally {
          this.#looping = false;
          if (this.#loopAgain) this.step();
        }
        continue; // the item just pulled goes through the checks above
      }
      if (!this.#channel.trySend(item)) {
        progress.held = item;
        return false;
      }
      progress.accepted++;
      item = pull(source, progress.accepted);
    }
  }

  /** See BatchBuffer.flush(). */
  flush(): Promise<void> {
    if (this.#state === "done") return RESOLVED;
    const nothingPending = this.#channel.size === 0 && this.#batcher.length === 0 &&
      this.#counters.inHand === 0;
    if (nothingPending && this.#flights.idle) return RESOLVED;
    if (this.#state === "new" && !nothingPending) {
      return Promise.reject(new Error("flush() needs the run loop: call run() first"));
    }
    const upTo = this.#counters.added(this.#channel.size);
    // Waiting here could mean waiting for the very flush that called us.
    if (this.#flights.insideFlush > 0) {
      this.#requestFlush(upTo, undefined);
      return RESOLVED;
    }
    // Made in this call and resolved by a plain call, never a promise shared with an
    // earlier caller: Workers drop reactions queued from a request that has ended.
    return new Promise<void>((resolve) => this.#requestFlush(upTo, resolve));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#channel.close((item) => new BufferClosedError(item));
    this.step();
  }

  /** Starts the run; false when it was already started. */
  run(signal: AbortSignal | undefined): Promise<void> | undefined {
    if (this.#state !== "new") return undefined;
    this.#state = "running";
    this.#flights.signal = signal ?? new AbortController().signal;
    this.#done = new Promise<void>((resolve) => (this.#resolveDone = resolve));
    this.#channel.open(() => this.step());
    this.step();
    return this.#done;
  }

  /** True once run() was called. */
  get started(): boolean {
    return this.#state !== "new";
  }

  /** The run's promise (once started). */
  get done(): Promise<void> | undefined {
    return this.#done;
  }

  stats(): BatchBufferStats {
    return this.#counters.snapshot(
      this.#channel.size,
      this.#batcher.length,
      this.#batcher.openBatches,
      0,
    );
  }

  /**
   * The run loop. It runs whenever something changes (an item arrives, a
   * flush settles, the interval elapses, `flush()` or `close()` is called)
   * and does all it can without waiting. While `maxConcurrentFlushes` flushes
   * are in flight it takes nothing, so the channel fills and producers wait.
   */
  step(): void {
    if (this.#looping) {
      this.#loopAgain = true; // a callback re-entered; go round once more
      return;
    }
    this.#looping = true;
    try {
      do {
        this.#loopAgain = false;
        while (this.#state === "running" && this.#flights.hasFreeSlot) {
          if (this.#batcher.payDue()) continue;
          if (this.#requests.isDue(this.#counters.taken)) {
            if (!this.#answerFlushRequest()) break; // wait for a key's flight
          } else if (this.#batcher.holding) {
            if (!this.#batcher.placeHeld()) break; // wait for its key's flight
          } else if (this.#channel.hasItem) this.#batcher.place(this.#channel.take(), 0);
          else if (!this.#closed || this.#channel.size > 0) break; // wait for items
          else if (this.#batcher.length > 0) {
            this.#batcher.flushAll("close");
            if (!this.#batcher.payDue()) break; // wait for the keys' flights
          } else if (this.#flights.idle) this.#finish();
          else break; // wait for the last flushes to settle
        }
      } while (this.#loopAgain);
    } finally {
      this.#looping = false;
    }
  }

  #requestFlush(upTo: number, resolve: (() => void) | undefined): void {
    if (this.#requests.add(upTo, this.#flights.unsettled, resolve)) this.step();
  }

  /**
   * Owes every open batch a manual flush, and answers the request once all of
   * them have started (each joins the request's flights while it is queued).
   */
  #answerFlushRequest(): boolean {
    this.#batcher.flushAll("manual");
    if (this.#batcher.payDue()) return true; // and round again
    if (this.#batcher.owesFlush) return false;
    this.#requests.answer();
    return true;
  }

  #finish(): void {
    this.#state = "done";
    this.#batcher.stop();
    this.#resolveDone();
  }

  /**
   * True when an item may skip the channel: the run loop would take it now. Not
   * while a full batch is owed its flush (as in onFlushError, after a slot
   * freed and before the run loop ran): the item must not join that batch.
   */
  #takesDirectly(): boolean {
    return this.#state === "running" && !this.#closed && this.#channel.size === 0 &&
      !this.#looping && this.#flights.hasFreeSlot && !this.#batcher.owesClosingFlush &&
      !this.#batcher.holding;
  }

  /** Runs one item through the run loop's per-item step, in the producer's call. */
  #processDirectly(item: T): void {
    this.#looping = true;
    try {
      this.#batcher.place(item, 0);
    } finally {
      this.#looping = false;
    }
    if (this.#loopAgain) this.step();
  }
}
