// Forms batches: the per-item step, deadlines, and flushes owed until a slot
// (or the key's flight) frees. Internal: not exported from mod.ts.
import type { ResolvedConfig } from "./config.ts";
import type { Counters } from "./counters.ts";
import type { Channel } from "./channel.ts";
import { type Held, isTagged, type Tagged, type Ticket } from "./entry.ts";
import { BatchDeadlines } from "./batch_deadlines.ts";
import type { Flights } from "./flights.ts";
import type { FormingBatch } from "./forming_batch.ts";
import type { Hooks } from "./hooks.ts";
import { OpenBatches } from "./open_batches.ts";
import type { FlushReason } from "./types.ts";

/**
 * Places each item in its key's batch (see BatchBufferConfig for the steps)
 * and hands batches to the flights. A batch that is due while no slot is free,
 * or while its key has a flight, is owed its flush: the run loop pays owed
 * flushes first. An item whose batch is owed a closing flush is held, and the
 * run loop takes nothing more until it is placed: that wait is backpressure.
 */
export class Batcher<T> {
  readonly #config: ResolvedConfig<T>;
  readonly #hooks: Hooks<T>;
  readonly #counters: Counters;
  readonly #flights: Flights<T>;
  /** Frees bytes in the budget: the item reached a final outcome. */
  readonly #release: (bytes: number) => void;
  /** Where queued items wait; the run loop places its oldest entry. */
  readonly #channel: Channel<T | Tagged<T>>;
  readonly #batches: OpenBatches<T>;
  readonly #deadlines: BatchDeadlines<T>;
  #held: Held<T> | undefined;
  #itemsInBatches = 0;
  readonly #canFly = (key: unknown): boolean => this.#flights.canFly(key);

  constructor(
    config: ResolvedConfig<T>,
    hooks: Hooks<T>,
    counters: Counters,
    flights: Flights<T>,
    release: (bytes: number) => void,
    channel: Channel<T | Tagged<T>>,
    onDeadline: () => void,
  ) {
    this.#release = release;
    this.#channel = channel;
    this.#config = config;
    this.#hooks = hooks;
    this.#counters = counters;
    this.#flights = flights;
    this.#batches = new OpenBatches<T>(config.key !== undefined);
    this.#deadlines = new BatchDeadlines(config, this.#batches, onDeadline);
  }

  /** Items in batches (the held item counts as in hand, not here). */
  get length(): number {
    return this.#itemsInBatches;
  }

  /** Batches holding items. */
  get openBatches(): number {
    return this.#batches.count;
  }

  /** True while an item waits for its key's batch to flush. */
  get holding(): boolean {
    return this.#held !== undefined;
  }

  /** True while some batch is owed a flush. */
  get owesFlush(): boolean {
    return this.#batches.hasDue;
  }

  /** True while some batch is owed a closing flush (full, overflow, evict): no direct adds. */
  get owesClosingFlush(): boolean {
    return this.#batches.hasClosingDue;
  }

  /** Starts the first owed flush that may fly now; false when there is none. */
  payDue(): boolean {
    const batch = this.#batches.nextPayable(this.#canFly);
    if (batch === undefined) return false;
    this.#flush(batch, batch.due!);
    return true;
  }

  /**
   * The byte budget is full while producers wait: the oldest open batch not
   * yet due is owed a "full" flush. False when every open batch is due already.
   */
  flushOldest(): boolean {
    const oldest = this.#batches.oldestNotDue();
    if (oldest === undefined) return false;
    this.#batches.markDue(oldest, "full");
    return true;
  }

  /** Owes every open batch a flush (manual, close); the run loop pays them. */
  flushAll(reason: FlushReason): void {
    for (const batch of this.#batches) this.#batches.markDue(batch, reason);
  }

  /** The run has finished: no timer may be left behind. */
  stop(): void {
    this.#deadlines.stop();
  }

  /**
   * The per-item step, with the item's size (by sizeOf) and send() ticket.
   * `queued`: the item is the channel's oldest, still in the channel (and
   * counted there) until it is placed or refused; one that has to wait stays
   * in line, so the channel's bound holds exactly. Otherwise a producer hands
   * the item over directly and it counts as in hand meanwhile.
   */
  place(item: T, size: number, ticket: Ticket | undefined, queued: boolean): void {
    const config = this.#config;
    if (config.plain && ticket === undefined) {
      if (queued) this.#channel.take();
      // No hook, no key, no sizes: only appending applies. This shortcut is
      // worth about 3 ns an item, a tenth of add()'s own cost.
      const batch = this.#batches.get(undefined)!;
      const list = batch.items;
      list.push(item);
      return this.#placedRun(batch, list, 1, list.length === 1);
    }
    if (!queued) this.#counters.inHand = 1;
    const key = config.key === undefined ? undefined : this.#keyOf(item);
    this.#place(item, key, size, ticket, queued);
  }

  /**
   * place()'s shortcut (no hooks, keys, sizes or waitUntil) for an item that joins an open
   * batch and leaves it short of full: nothing is armed or flushed and no user code runs, so
   * no re-entry guard, and only two counts change. False, doing nothing, otherwise.
   */
  appendIfRoom(item: T): boolean {
    const batch = this.#batches.get(undefined)!;
    const list = batch.items;
    const length = list.length;
    // The first item opens the batch (its deadline), the last fills it, and a batch with
    // send() tickets keeps one per item: place() does those.
    if (length === 0 || length + 2 > this.#config.capacity || batch.tickets !== undefined) {
      return false;
    }
    list.push(item);
    this.#itemsInBatches++;
    this.#counters.taken++;
    return true;
  }

  /**
   * For a config without hooks, keys or sizes: appends `items[from..to)` to
   * the batch, up to the end of the batch, at the cost of a bare push each
   * (addAll() of an array). Returns where it stopped; the caller checks again
   * whether the run loop is free before the next call.
   */
  placeRun(items: readonly T[], from: number, to: number): number {
    const batch = this.#batches.get(undefined)!;
    const list = batch.items;
    const opening = list.length === 0;
    const end = Math.min(to, from + this.#config.capacity - list.length);
    for (let i = from; i < end; i++) list.push(items[i]);
    this.#placedRun(batch, list, end - from, opening);
    return end;
  }

  /**
   * For a config without hooks, keys, sizes or waitUntil: moves the channel's
   * oldest entries into the batch, up to the end of the batch or the first
   * tagged entry, at the cost of a take and a push each (the run loop's
   * per-item step, for a run of items). Returns how many it placed.
   */
  placeQueuedRun(): number {
    const batch = this.#batches.get(undefined)!;
    const list = batch.items;
    const opening = list.length === 0;
    const count = this.#channel.takeRun(
      list as (T | Tagged<T>)[],
      this.#config.capacity - list.length,
      isTagged,
    );
    if (count > 0) this.#placedRun(batch, list, count, opening);
    return count;
  }

  /** The bookkeeping of `count` items just appended to the one batch (place()'s shortcut, runs). */
  #placedRun(batch: FormingBatch<T>, list: T[], count: number, opening: boolean): void {
    const config = this.#config;
    const tickets = batch.tickets; // an earlier item came through send()
    if (tickets !== undefined) { for (let i = 0; i < count; i++) tickets.push(undefined); }
    this.#itemsInBatches += count;
    this.#counters.taken += count;
    if (opening) this.#deadlines.opened(batch);
    if (list.length >= config.capacity) {
      if (this.#flights.hasFreeSlot) this.#flush(batch, "full");
      else this.#batches.markDue(batch, "full");
    }
    if (opening && config.waitUntil !== undefined && batch.items === list) {
      batch.keepOpenerAlive(this.#hooks);
    }
  }

  /** Tries the held item again; false while it still has to wait. */
  placeHeld(): boolean {
    const held = this.#held!;
    this.#held = undefined;
    this.#place(held.item, held.key, held.size, held.ticket, held.queued);
    return this.#held === undefined;
  }

  /** overflow, canAdd, append, shouldFlush (see BatchBufferConfig); sizes were measured on admission. */
  #place(item: T, key: unknown, size: number, ticket: Ticket | undefined, queued: boolean): void {
    const config = this.#config;
    const hooks = this.#hooks;
    let batch = this.#batches.get(key);
    if (batch !== undefined && batch.length > 0) {
      if (!batch.acceptsItems) return this.#hold({ item, key, size, ticket, queued });
      if (
        batch.bytes + size > config.maxBatchBytes ||
        (config.willOverflow !== undefined &&
          hooks.ask(config.willOverflow, batch.items, item, false))
      ) {
        if (!this.#flights.canFly(key)) {
          this.#batches.markDue(batch, "overflow");
          return this.#hold({ item, key, size, ticket, queued });
        }
        this.#flush(batch, "overflow");
        batch = this.#batches.get(key);
      }
    }
    if (config.canAdd !== undefined && !hooks.ask(config.canAdd, batch?.items ?? [], item, true)) {
      this.#taken(queued);
      this.#counters.rejected++;
      this.#release(size);
      return hooks.rejected(item, ticket, "canAdd refused it");
    }
    if (batch === undefined) {
      if (this.#batches.count >= config.maxOpenBatches && !this.#evict()) {
        return this.#hold({ item, key, size, ticket, queued });
      }
      batch = this.#batches.open(key);
    }
    const items = batch.items;
    batch.append(item, size, ticket, config.sizeOf !== undefined);
    this.#itemsInBatches++;
    this.#taken(queued);
    if (items.length === 1) this.#deadlines.opened(batch);
    const full = config.shouldFlush === undefined
      ? items.length >= config.capacity
      : hooks.ask(config.shouldFlush, items, undefined, items.length >= config.capacity);
    if (full || batch.bytes >= config.maxBatchBytes) {
      if (this.#flights.canFly(key)) this.#flush(batch, "full");
      else this.#batches.markDue(batch, "full");
    }
    if (items.length === 1 && config.waitUntil !== undefined && batch.items === items) {
      batch.keepOpenerAlive(hooks); // still open after its opening call
    }
  }

  #keyOf(item: T): unknown {
    try {
      return this.#config.key!(item);
    } catch (error) {
      this.#hooks.report(error);
      return undefined; // nothing is lost: the item batches under the key undefined
    }
  }

  #hold(held: Held<T>): void {
    this.#held = held;
  }

  /** The item is placed or refused: it leaves the channel (or the producer's hand). */
  #taken(queued: boolean): void {
    if (queued) this.#channel.take();
    else this.#counters.inHand = 0;
    this.#counters.taken++;
  }

  /** Makes room for a new key: the oldest batch is owed an "evict" flush; true if it went now. */
  #evict(): boolean {
    const oldest = this.#batches.oldestNotDue();
    if (oldest !== undefined) this.#batches.markDue(oldest, "evict");
    while (this.payDue()) if (this.#batches.count < this.#config.maxOpenBatches) return true;
    return false;
  }

  #flush(batch: FormingBatch<T>, reason: FlushReason): void {
    const release = batch.takeOpener();
    const { sizes, tickets } = batch;
    const items = batch.take();
    this.#itemsInBatches -= items.length;
    this.#batches.closed(batch);
    this.#deadlines.flushed(batch, reason, this.#channel.size > 0);
    this.#flights.start(items, reason, batch.key, sizes, tickets, release);
  }
}
