/**
 * {@linkcode parseRetryAfter}: the `Retry-After` HTTP header as milliseconds.
 *
 * @module
 */

const DELTA_SECONDS = /^\d+$/;
const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAY = "(?:mon|tue|wed|thu|fri|sat|sun)";
const LONG_DAY = "(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)";
const MONTH = "(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)";
const TIME = "(\\d{2}):(\\d{2}):(\\d{2})";
// RFC 9110, section 5.6.7. Date.parse is not used: engines accept different
// garbage, and read the zone-less asctime form as local time.
/** `Sun, 06 Nov 1994 08:49:37 GMT` */
const IMF_FIXDATE = new RegExp(`^${DAY}, (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`, "i");
/** `Sunday, 06-Nov-94 08:49:37 GMT` (obsolete) */
const RFC_850 = new RegExp(`^${LONG_DAY}, (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`, "i");
/** `Sun Nov  6 08:49:37 1994` (obsolete; UTC) */
const ASCTIME = new RegExp(`^${DAY} ${MONTH} (\\d{2}| \\d) ${TIME} (\\d{4})$`, "i");

/**
 * Reads a `Retry-After` HTTP header as the number of milliseconds to wait,
 * ready for a `FlushOutcome`'s `retryAfter` (or a thrown error's
 * `retryAfter` property).
 *
 * Both forms of RFC 9110 are understood: delta-seconds (`"120"`, a
 * non-negative integer) and an HTTP-date (`"Wed, 21 Oct 2015 07:28:00 GMT"`,
 * and the obsolete RFC 850 and asctime forms, all in UTC). A date in the past
 * gives `0`. Surrounding whitespace is ignored. Anything else (`null`, `""`,
 * `"-1"`, `"1.5"`, `"soon"`, an impossible date) gives `undefined`, so the
 * buffer falls back to its own backoff.
 *
 * @param value The header, as `response.headers.get("retry-after")` returns it.
 * @param now The current time in ms since the epoch, to measure a date
 * against. Default: `Date.now()`.
 * @returns Milliseconds to wait, or `undefined`.
 *
 * @example Both header forms
 * ```ts
 * import { parseRetryAfter } from "@batchkit/buffer";
 * import assert from "node:assert/strict";
 *
 * assert.equal(parseRetryAfter("120"), 120_000);
 * const now = Date.UTC(2015, 9, 21, 7, 27, 30);
 * assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now), 30_000);
 * assert.equal(parseRetryAfter("soon"), undefined);
 * assert.equal(parseRetryAfter(null), undefined);
 * ```
 *
 * @example In a flush, on 429 and 503
 * ```ts
 * import { parseRetryAfter } from "@batchkit/buffer";
 *
 * class BackendError extends Error {
 *   constructor(readonly status: number, readonly retryAfter: number | undefined) {
 *     super(`backend answered ${status}`);
 *   }
 * }
 * async function flush(batch: unknown[]): Promise<void> {
 *   const response = await fetch("http://127.0.0.1:9/bulk", {
 *     method: "POST",
 *     body: JSON.stringify(batch),
 *   }).catch(() => undefined);
 *   if (response === undefined) return; // no backend in this example
 *   await response.body?.cancel();
 *   if (response.status === 429 || response.status === 503) {
 *     // The buffer waits exactly error.retryAfter ms before the next try.
 *     throw new BackendError(response.status, parseRetryAfter(response.headers.get("retry-after")));
 *   }
 *   if (!response.ok) throw new BackendError(response.status, undefined);
 * }
 * await flush([]);
 * ```
 */
export function parseRetryAfter(
  value: string | null,
  now: number = Date.now(),
): number | undefined {
  if (typeof value !== "string") return undefined;
  const text = value.trim();
  if (DELTA_SECONDS.test(text)) {
    const ms = Number(text) * 1000;
    return Number.isFinite(ms) ? ms : undefined;
  }
  const date = parseHttpDate(text, now);
  return date === undefined ? undefined : Math.max(0, date - now);
}

/** An HTTP-date in ms since the epoch, or `undefined` when it is not one. */
function parseHttpDate(text: string, now: number): number | undefined {
  let m = IMF_FIXDATE.exec(text);
  if (m !== null) return utc(+m[3], m[2], +m[1], +m[4], +m[5], +m[6]);
  m = RFC_850.exec(text);
  if (m !== null) {
    return utc(fullYear(+m[3], now), m[2], +m[1], +m[4], +m[5], +m[6]);
  }
  m = ASCTIME.exec(text);
  if (m !== null) return utc(+m[6], m[1], +m[2], +m[3], +m[4], +m[5]);
  return undefined;
}

/**
 * RFC 9110: a two-digit year that would be more than 50 years in the future
 * is the most recent past year with the same last two digits.
 */
function fullYear(twoDigits: number, now: number): number {
  const current = new Date(now).getUTCFullYear();
  let year = current - (current % 100) + twoDigits;
  if (year > current + 50) year -= 100;
  return year;
}

function utc(
  year: number,
  monthName: string,
  day: number,
  hour: number,
  minute: number,
  second: number,
): number | undefined {
  // 60 is a leap second; the Date carries it into the next minute.
  if (hour > 23 || minute > 59 || second > 60) return undefined;
  const month = MONTHS.indexOf(monthName.toLowerCase());
  const date = new Date(0);
  // Not Date.UTC(year, ...): it reads years 0 to 99 as 1900 to 1999.
  date.setUTCFullYear(year, month, day);
  // The Date carries 31 Feb into March: a date that moved did not exist.
  if (date.getUTCMonth() !== month || date.getUTCDate() !== day) return undefined;
  return date.setUTCHours(hour, minute, second);
}
