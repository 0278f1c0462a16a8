// The run loop: it moves items from producers to batches to flights. Internal: not exported from mod.ts.
import { type AddAllProgress, DONE, pull } from "./add_all.ts";
import { Channel, RESOLVED } from "./channel.ts";
import { Admission, type RunLoopDoor } from "./admission.ts";
import { Tagged, type Ticket } from "./entry.ts";
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
export class RunLoop<T> implements RunLoopDoor<T> {
  readonly hooks: Hooks<T>;
  readonly admission: Admission<T>;
  readonly #config: ResolvedConfig<T>;
  readonly #channel: Channel<T | Tagged<T>>;
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
  /**
   * #ready() as last found true, until the run loop runs: all that closes the direct path (a
   * slot taken, a closing flush owed, an item held, close) happens then, but a queued item.
   */
  #readyFound = false;
  /**
   * Queued items may be placed a run at a time: no hook runs between two of
   * them (waitUntil is called when a batch opens), so nothing can tell.
   */
  readonly #placesRuns: boolean;

  constructor(config: ResolvedConfig<T>) {
    this.#config = config;
    this.#placesRuns = config.plain && config.waitUntil === undefined;
    const hooks = (this.hooks = new Hooks(config));
    const channel = new Channel<T | Tagged<T>>(config.chanSize, config.maxBufferedBytes);
    this.#channel = channel;
    const release = (bytes: number) => channel.release(bytes); // a final outcome's bytes
    const step = () => this.step();
    const counters = this.#counters;
    this.#flights = new Flights(config, hooks, counters, this.#requests, release, step);
    this.#batcher = new Batcher(config, hooks, counters, this.#flights, release, channel, step);
    this.admission = new Admission(config, hooks, counters, channel, this);
  }

  get closed(): boolean {
    return this.#closed;
  }

  get itemsInChannel(): number {
    return this.#channel.size;
  }

  /**
   * addAll()'s hand-off while takesDirectly() holds: places items straight into
   * batches (a whole run of an array at a time) for as long as the run loop
   * stays ready. Returns the next item pulled, which still has every check ahead.
   */
  placeWhileReady(
    source: readonly T[] | Iterator<T>,
    item: T,
    signal: AbortSignal | undefined,
    progress: AddAllProgress<T | Tagged<T>>,
  ): T | typeof DONE {
    this.#enter();
    try {
      if (this.#config.plain && Array.isArray(source)) {
        // Whole runs of the array, a batch at a time, at the cost of a push each.
        const array = source as readonly T[];
        do progress.accepted = this.#batcher.placeRun(
          array,
          progress.accepted,
          array.length,
        ); while (
          progress.accepted < array.length && !this.#loopAgain && !signal?.aborted && this.#ready()
        );
        return pull(source, progress.accepted);
      }
      let next: T | typeof DONE = item;
      do {
        this.#batcher.place(next, 0, undefined, false);
        progress.accepted++;
        next = pull(source, progress.accepted);
      } while (next !== DONE && !this.#loopAgain && !signal?.aborted && this.#ready());
      return next;
    } finally {
      this.#looping = false;
      if (this.#loopAgain) this.step();
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
    const upTo = this.#counters.lineEnd(this.#channel.size);
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
    this.#readyFound = false;
    this.#channel.close((entry) =>
      new BufferClosedError(entry instanceof Tagged ? entry.item : entry)
    );
    this.step();
  }

  /** Starts the run and returns its promise; undefined when it was already started. */
  run(signal: AbortSignal | undefined): Promise<void> | undefined {
    if (this.#state !== "new") return undefined;
    this.#state = "running";
    this.#flights.signal = signal ?? new AbortController().signal;
    this.#done = new Promise<void>((resolve) => (this.#resolveDone = resolve));
    this.#channel.open(() => this.step(), true); // step() runs whenever it can take more
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
      this.#channel.bytes,
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
    this.#enter();
    try {
      do {
        this.#loopAgain = false;
        while (this.#state === "running" && this.#flights.hasFreeSlot) {
          if (this.#batcher.payDue()) continue;
          if (this.#requests.isDue(this.#counters.taken)) {
            if (!this.#answerFlushRequest()) break; // wait for a key's flight
          } else if (this.#batcher.holding) {
            if (!this.#batcher.placeHeld()) break; // wait for its key's flight
          } else if (this.#channel.hasItem) this.#placeQueued();
          else if (this.#channel.pull()) continue; // pending items go to the stream now
          else if (this.#waitsForBytes()) {
            if (!this.#batcher.flushOldest()) break; // its bytes are in flight: wait
          } else if (!this.#closed || this.#channel.size > 0) break; // wait for items
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

  /** The run loop runs: what it does may close the direct path, so #readyFound is stale. */
  #enter(): void {
    this.#looping = true;
    this.#readyFound = false;
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
  takesDirectly(): boolean {
    if (this.#readyFound) return this.#channel.size === 0; // two checks instead of seven
    return (this.#readyFound = !this.#looping && this.#ready());
  }

  /** The run loop could take an item now, were it not busy. */
  #ready(): boolean {
    return this.#state === "running" && !this.#closed && this.#channel.size === 0 &&
      this.#flights.hasFreeSlot && !this.#batcher.owesClosingFlush && !this.#batcher.holding;
  }

  /**
   * True when a producer waits for bytes, not for a free place in the channel.
   * Bytes held in partial batches would never come free without a flush (with
   * `flushInterval: Infinity`), so the oldest batch goes out.
   */
  #waitsForBytes(): boolean {
    return this.#channel.waiting > 0 && this.#channel.size < this.#config.chanSize &&
      this.#batcher.openBatches > 0;
  }

  /**
   * Places the channel's oldest entry, which leaves the channel once placed;
   * a whole run of them when no hook can run in between (and no flush()
   * request is due at an exact item).
   */
  #placeQueued(): void {
    if (this.#placesRuns && !this.#requests.pending) {
      if (this.#batcher.placeQueuedRun() > 0) return;
    }
    const entry = this.#channel.peek();
    if (entry instanceof Tagged) this.#batcher.place(entry.item, entry.size, entry.ticket, true);
    else this.#batcher.place(entry, 0, undefined, true);
  }

  /** Runs one item through the run loop's per-item step, in the producer's call. */
  processDirectly(item: T, size: number, ticket: Ticket | undefined): void {
    if (this.#placesRuns && ticket === undefined && this.#batcher.appendIfRoom(item)) return;
    this.#enter();
    try {
      this.#batcher.place(item, size, ticket, false);
    } finally {
      this.#looping = false;
    }
    if (this.#loopAgain) this.step();
  }
}
