// The floor (issue 14): the cheapest correct design of BatchBuffer's contract, kept small so
// every run shows the library beside it. A bounded FIFO of batches of `capacity`, a FIFO of
// waiting producers (an array with a head index), N flushes in flight, a lazy interval timer and
// a draining close. No hooks, no stats, no flush(), no WritableStream; a failed flush is dropped.
const RESOLVED: Promise<void> = Promise.resolve();

export interface FloorConfig<T> {
  flush: (batch: T[]) => unknown;
  capacity: number;
  /** The FIFO holds `chanSize + capacity` items: the library's channel plus its forming batch. */
  chanSize: number;
  maxConcurrentFlushes: number;
  flushInterval: number;
}

interface Waiter<T> {
  live: boolean;
  item: T | undefined;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class Floor<T> {
  readonly #c: FloorConfig<T>;
  readonly #bound: number;
  #batches: T[][] = [];
  #size = 0;
  #waiters: (Waiter<T> | undefined)[] = [];
  #head = 0;
  #waiting = 0;
  #inFlight = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the oldest batch began its interval. */
  #opened = 0;
  #due = false;
  #closed = false;
  #drained!: () => void;
  readonly done: Promise<void> = new Promise((resolve) => (this.#drained = resolve));

  constructor(config: FloorConfig<T>) {
    this.#c = config;
    this.#bound = config.chanSize + config.capacity;
  }

  tryAdd(item: T): boolean {
    if (this.#closed) throw new Error("closed");
    if (this.#waiting > 0 || this.#size >= this.#bound) return false;
    this.#push(item);
    this.#pump();
    return true;
  }

  add(item: T, signal?: AbortSignal): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("closed"));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.tryAdd(item)) return RESOLVED;
    return new Promise((resolve, reject) => {
      const waiter: Waiter<T> = { live: true, item, resolve, reject, signal, onAbort: undefined };
      if (signal !== undefined) {
        waiter.onAbort = () => { // leaves its slot in the line, but lets go of the item at once
          waiter.live = false;
          // The closure's scope holds the item too, so the dead waiter drops it as well.
          waiter.item = waiter.signal = waiter.onAbort = undefined;
          this.#waiting--;
          reject(signal.reason);
        };
        signal.addEventListener("abort", waiter.onAbort, { once: true });
      }
      this.#waiters.push(waiter);
      this.#waiting++;
    });
  }

  async addAll(items: Iterable<T>): Promise<void> {
    for (const item of items) if (!this.tryAdd(item)) await this.add(item);
  }

  /** Refuses new items, rejects the waiting ones and resolves once the rest are flushed. */
  close(): Promise<void> {
    if (this.#closed) return this.done;
    this.#closed = true;
    while (this.#waiting > 0) this.#next().reject(new Error("closed"));
    this.#pump();
    return this.done;
  }

  #push(item: T): void {
    const last = this.#batches[this.#batches.length - 1];
    if (last !== undefined && last.length < this.#c.capacity) last.push(item);
    else this.#batches.push([item]);
    if (this.#size++ === 0) this.#arm();
  }

  #pump(): void {
    const c = this.#c;
    while (this.#inFlight < c.maxConcurrentFlushes && this.#size > 0) {
      const batch = this.#batches[0];
      if (batch.length < c.capacity && !this.#due && !this.#closed) break;
      this.#batches.shift();
      this.#size -= batch.length;
      this.#due = false;
      this.#opened = performance.now();
      this.#inFlight++;
      while (this.#waiting > 0 && this.#size < this.#bound) {
        const waiter = this.#next();
        this.#push(waiter.item!);
        waiter.resolve();
      }
      Promise.resolve(c.flush(batch)).then(this.#settle, this.#settle);
    }
    if (this.#closed && this.#size === 0 && this.#inFlight === 0) {
      clearTimeout(this.#timer);
      this.#drained();
    }
  }

  readonly #settle = (): void => {
    this.#inFlight--;
    this.#pump();
  };

  /** The oldest live waiter, out of the line. */
  #next(): Waiter<T> {
    for (;;) {
      const waiter = this.#waiters[this.#head]!;
      this.#waiters[this.#head++] = undefined;
      if (this.#head === this.#waiters.length) this.#waiters.length = this.#head = 0;
      else if (this.#head >= 1024 && this.#head * 2 >= this.#waiters.length) {
        this.#waiters.splice(0, this.#head); // amortised O(1)
        this.#head = 0;
      }
      if (!waiter.live) continue; // aborted
      waiter.signal?.removeEventListener("abort", waiter.onAbort!);
      this.#waiting--;
      return waiter;
    }
  }

  /** Lazy: one timeout at most, never cleared while running; it checks the deadline on firing. */
  #arm(): void {
    this.#opened = performance.now();
    if (this.#timer === undefined && Number.isFinite(this.#c.flushInterval)) {
      this.#timer = setTimeout(this.#onTimer, this.#c.flushInterval);
    }
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    if (this.#size === 0) return;
    const wait = this.#opened + this.#c.flushInterval - performance.now();
    if (wait > 0) this.#timer = setTimeout(this.#onTimer, wait);
    else {
      this.#due = true;
      this.#pump();
      if (this.#size > 0) this.#arm();
    }
  };
}
