/**
 * The consumer Worker of the Miniflare Queues test (run.mjs): reports every
 * message it receives, with its body's JSON size, to the test through the
 * `SINK` service binding (a Node function). It never throws, so Miniflare
 * never redelivers.
 */

interface ServiceBinding {
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
}

interface Env {
  SINK: ServiceBinding;
}

interface MessageBatch {
  readonly messages: readonly { readonly body: { id: string } }[];
}

export default {
  async queue(batch: MessageBatch, env: Env): Promise<void> {
    const encoder = new TextEncoder();
    const received = batch.messages.map((message) => ({
      id: message.body.id,
      bytes: encoder.encode(JSON.stringify(message.body)).byteLength,
    }));
    const response = await env.SINK.fetch("http://sink/consumed", {
      method: "POST",
      body: JSON.stringify(received),
    });
    await response.body?.cancel();
  },
};
