// The flush() calls waiting for their items. Internal: not exported from mod.ts.

/** The `flush()` calls waiting for the same items: one manual flush serves them all. */
interface FlushRequest {
  /** Due once this many items have been taken by the run loop. */
  readonly upTo: number;
  /** The flights (by batch) holding those items that have not settled yet. */
  readonly unsettled: Set<object>;
  /**
   * One resolver per caller, each for a promise made in that caller's call:
   * Workers run a promise's reactions only in the request that created it.
   */
  readonly callers: (() => void)[];
}

/**
 * The line of `flush()` requests. A request is due once the run loop has
 * taken every item accepted before it; it is answered with a manual flush and
 * resolved once every flight holding its items has settled.
 */
export class FlushRequests {
  readonly #queue: FlushRequest[] = [];
  /** Answered requests still waiting for their flights to settle. */
  readonly #answered = new Set<FlushRequest>();

  /**
   * Joins the request for the same items, or queues a new one (true). A
   * caller without `resolve` (a flush() from inside flush) only asks for the
   * manual flush.
   */
  add(upTo: number, inFlight: Iterable<object>, resolve: (() => void) | undefined): boolean {
    let request = this.#queue.at(-1);
    const isNew = request === undefined || request.upTo !== upTo;
    if (isNew) {
      request = { upTo, unsettled: new Set(inFlight), callers: [] };
      this.#queue.push(request);
    }
    if (resolve !== undefined) request!.callers.push(resolve);
    return isNew;
  }

  /** True while some request is queued (due or not). */
  get pending(): boolean {
    return this.#queue.length > 0;
  }

  /** True when the oldest request's items have all been taken. */
  isDue(taken: number): boolean {
    return this.#queue.length > 0 && taken >= this.#queue[0].upTo;
  }

  /** The oldest request got its manual flush: resolve it now or once its flights settle. */
  answer(): void {
    const request = this.#queue.shift()!;
    if (request.unsettled.size > 0) this.#answered.add(request);
    else for (const resolve of request.callers) resolve();
  }

  /** A flight started: every queued request waits for it too. */
  flightStarted(flight: object): void {
    for (const request of this.#queue) request.unsettled.add(flight);
  }

  /** A flight settled: resolve the answered requests that waited only for it. */
  flightSettled(flight: object): void {
    for (const request of this.#queue) request.unsettled.delete(flight);
    for (const request of this.#answered) {
      request.unsettled.delete(flight);
      if (request.unsettled.size === 0) {
        this.#answered.delete(request);
        for (const resolve of request.callers) resolve();
      }
    }
  }
}
