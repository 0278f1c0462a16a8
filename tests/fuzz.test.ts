// The hook fuzz of issue 11 (see tests/fuzz_model.ts): random re-entrant calls
// from every hook and random hook results, under random schedules.
// BATCHKIT_PROPERTY_RUNS sets the runs (default 1000), as for tests/property.test.ts.
import assert from "node:assert/strict";
import { checkFuzz, FUZZ_NAME, fuzzCoverage } from "./fuzz_model.ts";
import { PROPERTY_RUNS } from "./model.ts";
import { test } from "./harness.ts";

test(FUZZ_NAME, async () => {
  await checkFuzz(PROPERTY_RUNS);
  if (PROPERTY_RUNS < 100) return;
  // Not vacuous: the scenarios reached what the checks are about.
  assert.ok(fuzzCoverage.reentries > 0, "no hook called back into the buffer");
  assert.ok(fuzzCoverage.reentrantFlushCalls > 0, "no hook called flush()");
  assert.ok(fuzzCoverage.flushCallsChecked > 0, "no flush() promise resolved");
  assert.ok(fuzzCoverage.okFlushes > 0 && fuzzCoverage.failedFlushes > 0, "no mix of outcomes");
  assert.ok(fuzzCoverage.refusedByClose > 0 && fuzzCoverage.refusedByAbort > 0, "no refusals");
  assert.ok(fuzzCoverage.rejected > 0, "no item reached onReject");
  assert.ok(fuzzCoverage.hookErrorsReported > 0, "no hook error was reported");
});
