// The line of producers waiting for room in the channel. Internal: not exported from mod.ts.
import { AbortListeners } from "./abort_listeners.ts";

// Each waiting producer takes STRIDE consecutive slots.
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

/**
 * A FIFO of waiting producers in a flat array read from a head index, not
 * linked nodes: a waiter costs its promise and four slots. A waiter whose
 * signal aborts leaves at once, in O(1), and its slots are cleared (its
 * entry must not outlive its wait); producers sharing a signal share one
 * "abort" listener. The array is compacted once dead slots outnumber live
 * ones, amortised O(1) per waiter.
 */
export class WaiterLine<E> {
  /** STRIDE slots per waiter, oldest at or after `#head`. */
  readonly #line: unknown[] = [];
  #head = 0;
  #waiting = 0;
  /** Waits keyed by their first slot. */
  readonly #aborts = new AbortListeners<number>((slots, signal) => this.#abort(slots, signal));
  readonly #afterAbort: () => void;
  // One executor for every join(): it hands over the new promise's resolve.
  #resolveNext: Resolve = () => {};
  readonly #capture = (resolve: Resolve): void => void (this.#resolveNext = resolve);

  /** @param afterAbort Called once the waiters of an aborted signal have left. */
  constructor(afterAbort: () => void) {
    this.#afterAbort = afterAbort;
  }

  /** Waiters in line. */
  get size(): number {
    return this.#waiting;
  }

  /** Joins the end of the line; resolves once admitted, rejects with the signal's reason. */
  join(entry: E, signal: AbortSignal | undefined, bytes: number): Promise<void> {
    const promise = new Promise<void>(this.#capture);
    const slot = this.#line.length;
    this.#line.push(entry, this.#resolveNext, signal, bytes);
    if (signal !== undefined) this.#aborts.add(signal, slot);
    this.#waiting++;
    return promise;
  }

  /** The bytes of the oldest waiter. Only valid while `size > 0`. */
  headBytes(): number {
    const line = this.#line;
    let slot = this.#head;
    while (line[slot + RESOLVE] === undefined) slot += STRIDE; // skip those who left
    this.#head = slot;
    return line[slot + BYTES] as number;
  }

  /** Lets the oldest waiter in (after `headBytes()`): resolves it and returns its entry. */
  admitHead(): E {
    const slot = this.#head;
    const entry = this.#line[slot + ENTRY] as E;
    const resolve = this.#line[slot + RESOLVE] as () => void;
    this.#leave(slot);
    this.#head = slot + STRIDE;
    resolve();
    return entry;
  }

  /** Rejects every waiter with `errorFor(entry)`. */
  rejectAll(errorFor: (entry: E) => unknown): void {
    const line = this.#line;
    for (let slot = this.#head; slot < line.length; slot += STRIDE) {
      if (line[slot + RESOLVE] === undefined) continue; // left already
      const entry = line[slot + ENTRY] as E;
      const resolve = line[slot + RESOLVE] as Resolve;
      this.#leave(slot);
      rejectThrough(resolve, errorFor(entry));
    }
    this.tidy();
  }

  /** Drops dead slots: all of them once nobody waits, else when they outnumber the live. */
  tidy(): void {
    const line = this.#line;
    if (this.#waiting === 0) {
      // Not on every call: setting an array's length is a runtime call even when it is 0.
      if (line.length !== 0) {
        line.length = 0;
        this.#head = 0;
      }
      return;
    }
    const dead = line.length / STRIDE - this.#waiting;
    if (dead < COMPACT_AFTER || dead < this.#waiting) return;
    let to = 0;
    for (let from = this.#head; from < line.length; from += STRIDE) {
      if (line[from + RESOLVE] === undefined) continue;
      if (from !== to) {
        for (let k = 0; k < STRIDE; k++) line[to + k] = line[from + k];
        const signal = line[to + SIGNAL] as AbortSignal | undefined;
        if (signal !== undefined) this.#aborts.rekey(signal, from, to);
      }
      to += STRIDE;
    }
    line.length = to;
    this.#head = 0;
  }

  /** A copy of the slots, for tests: no slot may hold a waiter that left. */
  debugSlots(): unknown[] {
    return this.#line.slice();
  }

  #abort(slots: ReadonlySet<number>, signal: AbortSignal): void {
    for (const slot of slots) {
      const resolve = this.#line[slot + RESOLVE] as Resolve;
      this.#leave(slot);
      rejectThrough(resolve, signal.reason);
    }
    // Only now, with all of them gone: admitting may move slots.
    this.#afterAbort();
  }

  /** Clears a waiter's slots and stops watching its signal. */
  #leave(slot: number): void {
    const line = this.#line;
    const signal = line[slot + SIGNAL] as AbortSignal | undefined;
    if (signal !== undefined) this.#aborts.delete(signal, slot);
    for (let k = 0; k < STRIDE; k++) line[slot + k] = undefined;
    this.#waiting--;
  }
}
