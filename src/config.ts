// Validation and defaults for BatchBufferConfig. Internal: not exported from mod.ts.
import { type ResolvedRetry, resolveRetryOptions } from "./retry_policy.ts";
import type { BatchBufferConfig } from "./batch_buffer_config.ts";

/**
 * A config with every default filled in and every value checked. It always has
 * the same keys in the same order, so the run loop's property reads stay fast.
 */
export interface ResolvedConfig<T> {
  readonly flush: BatchBufferConfig<T>["flush"];
  readonly willOverflow: BatchBufferConfig<T>["willOverflow"];
  readonly canAdd: BatchBufferConfig<T>["canAdd"];
  readonly onReject: BatchBufferConfig<T>["onReject"];
  readonly shouldFlush: BatchBufferConfig<T>["shouldFlush"];
  readonly onFlushError: BatchBufferConfig<T>["onFlushError"];
  readonly onError: BatchBufferConfig<T>["onError"];
  readonly waitUntil: BatchBufferConfig<T>["waitUntil"];
  readonly sizeOf: BatchBufferConfig<T>["sizeOf"];
  readonly capacity: number;
  readonly chanSize: number;
  readonly flushInterval: number;
  readonly maxConcurrentFlushes: number;
  readonly maxBatchBytes: number;
  readonly maxItemBytes: number;
  readonly maxBufferedBytes: number;
  readonly maxOpenBatches: number;
  /** Absent: no retry. */
  readonly retry: ResolvedRetry | undefined;
  readonly flushTimeout: number;
  readonly key: BatchBufferConfig<T>["key"];
  /** No sizeOf, willOverflow, canAdd, shouldFlush or key: an item only needs appending. */
  readonly plain: boolean;
}

const HOOKS = [
  "willOverflow",
  "canAdd",
  "onReject",
  "shouldFlush",
  "onFlushError",
  "onError",
  "waitUntil",
  "sizeOf",
  "key",
] as const;

/** Describes a received value for an error message: `0`, `"10"`, `an object`. */
export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return "a function";
  if (value === null || typeof value !== "object") return String(value);
  try {
    if (Array.isArray(value)) return "an array";
    const name: unknown = Object.getPrototypeOf(value)?.constructor?.name;
    return typeof name === "string" && name !== "" && name !== "Object"
      ? `an instance of ${name}`
      : "an object";
  } catch {
    return "an object"; // a Proxy or a getter that throws: describing must never throw
  }
}

function positiveInteger(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, received ${describe(value)}`);
  }
  return value;
}

function positiveNumber(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value > 0)) {
    throw new RangeError(`${name} must be a positive number, received ${describe(value)}`);
  }
  return value;
}

/**
 * Checks a user's config and fills in the defaults.
 *
 * @throws {TypeError} when `flush` or a hook is not a function.
 * @throws {RangeError} when a number is out of range.
 */
export function resolveConfig<T>(config: BatchBufferConfig<T>): ResolvedConfig<T> {
  if (config === null || typeof config !== "object") {
    throw new TypeError(`config must be an object, received ${describe(config)}`);
  }
  if (typeof config.flush !== "function") {
    throw new TypeError(`flush must be a function, received ${describe(config.flush)}`);
  }
  for (const hook of HOOKS) {
    const value = config[hook];
    if (value !== undefined && typeof value !== "function") {
      throw new TypeError(`${hook} must be a function, received ${describe(value)}`);
    }
  }
  const capacity = positiveInteger("capacity", config.capacity, 100);
  const chanSize = positiveInteger("chanSize", config.chanSize, 2 * capacity);
  const flushInterval = positiveNumber("flushInterval", config.flushInterval, 5000);
  const maxConcurrentFlushes = positiveInteger(
    "maxConcurrentFlushes",
    config.maxConcurrentFlushes,
    1,
  );
  const maxOpenBatches = positiveInteger("maxOpenBatches", config.maxOpenBatches, 1000);
  const maxBatchBytes = positiveNumber("maxBatchBytes", config.maxBatchBytes, Infinity);
  const maxBufferedBytes = positiveNumber("maxBufferedBytes", config.maxBufferedBytes, Infinity);
  const maxItemBytes = positiveNumber(
    "maxItemBytes",
    config.maxItemBytes,
    Math.min(maxBatchBytes, maxBufferedBytes),
  );
  for (
    const [name, limit] of [["maxBatchBytes", maxBatchBytes], [
      "maxBufferedBytes",
      maxBufferedBytes,
    ]] as const
  ) {
    if (maxItemBytes > limit) {
      throw new RangeError(
        `maxItemBytes must not exceed ${name} (${limit}), received ${maxItemBytes}`,
      );
    }
  }
  // Infinity, the documented default, sets no budget and so needs no sizeOf.
  const budgeted = maxBatchBytes !== Infinity || maxItemBytes !== Infinity ||
    maxBufferedBytes !== Infinity;
  if (budgeted && config.sizeOf === undefined) {
    throw new TypeError(
      "sizeOf must be a function when maxBatchBytes, maxItemBytes or maxBufferedBytes is set, " +
        "received undefined",
    );
  }
  return {
    flush: config.flush,
    willOverflow: config.willOverflow,
    canAdd: config.canAdd,
    onReject: config.onReject,
    shouldFlush: config.shouldFlush,
    onFlushError: config.onFlushError,
    onError: config.onError,
    waitUntil: config.waitUntil,
    sizeOf: config.sizeOf,
    capacity,
    chanSize,
    flushInterval,
    maxConcurrentFlushes,
    maxBatchBytes,
    maxItemBytes,
    maxBufferedBytes,
    maxOpenBatches,
    retry: config.retry === undefined ? undefined : resolveRetryOptions(config.retry),
    flushTimeout: positiveNumber("flushTimeout", config.flushTimeout, Infinity),
    key: config.key,
    plain: config.sizeOf === undefined && config.willOverflow === undefined &&
      config.canAdd === undefined && config.shouldFlush === undefined && config.key === undefined,
  };
}
