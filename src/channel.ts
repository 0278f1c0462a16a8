// The bounded FIFO between producers and the run loop. Internal: not exported from mod.ts.
import { AbortListeners } from "./abort_listeners.ts";

// The waiter line holds each waiting producer in STRIDE consecutive slots.
const STRIDE = 4;
const ENTRY = 0;
/** The waiter's resolve function; `undefined` marks the slots of a waiter that left. */
const RESOLVE = 1;
const SIGNAL = 2;
const BYTES = 3;
/** Dead waiters the line tolerates before compacting (and only while they outnumber the live). */
const COMPACT_AFTER = 1024;

type Resolve = (value: void | PromiseLike<void>) => void;

/**
 * Rejects a waiter's promise through its resolve function (a microtask later
 * than its reject would): the line keeps no reject function, so V8 collects
 * it, about 70 bytes less per blocked producer.
 */
function rejectThrough(resolve: Resolve, reason: unknown): void {
  const rejecting = { then: (_: unknown, reject: (reason: unknown) => void) => reject(reason) };
  resolve(rejecting as unknown as PromiseLike<void>); // all a promise reads of a thenable
}

/** One shared settled promise: awaiting it costs no allocation. */
export const RESOLVED: Promise<void> = Promise.resolve();

/**
 * A bounded FIFO of entries (the engine's items), built on a WritableStream
 * whose CountQueuingStrategy has `highWaterMark = capacity`, with an optional
 * byte budget: an entry's bytes stay counted after `take()`, until `release()`.
 *
 * A stream write costs about a microsecond in Deno, so entries are written
 * only when the consumer can take them: they wait in a pending chunk until
 * `pull()` writes it. The sink sets delivered entries aside for `take()`.
 * The channel counts entries itself and adds what a stream writer lacks:
 * - exact bounds: `size` never exceeds `capacity` (`writer.ready` wakes every
 *   waiting producer at once, which would overshoot), nor `bytes` `maxBytes`
 *   except by one entry admitted alone.
 * - fair admission: waiting producers get room in the order they asked; one
 *   that waits for bytes holds up those behind it.
 * - abortable waits: a producer whose signal aborts leaves the line in O(1),
 *   with one "abort" listener per distinct signal however many share it.
 *
 * The waiter line is a flat array read from a head index, not linked nodes.
 * A leaving waiter's slots are cleared at once (an aborted waiter's entry is
 * not kept alive until the line reaches it); the array is compacted once
 * dead slots outnumber live ones, amortised O(1) per waiter.
 */
export class Channel<E> {
  readonly #capacity: number;
  readonly #maxBytes: number;
  readonly #writer: WritableStreamDefaultWriter<E[]>;
  #openStream: () => void = () => {};
  #onItem: () => void = () => {};
  #size = 0;
  #bytes = 0;
  /** Entries accepted and not written yet, while the consumer has not asked for them. */
  #pending: E[] = [];
  /** The chunk written and not delivered yet (one at most); later entries join it. */
  #onTheWay: E[] | undefined;
  /** True from `pull()` until the next delivery: write entries as they come. */
  #demand = false;
  /** Entries the stream has delivered, oldest at `#arrivedHead`. */
  #arrived: E[] = [];
  #arrivedHead = 0;
  /** Waiting producers, STRIDE slots each, oldest at or after `#lineHead`. */
  readonly #line: unknown[] = [];
  #lineHead = 0;
  #waiting = 0;
  #closedError: ((entry: E) => unknown) | undefined;
  /** Waits keyed by their first slot in `#line`. */
  readonly #aborts = new AbortListeners<number>((slots, signal) => this.#abort(slots, signal));
  // One executor for every blocked send(): it hands over the new promise's functions.
  #resolveNext: Resolve = () => {};
  readonly #capture = (resolve: Resolve): void => void (this.#resolveNext = resolve);

  /**
   * @param capacity Entries accepted and not taken, at most.
   * @param maxBytes Bytes admitted and not released, at most (see `send()`).
   */
  constructor(capacity: number, maxBytes: number = Infinity) {
    this.#capacity = capacity;
    this.#maxBytes = maxBytes;
    const stream = new WritableStream<E[]>({
      // Writes queue in the stream until open() lets the sink start.
      start: () => new Promise<void>((resolve) => (this.#openStream = resolve)),
      write: (chunk) => this.#arrive(chunk),
    }, new CountQueuingStrategy({ highWaterMark: capacity }));
    this.#writer = stream.getWriter();
  }

  /** Entries accepted and not yet taken. */
  get size(): number {
    return this.#size;
  }

  /** Bytes admitted (by `send`, `trySend` or `reserve`) and not released yet. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Producers waiting for room. */
  get waiting(): number {
    return this.#waiting;
  }

  /** True when the oldest entry is ready to `take()`. */
  get hasItem(): boolean {
    return this.#arrivedHead < this.#arrived.length;
  }

  /**
   * Lets the stream deliver to the consumer; nothing is delivered before.
   * `onItem` is called whenever an entry becomes ready to take; the consumer
   * may take it then or later, and calls `pull()` once it has taken all and
   * can take more.
   */
  open(onItem: () => void): void {
    this.#onItem = onItem;
    this.#openStream();
  }

  /** The oldest entry, left in place. Only valid while `hasItem` is true. */
  peek(): E {
    return this.#arrived[this.#arrivedHead];
  }

  /** Takes the oldest entry (its bytes stay counted). Only valid while `hasItem` is true. */
  take(): E {
    const arrived = this.#arrived;
    const entry = arrived[this.#arrivedHead];
    arrived[this.#arrivedHead++] = undefined as E; // let the entry be collected once flushed
    if (this.#arrivedHead === arrived.length) {
      arrived.length = 0;
      this.#arrivedHead = 0;
    } else if (this.#arrivedHead >= 1024 && this.#arrivedHead * 2 >= arrived.length) {
      arrived.splice(0, this.#arrivedHead); // amortised O(1): keeps the array within 2x its entries
      this.#arrivedHead = 0;
    }
    this.#size--;
    this.#admitWaiters();
    return entry;
  }

  /**
   * Says the consumer can take entries: writes the pending ones to the stream
   * in one write, and entries accepted from now until the stream next
   * delivers are written at once (joining the chunk on its way). They are
   * ready to `take()` once delivered (at once when the stream is idle). The
   * run loop calls it when it has a free flush slot and nothing to take,
   * which covers `flush()` and the drain on close; while it is busy, entries
   * stay pending and cost no stream writes. Returns true when it wrote some.
   */
  pull(): boolean {
    this.#demand = true;
    const chunk = this.#pending;
    if (chunk.length === 0) return false;
    this.#pending = [];
    void this.#writer.write(this.#onTheWay = chunk); // settles once delivered; never errors
    if (this.#closedError !== undefined) this.#closeStream();
    return true;
  }

  /** Queues the entry when there is room for it and its bytes, and nobody is waiting. */
  trySend(entry: E, bytes: number = 0): boolean {
    const full = this.#waiting > 0 || this.#size >= this.#capacity || !this.#fits(bytes);
    if (full || this.#closedError !== undefined) return false;
    this.#bytes += bytes;
    this.#write(entry);
    return true;
  }

  /**
   * Queues the entry, waiting in line while the channel is full or its bytes
   * do not fit. They fit when `bytes` is 0, within `maxBytes`, or when no
   * bytes are held (so an entry larger than the budget passes alone).
   * Rejects with `signal.reason` if the signal aborts first (nothing queued).
   */
  send(entry: E, signal?: AbortSignal, bytes: number = 0): Promise<void> {
    if (this.#closedError !== undefined) return Promise.reject(this.#closedError(entry));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.trySend(entry, bytes)) return RESOLVED;
    const promise = new Promise<void>(this.#capture);
    const slot = this.#line.length;
    this.#line.push(entry, this.#resolveNext, signal, bytes);
    if (signal !== undefined) this.#aborts.add(signal, slot);
    this.#waiting++;
    return promise;
  }

  /**
   * Counts the bytes of an entry that skips the channel (the run loop's
   * direct path): true when nobody waits and they fit, as for `send()`.
   */
  reserve(bytes: number): boolean {
    if (this.#waiting > 0 || !this.#fits(bytes)) return false;
    this.#bytes += bytes;
    return true;
  }

  /** Frees the bytes of an entry that reached its final outcome, admitting waiters. */
  release(bytes: number): void {
    this.#bytes -= bytes;
    this.#admitWaiters();
  }

  /**
   * Refuses all further sends and rejects every waiting producer with
   * `errorFor(entry)`. Entries already accepted stay, to be taken as usual.
   */
  close(errorFor: (entry: E) => unknown): void {
    if (this.#closedError !== undefined) return;
    this.#closedError = errorFor;
    const line = this.#line;
    for (let slot = this.#lineHead; slot < line.length; slot += STRIDE) {
      if (line[slot + RESOLVE] === undefined) continue; // left already
      const entry = line[slot + ENTRY] as E;
      const resolve = line[slot + RESOLVE] as Resolve;
      this.#leave(slot);
      rejectThrough(resolve, errorFor(entry));
    }
    this.#tidy();
    if (this.#pending.length === 0) this.#closeStream(); // else once pull() has written them
  }

  #fits(bytes: number): boolean {
    return bytes === 0 || this.#bytes + bytes <= this.#maxBytes || this.#bytes === 0;
  }

  #write(entry: E): void {
    this.#size++;
    if (this.#onTheWay !== undefined) this.#onTheWay.push(entry);
    else if (this.#demand) void this.#writer.write(this.#onTheWay = [entry]);
    else this.#pending.push(entry);
  }

  #arrive(chunk: E[]): void {
    this.#onTheWay = undefined;
    this.#demand = false; // the consumer pulls again once it has taken these
    if (this.hasItem) {
      for (const entry of chunk) this.#arrived.push(entry);
    } else {
      this.#arrived = chunk; // the chunk is ours: adopt it rather than copy
      this.#arrivedHead = 0;
    }
    // One call per entry keeps open()'s contract: a consumer may take one entry per call.
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
      while (line[slot + RESOLVE] === undefined) slot += STRIDE; // skip those who left
      this.#lineHead = slot;
      const bytes = line[slot + BYTES] as number;
      if (!this.#fits(bytes)) break; // FIFO: nobody passes a waiter that waits for bytes
      const entry = line[slot + ENTRY] as E;
      const resolve = line[slot + RESOLVE] as () => void;
      // Leave the line before writing: a write may reach the consumer, which may take and re-enter.
      this.#leave(slot);
      this.#lineHead = slot + STRIDE;
      this.#bytes += bytes;
      this.#write(entry);
      resolve();
    }
    this.#tidy();
  }

  #abort(slots: ReadonlySet<number>, signal: AbortSignal): void {
    for (const slot of slots) {
      const resolve = this.#line[slot + RESOLVE] as Resolve;
      this.#leave(slot);
      rejectThrough(resolve, signal.reason);
    }
    // Only now, with all of them gone: admitting may move slots.
    this.#admitWaiters(); // the first in line may have been waiting for bytes
  }

  /** Clears a waiter's slots (its entry must not outlive its wait) and stops watching its signal. */
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
      // Not on every take(): setting an array's length is a runtime call even when it is 0.
      if (line.length !== 0) {
        line.length = 0;
        this.#lineHead = 0;
      }
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

  /** A copy of the waiter line's slots, for tests: no slot may hold a waiter that left. */
  debugLine(): unknown[] {
    return this.#line.slice();
  }
}
