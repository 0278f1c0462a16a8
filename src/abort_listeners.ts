// One "abort" listener per distinct signal. Internal: not exported from mod.ts.

/** The waits of one signal, and the listener that ends them all. */
interface Group<K> {
  readonly keys: Set<K>;
  readonly listener: () => void;
}

/**
 * Watches AbortSignals for many waits at once, with one "abort" listener per
 * distinct signal however many waits share it. `addEventListener` and
 * `removeEventListener` take time linear in the listeners a signal already
 * has (in Deno, Bun and Node), and Node warns past ten, so a listener per
 * wait makes producers sharing one signal queue up in quadratic time. Here
 * each wait costs O(1): a set entry under its signal.
 *
 * @typeParam K What identifies a wait (unique under its signal).
 *
 * @example Two waits sharing a signal
 * ```ts
 * import { AbortListeners } from "./abort_listeners.ts";
 * import assert from "node:assert/strict";
 *
 * const aborted: string[] = [];
 * const listeners = new AbortListeners<string>((keys) => aborted.push(...keys));
 * const controller = new AbortController();
 * listeners.add(controller.signal, "a");
 * listeners.add(controller.signal, "b");
 * listeners.delete(controller.signal, "a"); // "a" stopped waiting
 * controller.abort();
 * assert.deepEqual(aborted, ["b"]);
 * assert.equal(listeners.size, 0);
 * ```
 */
export class AbortListeners<K> {
  readonly #groups = new Map<AbortSignal, Group<K>>();
  readonly #onAbort: (keys: ReadonlySet<K>, signal: AbortSignal) => void;

  /**
   * @param onAbort Called once when a watched signal aborts, with the waits
   *   still watched under it in the order they were added (renamed ones
   *   last); none of them is watched any more. One call for them all lets
   *   the caller finish with every wait before anything else changes.
   */
  constructor(onAbort: (keys: ReadonlySet<K>, signal: AbortSignal) => void) {
    this.#onAbort = onAbort;
  }

  /** Distinct signals watched, each with one listener. */
  get size(): number {
    return this.#groups.size;
  }

  /** Watches `signal` for the wait `key`, adding a listener only for a new signal. */
  add(signal: AbortSignal, key: K): void {
    const group = this.#groups.get(signal);
    if (group !== undefined) {
      group.keys.add(key);
      return;
    }
    const keys = new Set<K>([key]);
    const listener = () => {
      // A synthetic dispatchEvent(new Event("abort")) reaches us too: only a real abort counts.
      if (!signal.aborted) return;
      this.#drop(signal, listener);
      this.#onAbort(keys, signal);
    };
    this.#groups.set(signal, { keys, listener });
    signal.addEventListener("abort", listener);
  }

  /** Stops watching `signal` for `key`; the listener goes with the signal's last wait. */
  delete(signal: AbortSignal, key: K): void {
    const group = this.#groups.get(signal);
    if (group === undefined || !group.keys.delete(key)) return;
    if (group.keys.size === 0) this.#drop(signal, group.listener);
  }

  /**
   * Renames the wait `from` of `signal` to `to`, which must not be watched
   * under it. The wait moves to the end of the callback order.
   */
  rekey(signal: AbortSignal, from: K, to: K): void {
    const keys = this.#groups.get(signal)?.keys;
    if (keys?.delete(from)) keys.add(to);
  }

  #drop(signal: AbortSignal, listener: () => void): void {
    this.#groups.delete(signal);
    signal.removeEventListener("abort", listener);
  }
}
