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
  | { kind: "send"; count: number; tag: "none" | "own" | 0 | 1; bytes: number }
  | { kind: "trySend"; bytes: number }
  | { kind: "abortShared"; tag: 0 | 1 }
  | { kind: "abortOwn"; every: number }
  | { kind: "take"; count: number }
  | { kind: "release"; count: number };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant("send" as const),
    count: fc.integer({ min: 1, max: 700 }),
    tag: fc.constantFrom("none" as const, "own" as const, 0 as const, 1 as const),
    bytes: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 80 })),
  }),
  fc.record({ kind: fc.constant("trySend" as const), bytes: fc.integer({ min: 0, max: 80 }) }),
  fc.record({
    kind: fc.constant("abortShared" as const),
    tag: fc.constantFrom(0 as const, 1 as const),
  }),
  fc.record({ kind: fc.constant("abortOwn" as const), every: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant("take" as const), count: fc.integer({ min: 1, max: 800 }) }),
  fc.record({ kind: fc.constant("release" as const), count: fc.integer({ min: 1, max: 800 }) }),
);

interface ModelWaiter {
  readonly id: number;
  readonly tag: unknown;
  readonly bytes: number;
}

/**
 * Runs `ops` against a channel and a model of it: the entries accepted and
 * not taken, the bytes held (accepted and not released), and the line of
 * waiters. The test pulls after every op and lets the stream deliver, so
 * every accepted entry is ready to take by hand at the next op.
 */
async function checkAgainstModel(
  capacity: number,
  maxBytes: number,
  ops: readonly Op[],
): Promise<void> {
  const channel = new Channel<{ id: number }>(capacity, maxBytes);
  let consume = () => {}; // by hand, until the drain at the end
  channel.open(() => consume());
  let size = 0;
  let held = 0;
  /** Bytes of the entries taken and not released, oldest first. */
  const unreleased: number[] = [];
  const heldEntries = new Map<number, number>(); // id -> bytes, while the bytes are held
  const line: ModelWaiter[] = [];
  const accepted: number[] = [];
  const taken: number[] = [];
  const shared = [new AbortController(), new AbortController()];
  const own = new Map<number, AbortController>();
  const settled = new Map<number, "resolved" | "rejected">();
  const sends: Promise<void>[] = [];
  let nextId = 0;
  const fits = (bytes: number) => bytes === 0 || held + bytes <= maxBytes || held === 0;
  const accept = (id: number, bytes: number) => {
    size++;
    held += bytes;
    heldEntries.set(id, bytes);
    accepted.push(id);
  };
  const admit = () => {
    while (line.length > 0 && size < capacity && fits(line[0].bytes)) {
      const { id, bytes } = line.shift()!;
      accept(id, bytes);
    }
  };
  const abortOwn = (id: number, controller: AbortController) => {
    controller.abort();
    own.delete(id);
    leave((w) => w.id === id);
  };
  const leave = (leaves: (waiter: ModelWaiter) => boolean) => {
    for (let i = line.length - 1; i >= 0; i--) if (leaves(line[i])) line.splice(i, 1);
    admit();
  };
  const take = (count: number) => {
    for (let n = Math.min(count, size); n > 0; n--) {
      assert.ok(channel.hasItem);
      const id = channel.take().id;
      taken.push(id);
      unreleased.push(heldEntries.get(id)!);
      heldEntries.delete(id);
      size--;
      admit();
    }
  };
  const release = (count: number) => {
    for (let n = Math.min(count, unreleased.length); n > 0; n--) {
      const bytes = unreleased.shift()!;
      channel.release(bytes);
      held -= bytes;
      admit();
    }
  };
  for (const op of ops) {
    if (op.kind === "send") {
      for (let n = 0; n < op.count; n++) {
        const id = nextId++;
        if (op.tag === "own") own.set(id, new AbortController());
        const signal = op.tag === "own"
          ? own.get(id)!.signal
          : op.tag === "none"
          ? undefined
          : shared[op.tag].signal;
        const settle = (how: "resolved" | "rejected") => () => void settled.set(id, how);
        const sent = channel.send({ id }, signal, op.bytes);
        sends.push(sent.then(settle("resolved"), settle("rejected")));
        line.push({ id, tag: op.tag, bytes: op.bytes });
        admit();
      }
    } else if (op.kind === "trySend") {
      const id = nextId++;
      const expected = line.length === 0 && size < capacity && fits(op.bytes);
      assert.equal(channel.trySend({ id }, op.bytes), expected);
      if (expected) accept(id, op.bytes), settled.set(id, "resolved");
      else settled.set(id, "rejected");
    } else if (op.kind === "abortShared") {
      shared[op.tag].abort();
      shared[op.tag] = new AbortController();
      leave((w) => w.tag === op.tag);
    } else if (op.kind === "abortOwn") {
      let k = 0;
      for (const [id, controller] of own) {
        if (k++ % op.every !== 0) continue;
        abortOwn(id, controller); // one at a time: each abort may admit the next in line
      }
    } else if (op.kind === "take") {
      take(op.count);
    } else {
      release(op.count);
    }
    channel.pull();
    await settle(1);
    assert.equal(channel.size, size);
    assert.equal(channel.bytes, held);
    assert.equal(channel.waiting, line.length);
    assert.ok(channel.size <= capacity);
    const holding = [...heldEntries.values(), ...unreleased].filter((bytes) => bytes > 0).length;
    assert.ok(channel.bytes <= maxBytes || holding === 1, "over the byte budget only alone");
    const referenced = channel.debugLine().flatMap((slot) =>
      typeof slot === "object" && slot !== null && "id" in slot ? [slot.id as number] : []
    );
    assert.deepEqual(referenced, line.map((w) => w.id), "the line holds only its waiters");
  }
  for (const [id, controller] of own) abortOwn(id, controller);
  // Out of the channel's call: a take may deliver at once and call back in.
  consume = () =>
    queueMicrotask(() => {
      while (channel.hasItem) {
        assert.ok(size > 0, "the model has the entry the channel delivered");
        take(1);
      }
      release(unreleased.length);
      channel.pull();
    });
  consume();
  await Promise.all(sends);
  await settle(1);
  assert.deepEqual(line, []);
  assert.equal(channel.bytes, 0);
  assert.deepEqual(taken, accepted, "FIFO admission and delivery");
  const acceptedIds = new Set(accepted);
  for (let id = 0; id < nextId; id++) {
    assert.equal(settled.get(id), acceptedIds.has(id) ? "resolved" : "rejected");
  }
}

test("Channel matches a FIFO model with exact count and byte bounds under random sends, aborts, takes and releases", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 50 }),
      fc.oneof(fc.constant(Infinity), fc.integer({ min: 1, max: 300 })),
      fc.array(opArbitrary, { maxLength: 12 }),
      checkAgainstModel,
    ),
    { numRuns: 200 },
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

test("Channel admits an entry only when count and bytes allow, and one waiting for bytes holds up those behind", async () => {
  const channel = new Channel<string>(10, 100);
  assert.equal(channel.trySend("a", 60), true);
  assert.equal(channel.trySend("b", 50), false, "60 + 50 > 100");
  const b = outcome(channel.send("b", undefined, 50));
  const c = outcome(channel.send("c", undefined, 10)); // would fit, but b is first in line
  assert.equal(channel.trySend("d", 0), false, "never jumps the line");
  await settle(1);
  assert.deepEqual([b.state, c.state, channel.bytes, channel.waiting], [
    "pending",
    "pending",
    60,
    2,
  ]);
  const taken = takeEverything(channel);
  await settle(1);
  assert.deepEqual(taken, ["a"]);
  assert.deepEqual([b.state, channel.bytes], ["pending", 60], "taking a releases nothing");
  channel.release(60);
  await settle(1);
  assert.deepEqual([b.state, c.state, channel.bytes], ["resolved", "resolved", 60]);
  assert.deepEqual(taken, ["a", "b", "c"]);
});

test("Channel admits an entry larger than the byte budget once no bytes are held", async () => {
  const channel = new Channel<string>(10, 100);
  await channel.send("huge", undefined, 500);
  assert.equal(channel.bytes, 500);
  const small = outcome(channel.send("small", undefined, 1));
  assert.equal(channel.trySend("free", 0), false, "a waiter is first");
  channel.release(500);
  await settle(1);
  assert.deepEqual([small.state, channel.bytes], ["resolved", 1]);
  assert.equal(channel.trySend("free", 0), true, "entries of no bytes need only count room");
  assert.equal(channel.bytes, 1);
});

test("Channel without a byte budget counts bytes and admits on count alone", async () => {
  const channel = new Channel<string>(2);
  assert.equal(channel.trySend("a", 1e12), true);
  await channel.send("b", undefined, 1e12);
  assert.equal(channel.bytes, 2e12);
  assert.equal(channel.trySend("c", 1), false, "full by count");
  assert.equal(channel.reserve(1e12), true);
  assert.equal(channel.bytes, 3e12);
});

test("Channel.reserve() counts bytes for entries that skip the channel when nobody waits and they fit", async () => {
  const channel = new Channel<string>(1, 100);
  assert.equal(channel.reserve(70), true);
  assert.equal(channel.reserve(40), false, "70 + 40 > 100");
  assert.equal(channel.reserve(0), true);
  assert.equal(channel.bytes, 70);
  const a = outcome(channel.send("a", undefined, 40));
  assert.equal(channel.reserve(1), false, "a waiter is first");
  channel.release(70);
  await settle(1);
  assert.deepEqual([a.state, channel.bytes], ["resolved", 40]);
  assert.equal(channel.reserve(60), true, "count room does not matter: it skips the channel");
  assert.equal(channel.bytes, 100);
});

test("Channel admits the waiters behind one that waited for bytes and aborted", async () => {
  const channel = new Channel<string>(10, 100);
  await channel.send("a", undefined, 90);
  const controller = new AbortController();
  const big = outcome(channel.send("big", controller.signal, 50));
  const small = outcome(channel.send("small", undefined, 10));
  await settle(1);
  assert.equal(small.state, "pending");
  controller.abort("gave up");
  await settle(1);
  assert.deepEqual([big.state, small.state, channel.bytes], ["rejected", "resolved", 100]);
  assert.equal(channel.waiting, 0);
});

test("Channel.close() rejects waiters for bytes without counting their bytes", async () => {
  const channel = new Channel<string>(10, 10);
  await channel.send("a", undefined, 10);
  const b = outcome(channel.send("b", undefined, 5));
  channel.close((entry) => new Error(`closed before ${entry}`));
  await settle(1);
  assert.deepEqual([b.state, (b.reason as Error).message], ["rejected", "closed before b"]);
  assert.equal(channel.bytes, 10);
  channel.release(10);
  assert.equal(channel.bytes, 0);
  assert.equal(channel.reserve(1), true, "reserve is for the run loop, which checks close itself");
});

test("Channel rejects every waiter of an aborted signal, even those behind one that waited for bytes", async () => {
  const channel = new Channel<string>(10, 100);
  await channel.send("a", undefined, 90);
  const controller = new AbortController();
  const waiters = ["big", "small", "tiny"].map((entry, i) =>
    outcome(channel.send(entry, controller.signal, [50, 5, 1][i]))
  );
  const unsignalled = outcome(channel.send("other", undefined, 5));
  controller.abort("gone");
  await settle(1);
  assert.deepEqual(waiters.map((w) => w.state), ["rejected", "rejected", "rejected"]);
  assert.deepEqual([unsignalled.state, channel.bytes, channel.waiting], ["resolved", 95, 0]);
});

test("Channel.takeRun() takes the oldest entries up to max, stops before the one picked, and admits waiters", async () => {
  const channel = new Channel<number>(4);
  channel.open(() => {});
  channel.pull();
  for (let i = 0; i < 4; i++) await channel.send(i);
  const waiting = [channel.send(4), channel.send(5), channel.send(6)];
  await settle(1);
  assert.deepEqual([channel.size, channel.waiting], [4, 3]);
  const into: number[] = [-1];
  assert.equal(channel.takeRun(into, 2, () => false), 2);
  assert.deepEqual(into, [-1, 0, 1], "appended, oldest first, max 2");
  assert.deepEqual([channel.size, channel.waiting], [4, 1], "two waiters got the room at once");
  await Promise.all(waiting.slice(0, 2));
  channel.pull();
  await settle(1);
  assert.equal(channel.takeRun(into, 10, (n) => n === 4), 2, "stops before the picked entry");
  assert.deepEqual(into, [-1, 0, 1, 2, 3]);
  assert.equal(channel.peek(), 4, "the picked entry stays the oldest");
  assert.equal(channel.takeRun(into, 0, () => false), 0);
  await waiting[2];
  assert.equal(channel.size, 3);
});

test("Channel calls a consumer that takes all it can once per delivery, not once per entry ready", async () => {
  const channel = new Channel<number>(8);
  let calls = 0;
  channel.open(() => void calls++, true); // busy: it comes back to hasItem by itself
  for (let i = 0; i < 5; i++) await channel.send(i);
  channel.pull();
  await settle(1);
  assert.deepEqual([calls, channel.hasItem], [1, true]);
  const taken = [];
  while (channel.hasItem) taken.push(channel.take());
  assert.deepEqual(taken, [0, 1, 2, 3, 4], "every entry is still there to take");
});
