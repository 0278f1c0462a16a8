// addAll(): many items for the price of few awaits. Internal: not exported from mod.ts.
import { describe } from "./config.ts";
import { AddAllError, BufferClosedError } from "./errors.ts";
import type { Tagged } from "./entry.ts";
import type { RunLoop } from "./run_loop.ts";

/** Marks the end of addAll()'s items. */
export const DONE: unique symbol = Symbol("done");

/** How far addAll() got: items accepted, and the one waiting for room. */
export interface AddAllProgress<T> {
  accepted: number;
  held: T | typeof DONE;
}

/** The next item of addAll()'s source, or DONE. Arrays are read by index. */
export function pull<T>(source: readonly T[] | Iterator<T>, index: number): T | typeof DONE {
  if (Array.isArray(source)) return index < source.length ? source[index] : DONE;
  const next: unknown = (source as Iterator<T>).next();
  if (next === null || (typeof next !== "object" && typeof next !== "function")) {
    throw new TypeError(`Iterator result ${describe(next)} is not an object`); // as for-of says
  }
  return (next as IteratorResult<T>).done ? DONE : (next as IteratorResult<T>).value;
}

/**
 * Adds the items in order, awaiting only when one has to wait for room. On
 * any stop it rejects with an AddAllError saying how many leading items the
 * buffer took.
 */
export async function addAll<T>(
  loop: RunLoop<T>,
  items: Iterable<T>,
  signal: AbortSignal | undefined,
): Promise<void> {
  if (items === null || typeof (items as Iterable<T>)?.[Symbol.iterator] !== "function") {
    throw new TypeError(`items must be iterable, received ${describe(items)}`);
  }
  // Arrays are read by index: an iterator's next() costs as much as adding the item.
  let source: readonly T[] | Iterator<T> | undefined;
  const progress: AddAllProgress<T | Tagged<T>> = { accepted: 0, held: DONE };
  try {
    source = Array.isArray(items) ? items : items[Symbol.iterator]();
    for (;;) {
      if (addWhileReady(loop, source, signal, progress)) return;
      await loop.admission.wait(progress.held as T, signal);
      progress.accepted++;
    }
  } catch (cause) {
    if (source !== undefined && !Array.isArray(source)) {
      try {
        (source as Iterator<T>).return?.(); // let a generator run its finally blocks
      } catch (error) {
        loop.hooks.report(error);
      }
    }
    throw new AddAllError(progress.accepted, cause);
  }
}

/**
 * Adds the items synchronously for as long as none has to wait; true once the
 * source is exhausted, false with the entry that has to wait in
 * `progress.held`. Kept out of the async function because a loop there
 * compiles to much slower code. Pulling an item may run the iterable's own
 * code (which may add, close or abort), so every check comes after the pull.
 */
function addWhileReady<T>(
  loop: RunLoop<T>,
  source: readonly T[] | Iterator<T>,
  signal: AbortSignal | undefined,
  progress: AddAllProgress<T | Tagged<T>>,
): boolean {
  const admission = loop.admission;
  let item = pull(source, progress.accepted);
  for (;;) {
    if (item === DONE) return true;
    if (loop.closed) throw new BufferClosedError(item);
    if (signal?.aborted) throw signal.reason;
    if (admission.measures) {
      const waits = admission.offer(item);
      if (waits !== undefined) {
        progress.held = waits;
        return false;
      }
    } else if (loop.takesDirectly()) {
      item = loop.placeWhileReady(source, item, signal, progress);
      continue; // the item just pulled goes through the checks above
    } else if (!admission.tryQueue(item)) {
      progress.held = item;
      return false;
    }
    progress.accepted++;
    item = pull(source, progress.accepted);
  }
}
