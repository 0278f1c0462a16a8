// An item on its way from a producer to a batch, with what it carries besides
// itself. Internal: not exported from mod.ts.

/** What resolves or rejects one send() call. */
export interface Ticket {
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * An item with its size (by sizeOf, measured once when it was admitted) and,
 * for send(), its ticket. Items that carry neither travel bare, at no cost; a
 * user's item can never be an instance of this class, so `instanceof` tells
 * the two apart.
 */
export class Tagged<T> {
  readonly item: T;
  readonly size: number;
  readonly ticket: Ticket | undefined;

  constructor(item: T, size: number, ticket: Ticket | undefined) {
    this.item = item;
    this.size = size;
    this.ticket = ticket;
  }
}

/** True for an entry that travels tagged. */
export const isTagged = (entry: unknown): boolean => entry instanceof Tagged;

/** An item the run loop took but could not place yet: its key's batch must flush first. */
export interface Held<T> {
  readonly item: T;
  readonly key: unknown;
  readonly size: number;
  readonly ticket: Ticket | undefined;
  /** Still the channel's oldest item (see place()). */
  readonly queued: boolean;
}
