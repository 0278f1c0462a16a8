// The bounded FIFO between producers and the run loop. Internal: not exported from mod.ts.
import { AbortListeners } from "./abort_listeners.ts";

/** A producer waiting for room, linked in arrival order. */
interface Waiter<T> {
  readonly item: T;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  prev: Waiter<T> | undefined;
  next: Waiter<T> | undefined;
}

/** One shared settled promise: awaiting it costs no allocation. */
export const RESOLVED: Promise<void> = Promise.resolve();

/**
 * A bounded FIFO of items, built on a WritableStream whose
 * CountQueuingStrategy has `highWaterMark = capacity`.
 *
 * The stream carries the items in order to its sink, which sets them aside
 * at once for the consumer, so the stream keeps delivering while the
 * consumer is busy and the consumer then takes everything delivered without
 * waiting. Items written while an earlier chunk is still on its way join that
 * chunk, so a burst costs one stream write rather than one per item; the
 * channel counts items itself. It adds what a stream writer lacks:
 * - an exact bound: `size` never exceeds `capacity`. (`writer.ready` wakes
 *   every waiting producer at once, which would overshoot the bound.)
 * - fair admission: waiting producers get room in the order they asked.
 * - abortable waits: a producer whose signal aborts leaves the queue in O(1),
 *   with one "abort" listener per distinct signal however many producers share it.
 */
export class Channel<T> {
  readonly #capacity: number;
  readonly #writer: WritableStreamDefaultWriter<T[]>;
  /** The chunk written to the stream and not delivered yet; later items join it. */
  #pending: T[] | undefined;
  #openStream: () => void = () => {};
  #onItem: () => void = () => {};
  #size = 0;
  /** Items the stream has delivered, oldest at `#arrivedHead`. */
  #arrived: T[] = [];
  #arrivedHead = 0;
  #head: Waiter<T> | undefined;
  #tail: Waiter<T> | undefined;
  #waiting = 0;
  #closedError: ((item: T) => unknown) | undefined;
  /** One listener per distinct signal: producers often share one. */
  readonly #aborts = new AbortListeners<Waiter<T>>((waiter, signal) => {
    this.#unlink(waiter);
    waiter.reject(signal.reason);
  });

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
   * Starts handing items to the consumer. `onItem` is called whenever an item
   * becomes ready to take; the consumer may take it then or later.
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

  /** True when `trySend()` would queue an item: there is room and nobody waits. */
  get hasRoom(): boolean {
    return this.#waiting === 0 && this.#size < this.#capacity;
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
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter<T> = {
        item,
        resolve,
        reject,
        signal,
        prev: this.#tail,
        next: undefined,
      };
      if (signal !== undefined) this.#aborts.add(signal, waiter);
      if (this.#tail === undefined) this.#head = waiter;
      else this.#tail.next = waiter;
      this.#tail = waiter;
      this.#waiting++;
    });
  }

  /**
   * Refuses all further sends and rejects every waiting producer with
   * `errorFor(item)`. Items already accepted stay, to be taken as usual.
   */
  close(errorFor: (item: T) => unknown): void {
    if (this.#closedError !== undefined) return;
    this.#closedError = errorFor;
    while (this.#head !== undefined) {
      const waiter = this.#head;
      this.#unlink(waiter);
      waiter.reject(errorFor(waiter.item));
    }
    // The stream settles once the queued items are taken; nobody awaits it.
    this.#writer.close().catch(() => {});
  }

  #write(item: T): void {
    this.#size++;
    // A stream write costs about a microsecond in Deno, so an item joins the chunk
    // still on its way when there is one. The write promise settles once the sink
    // has the chunk; the stream never errors.
    if (this.#pending !== undefined) this.#pending.push(item);
    else void this.#writer.write(this.#pending = [item]);
  }

  #arrive(chunk: T[]): void {
    if (chunk === this.#pending) this.#pending = undefined;
    for (const item of chunk) this.#arrived.push(item);
    // One call per item keeps open()'s contract: a consumer may take one item per call.
    for (let i = chunk.length; i > 0 && this.hasItem; i--) this.#onItem();
  }

  #admitWaiters(): void {
    while (this.#head !== undefined && this.#size < this.#capacity) {
      const waiter = this.#head;
      this.#unlink(waiter);
      this.#write(waiter.item);
      waiter.resolve();
    }
  }

  #unlink(waiter: Waiter<T>): void {
    if (waiter.signal !== undefined) this.#aborts.delete(waiter.signal, waiter);
    if (waiter.prev === undefined) this.#head = waiter.next;
    else waiter.prev.next = waiter.next;
    if (waiter.next === undefined) this.#tail = waiter.prev;
    else waiter.next.prev = waiter.prev;
    waiter.prev = waiter.next = undefined;
    this.#waiting--;
  }
}
