// What every console e2e script shares: Debian's Chromium, headless with nothing running in the background; one
// page (in a context that holds the API token as the console keeps it after its first 401 prompt, when given);
// `e2e: <msg>` lines the Python test reads; on a failure a full-page screenshot, the message, and exit code 1.
//   await inChromium({ shots }, async ({ page }) => { ... });
import { chromium } from "playwright-core";

export const step = (msg) => console.log(`e2e: ${msg}`);
export const fail = (msg) => {
  throw new Error(msg);
};

export async function inChromium({ shots, failureShot = "failure.png", token, contextOptions = {} }, body) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
           "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...contextOptions });
  if (token) await context.addInitScript((t) => localStorage.setItem("morgus.token", t), token);
  const page = await context.newPage();
  try {
    await body({ page, context });
  } catch (e) {
    await page.screenshot({ path: `${shots}/${failureShot}`, fullPage: true }).catch(() => {});
    console.error(`e2e failed: ${e.message}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
