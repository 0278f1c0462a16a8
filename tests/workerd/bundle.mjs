// Bundling shared by the workerd run (tests/workerd/run.mjs) and the Miniflare
// run (tests/miniflare/run.mjs): each worker is bundled with esbuild as a
// user's wrangler would, with "@batchkit/buffer" resolved to this
// repository's mod.ts and "cloudflare:*" left to the runtime.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

/** The repository root. */
export const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The compatibility date of every test worker (any date after 2024-10-14 behaves the same here). */
export const COMPATIBILITY_DATE = "2026-01-01";

/** Resolves the package name to this repository's mod.ts, as an install would. */
const packageFromSource = {
  name: "package-from-source",
  setup(build) {
    build.onResolve({ filter: /^@batchkit\/buffer$/ }, () => ({ path: join(root, "mod.ts") }));
  },
};

/**
 * Bundles one worker into `outfile`: `entry` is a path from the root, or
 * `source` is `{ contents, loader, resolveDir }` (a README snippet).
 */
export async function bundleWorker({ entry, source, outfile }) {
  await esbuild.build({
    ...(source ? { stdin: source } : { entryPoints: [join(root, entry)] }),
    plugins: [packageFromSource],
    outfile,
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    external: ["node:*", "cloudflare:*"],
    logLevel: "warning",
  });
}

/**
 * The README's Workers snippets: ```ts/```js blocks that import the package
 * and `export default` a handler. Blocks marked `no-run` are left out, and so
 * are blocks marked `ignore` (skipped by Deno and by scripts/check_readme.mjs)
 * unless they are also marked `workerd`: those use "cloudflare:workers",
 * which only a Workers runtime has.
 */
export function readmeWorkerSnippets() {
  const lines = readFileSync(join(root, "README.md"), "utf8").split("\n");
  const snippets = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|js|typescript|javascript)\b(.*)$/.exec(lines[i]);
    if (open === null) continue;
    const end = lines.indexOf("```", i + 1);
    if (end === -1) break;
    const code = lines.slice(i + 1, end).join("\n");
    const info = open[2];
    const runs = !/\bno-run\b/.test(info) && (!/\bignore\b/.test(info) || /\bworkerd\b/.test(info));
    if (runs && /from\s*["']@batchkit\/buffer["']/.test(code) && /^export default\b/m.test(code)) {
      snippets.push({ line: i + 1, code, loader: open[1].startsWith("t") ? "ts" : "js" });
    }
    i = end;
  }
  return snippets;
}
