// How an item gets in: refused, taken at once, or in line. Internal: not exported from mod.ts.
import { type Channel, RESOLVED } from "./channel.ts";
import type { ResolvedConfig } from "./config.ts";
import type { Counters } from "./counters.ts";
import { Tagged, type Ticket } from "./entry.ts";
import { BufferClosedError } from "./errors.ts";
import type { Hooks } from "./hooks.ts";

/** What admission needs of the run loop. */
export interface RunLoopDoor<T> {
  readonly closed: boolean;
  /** True when the run loop is idle and would take an item now. */
  takesDirectly(): boolean;
  /** Runs one item through the per-item step, in the producer's call. */
  processDirectly(item: T, size: number, ticket: Ticket | undefined): void;
}

/** Marks an item refused when it was admitted (it went to onReject). */
const REFUSED: unique symbol = Symbol("refused");

/** The bytes an entry holds in the budget. */
function sizeOf<T>(entry: T | Tagged<T>): number {
  return entry instanceof Tagged ? entry.size : 0;
}

/**
 * Admits items for add(), send(), tryAdd() and addAll(): straight to the run
 * loop when it is idle, else into the channel, waiting in line for room. With
 * sizeOf, each item is measured here, once, and travels tagged with its size
 * (and, for send(), its ticket); an item of an invalid size goes to onReject
 * at once instead of waiting.
 */
export class Admission<T> {
  readonly #config: ResolvedConfig<T>;
  readonly #hooks: Hooks<T>;
  readonly #counters: Counters;
  readonly #channel: Channel<T | Tagged<T>>;
  readonly #loop: RunLoopDoor<T>;
  /** sizeOf is set: every item is measured when admitted, and travels tagged. */
  readonly measures: boolean;

  constructor(
    config: ResolvedConfig<T>,
    hooks: Hooks<T>,
    counters: Counters,
    channel: Channel<T | Tagged<T>>,
    loop: RunLoopDoor<T>,
  ) {
    this.#config = config;
    this.#hooks = hooks;
    this.#counters = counters;
    this.#channel = channel;
    this.#loop = loop;
    this.measures = config.sizeOf !== undefined;
  }

  /** For add(): resolves once accepted. */
  add(item: T, signal: AbortSignal | undefined): Promise<void> {
    if (this.#loop.closed) return Promise.reject(new BufferClosedError(item));
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.measures) return this.#admit(item, signal, undefined);
    if (this.#loop.takesDirectly()) {
      this.#loop.processDirectly(item, 0, undefined);
      return RESOLVED;
    }
    return this.#channel.send(item, signal);
  }

  /** For send(): resolves once delivered. */
  send(item: T, signal: AbortSignal | undefined): Promise<void> {
    if (this.#loop.closed) return Promise.reject(new BufferClosedError(item));
    if (signal?.aborted) return Promise.reject(signal.reason);
    let ticket!: Ticket;
    const delivered = new Promise<void>((resolve, reject) => (ticket = { resolve, reject }));
    const admitted = this.#admit(item, signal, ticket);
    return admitted === RESOLVED ? delivered : admitted.then(() => delivered);
  }

  /** For tryAdd(): false when it would have to wait. */
  tryAdd(item: T): boolean {
    if (this.#loop.closed) throw new BufferClosedError(item);
    return this.offer(item) === undefined;
  }

  /**
   * Admits the item if that needs no wait (an item refused for its size
   * counts as admitted); else returns the entry that must wait in line.
   */
  offer(item: T): T | Tagged<T> | undefined {
    if (!this.measures) {
      if (!this.#loop.takesDirectly()) return this.#channel.trySend(item) ? undefined : item;
      this.#loop.processDirectly(item, 0, undefined);
      return undefined;
    }
    const entry = this.#entry(item, undefined);
    return entry === REFUSED || this.#tryTake(entry) ? undefined : entry;
  }

  /** Queues an item with no size in the channel when that needs no wait; false otherwise. */
  tryQueue(item: T): boolean {
    return this.#channel.trySend(item);
  }

  /** Waits in line to add an entry that offer() could not admit. */
  wait(entry: T | Tagged<T>, signal: AbortSignal | undefined): Promise<void> {
    return this.#channel.send(entry, signal, sizeOf(entry)); // checks close and abort itself
  }

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
    const size = this.#hooks.measure(item);
    const valid = typeof size === "number" && Number.isFinite(size) && size >= 0;
    if (valid && size <= config.maxItemBytes) return new Tagged(item, size, ticket);
    this.#counters.refused++;
    this.#counters.rejected++;
    this.#hooks.rejected(item, ticket, "its size is invalid or over maxItemBytes");
    return REFUSED;
  }

  /** Takes an entry now if that needs no wait: straight to the run loop, or into the channel. */
  #tryTake(entry: T | Tagged<T>): boolean {
    const bytes = sizeOf(entry);
    if (this.#loop.takesDirectly() && this.#channel.reserve(bytes)) {
      if (entry instanceof Tagged) this.#loop.processDirectly(entry.item, entry.size, entry.ticket);
      else this.#loop.processDirectly(entry, 0, undefined);
      return true;
    }
    return this.#channel.trySend(entry, bytes);
  }
}
