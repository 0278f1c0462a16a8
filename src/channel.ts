// The bounded FIFO between producers and the run loop. Internal: not exported from mod.ts.
import { WaiterLine } from "./waiter_line.ts";

/** One shared settled promise: awaiting it costs no allocation. */
export const RESOLVED: Promise<void> = Promise.resolve();

/**
 * A bounded FIFO of entries (the engine's items), built on a WritableStream
 * written in chunks (arrays of entries), with an optional
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
  #takesAll = false;
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
  /** Waiting producers; after an abort, the first in line may have been waiting for bytes. */
  readonly #line = new WaiterLine<E>(() => this.#admitWaiters());
  #closedError: ((entry: E) => unknown) | undefined;

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
    }); // the default strategy: the channel bounds entries itself, the stream never sees a bound
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
    return this.#line.size;
  }

  /** True when the oldest entry is ready to `take()`. */
  get hasItem(): boolean {
    return this.#arrivedHead < this.#arrived.length;
  }

  /**
   * Lets the stream deliver to the consumer; nothing is delivered before.
   * `onItem` is called whenever an entry becomes ready to take; the consumer
   * may take it then or later, and calls `pull()` once it has taken all and
   * can take more. With `takesAll`, the consumer takes all it can on each
   * call and comes back to `hasItem` by itself when it can take more, so it
   * is called once per delivery, not once per entry.
   */
  open(onItem: () => void, takesAll = false): void {
    this.#onItem = onItem;
    this.#takesAll = takesAll;
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
    arrived[this.#arrivedHead] = undefined as E; // let the entry be collected once flushed
    this.#taken(1);
    return entry;
  }

  /**
   * Takes up to `max` of the oldest entries into `into`, stopping before the
   * first one `stop` picks; returns how many it took. The same as that many
   * `take()` calls, with one admission of waiters at the end.
   */
  takeRun(into: E[], max: number, stop: (entry: E) => boolean): number {
    const arrived = this.#arrived;
    const from = this.#arrivedHead;
    const end = Math.min(arrived.length, from + max);
    let at = from;
    for (; at < end; at++) {
      const entry = arrived[at];
      if (stop(entry)) break;
      into.push(entry);
      arrived[at] = undefined as E;
    }
    if (at > from) this.#taken(at - from);
    return at - from;
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
    const full = this.#line.size > 0 || this.#size >= this.#capacity || !this.#fits(bytes);
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
    return this.#line.join(entry, signal, bytes);
  }

  /**
   * Counts the bytes of an entry that skips the channel (the run loop's
   * direct path): true when nobody waits and they fit, as for `send()`.
   */
  reserve(bytes: number): boolean {
    if (this.#line.size > 0 || !this.#fits(bytes)) return false;
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
    this.#line.rejectAll(errorFor);
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
    // One call per entry (a consumer may take one entry per call), unless it takes all it can
    // each time: the run loop would pay a step per queued item for nothing.
    if (this.#takesAll) this.#onItem();
    else for (let i = chunk.length; i > 0 && this.hasItem; i--) this.#onItem();
  }

  #closeStream(): void {
    // The stream settles once its chunks are delivered; nobody awaits it.
    this.#writer.close().catch(() => {});
  }

  /** The oldest `count` entries were taken: their slots are cleared already. */
  #taken(count: number): void {
    const arrived = this.#arrived;
    this.#arrivedHead += count;
    if (this.#arrivedHead === arrived.length) {
      arrived.length = 0;
      this.#arrivedHead = 0;
    } else if (this.#arrivedHead >= 1024 && this.#arrivedHead * 2 >= arrived.length) {
      arrived.splice(0, this.#arrivedHead); // amortised O(1): keeps the array within 2x its entries
      this.#arrivedHead = 0;
    }
    this.#size -= count;
    this.#admitWaiters();
  }

  #admitWaiters(): void {
    const line = this.#line;
    while (line.size > 0 && this.#size < this.#capacity) {
      const bytes = line.headBytes();
      if (!this.#fits(bytes)) break; // FIFO: nobody passes a waiter that waits for bytes
      // Out of the line before writing: a write may reach the consumer, which may take and
      // re-enter; the waiter's promise settles in a later microtask either way.
      const entry = line.admitHead();
      this.#bytes += bytes;
      this.#write(entry);
    }
    line.tidy();
  }

  /** A copy of the waiter line's slots, for tests: no slot may hold a waiter that left. */
  debugLine(): unknown[] {
    return this.#line.debugSlots();
  }
}
