// Calls into the user's hooks, guarded so that no hook can stop the run loop.
// Internal: not exported from mod.ts.
import type { ResolvedConfig } from "./config.ts";
import type { Ticket } from "./entry.ts";
import { DeliveryError } from "./errors.ts";

/** The predicate hooks, which must answer synchronously. */
const PREDICATES = ["willOverflow", "canAdd", "shouldFlush"] as const;

/** Prints an error where nothing else can take it; a console that throws is ignored. */
export function printError(error: unknown): void {
  try {
    console.error(error);
  } catch {
    // Nowhere left to report to, and the run loop must go on.
  }
}

/** True for a value with a callable `then`. Reading `then` may throw: callers guard it. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === "function";
}

/**
 * The guarded hook calls of one buffer. Every method returns normally,
 * whatever the hook does: throwing, rejecting, or answering nonsense.
 */
export class Hooks<T> {
  readonly #config: ResolvedConfig<T>;
  /** Predicates already reported for returning a promise (once each). */
  #asyncReported: Set<unknown> | undefined;

  constructor(config: ResolvedConfig<T>) {
    this.#config = config;
  }

  /**
   * Hands an error to onError, or prints it. Never throws and leaves nothing
   * unhandled: what onError throws or rejects with is printed instead.
   */
  report(error: unknown): void {
    const onError = this.#config.onError;
    if (onError === undefined) return printError(error);
    try {
      const result: unknown = onError(error);
      if (isThenable(result)) Promise.resolve(result).then(undefined, printError);
    } catch (secondError) {
      printError(secondError);
    }
  }

  /** Calls a void hook; what it throws, or rejects with if it is async, goes to onError. */
  call(callback: () => unknown): void {
    try {
      const result = callback();
      if (isThenable(result)) {
        Promise.resolve(result).then(undefined, (error) => this.report(error));
      }
    } catch (error) {
      this.report(error);
    }
  }

  /**
   * Asks a predicate hook; a hook that throws gets its default answer, and so
   * does one that returns a promise (always truthy, so surely a mistake).
   */
  ask<A, B>(hook: (a: A, b: B) => unknown, a: A, b: B, fallback: boolean): boolean {
    try {
      const answer = hook(a, b);
      if (typeof answer !== "object" || answer === null) return Boolean(answer);
      if (!isThenable(answer)) return true;
      this.#refuseAsync(hook, answer);
    } catch (error) {
      this.report(error);
    }
    return fallback;
  }

  /** The size sizeOf gives an item; NaN (an invalid size) when it throws. */
  measure(item: T): number {
    try {
      return this.#config.sizeOf!(item);
    } catch (error) {
      this.report(error);
      return NaN;
    }
  }

  /** An accepted item that will not be flushed goes to onReject; its send() rejects. */
  rejected(item: T, ticket: Ticket | undefined, why: string): void {
    ticket?.reject(new DeliveryError(item, new Error(`The buffer refused the item: ${why}`)));
    const onReject = this.#config.onReject;
    if (onReject !== undefined) this.call(() => onReject(item));
  }

  /** Hands a promise to the waitUntil hook, when there is one. */
  waitUntil(promise: Promise<void>): void {
    const waitUntil = this.#config.waitUntil;
    if (waitUntil !== undefined) this.call(() => waitUntil(promise));
  }

  #refuseAsync(hook: unknown, answer: PromiseLike<unknown>): void {
    Promise.resolve(answer).then(undefined, (error) => this.report(error));
    this.#asyncReported ??= new Set();
    if (this.#asyncReported.has(hook)) return;
    this.#asyncReported.add(hook);
    const name = PREDICATES.find((key) => this.#config[key] === hook);
    this.report(
      new TypeError(
        `${name} returned a promise, which the buffer cannot wait for: it must return a boolean ` +
          "synchronously. Its default answer is used instead.",
      ),
    );
  }
}
