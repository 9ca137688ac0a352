// Debian's Chromium, headless, as every browser check here starts it: a fresh
// profile in a temporary folder, and the flags this machine needs (without
// the background-networking ones Chromium keeps dialling Google's hosts).
//
//   const browser = await openBrowser("pushlab-e2e-", { viewport: ..., args: [more flags] });
//   const page = browser.page;  ...  await browser.close();

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function openBrowser(prefix, { args = [], ...options } = {}) {
  const profile = mkdtempSync(join(tmpdir(), prefix));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
      "--no-first-run", "--disable-component-update", "--disable-sync", ...args],
    ...options,
  });
  const page = context.pages()[0] ?? await context.newPage();
  return {
    context,
    page,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
