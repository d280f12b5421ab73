// Cancels a running job through the Killer tab in a real browser, as an
// operator would: open the tab, find the job, click Cancel, confirm with a
// name and a reason, and wait for the outcome to read "cancelled".
//
//   KILLER_WEB_URL=http://127.0.0.1:9292 KILLER_JID=... node cancel_in_browser.mjs
//
// Optional: KILLER_BY, KILLER_REASON, KILLER_SCREENSHOT (a PNG path),
// KILLER_CHROMIUM (default /usr/bin/chromium). Prints one JSON line.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const base = process.env.KILLER_WEB_URL;
const jid = process.env.KILLER_JID;
if (!base || !jid) {
  console.error("KILLER_WEB_URL and KILLER_JID are required");
  process.exit(2);
}
const by = process.env.KILLER_BY ?? "alice";
const reason = process.env.KILLER_REASON ?? "stuck export";
const deadline = (seconds) => Date.now() + seconds * 1000;

// Reloads `url` until `check(page)` returns something truthy.
async function reloadUntil(page, url, seconds, what, check) {
  const until = deadline(seconds);
  for (;;) {
    await page.goto(url);
    const value = await check(page);
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out after ${seconds}s waiting for ${what}`);
    await page.waitForTimeout(200);
  }
}

const profile = mkdtempSync(join(tmpdir(), "killer-chromium-"));
// The flags keep Chromium off the network this machine does not have.
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.KILLER_CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 1180 },
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
let failed = false;
try {
  const page = browser.pages()[0] ?? (await browser.newPage());
  const tab = `${base}/killer`;
  const row = `#killer-running tr[data-jid="${jid}"]`;
  await reloadUntil(page, tab, 30, `job ${jid} in the running table`, (p) => p.locator(row).count());
  await page.locator(`${row} button`, { hasText: "Cancel" }).click();

  await page.waitForSelector("#killer-confirm");
  const shown = (await page.locator("#killer-title").textContent()) ?? "";
  if (!shown.includes(jid)) throw new Error(`confirmation page names ${shown}, not ${jid}`);
  await page.fill("#killer-by", by);
  await page.fill("#killer-reason", reason);
  await page.getByRole("button", { name: "Yes, cancel this job" }).click();

  await page.waitForSelector("#killer-notice");
  const notice = ((await page.locator("#killer-notice").textContent()) ?? "").trim();
  const outcomeCell = `#killer-cancels tr[data-jid="${jid}"] .killer-outcome`;
  const outcome = await reloadUntil(page, tab, 20, `outcome "cancelled" for ${jid}`, async (p) => {
    if (!(await p.locator(outcomeCell).count())) return null;
    const text = ((await p.locator(outcomeCell).first().textContent()) ?? "").trim();
    return text === "cancelled" ? text : null;
  });
  const cells = await page.locator(`#killer-cancels tr[data-jid="${jid}"] td`).allTextContents();
  // The process's next report drops the stopped job from the running table.
  await reloadUntil(page, tab, 10, `job ${jid} to leave the running table`, async (p) => (await p.locator(row).count()) === 0);
  if (process.env.KILLER_SCREENSHOT) {
    await page.screenshot({ path: process.env.KILLER_SCREENSHOT });
  }
  console.log(JSON.stringify({ notice, outcome, row: cells.map((c) => c.trim()), still_running: false }));
} catch (e) {
  failed = true;
  console.error(e.stack ?? String(e));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
