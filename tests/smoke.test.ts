import assert from "node:assert/strict";
import { BatchBuffer } from "../mod.ts";
import { test } from "./harness.ts";

test("BatchBuffer batches items by capacity and flushes the rest on close", async () => {
  const batches: number[][] = [];
  const buffer = new BatchBuffer<number>({
    capacity: 3,
    flush: (batch) => void batches.push(batch),
  });
  const running = buffer.run();
  for (let i = 0; i < 7; i++) await buffer.add(i);
  buffer.close();
  await running;
  assert.deepEqual(batches, [[0, 1, 2], [3, 4, 5], [6]]);
});
