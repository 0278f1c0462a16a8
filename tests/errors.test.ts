import assert from "node:assert/strict";
import { AddAllError, BatchBuffer, BufferClosedError, DeliveryError } from "../mod.ts";
import { test } from "./harness.ts";

test("BufferClosedError is an Error named BufferClosedError that carries the item", () => {
  const item = { id: 7 };
  const error = new BufferClosedError(item);
  assert.ok(error instanceof Error);
  assert.equal(error.name, "BufferClosedError");
  assert.equal(error.message, "The buffer is closed, so the item was not added");
  assert.equal(error.item, item);
  assert.match(String(error), /^BufferClosedError: /);
});

test("BufferClosedError carries an undefined item as undefined", () => {
  const error = new BufferClosedError(undefined);
  assert.ok("item" in error);
  assert.equal(error.item, undefined);
});

test("AddAllError reports how many items were accepted and why it stopped", () => {
  const cause = new Error("iterable failed");
  const error = new AddAllError(3, cause);
  assert.ok(error instanceof Error);
  assert.equal(error.name, "AddAllError");
  assert.equal(error.message, "addAll() stopped after queueing 3 items");
  assert.equal(error.accepted, 3);
  assert.equal(error.cause, cause);
});

test("BatchBuffer.add() after close() rejects with a BufferClosedError holding that very item", async () => {
  const buffer = new BatchBuffer<object>({ flush: () => {} });
  buffer.close();
  const item = { id: 1 };
  await assert.rejects(buffer.add(item), (error: unknown) => {
    assert.ok(error instanceof BufferClosedError);
    assert.equal(error.item, item);
    return true;
  });
  await buffer[Symbol.asyncDispose]();
});

test("DeliveryError is an Error named DeliveryError that carries the item and why", () => {
  const item = { id: 7 };
  const cause = new Error("backend answered 503");
  const error = new DeliveryError(item, cause);
  assert.ok(error instanceof Error);
  assert.ok(!(error instanceof BufferClosedError));
  assert.equal(error.name, "DeliveryError");
  assert.equal(error.message, "The item was not delivered");
  assert.equal(error.item, item);
  assert.equal(error.cause, cause);
  assert.match(String(error), /^DeliveryError: /);
});

test("DeliveryError keeps a cause that is not an Error, and an undefined item", () => {
  const error = new DeliveryError(undefined, "timeout");
  assert.ok("item" in error);
  assert.equal(error.item, undefined);
  assert.equal(error.cause, "timeout");
  const noReason = new DeliveryError(1, undefined);
  assert.ok("cause" in noReason);
  assert.equal(noReason.cause, undefined);
});
