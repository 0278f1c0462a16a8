// A batch being formed. Internal: not exported from mod.ts.
import type { DeadlineTimer } from "./deadline_timer.ts";
import type { Ticket } from "./entry.ts";
import type { Hooks } from "./hooks.ts";
import type { FlushReason } from "./types.ts";

/**
 * The items gathered for one flush (of one key), with their total size, when
 * the batch opened, whether its flush is due, and, on Workers, its own
 * interval timeout and the keep-alive of the request that opened it.
 */
export class FormingBatch<T> {
  /** The items, oldest first. Replaced, never emptied, when the batch is taken. */
  items: T[] = [];
  /** The sum of the items' sizes (0 without sizeOf). */
  bytes = 0;
  /** Each item's size, with sizeOf (to free the bytes of a partial success). */
  sizes: number[] | undefined;
  /** Each item's send() ticket, once some item has one. */
  tickets: (Ticket | undefined)[] | undefined;
  /** When the batch got its first item (performance.now()), for keyed deadlines. */
  openedAt = 0;
  /** Why its flush is due, while it waits for a slot or for its key's flight. */
  due: FlushReason | undefined;
  /** Its own interval timeout (only with waitUntil: Workers drop a request's timers). */
  timer: DeadlineTimer | undefined;
  readonly key: unknown;
  #releaseOpener: (() => void) | undefined;

  constructor(key: unknown) {
    this.key = key;
  }

  /** The number of items. */
  get length(): number {
    return this.items.length;
  }

  /** True when an item may still join: not owed a flush that closes it. */
  get acceptsItems(): boolean {
    return this.due === undefined || this.due === "interval" || this.due === "manual";
  }

  /** Appends an item with its size and ticket (kept only when some item needs them). */
  append(item: T, size: number, ticket: Ticket | undefined, sized: boolean): void {
    const position = this.items.length;
    this.items.push(item);
    this.bytes += size;
    if (sized) (this.sizes ??= []).push(size);
    if (ticket !== undefined) {
      this.tickets ??= new Array(position).fill(undefined);
      this.tickets.push(ticket);
    } else this.tickets?.push(undefined);
  }

  /** Hands the items over for a flush and starts an empty batch. */
  take(): T[] {
    const items = this.items;
    this.items = [];
    this.bytes = 0;
    this.sizes = undefined;
    this.tickets = undefined;
    this.due = undefined;
    this.timer?.clear();
    return items;
  }

  /**
   * On Workers, keeps the request that opened the batch alive (and with it
   * the timer it armed) until the batch has been handed to flush: hands
   * waitUntil a promise made in that request's call.
   */
  keepOpenerAlive(hooks: Hooks<T>): void {
    if (this.#releaseOpener !== undefined) return;
    hooks.waitUntil(new Promise<void>((resolve) => (this.#releaseOpener = resolve)));
  }

  /** The keep-alive's release, for the flight to call once it holds the batch. */
  takeOpener(): (() => void) | undefined {
    const release = this.#releaseOpener;
    this.#releaseOpener = undefined;
    return release;
  }
}
