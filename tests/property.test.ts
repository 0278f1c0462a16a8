// Model-based properties (see tests/model.ts): fast-check's scheduler explores
// interleavings of producers, flush completions, fake-clock timers and aborts.
// BATCHKIT_PROPERTY_RUNS sets the runs per property (default 1000).
import { checkProperty, PROPERTIES } from "./model.ts";
import { test } from "./harness.ts";

for (const property of PROPERTIES) {
  test(property.name, () => checkProperty(property));
}
