// The counters behind stats(). Internal: not exported from mod.ts.
import type { BatchBufferStats } from "./types.ts";

/**
 * What a buffer has done with its items so far, kept so that
 * `added === rejected + flushedItems + failedItems + inFlightItems +
 * itemsInChannel + itemsInBatch` holds at every moment, inside hooks too.
 * A plain record: the run loop's parts update the fields directly.
 */
export class Counters {
  /** Items placed in a batch or rejected. */
  taken = 0;
  /**
   * 1 while the run loop holds an item it has not placed yet, so that `added`
   * never dips while a hook or an "overflow" flush runs.
   */
  inHand = 0;
  rejected = 0;
  flushedItems = 0;
  failedItems = 0;
  inFlightItems = 0;
  flushes = 0;
  failedFlushes = 0;
  flushesInFlight = 0;
  /** Tries after the first. */
  retries = 0;

  /**
   * Items refused when admitted (an invalid or too large size): they reached
   * onReject at once and never joined the line the run loop takes items from.
   */
  refused = 0;

  /** Items accepted so far, given how many wait in the channel. */
  added(itemsInChannel: number): number {
    return this.taken + this.inHand + itemsInChannel + this.refused;
  }

  /** How many items the run loop will have taken once it has taken every item accepted so far. */
  lineEnd(itemsInChannel: number): number {
    return this.taken + this.inHand + itemsInChannel;
  }

  /** The public snapshot. */
  snapshot(
    itemsInChannel: number,
    itemsInBatches: number,
    openBatches: number,
    bufferedBytes: number,
  ): BatchBufferStats {
    return {
      added: this.added(itemsInChannel),
      rejected: this.rejected,
      flushedItems: this.flushedItems,
      failedItems: this.failedItems,
      inFlightItems: this.inFlightItems,
      itemsInChannel,
      itemsInBatch: itemsInBatches + this.inHand,
      flushes: this.flushes,
      failedFlushes: this.failedFlushes,
      flushesInFlight: this.flushesInFlight,
      openBatches,
      bufferedBytes,
      retries: this.retries,
    };
  }
}
