// The batch being formed. Internal: not exported from mod.ts.
import type { Hooks } from "./hooks.ts";

/**
 * The items gathered for the next flush, with their total size and, on
 * Workers, the keep-alive of the request that opened the batch.
 */
export class FormingBatch<T> {
  /** The items, oldest first. Replaced, never emptied, when the batch is taken. */
  items: T[] = [];
  /** The sum of the items' sizes (0 without sizeOf). */
  bytes = 0;
  #releaseOpener: (() => void) | undefined;

  /** The number of items. */
  get length(): number {
    return this.items.length;
  }

  /** Hands the items over for a flush and starts an empty batch. */
  take(): T[] {
    const items = this.items;
    this.items = [];
    this.bytes = 0;
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
