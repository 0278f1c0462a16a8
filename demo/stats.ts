// Small measuring and formatting helpers for the demo.

/** Collects durations (ms) in a preallocated array, so recording costs no allocation. */
export class Durations {
  #values: Float64Array;
  #count = 0;

  /** @param expected How many durations to make room for up front (it grows past a million). */
  constructor(expected: number) {
    this.#values = new Float64Array(Math.min(expected, 1_000_000));
  }

  record(ms: number): void {
    if (this.#count === this.#values.length) {
      const grown = new Float64Array(this.#values.length * 2 || 1);
      grown.set(this.#values);
      this.#values = grown;
    }
    this.#values[this.#count++] = ms;
  }

  /** The nearest-rank percentiles, e.g. `percentiles(50, 99)`. */
  percentiles(...ranks: number[]): number[] {
    const sorted = this.#values.slice(0, this.#count).sort();
    return ranks.map((rank) =>
      sorted.length === 0 ? 0 : sorted[Math.max(0, Math.ceil((rank / 100) * sorted.length) - 1)]
    );
  }
}

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });

/** `1234567` -> `1,234,567`. */
export const count = (n: number): string => integer.format(n);

/** Milliseconds with a unit: `0.004 ms`, `12.3 ms`, `2.51 s`. */
export function duration(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${decimal.format(ms)} ms`;
  return `${ms.toPrecision(2)} ms`;
}

/** Items per second over `ms` milliseconds: `123,456/s`. */
export const rate = (items: number, ms: number): string =>
  `${count(ms > 0 ? (items * 1000) / ms : 0)}/s`;
