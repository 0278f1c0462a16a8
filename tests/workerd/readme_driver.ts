/**
 * Checks the README's Cloudflare Workers snippets in workerd: tests/workerd/run.mjs
 * bundles each one as a worker and binds it here as `SNIPPET_LINE_<n>` (n is
 * the snippet's line in README.md). Each must answer a request without error.
 */

interface ServiceBinding {
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
}

export default {
  async test(_controller: unknown, env: Record<string, ServiceBinding>): Promise<void> {
    let failed = 0;
    for (const [binding, snippet] of Object.entries(env)) {
      const line = /^SNIPPET_LINE_(\d+)$/.exec(binding)?.[1];
      if (line === undefined) continue;
      const name = `README.md:${line} Workers snippet answers a request in workerd`;
      try {
        const response = await snippet.fetch("https://snippet.example/readme-check");
        await response.body?.cancel();
        if (!response.ok) throw new Error(`status ${response.status}`);
        console.log(`CHECK ok ${name}`);
      } catch (error) {
        failed++;
        console.log(`CHECK FAIL ${name}: ${error instanceof Error ? error.stack : error}`);
      }
    }
    if (failed > 0) throw new Error(`${failed} README Workers snippets failed`);
  },
};
