// The hook fuzz of issue 11 (see tests/fuzz_model.ts): random re-entrant calls
// from every hook and random hook results, under random schedules.
// BATCHKIT_PROPERTY_RUNS sets the runs per property (default 1000), as for
// tests/property.test.ts.
import assert from "node:assert/strict";
import { checkFuzz, FUZZ_PROPERTIES, fuzzCoverage } from "./fuzz_model.ts";
import { PROPERTY_RUNS } from "./model.ts";
import { test } from "./harness.ts";

for (const property of FUZZ_PROPERTIES) {
  test(property.name, async () => {
    const before = { ...fuzzCoverage };
    await checkFuzz(PROPERTY_RUNS, property.shape);
    if (PROPERTY_RUNS < 100) return;
    // Not vacuous: the scenarios reached what the checks are about.
    const reached = (key: keyof typeof fuzzCoverage) => fuzzCoverage[key] - before[key];
    assert.ok(reached("reentries") > 0, "no hook called back into the buffer");
    assert.ok(reached("reentrantFlushCalls") > 0, "no hook called flush()");
    assert.ok(reached("flushCallsChecked") > 0, "no flush() promise resolved");
    assert.ok(reached("okFlushes") > 0 && reached("failedFlushes") > 0, "no mix of outcomes");
    assert.ok(reached("refusedByClose") > 0 && reached("refusedByAbort") > 0, "no refusals");
    assert.ok(reached("hookErrorsReported") > 0, "no hook error was reported");
    if (property.shape === "wide") assert.ok(reached("rejected") > 0, "no item reached onReject");
  });
}
