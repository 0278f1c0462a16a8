// parseRetryAfter: the Retry-After header (RFC 9110, section 10.2.3) as milliseconds.
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseRetryAfter } from "../src/retry_after.ts";
import { test } from "./harness.ts";
import { installClock } from "./helpers.ts";

const NOW = Date.UTC(2015, 9, 21, 7, 28, 0); // Wed, 21 Oct 2015 07:28:00 GMT

test("delta-seconds become milliseconds", () => {
  assert.equal(parseRetryAfter("0", NOW), 0);
  assert.equal(parseRetryAfter("1", NOW), 1_000);
  assert.equal(parseRetryAfter("120", NOW), 120_000);
  assert.equal(parseRetryAfter("007", NOW), 7_000);
  assert.equal(parseRetryAfter("86400", NOW), 86_400_000);
});

test("delta-seconds do not depend on the clock", () => {
  assert.equal(parseRetryAfter("5", 0), 5_000);
  assert.equal(parseRetryAfter("5", NOW), 5_000);
});

test("surrounding whitespace is ignored", () => {
  assert.equal(parseRetryAfter("  30 ", NOW), 30_000);
  assert.equal(parseRetryAfter("\t30\t", NOW), 30_000);
  assert.equal(parseRetryAfter(" Wed, 21 Oct 2015 07:28:10 GMT ", NOW), 10_000);
});

test("an IMF-fixdate becomes the time left until it", () => {
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", NOW), 0);
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:29:30 GMT", NOW), 90_000);
  assert.equal(parseRetryAfter("Thu, 22 Oct 2015 07:28:00 GMT", NOW), 86_400_000);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:00 GMT", NOW), Date.UTC(2026, 0, 1) - NOW);
});

test("a date less than a second ahead keeps its milliseconds", () => {
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:01 GMT", NOW + 250), 750);
});

test("a date in the past means retry now: 0", () => {
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:27:59 GMT", NOW), 0);
  assert.equal(parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", NOW), 0);
  assert.equal(parseRetryAfter("Thu, 01 Jan 1970 00:00:00 GMT", NOW), 0);
});

test("the obsolete RFC 850 form is read as UTC", () => {
  assert.equal(parseRetryAfter("Wednesday, 21-Oct-15 07:29:00 GMT", NOW), 60_000);
  assert.equal(parseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", NOW), 0);
});

test("an RFC 850 two-digit year more than 50 years ahead is read as the past century", () => {
  const now = Date.UTC(2030, 0, 1);
  // 2080 is 50 years ahead, so it stays; 2081 would be 51, so "81" is 1981.
  assert.equal(parseRetryAfter("Monday, 01-Jan-80 00:00:00 GMT", now), Date.UTC(2080, 0, 1) - now);
  assert.equal(parseRetryAfter("Thursday, 01-Jan-81 00:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter("Monday, 01-Jan-35 00:00:00 GMT", now), Date.UTC(2035, 0, 1) - now);
});

test("the obsolete asctime form is read as UTC, with a one-digit day padded by a space", () => {
  assert.equal(parseRetryAfter("Wed Oct 21 07:28:45 2015", NOW), 45_000);
  const early = Date.UTC(2015, 10, 6, 8, 49, 0);
  assert.equal(parseRetryAfter("Fri Nov  6 08:49:37 2015", early), 37_000);
});

test("asctime without a zone is not read in the local time zone", () => {
  // Only meaningful where the local zone is not UTC, but true everywhere.
  const local = Date.parse("Wed Oct 21 07:28:45 2015");
  const parsed = parseRetryAfter("Wed Oct 21 07:28:45 2015", NOW);
  assert.equal(parsed, 45_000);
  if (local !== Date.UTC(2015, 9, 21, 7, 28, 45)) assert.notEqual(NOW + parsed!, local);
});

test("names of days and months are matched case-insensitively", () => {
  assert.equal(parseRetryAfter("wed, 21 oct 2015 07:28:05 gmt", NOW), 5_000);
  assert.equal(parseRetryAfter("WED, 21 OCT 2015 07:28:05 GMT", NOW), 5_000);
});

test("a leap second is carried into the next minute", () => {
  assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:60 GMT", NOW), 60_000);
});

test("null, empty and whitespace-only headers give undefined", () => {
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter(""), undefined);
  assert.equal(parseRetryAfter("   "), undefined);
});

test("garbage, negative, fractional and signed values give undefined", () => {
  const garbage = [
    "-1",
    "+5",
    "1.5",
    "1e3",
    "0x10",
    "Infinity",
    "NaN",
    "soon",
    "120 seconds",
    "1 2",
    "120, 120",
    "١٢٠", // Arabic-Indic digits are not DIGIT
    "2015-10-21T07:28:00Z", // ISO 8601 is not an HTTP-date
    "Wed, 21 Oct 2015 07:28:00", // no zone
    "Wed, 21 Oct 2015 07:28:00 UTC",
    "Wed, 21 Oct 2015 07:28:00 +0000",
    "Wed, 21 Oct 15 07:28:00 GMT", // two-digit year in IMF-fixdate
    "Wed, 1 Oct 2015 07:28:00 GMT", // one-digit day
    "Wed 21 Oct 2015 07:28:00 GMT", // no comma
    "Wen, 21 Oct 2015 07:28:00 GMT",
    "Wed, 21 Okt 2015 07:28:00 GMT",
    "Wed, 21 Oct 2015 7:28:00 GMT",
    "Wed, 21-Oct-15 07:28:00 GMT", // RFC 850 needs the long day name
    "Wed Oct 21 07:28:45 15",
    "foo 12", // V8's Date.parse takes this for a date
  ];
  for (const value of garbage) assert.equal(parseRetryAfter(value, NOW), undefined, value);
});

test("impossible dates and times give undefined instead of rolling over", () => {
  const impossible = [
    "Sat, 31 Feb 2015 00:00:00 GMT",
    "Thu, 29 Feb 2015 00:00:00 GMT", // 2015 is not a leap year
    "Thu, 31 Apr 2015 00:00:00 GMT",
    "Thu, 00 Oct 2015 00:00:00 GMT",
    "Thu, 32 Oct 2015 00:00:00 GMT",
    "Thu, 22 Oct 2015 24:00:00 GMT",
    "Thu, 22 Oct 2015 23:60:00 GMT",
    "Thu, 22 Oct 2015 23:59:61 GMT",
    "Sunday, 31-Feb-16 00:00:00 GMT",
    "Sun Feb 30 00:00:00 2016",
  ];
  for (const value of impossible) assert.equal(parseRetryAfter(value, NOW), undefined, value);
  assert.equal(
    parseRetryAfter("Mon, 29 Feb 2016 00:00:00 GMT", NOW),
    Date.UTC(2016, 1, 29) - NOW,
  );
});

test("the day name is not checked against the date, as HTTP recipients are told to be lenient", () => {
  assert.equal(parseRetryAfter("Mon, 21 Oct 2015 07:28:05 GMT", NOW), 5_000);
});

test("a number of seconds too large for a double gives undefined, not Infinity", () => {
  assert.equal(parseRetryAfter("9".repeat(400), NOW), undefined);
  assert.equal(parseRetryAfter("9".repeat(20), NOW), 99999999999999999999 * 1000);
});

test("a value that is not a string gives undefined instead of throwing", () => {
  for (const value of [undefined, 5, {}, ["1"]]) {
    assert.equal(parseRetryAfter(value as unknown as string, NOW), undefined);
  }
});

test("without a now argument the current time is Date.now()", () => {
  const clock = installClock();
  try {
    clock.setSystemTime(NOW);
    assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:20 GMT"), 20_000);
    clock.tick(5_000);
    assert.equal(parseRetryAfter("Wed, 21 Oct 2015 07:28:20 GMT"), 15_000);
  } finally {
    clock.uninstall();
  }
});

test("every IMF-fixdate that Date.prototype.toUTCString writes reads back exactly", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: Date.UTC(1000, 0, 1), max: Date.UTC(9999, 11, 31) }),
      fc.integer({ min: Date.UTC(1000, 0, 1), max: Date.UTC(9999, 11, 31) }),
      (at, now) => {
        const whole = at - (((at % 1000) + 1000) % 1000);
        const header = new Date(whole).toUTCString();
        assert.equal(parseRetryAfter(header, now), Math.max(0, whole - now), header);
      },
    ),
  );
});

test("every non-negative integer of seconds reads back as that many milliseconds", () => {
  fc.assert(
    fc.property(fc.nat(), (seconds) => {
      assert.equal(parseRetryAfter(String(seconds), NOW), seconds * 1000);
    }),
  );
});
