// The run loop: it moves items from producers to batches to flights. Internal: not exported from mod.ts.
import { type AddAllProgress, DONE, pull } from "./add_all.ts";
import { Channel, RESOLVED } from "./channel.ts";
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

/** Marks an item refused when it was admitted (it went to onReject). */
const REFUSED: unique symbol = Symbol("refused");

/** The bytes an entry holds in the budget. */
function sizeOf<T>(entry: T | Tagged<T>): number {
  return entry instanceof Tagged ? entry.size : 0;
}

/**
 * The engine behind BatchBuffer: it takes items from the channel (or straight
 * from a producer when it is idle), forms the batch, and starts flights.
 * `step()` is the run loop; everything else is a step it takes.
 */
export class RunLoop<T> {
  readonly hooks: Hooks<T>;
  readonly #config: ResolvedConfig<T>;
  readonly #channel: Channel<T | Tagged<T>>;
  /** sizeOf is set: every item is measured when admitted, and travels tagged. */
  readonly #measures: boolean;
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
    this.#config = config;
    this.#measures = config.sizeOf !== undefined;
    this.hooks = new Hooks(config);
    this.#channel = new Channel<T | Tagged<T>>(config.chanSize, config.maxBufferedBytes);
    this.#flights = new Flights(
      config,
      this.hooks,
      this.#counters,
      this.#requests,
      (bytes) => this.#channel.release(bytes),
      () => this.step(),
    );
    this.#batcher = new Batcher(
      config,
      this.hooks,
      this.#counters,
      this.#flights,
      (bytes) => this.#channel.release(bytes),
      () => void this.#channel.take(),
      () => this.step(),
    );
  }

  get itemsInChannel(): number {
    return this.#channel.size;
  }

  /** Adds an item for add(): at once when the loop is idle, else through the channel. */
  add(item: T, signal: AbortSignal | undefined): Promise<void> {
    if (this.#closed) return Promise.reject(new BufferClosedError(item));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#measures) return this.#admit(item, signal, undefined);
    if (this.#takesDirectly()) {
      this.#processDirectly(item, 0, undefined);
      return RESOLVED;
    }
    return this.#channel.send(item, signal);
  }

  /** Adds an item for send(): resolves once it is delivered. */
  send(item: T, signal: AbortSignal | undefined): Promise<void> {
    if (this.#closed) return Promise.reject(new BufferClosedError(item));
    if (signal?.aborted) return Promise.reject(signal.reason);
    let ticket!: Ticket;
    const delivered = new Promise<void>((resolve, reject) => (ticket = { resolve, reject }));
    const admitted = this.#admit(item, signal, ticket);
    return admitted === RESOLVED ? delivered : admitted.then(() => delivered);
  }

  /** Adds an item for tryAdd(): false when it would have to wait. */
  tryAdd(item: T): boolean {
    if (this.#closed) throw new BufferClosedError(item);
    if (!this.#measures) {
      if (!this.#takesDirectly()) return this.#channel.trySend(item);
      this.#processDirectly(item, 0, undefined);
      return true;
    }
    const entry = this.#entry(item, undefined);
    return entry === REFUSED || this.#tryTake(entry); // a refused item went to onReject
  }

  /** Waits in line to add the entry addAll() could not add at once. */
  wait(entry: T | Tagged<T>, signal: AbortSignal | undefined): Promise<void> {
    return this.#channel.send(entry, signal, sizeOf(entry)); // checks close and abort itself
  }

  /** Admits a measured or ticketed item: refused at once, taken at once, or in line. */
  #admit(item: T, signal: AbortSignal | undefined, ticket: Ticket | undefined): Promise<void> {
    const entry = this.#entry(item, ticket);
    if (entry === REFUSED || this.#tryTake(entry)) return RESOLVED;
    return this.#channel.send(entry, signal, sizeOf(entry));
  }

  /**
   * The item as it travels: bare, or tagged with its size (sizeOf is called
   * here, once per item) and ticket. REFUSED when its size is invalid or over
   * maxItemBytes: it is accepted and goes to onReject at once, without waiting.
   */
  #entry(item: T, ticket: Ticket | undefined): T | Tagged<T> | typeof REFUSED {
    const config = this.#config;
    if (config.sizeOf === undefined) {
      return ticket === undefined ? item : new Tagged(item, 0, ticket);
    }
    const size = this.hooks.measure(item);
    const valid = typeof size === "number" && Number.isFinite(size) && size >= 0;
    if (valid && size <= config.maxItemBytes) return new Tagged(item, size, ticket);
    this.#counters.refused++;
    this.#counters.rejected++;
    this.#batcher.rejected(item, ticket, "its size is invalid or over maxItemBytes");
    return REFUSED;
  }

  /** Takes an entry now if that needs no wait: straight to the run loop, or into the channel. */
  #tryTake(entry: T | Tagged<T>): boolean {
    const bytes = sizeOf(entry);
    if (this.#takesDirectly() && this.#channel.reserve(bytes)) {
      if (entry instanceof Tagged) this.#processDirectly(entry.item, entry.size, entry.ticket);
      else this.#processDirectly(entry, 0, undefined);
      return true;
    }
    return this.#channel.trySend(entry, bytes);
  }

  /**
   * Adds addAll()'s items synchronously for as long as none has to wait; true
   * once the source is exhausted, false with the entry that has to wait in
   * `progress.held`. Kept out of an async function because a loop there
   * compiles to much slower code. Pulling an item may run the iterable's own
   * code (which may add, close or abort), so every check comes after the pull.
   */
  addWhileReady(
    source: readonly T[] | Iterator<T>,
    signal: AbortSignal | undefined,
    progress: AddAllProgress<T | Tagged<T>>,
  ): boolean {
    let item = pull(source, progress.accepted);
    for (;;) {
      if (item === DONE) return true;
      if (this.#closed) throw new BufferClosedError(item);
      if (signal?.aborted) throw signal.reason;
      if (this.#measures) {
        const entry = this.#entry(item, undefined);
        if (entry !== REFUSED && !this.#tryTake(entry)) {
          progress.held = entry;
          return false;
        }
      } else if (this.#takesDirectly()) {
        // One hand-off for a whole run of items, for as long as the run loop stays idle.
        this.#looping = true;
        try {
          if (this.#config.plain && Array.isArray(source)) {
            // Whole runs of the array, a batch at a time, at the cost of a push each.
            const array = source as readonly T[];
            do progress.accepted = this.#batcher.placeRun(
              array,
              progress.accepted,
              array.length,
            ); while (
              progress.accepted < array.length && !this.#loopAgain && !signal?.aborted &&
              this.#ready()
            );
            item = pull(source, progress.accepted);
          } else {
            do {
              this.#batcher.place(item, 0, undefined, false);
              progress.accepted++;
              item = pull(source, progress.accepted);
            } while (item !== DONE && !this.#loopAgain && !signal?.aborted && this.#ready());
          }
        } finally {
          this.#looping = false;
          if (this.#loopAgain) this.step();
        }
        continue; // the item just pulled goes through the checks above
      } else if (!this.#channel.trySend(item)) {
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
    this.#channel.close((entry) =>
      new BufferClosedError(entry instanceof Tagged ? entry.item : entry)
    );
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
          } else if (this.#channel.hasItem) this.#placeQueued(this.#channel.peek());
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
    return !this.#looping && this.#ready();
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

  /** Places the channel's oldest entry, which leaves the channel once placed. */
  #placeQueued(entry: T | Tagged<T>): void {
    if (entry instanceof Tagged) this.#batcher.place(entry.item, entry.size, entry.ticket, true);
    else this.#batcher.place(entry, 0, undefined, true);
  }

  /** Runs one item through the run loop's per-item step, in the producer's call. */
  #processDirectly(item: T, size: number, ticket: Ticket | undefined): void {
    this.#looping = true;
    try {
      this.#batcher.place(item, size, ticket, false);
    } finally {
      this.#looping = false;
    }
    if (this.#loopAgain) this.step();
  }
}
