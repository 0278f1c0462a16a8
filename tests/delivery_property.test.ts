// Fault-injection properties for delivery (issue 13; see tests/delivery_model.ts):
// a random backend fails whole batches or random subsets, throws with or
// without retryAfter, hangs past flushTimeout or until aborted, under
// fast-check's scheduler and a fake clock. BATCHKIT_PROPERTY_RUNS sets the
// runs per property (default 1000).
import { checkDeliveryProperty, DELIVERY_PROPERTIES } from "./delivery_model.ts";
import { test } from "./harness.ts";

for (const property of DELIVERY_PROPERTIES) {
  test(property.name, () => checkDeliveryProperty(property));
}
