// Model-based properties for batches by key and the byte bound (issue 12, see
// tests/keyed_model.ts): random keys, maxOpenBatches, maxBufferedBytes and item
// sizes under fast-check's scheduler. BATCHKIT_PROPERTY_RUNS sets the runs per
// property (default 1000).
import assert from "node:assert/strict";
import { checkKeyedProperty, KEYED_PROPERTIES, keyedCoverage } from "./keyed_model.ts";
import { test } from "./harness.ts";

for (const property of KEYED_PROPERTIES) {
  test(property.name, () => checkKeyedProperty(property));
}

test("the keyed properties exercised keys, eviction, concurrency and the byte bound", () => {
  // Runs after the properties above (one file's tests run in order): a model
  // that never evicts, overlaps keys or waits for bytes would prove nothing.
  assert.ok(keyedCoverage.runs > 0, "no scenario ran");
  for (const reason of ["full", "overflow", "interval", "close", "manual", "evict"]) {
    assert.ok(keyedCoverage.reasons[reason] > 0, `no flush with reason ${reason}`);
  }
  assert.ok(keyedCoverage.concurrentAcrossKeys > 0, "keys never flushed concurrently");
  assert.ok(keyedCoverage.waitedForBytes > 0, "no add waited for bytes");
  assert.ok(keyedCoverage.maxOpenBatchesSeen > 1, "never more than one open batch");
  assert.ok(keyedCoverage.rejected > 0, "nothing went to onReject");
});
