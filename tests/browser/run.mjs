#!/usr/bin/env node
// Runs the smoke suite (tests/browser/smoke_suite.ts) on the bundled module in
// headless Chromium (`npm run test:browser`, called by .ci/run): bundles the
// page script with esbuild, serves it from 127.0.0.1 with node:http, opens it
// with playwright-core driving Debian's /usr/bin/chromium (never a downloaded
// browser) and waits for the page to POST its results to /report.
//
// Prints `browser: N passed, M failed` and exits non-zero on any failure.
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = "/usr/bin/chromium";
const REPORT_DEADLINE_MS = 60_000;

const started = performance.now();
if (!existsSync(CHROMIUM)) {
  console.error(
    `browser: ${CHROMIUM} is missing; install Debian's chromium (apt-get install chromium)`,
  );
  console.log("browser: 0 passed, 1 failed");
  process.exit(1);
}

const bundle = await esbuild.build({
  entryPoints: [join(here, "page.ts")],
  bundle: true,
  write: false,
  format: "esm",
  platform: "browser",
  target: "es2022",
  logLevel: "warning",
});
const script = bundle.outputFiles[0].contents;
const html = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>@batchkit/buffer smoke suite</title></head>
<body><script type="module" src="/smoke.js"></script></body>
</html>
`;

let reportReceived;
const report = new Promise((resolve) => (reportReceived = resolve));
const server = createServer((request, response) => {
  if (request.method === "GET" && (request.url === "/" || request.url === "/index.html")) {
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
  } else if (request.method === "GET" && request.url === "/smoke.js") {
    response.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(script);
  } else if (request.method === "POST" && request.url === "/report") {
    let body = "";
    request.setEncoding("utf8");
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      response.writeHead(204).end();
      reportReceived(JSON.parse(body));
    });
  } else {
    response.writeHead(404).end();
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const url = `http://127.0.0.1:${server.address().port}/`;

let browser;
let outcome;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const page = await browser.newPage();
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error") console.error(`page: ${message.text()}`);
  });
  await page.goto(url);
  let timer;
  const deadline = new Promise((resolve) => {
    timer = setTimeout(() => resolve(undefined), REPORT_DEADLINE_MS);
  });
  outcome = await Promise.race([report, deadline]);
  clearTimeout(timer);
  if (outcome === undefined) {
    outcome = {
      results: [{
        name: "the page reports its results",
        ok: false,
        error: `no report within ${REPORT_DEADLINE_MS} ms; page errors: ${pageErrors.join("; ")}`,
      }],
    };
  }
} catch (error) {
  outcome = { results: [{ name: "Chromium opens the page", ok: false, error: String(error) }] };
} finally {
  await browser?.close();
  server.close();
}

if (outcome.userAgent) console.log(`browser: ${outcome.userAgent}`);
for (const result of outcome.results) {
  if (result.ok) console.log(`CHECK ok ${result.name}`);
  else console.error(`CHECK FAIL ${result.name}: ${result.error}`);
}
const passed = outcome.results.filter((result) => result.ok).length;
const failed = outcome.results.length - passed;
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`browser: ${passed} passed, ${failed} failed (${seconds} s)`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
