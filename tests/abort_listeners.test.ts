import assert from "node:assert/strict";
import { AbortListeners } from "../src/abort_listeners.ts";
import { test } from "./harness.ts";

test("AbortListeners calls back once with the watched keys, in the order added, when the signal aborts", () => {
  const calls: [string, unknown][] = [];
  const listeners = new AbortListeners<string>((keys, signal) => {
    for (const key of keys) calls.push([key, signal.reason]);
  });
  const controller = new AbortController();
  for (const key of ["a", "b", "c"]) listeners.add(controller.signal, key);
  listeners.delete(controller.signal, "b");
  controller.abort("why");
  controller.abort("again"); // a second abort dispatches nothing
  assert.deepEqual(calls, [["a", "why"], ["c", "why"]]);
  assert.equal(listeners.size, 0);
});

test("AbortListeners stops listening when the last key of a signal is deleted", () => {
  const calls: string[] = [];
  const listeners = new AbortListeners<string>((keys) => calls.push(...keys));
  const first = new AbortController();
  const second = new AbortController();
  listeners.add(first.signal, "a");
  listeners.add(second.signal, "b");
  assert.equal(listeners.size, 2);
  listeners.delete(first.signal, "a");
  listeners.delete(first.signal, "a"); // deleting twice, or an unknown key, changes nothing
  listeners.delete(second.signal, "zzz");
  assert.equal(listeners.size, 1);
  first.abort();
  second.abort();
  assert.deepEqual(calls, ["b"]);
});

test("AbortListeners can watch a signal again after its group was emptied", () => {
  const calls: number[] = [];
  const listeners = new AbortListeners<number>((keys) => calls.push(...keys));
  const controller = new AbortController();
  listeners.add(controller.signal, 1);
  listeners.delete(controller.signal, 1);
  listeners.add(controller.signal, 2);
  controller.abort();
  assert.deepEqual(calls, [2]);
});

test("AbortListeners ignores a synthetic abort event and keeps listening for the real one", () => {
  const calls: string[] = [];
  const listeners = new AbortListeners<string>((keys) => calls.push(...keys));
  const controller = new AbortController();
  listeners.add(controller.signal, "a");
  controller.signal.dispatchEvent(new Event("abort"));
  assert.deepEqual(calls, []);
  assert.equal(listeners.size, 1);
  controller.abort();
  assert.deepEqual(calls, ["a"]);
});

test("AbortListeners.rekey() renames a wait, which then calls back last", () => {
  const calls: number[] = [];
  const listeners = new AbortListeners<number>((keys) => calls.push(...keys));
  const controller = new AbortController();
  for (const key of [10, 20, 30]) listeners.add(controller.signal, key);
  listeners.rekey(controller.signal, 10, 1);
  listeners.rekey(controller.signal, 99, 2); // an unknown key is not added
  listeners.delete(controller.signal, 10); // the old name is gone
  controller.abort();
  assert.deepEqual(calls, [20, 30, 1]);
});
