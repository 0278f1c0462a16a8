import fc from "fast-check";
import assert from "node:assert/strict";
import { BatchBuffer } from "../mod.ts";
import { Channel } from "../src/channel.ts";
import { deferred, settle } from "./helpers.ts";
import { test } from "./harness.ts";

/** Starts a consumer that takes every item as soon as it is ready, and then asks for more. */
function takeEverything<T>(channel: Channel<T>): T[] {
  const taken: T[] = [];
  channel.open(() => {
    while (channel.hasItem) taken.push(channel.take());
    channel.pull();
  });
  channel.pull();
  return taken;
}

/** Records how a promise settled, without awaiting it. */
function outcome(
  promise: Promise<void>,
): { state: "pending" | "resolved" | "rejected"; reason?: unknown } {
  const result: { state: "pending" | "resolved" | "rejected"; reason?: unknown } = {
    state: "pending",
  };
  promise.then(
    () => void (result.state = "resolved"),
    (reason) => {
      result.state = "rejected";
      result.reason = reason;
    },
  );
  return result;
}

test("Channel delivers items in the order they were sent", async () => {
  const channel = new Channel<number>(4);
  for (let i = 0; i < 4; i++) await channel.send(i);
  const taken = takeEverything(channel);
  for (let i = 4; i < 20; i++) await channel.send(i);
  await settle(1);
  assert.deepEqual(taken, Array.from({ length: 20 }, (_, i) => i));
  assert.equal(channel.size, 0);
});

test("Channel holds items without delivering them until open()", async () => {
  const channel = new Channel<string>(2);
  await channel.send("a");
  await settle(1);
  assert.equal(channel.size, 1);
  assert.equal(channel.hasItem, false);
  const taken = takeEverything(channel);
  await settle(1);
  assert.deepEqual(taken, ["a"]);
});

test("Channel.size never exceeds capacity with 5000 concurrent blocked senders, admitted in call order", async () => {
  const capacity = 8;
  const senders = 5000;
  const channel = new Channel<number>(capacity);
  let largestSize = 0;
  const observe = () => {
    largestSize = Math.max(largestSize, channel.size);
    assert.ok(channel.size <= capacity, `size ${channel.size} > capacity ${capacity}`);
  };
  const admitted: number[] = [];
  const sends: Promise<void>[] = [];
  for (let i = 0; i < senders; i++) {
    sends.push(
      channel.send(i).then(() => {
        admitted.push(i);
        observe();
      }),
    );
    observe();
  }
  assert.equal(channel.waiting, senders - capacity);
  const taken: number[] = [];
  // The consumer takes each item a microtask after it is offered, so waiters pile up and wake often.
  channel.open(() => {
    observe();
    queueMicrotask(() => {
      observe();
      if (channel.hasItem) taken.push(channel.take());
      if (!channel.hasItem) channel.pull();
      observe();
    });
  });
  channel.pull();
  await Promise.all(sends);
  while (taken.length < senders) await settle(1);
  const inOrder = Array.from({ length: senders }, (_, i) => i);
  assert.deepEqual(admitted, inOrder);
  assert.deepEqual(taken, inOrder);
  assert.equal(largestSize, capacity, "the channel did fill up");
  assert.equal(channel.size, 0);
  assert.equal(channel.waiting, 0);
});

test("Channel.send() with an already-aborted signal rejects with its reason even when there is room", async () => {
  const channel = new Channel<string>(4);
  const reason = new Error("gave up");
  await assert.rejects(channel.send("x", AbortSignal.abort(reason)), (error) => error === reason);
  assert.equal(channel.size, 0);
  const taken = takeEverything(channel);
  await channel.send("y");
  await settle(1);
  assert.deepEqual(taken, ["y"]);
});

test("Channel.send() whose signal aborts while waiting leaves the line and its item is never delivered", async () => {
  const channel = new Channel<string>(1);
  await channel.send("a");
  const controller = new AbortController();
  const waitingB = channel.send("b", controller.signal);
  const waitingC = channel.send("c");
  assert.equal(channel.waiting, 2);
  const reason = new Error("timeout");
  controller.abort(reason);
  await assert.rejects(waitingB, (error) => error === reason);
  assert.equal(channel.waiting, 1);
  assert.equal(channel.size, 1);
  const taken = takeEverything(channel);
  await waitingC;
  await settle(1);
  assert.deepEqual(taken, ["a", "c"]);
});

test("Channel keeps the order of the other waiters when a middle waiter aborts", async () => {
  const channel = new Channel<number>(1);
  await channel.send(0);
  const controllers = [1, 2, 3, 4].map(() => new AbortController());
  const sends = controllers.map((c, i) => channel.send(i + 1, c.signal));
  controllers[1].abort("two");
  controllers[3].abort("four");
  assert.equal(channel.waiting, 2);
  const taken = takeEverything(channel);
  await sends[0];
  await sends[2];
  await Promise.allSettled(sends);
  await settle(1);
  assert.deepEqual(taken, [0, 1, 3]);
});

test("Channel ignores an abort that comes after the item was admitted", async () => {
  const channel = new Channel<string>(1);
  await channel.send("a");
  const controller = new AbortController();
  const waitingB = channel.send("b", controller.signal);
  const taken = takeEverything(channel);
  await waitingB; // admitted once "a" was taken
  controller.abort(new Error("too late"));
  await settle(1);
  assert.deepEqual(taken, ["a", "b"]);
});

test("Channel.close() rejects every waiter with the error factory's value and keeps accepted items", async () => {
  const channel = new Channel<number>(2);
  await channel.send(1);
  await channel.send(2);
  const waiters = [3, 4, 5].map((item) => outcome(channel.send(item)));
  assert.equal(channel.waiting, 3);
  channel.close((item) => new Error(`closed before ${item}`));
  await settle(1);
  assert.deepEqual(
    waiters.map((w) => [w.state, (w.reason as Error).message]),
    [
      ["rejected", "closed before 3"],
      ["rejected", "closed before 4"],
      ["rejected", "closed before 5"],
    ],
  );
  assert.equal(channel.waiting, 0);
  assert.equal(channel.size, 2);
  const taken = takeEverything(channel);
  await settle(1);
  assert.deepEqual(taken, [1, 2]);
});

test("Channel.send() after close() rejects with the first error factory's value", async () => {
  const channel = new Channel<string>(2);
  channel.close((item) => new Error(`first ${item}`));
  channel.close((item) => new Error(`second ${item}`)); // a second close changes nothing
  await assert.rejects(channel.send("x"), { message: "first x" });
  await assert.rejects(channel.send("y", AbortSignal.abort()), { message: "first y" });
  assert.equal(channel.size, 0);
});

test("Channel.trySend() returns false when full and never jumps the line of waiting senders", async () => {
  const channel = new Channel<number>(2);
  assert.equal(channel.trySend(1), true);
  assert.equal(channel.trySend(2), true);
  assert.equal(channel.trySend(3), false, "full");
  assert.equal(channel.size, 2);
  const waiting4 = channel.send(4);
  const waiting5 = channel.send(5);
  assert.equal(channel.waiting, 2);
  const taken: number[] = [];
  const triedWhileWaitersQueued: boolean[] = [];
  channel.open(() => {
    const waitersBefore = channel.waiting;
    taken.push(channel.take());
    if (waitersBefore > 0) triedWhileWaitersQueued.push(channel.trySend(100 + taken.length));
    if (!channel.hasItem) channel.pull();
  });
  channel.pull();
  await waiting4;
  await waiting5;
  await settle(1);
  assert.deepEqual(triedWhileWaitersQueued, [false, false]);
  assert.deepEqual(taken, [1, 2, 4, 5]);
  assert.equal(channel.trySend(6), true, "room again once the line is empty");
  await settle(1);
  assert.deepEqual(taken, [1, 2, 4, 5, 6]);
});

/** Counts the listener calls made on one signal, passing them through. */
function countListenerCalls(signal: AbortSignal): { added: number; removed: number } {
  const counts = { added: 0, removed: 0 };
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = (...args: Parameters<AbortSignal["addEventListener"]>) => {
    counts.added++;
    add(...args);
  };
  signal.removeEventListener = (...args: Parameters<AbortSignal["removeEventListener"]>) => {
    counts.removed++;
    remove(...args);
  };
  return counts;
}

test("Channel registers one abort listener for 1,000 waiters sharing a signal, removed when the last is admitted", async () => {
  const channel = new Channel<number>(1);
  await channel.send(-1);
  const controller = new AbortController();
  const calls = countListenerCalls(controller.signal);
  const sends = Array.from({ length: 1000 }, (_, i) => channel.send(i, controller.signal));
  assert.deepEqual(calls, { added: 1, removed: 0 });
  assert.equal(channel.waiting, 1000);
  const taken: number[] = [];
  channel.open(() => {
    taken.push(channel.take());
    if (taken.length === 500) assert.deepEqual(calls, { added: 1, removed: 0 }, "half still wait");
    if (!channel.hasItem) channel.pull();
  });
  channel.pull();
  await Promise.all(sends);
  assert.deepEqual(calls, { added: 1, removed: 1 });
  while (taken.length < 1001) await settle(1);
  assert.deepEqual(taken, Array.from({ length: 1001 }, (_, i) => i - 1));
});

test("Channel rejects 1,000 waiters sharing a signal in arrival order when it aborts, through one listener", async () => {
  const channel = new Channel<number>(1);
  await channel.send(-1);
  const controller = new AbortController();
  const calls = countListenerCalls(controller.signal);
  const order: number[] = [];
  const reason = new Error("shutdown");
  const sends = Array.from(
    { length: 1000 },
    (_, i) =>
      channel.send(i, controller.signal).catch((error) => {
        assert.equal(error, reason);
        order.push(i);
      }),
  );
  const unsignalled = channel.send(1000);
  controller.abort(reason);
  await Promise.all(sends);
  assert.deepEqual(order, Array.from({ length: 1000 }, (_, i) => i));
  assert.deepEqual(calls, { added: 1, removed: 1 });
  assert.equal(channel.waiting, 1, "the waiter without the signal stays");
  const taken = takeEverything(channel);
  await unsignalled;
  await settle(1);
  assert.deepEqual(taken, [-1, 1000]);
});

test("Channel registers one abort listener per distinct signal, and none for waiters without one", async () => {
  const channel = new Channel<number>(1);
  await channel.send(0);
  const controllers = [new AbortController(), new AbortController()];
  const calls = controllers.map((c) => countListenerCalls(c.signal));
  const sends = [];
  for (let i = 1; i <= 10; i++) {
    sends.push(channel.send(i, controllers[i % 2].signal));
    sends.push(channel.send(-i));
  }
  assert.deepEqual(calls, [{ added: 1, removed: 0 }, { added: 1, removed: 0 }]);
  controllers[0].abort("even");
  assert.deepEqual(calls[0], { added: 1, removed: 1 });
  assert.equal(channel.waiting, 15);
  const taken = takeEverything(channel);
  await Promise.allSettled(sends);
  await settle(1);
  assert.deepEqual(calls, [{ added: 1, removed: 1 }, { added: 1, removed: 1 }]);
  const expected = [0];
  for (let i = 1; i <= 10; i++) {
    if (i % 2 === 1) expected.push(i);
    expected.push(-i);
  }
  assert.deepEqual(taken, expected);
});

test("Channel ignores a synthetic abort event on a signal that has not aborted", async () => {
  const channel = new Channel<string>(1);
  await channel.send("a");
  const controller = new AbortController();
  const waiting = outcome(channel.send("b", controller.signal));
  controller.signal.dispatchEvent(new Event("abort"));
  await settle(1);
  assert.equal(waiting.state, "pending");
  assert.equal(channel.waiting, 1);
  controller.abort("real"); // the listener is still there for the real abort
  await settle(1);
  assert.deepEqual([waiting.state, waiting.reason], ["rejected", "real"]);
  assert.equal(channel.waiting, 0);
});

test("Channel drops an aborted waiter's item from the line at once, and an admitted one's on admission", async () => {
  const channel = new Channel<{ id: number }>(1);
  await channel.send({ id: 0 });
  const items = [1, 2, 3].map((id) => ({ id }));
  const controller = new AbortController();
  const sends = [
    channel.send(items[0]),
    channel.send(items[1], controller.signal),
    channel.send(items[2]),
  ];
  assert.ok(channel.debugLine().includes(items[1]));
  controller.abort();
  await assert.rejects(sends[1]);
  // Still behind items[0], yet the line no longer references it.
  assert.ok(!channel.debugLine().includes(items[1]));
  assert.ok(channel.debugLine().includes(items[0]) && channel.debugLine().includes(items[2]));
  const taken = takeEverything(channel);
  await sends[0];
  assert.ok(!channel.debugLine().includes(items[0]));
  await sends[2];
  await settle(1);
  assert.deepEqual(taken.map((item) => item.id), [0, 1, 3]);
  assert.deepEqual(channel.debugLine(), [], "nobody waits: the line is empty");
});

test("Channel compacts a line of mostly aborted waiters and still aborts and admits the rest in order", async () => {
  const channel = new Channel<number>(1);
  await channel.send(-1);
  const shared = new AbortController();
  const own: AbortController[] = [];
  const rejected: number[] = [];
  const sends: Promise<void>[] = [];
  for (let i = 0; i < 4000; i++) {
    let signal: AbortSignal | undefined;
    if (i % 4 === 0) signal = shared.signal;
    else if (i % 4 !== 3) own.push(new AbortController()), signal = own.at(-1)!.signal;
    sends.push(channel.send(i, signal).catch(() => void rejected.push(i)));
  }
  const fullLength = channel.debugLine().length;
  for (const controller of own) controller.abort();
  assert.equal(channel.waiting, 2000);
  assert.ok(channel.debugLine().length <= fullLength / 2, "the dead slots were dropped");
  shared.abort(); // its waiters moved when the line was compacted
  assert.equal(channel.waiting, 1000);
  const taken = takeEverything(channel);
  await Promise.all(sends);
  await settle(1);
  const all = Array.from({ length: 4000 }, (_, i) => i);
  assert.deepEqual(rejected.sort((a, b) => a - b), all.filter((i) => i % 4 !== 3));
  assert.deepEqual(taken, [-1, ...all.filter((i) => i % 4 === 3)]);
});

type Op =
  | { kind: "send"; count: number; tag: "none" | "own" | 0 | 1 }
  | { kind: "abortShared"; tag: 0 | 1 }
  | { kind: "abortOwn"; every: number }
  | { kind: "take"; count: number };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("send" as const),
    count: fc.integer({ min: 1, max: 700 }),
    tag: fc.constantFrom("none" as const, "own" as const, 0 as const, 1 as const),
  }),
  fc.record({
    kind: fc.constant("abortShared" as const),
    tag: fc.constantFrom(0 as const, 1 as const),
  }),
  fc.record({ kind: fc.constant("abortOwn" as const), every: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant("take" as const), count: fc.integer({ min: 1, max: 800 }) }),
);

/**
 * Runs `ops` against a channel and a model of it: the count of items accepted
 * and not taken, and the line of waiting ids. Every accepted item has arrived
 * before the next op, so the test takes items by hand.
 */
async function checkAgainstModel(capacity: number, ops: readonly Op[]): Promise<void> {
  const channel = new Channel<{ id: number }>(capacity);
  channel.open(() => {}); // takes by hand below, pulling after every op
  let size = 0;
  const line: { id: number; tag: unknown }[] = [];
  const accepted: number[] = [];
  const taken: number[] = [];
  const shared = [new AbortController(), new AbortController()];
  const own = new Map<number, AbortController>();
  const settled = new Map<number, "resolved" | "rejected">();
  const sends: Promise<void>[] = [];
  const admit = () => {
    while (line.length > 0 && size < capacity) size++, accepted.push(line.shift()!.id);
  };
  const leave = (leaves: (waiter: { id: number; tag: unknown }) => boolean) => {
    for (let i = line.length - 1; i >= 0; i--) if (leaves(line[i])) line.splice(i, 1);
  };
  const take = (count: number) => {
    for (let n = Math.min(count, size); n > 0; n--) {
      assert.ok(channel.hasItem);
      taken.push(channel.take().id);
      size--;
      admit();
    }
  };
  for (const op of ops) {
    if (op.kind === "send") {
      for (let n = 0; n < op.count; n++) {
        const id = sends.length;
        if (op.tag === "own") own.set(id, new AbortController());
        const signal = op.tag === "own"
          ? own.get(id)!.signal
          : op.tag === "none"
          ? undefined
          : shared[op.tag].signal;
        const settle = (how: "resolved" | "rejected") => () => void settled.set(id, how);
        sends.push(channel.send({ id }, signal).then(settle("resolved"), settle("rejected")));
        line.push({ id, tag: op.tag });
        admit();
      }
    } else if (op.kind === "abortShared") {
      shared[op.tag].abort();
      shared[op.tag] = new AbortController();
      leave((w) => w.tag === op.tag);
    } else if (op.kind === "abortOwn") {
      const aborted = new Set<number>();
      let k = 0;
      for (const [id, controller] of own) {
        if (k++ % op.every !== 0) continue;
        controller.abort();
        own.delete(id);
        aborted.add(id);
      }
      leave((w) => aborted.has(w.id));
    } else {
      take(op.count);
    }
    channel.pull();
    await settle(1);
    assert.equal(channel.size, size);
    assert.equal(channel.waiting, line.length);
    assert.ok(channel.size <= capacity);
    const referenced = channel.debugLine().flatMap((slot) =>
      typeof slot === "object" && slot !== null && "id" in slot ? [slot.id as number] : []
    );
    assert.deepEqual(referenced, line.map((w) => w.id), "the line holds only its waiters");
  }
  for (const controller of own.values()) controller.abort();
  leave((w) => w.tag === "own");
  while (size > 0) {
    take(size);
    channel.pull();
    await settle(1);
  }
  await Promise.all(sends);
  assert.deepEqual(taken, accepted, "FIFO admission and delivery");
  const acceptedIds = new Set(accepted);
  for (let id = 0; id < sends.length; id++) {
    assert.equal(settled.get(id), acceptedIds.has(id) ? "resolved" : "rejected");
  }
}

test("Channel matches a FIFO model with an exact bound under random sends, aborts and takes", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 50 }),
      fc.array(opArbitrary, { maxLength: 12 }),
      checkAgainstModel,
    ),
    { numRuns: 60 },
  );
});

/** Runs `body` while counting the chunks written through any WritableStream writer. */
async function countingStreamWrites(body: (writes: () => number) => Promise<void>): Promise<void> {
  const prototype = WritableStreamDefaultWriter.prototype;
  const write = Object.getOwnPropertyDescriptor(prototype, "write")!;
  let writes = 0;
  Object.defineProperty(prototype, "write", {
    ...write,
    value: function (this: WritableStreamDefaultWriter, chunk: unknown) {
      writes++;
      return write.value.call(this, chunk);
    },
  });
  try {
    await body(() => writes);
  } finally {
    Object.defineProperty(prototype, "write", write);
  }
}

test("Channel keeps accepted items pending until pull(), which writes them all in one stream write", async () => {
  await countingStreamWrites(async (writes) => {
    const channel = new Channel<number>(8);
    let calls = 0;
    channel.open(() => void calls++);
    for (let i = 0; i < 5; i++) await channel.send(i);
    await settle(1);
    assert.deepEqual([channel.hasItem, calls, writes(), channel.size], [false, 0, 0, 5]);
    assert.equal(channel.pull(), true);
    await settle(1);
    assert.deepEqual([channel.hasItem, calls, writes()], [true, 5, 1]);
    const taken = [];
    while (channel.hasItem) taken.push(channel.take());
    assert.deepEqual(taken, [0, 1, 2, 3, 4]);
    assert.equal(channel.pull(), false, "nothing pending");
    assert.equal(writes(), 1);
  });
});

test("Channel writes items at once after pull() until the stream next delivers, then waits for pull() again", async () => {
  await countingStreamWrites(async (writes) => {
    const channel = new Channel<string>(8);
    const taken: string[] = [];
    channel.open(() => void taken.push(channel.take()));
    channel.pull(); // the consumer waits for items
    await channel.send("a"); // written at once, delivered
    await settle(1);
    assert.deepEqual([taken, writes()], [["a"], 1]);
    await channel.send("b"); // after the delivery: pending until the consumer asks
    await settle(1);
    assert.deepEqual([taken, writes(), channel.size], [["a"], 1, 1]);
    channel.pull();
    await settle(1);
    assert.deepEqual([taken, writes(), channel.size], [["a", "b"], 2, 0]);
  });
});

test("Channel delivers nothing before open(), even after pull()", async () => {
  const channel = new Channel<string>(2);
  await channel.send("a");
  assert.equal(channel.pull(), true);
  await settle(1);
  assert.equal(channel.hasItem, false);
  const taken: string[] = [];
  channel.open(() => void taken.push(channel.take()));
  await settle(1);
  assert.deepEqual(taken, ["a"]);
});

test("Channel delivers the items pending at close() once they are pulled", async () => {
  const channel = new Channel<number>(4);
  const taken: number[] = [];
  channel.open(() => void taken.push(channel.take()));
  for (let i = 0; i < 3; i++) await channel.send(i);
  channel.close(() => new Error("closed"));
  assert.equal(channel.trySend(3), false, "closed");
  await settle(1);
  assert.deepEqual(taken, []);
  channel.pull();
  await settle(1);
  assert.deepEqual(taken, [0, 1, 2]);
  assert.equal(channel.size, 0);
});

test("BatchBuffer with one producer and a slow flush writes a stream chunk per flush, not per item", async () => {
  await countingStreamWrites(async (writes) => {
    const flushes: ReturnType<typeof deferred<void>>[] = [];
    const batches: number[][] = [];
    const buffer = new BatchBuffer<number>({
      capacity: 10,
      chanSize: 20,
      flush: (batch) => {
        batches.push(batch);
        flushes.push(deferred<void>());
        return flushes.at(-1)!.promise;
      },
    });
    const running = buffer.run();
    const producing = (async () => {
      for (let i = 0; i < 100; i++) await buffer.add(i);
    })();
    while (batches.length < 10) {
      await settle(1);
      flushes.at(-1)?.resolve();
    }
    await producing;
    buffer.close();
    await settle(1);
    flushes.at(-1)!.resolve();
    await running;
    assert.deepEqual(batches.flat(), Array.from({ length: 100 }, (_, i) => i));
    assert.ok(
      writes() <= batches.length,
      `${writes()} stream writes for ${batches.length} flushes`,
    );
  });
});
