// End-to-end in real headless Chromium: a finished task's Files panel (folders listed only when opened, a text
// file with line numbers, the binary and truncated notices, untrusted names as inert text), downloads of one file
// and of the archive with the API token in a header, the sandboxed live preview, and the page on a phone.
//   node console/e2e/files.e2e.mjs <base url> <task id> <token> <screenshot dir> <download dir>
import { chromium } from "playwright-core";

const [base, taskId, token, shots, downloads] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--no-first-run", "--disable-component-update", "--disable-sync"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
// The token as the console keeps it after its first 401 prompt (no prompt may appear: see the dialog check).
await context.addInitScript((t) => localStorage.setItem("morgus.token", t), token);
const page = await context.newPage();
const step = (msg) => console.log(`e2e: ${msg}`);
const fail = (msg) => { throw new Error(msg); };
const dialogs = [];
page.on("dialog", (d) => { dialogs.push(`${d.type()}: ${d.message()}`); d.dismiss().catch(() => {}); });
const listed = [];
page.on("request", (r) => {
  const u = new URL(r.url());
  if (u.pathname.endsWith("/files")) listed.push(u.searchParams.get("path"));
});
const tree = page.locator(".files-tree");
const item = (name) => tree.locator(".tree-item", { hasText: name }).first();

try {
  await page.goto(`${base}/#/tasks/${taskId}`);
  await page.locator(".task-detail .badge-completed").waitFor({ timeout: 30000 });
  await item("src/").waitFor();
  step(`top listed: ${(await tree.locator(":scope > ul > li").count())} entries`);
  if (listed.some((p) => p !== "")) fail(`folders listed before they were opened: ${listed}`);

  // untrusted names: shown as text, the escaped one and the link not clickable, the HTML name not markup
  if (await tree.locator("img").count()) fail("a file name was rendered as HTML");
  await item("<img src=x onerror=alert(1)>.txt").waitFor();
  const bad = tree.locator(".tree-escaped");
  if ((await bad.count()) !== 1 || (await bad.locator("button").count()) !== 0) fail("the escaped name is clickable or missing");
  if (!(await bad.textContent()).includes("\\xff")) fail(`the escaped name is not shown escaped: ${await bad.textContent()}`);
  // a right-to-left override is shown as an escape (no "invoiceexe.pdf" look-alike) and still opens
  await item("invoice\\u202efdp.exe").click();
  await page.locator(".viewer .code .text", { hasText: "named to read as .pdf" }).waitFor();
  if (!(await page.locator(".viewer-path").textContent()).includes("\\u202e")) fail("the viewer path hides the override");
  const link = tree.locator(".tree-link");
  if ((await link.locator("button").count()) !== 0 || !(await link.textContent()).includes("link, not followed")) fail("the link is clickable");

  // a folder opened with the keyboard is listed then, not before
  await item("src/").focus();
  await page.keyboard.press("Enter");
  await item("app.js").waitFor();
  if (!listed.includes("src")) fail("src was not listed when opened");
  if ((await item("src/").getAttribute("aria-expanded")) !== "true") fail("src is not marked expanded");
  await page.screenshot({ path: `${shots}/files-tree.png`, fullPage: true });
  await item("app.js").click();
  const code = page.locator(".viewer .code");
  await code.waitFor();
  if ((await code.locator(".text").textContent()) !== "const a = 1;\nconst b = 2;\n") fail("app.js text differs");
  if ((await code.locator(".gutter").textContent()) !== "1\n2") fail("line numbers differ");
  step("opened src/app.js with line numbers");
  await page.locator(".files").screenshot({ path: `${shots}/files-text.png` });

  await item("big.txt").click();
  await page.getByText(/Only the first 1\.0 MiB of 1\.6 MiB is shown/).waitFor();
  step("big.txt says it is cut");

  await item("assets/").click();
  await item("logo.png").click();
  await page.getByText(/Binary file \(1\.0 KiB\): not shown as text/).waitFor();
  if (await page.locator(".viewer .code").count()) fail("a binary file was shown as text");
  step("logo.png says it is binary");
  await page.locator(".files").screenshot({ path: `${shots}/files-binary.png` });

  // downloads: fetched with the token header, saved as the file's bytes
  const [one] = await Promise.all([page.waitForEvent("download"), page.locator(".viewer-head button", { hasText: "Download" }).click()]);
  if (one.suggestedFilename() !== "logo.png") fail(`file download named ${one.suggestedFilename()}`);
  await one.saveAs(`${downloads}/logo.png`);
  const [all] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download workspace (.tar.gz)" }).click()]);
  if (all.suggestedFilename() !== `task-${taskId}.tar.gz`) fail(`archive named ${all.suggestedFilename()}`);
  await all.saveAs(`${downloads}/task-${taskId}.tar.gz`);
  step("downloaded logo.png and the archive");

  // the live preview: the deployed page, its scripts running in an opaque origin
  const frame = page.locator("iframe.preview-frame");
  await frame.waitFor();
  if ((await frame.getAttribute("sandbox")) !== "allow-scripts") fail(`preview sandbox is ${await frame.getAttribute("sandbox")}`);
  const site = page.frameLocator("iframe.preview-frame");
  await site.getByRole("heading", { name: "Crumb & Co." }).waitFor({ timeout: 15000 });
  await site.getByText("scripts run, isolated from the console").waitFor({ timeout: 15000 });
  step(`preview of ${await frame.getAttribute("src")} runs its scripts, isolated`);
  await page.screenshot({ path: `${shots}/files-preview.png`, fullPage: true });

  await page.setViewportSize({ width: 390, height: 844 });
  await item("README.md").click();
  await page.locator(".viewer .code .text", { hasText: "# Crumb & Co." }).waitFor();
  await site.getByText("scripts run, isolated from the console").waitFor();
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  if (wide > 390) fail(`the page is ${wide}px wide on a 390px screen`);
  // viewport shots: a full-page shot resizes the view, and headless Chromium then paints the cross-origin frame blank
  await page.locator(".files").scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${shots}/files-phone.png` });
  await frame.scrollIntoViewIfNeeded();
  await page.getByRole("button", { name: "Reload" }).click(); // a new frame, painted at the phone's size
  await site.getByText("scripts run, isolated from the console").waitFor();
  await page.screenshot({ path: `${shots}/files-phone-preview.png` });
  step("fits a 390px screen");

  if (dialogs.length) fail(`dialogs appeared: ${dialogs.join("; ")}`);
  step("done");
} catch (e) {
  await page.screenshot({ path: `${shots}/files-failure.png`, fullPage: true }).catch(() => {});
  console.error(`e2e failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
