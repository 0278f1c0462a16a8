// The bounded FIFO between producers and the run loop. Internal: not exported from mod.ts.
import { AbortListeners } from "./abort_listeners.ts";

// The waiter line holds each waiting producer in STRIDE consecutive slots.
const STRIDE = 4;
const ITEM = 0;
/** The waiter's resolve function; `undefined` marks a slot left by an aborted waiter. */
const RESOLVE = 1;
const REJECT = 2;
const SIGNAL = 3;
/** Dead waiters the line tolerates before compacting (and only while they outnumber the live). */
const COMPACT_AFTER = 1024;

/** One shared settled promise: awaiting it costs no allocation. */
export const RESOLVED: Promise<void> = Promise.resolve();

/**
 * A bounded FIFO of items, built on a WritableStream whose
 * CountQueuingStrategy has `highWaterMark = capacity`.
 *
 * A stream write costs about a microsecond in Deno, so items are written only
 * when the consumer can take them: accepted items wait in a pending chunk
 * until the consumer calls `pull()`, which writes them all in one write.
 * From then until the stream next delivers, the consumer waits for items, so
 * each accepted item is written at once, joining the chunk on its way if
 * there is one. The sink sets delivered items aside for the consumer to
 * `take()`. The channel counts items itself. It adds what a stream writer lacks:
 * - an exact bound: `size` never exceeds `capacity`. (`writer.ready` wakes
 *   every waiting producer at once, which would overshoot the bound.)
 * - fair admission: waiting producers get room in the order they asked.
 * - abortable waits: a producer whose signal aborts leaves the queue in O(1),
 *   with one "abort" listener per distinct signal however many producers share it.
 *
 * Waiting producers are kept in a flat array read from a head index, not in
 * linked nodes: a blocked producer costs its promise and a few array slots.
 * An aborted waiter's slots are cleared at once, so its item is not kept
 * alive until the line reaches it; the array is compacted once dead slots
 * outnumber live ones (amortised O(1) per waiter).
 */
export class Channel<T> {
  readonly #capacity: number;
  readonly #writer: WritableStreamDefaultWriter<T[]>;
  /** Items accepted and not written yet, while the consumer has not asked for them. */
  #pending: T[] = [];
  /** The chunk written to the stream and not delivered yet (one at most); later items join it. */
  #onTheWay: T[] | undefined;
  /** True from `pull()` until the next delivery: write items as they come. */
  #demand = false;
  #openStream: () => void = () => {};
  #onItem: () => void = () => {};
  #size = 0;
  /** Items the stream has delivered, oldest at `#arrivedHead`. */
  #arrived: T[] = [];
  #arrivedHead = 0;
  /** Waiting producers, STRIDE slots each, oldest at `#lineHead`. */
  readonly #line: unknown[] = [];
  #lineHead = 0;
  #waiting = 0;
  #closedError: ((item: T) => unknown) | undefined;
  /** Waits keyed by their first slot in `#line`; one listener per signal, producers often share one. */
  readonly #aborts = new AbortListeners<number>((slot, signal) => this.#abort(slot, signal));
  // One executor for every blocked send(): it hands over the new promise's functions.
  #resolveNext: () => void = () => {};
  #rejectNext: (reason: unknown) => void = () => {};
  readonly #capture = (resolve: () => void, reject: (reason: unknown) => void): void => {
    this.#resolveNext = resolve;
    this.#rejectNext = reject;
  };

  constructor(capacity: number) {
    this.#capacity = capacity;
    const stream = new WritableStream<T[]>({
      // Writes queue in the stream until open() lets the sink start.
      start: () => new Promise<void>((resolve) => (this.#openStream = resolve)),
      write: (chunk) => this.#arrive(chunk),
    }, new CountQueuingStrategy({ highWaterMark: capacity }));
    this.#writer = stream.getWriter();
  }

  /** Items accepted and not yet taken. */
  get size(): number {
    return this.#size;
  }

  /** Producers waiting for room. */
  get waiting(): number {
    return this.#waiting;
  }

  /** True when the oldest item is ready to `take()`. */
  get hasItem(): boolean {
    return this.#arrivedHead < this.#arrived.length;
  }

  /**
   * Lets the stream deliver to the consumer; nothing is delivered before.
   * `onItem` is called whenever an item becomes ready to take; the consumer
   * may take it then or later, and calls `pull()` once it has taken all and
   * can take more.
   */
  open(onItem: () => void): void {
    this.#onItem = onItem;
    this.#openStream();
  }

  /** Takes the oldest item. Only valid while `hasItem` is true. */
  take(): T {
    const arrived = this.#arrived;
    const item = arrived[this.#arrivedHead];
    arrived[this.#arrivedHead++] = undefined as T; // let the item be collected once flushed
    if (this.#arrivedHead === arrived.length) {
      arrived.length = 0;
      this.#arrivedHead = 0;
    } else if (this.#arrivedHead >= 1024 && this.#arrivedHead * 2 >= arrived.length) {
      arrived.splice(0, this.#arrivedHead); // amortised O(1): keeps the array within 2x its items
      this.#arrivedHead = 0;
    }
    this.#size--;
    this.#admitWaiters();
    return item;
  }

  /**
   * Says the consumer can take items: writes the pending ones to the stream
   * as one chunk, and every item accepted from now until the stream next
   * delivers is written at once. Items become ready to `take()` when the
   * stream delivers them (at once when it is idle). The run loop calls it
   * when it has a free flush slot and nothing to take, which covers
   * `flush()` and the drain on close; while it is busy, accepted items stay
   * pending and cost no stream writes. Returns true when it wrote items.
   */
  pull(): boolean {
    this.#demand = true;
    const chunk = this.#pending;
    if (chunk.length === 0) return false;
    this.#pending = [];
    this.#writeChunk(chunk);
    if (this.#closedError !== undefined) this.#closeStream();
    return true;
  }

  /** True when `trySend()` would queue an item: open, room, and nobody waits. */
  get hasRoom(): boolean {
    return this.#waiting === 0 && this.#size < this.#capacity && this.#closedError === undefined;
  }

  /** Queues the item when there is room and nobody is waiting for it. */
  trySend(item: T): boolean {
    if (!this.hasRoom) return false;
    this.#write(item);
    return true;
  }

  /**
   * Queues the item, waiting in line for room when the channel is full.
   * Rejects with `signal.reason` if the signal aborts first (nothing queued).
   */
  send(item: T, signal?: AbortSignal): Promise<void> {
    if (this.#closedError !== undefined) return Promise.reject(this.#closedError(item));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.trySend(item)) return RESOLVED;
    const promise = new Promise<void>(this.#capture);
    const slot = this.#line.length;
    this.#line.push(item, this.#resolveNext, this.#rejectNext, signal);
    if (signal !== undefined) this.#aborts.add(signal, slot);
    this.#waiting++;
    return promise;
  }

  /**
   * Refuses all further sends and rejects every waiting producer with
   * `errorFor(item)`. Items already accepted stay, to be taken as usual.
   */
  close(errorFor: (item: T) => unknown): void {
    if (this.#closedError !== undefined) return;
    this.#closedError = errorFor;
    const line = this.#line;
    for (let slot = this.#lineHead; slot < line.length; slot += STRIDE) {
      if (line[slot + RESOLVE] === undefined) continue; // aborted
      const item = line[slot + ITEM] as T;
      const reject = line[slot + REJECT] as (reason: unknown) => void;
      this.#leave(slot);
      reject(errorFor(item));
    }
    this.#tidy();
    if (this.#pending.length === 0) this.#closeStream(); // else once pull() has written them
  }

  #write(item: T): void {
    this.#size++;
    if (this.#onTheWay !== undefined) this.#onTheWay.push(item);
    else if (this.#demand) this.#writeChunk([item]);
    else this.#pending.push(item);
  }

  #writeChunk(chunk: T[]): void {
    this.#onTheWay = chunk;
    // The promise settles once the sink has the chunk; the stream never errors.
    void this.#writer.write(chunk);
  }

  #arrive(chunk: T[]): void {
    this.#onTheWay = undefined;
    this.#demand = false; // the consumer pulls again once it has taken these
    if (this.hasItem) {
      for (const item of chunk) this.#arrived.push(item);
    } else {
      this.#arrived = chunk; // the chunk is ours: adopt it rather than copy
      this.#arrivedHead = 0;
    }
    // One call per item keeps open()'s contract: a consumer may take one item per call.
    for (let i = chunk.length; i > 0 && this.hasItem; i--) this.#onItem();
  }

  #closeStream(): void {
    // The stream settles once its chunks are delivered; nobody awaits it.
    this.#writer.close().catch(() => {});
  }

  #admitWaiters(): void {
    const line = this.#line;
    while (this.#waiting > 0 && this.#size < this.#capacity) {
      let slot = this.#lineHead;
      while (line[slot + RESOLVE] === undefined) slot += STRIDE; // skip the aborted
      const item = line[slot + ITEM] as T;
      const resolve = line[slot + RESOLVE] as () => void;
      // Leave the line before writing: a write may reach the consumer, which may take and re-enter.
      this.#leave(slot);
      this.#lineHead = slot + STRIDE;
      this.#write(item);
      resolve();
    }
    this.#tidy();
  }

  #abort(slot: number, signal: AbortSignal): void {
    const reject = this.#line[slot + REJECT] as (reason: unknown) => void;
    this.#leave(slot);
    reject(signal.reason);
    this.#tidy();
  }

  /** Clears a waiter's slots (its item must not outlive its wait) and stops watching its signal. */
  #leave(slot: number): void {
    const line = this.#line;
    const signal = line[slot + SIGNAL] as AbortSignal | undefined;
    if (signal !== undefined) this.#aborts.delete(signal, slot);
    for (let k = 0; k < STRIDE; k++) line[slot + k] = undefined;
    this.#waiting--;
  }

  /** Drops dead slots: all of them once nobody waits, else when they outnumber the live. */
  #tidy(): void {
    const line = this.#line;
    if (this.#waiting === 0) {
      line.length = 0;
      this.#lineHead = 0;
      return;
    }
    const dead = line.length / STRIDE - this.#waiting;
    if (dead < COMPACT_AFTER || dead < this.#waiting) return;
    let to = 0;
    for (let from = this.#lineHead; from < line.length; from += STRIDE) {
      if (line[from + RESOLVE] === undefined) continue;
      if (from !== to) {
        for (let k = 0; k < STRIDE; k++) line[to + k] = line[from + k];
        const signal = line[to + SIGNAL] as AbortSignal | undefined;
        if (signal !== undefined) this.#aborts.rekey(signal, from, to);
      }
      to += STRIDE;
    }
    line.length = to;
    this.#lineHead = 0;
  }

  /**
   * A copy of the waiter line's slots, for tests: it shows that no slot still
   * references an item whose producer aborted or was admitted.
   */
  debugLine(): unknown[] {
    return this.#line.slice();
  }
}
