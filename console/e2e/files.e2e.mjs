// End-to-end in real headless Chromium: a finished task's Files panel (folders listed only when opened, a text
// file with line numbers and syntax highlighting, the binary and truncated notices, untrusted names as inert text),
// downloads of one file and of the archive with the API token in a header, a file_write's diff, the commits, the
// sandboxed live preview, the page on a phone; then the dashboard (cost or tokens, duration, what a task waits
// for, keyboard use, a phone's width) and its counts moving live when the waiting task is answered.
//   node console/e2e/files.e2e.mjs <base url> <task id> <token> <screenshot dir> <download dir> <waiting task id>
import { inChromium, step, fail } from "./harness.mjs";

const [base, taskId, token, shots, downloads, waitingId] = process.argv.slice(2);
// The token as the console keeps it after its first 401 prompt (no prompt may appear: see the dialog check).
await inChromium({ shots, failureShot: "files-failure.png", token, contextOptions: { acceptDownloads: true } }, async ({ page }) => {
  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push(`${d.type()}: ${d.message()}`); d.dismiss().catch(() => {}); });
  const listed = [];
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.pathname.endsWith("/files")) listed.push(u.searchParams.get("path"));
  });
  const tree = page.locator(".files-tree");
  const item = (name) => tree.locator(".tree-item", { hasText: name }).first();

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
  const appText = await code.locator(".text").textContent();
  if (!appText.startsWith("// Opening hours, shown on the page.\nconst hours") || !appText.endsWith("}\n")) fail(`app.js text differs: ${appText}`);
  if ((await code.locator(".gutter").textContent()) !== "1\n2\n3\n4\n5\n6\n7") fail("line numbers differ");
  // highlighted: keywords, strings and the comment in highlight.js's spans, and no element made from the file
  if ((await code.locator(".text .hljs-keyword").count()) < 3) fail("app.js is not highlighted");
  if ((await code.locator(".text .hljs-comment").first().textContent()) !== "// Opening hours, shown on the page.") fail("the comment is not highlighted");
  step("opened src/app.js with line numbers and highlighting");
  await page.locator(".files").screenshot({ path: `${shots}/files-text.png` });
  await page.locator(".files").screenshot({ path: `${shots}/file-highlight.png` });

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

  // the diff of the second write of src/app.js: collapsed, then opened with the keyboard
  const toggles = page.locator(".step .diff-toggle", { hasText: "src/app.js" });
  if ((await toggles.count()) !== 2) fail(`expected two diffs of src/app.js, saw ${await toggles.count()}`);
  if ((await page.locator(".diff-text").count()) !== 0) fail("a diff is open before it was asked for");
  const second = toggles.nth(1);
  if (!(await second.textContent()).includes("changed · +4 −2")) fail(`second diff summary: ${await second.textContent()}`);
  await second.focus();
  await page.keyboard.press("Enter");
  const diffText = page.locator(".diff-text");
  await diffText.waitFor();
  const added = await diffText.locator(".diff-add").allTextContents();
  const removed = await diffText.locator(".diff-del").allTextContents();
  if (!added.some((l) => l.startsWith('+const hours = { weekdays: "7-18", saturday: "8-14" };'))) fail(`added lines: ${added}`);
  if (!removed.some((l) => l.startsWith('-const hours = { weekdays: "8-16" };'))) fail(`removed lines: ${removed}`);
  const addColour = await diffText.locator(".diff-add").first().evaluate((el) => getComputedStyle(el).backgroundColor);
  const delColour = await diffText.locator(".diff-del").first().evaluate((el) => getComputedStyle(el).backgroundColor);
  if (addColour === delColour || addColour === "rgba(0, 0, 0, 0)") fail(`diff lines are not coloured: ${addColour} / ${delColour}`);
  step(`the second write's diff: ${added.length} added, ${removed.length} removed lines, coloured`);
  await second.evaluate((el) => el.closest(".step").scrollIntoView({ block: "center" }));
  await second.locator("xpath=ancestor::li[contains(@class,'step')]").screenshot({ path: `${shots}/task-diff.png` });

  // the commits, read from the host's repository
  const commits = page.locator(".commits-panel");
  await commits.locator(".commit-subject", { hasText: "Bakery page with opening hours" }).waitFor();
  if (!(await commits.locator(".commit-body").textContent()).includes("Deployed locally.")) fail("the commit body is missing");
  const files = await commits.locator(".commit-files li").allTextContents();
  for (const f of ["A src/app.js", "A dist/index.html", "A README.md"]) if (!files.includes(f)) fail(`commit files: ${files}`);
  step(`commit listed with ${files.length} files`);
  await commits.screenshot({ path: `${shots}/task-gitlog.png` });

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

  // ---------------------------------------------------------------- the dashboard
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.goto(`${base}/#/`);
  const rows = page.locator("table.tasks tbody tr");
  const row = (title) => rows.filter({ hasText: title }).first();
  await row("Bakery hours question").waitFor();
  await row("Bakery files").waitFor();
  const waitsText = await row("Bakery hours question").locator(".waits-for").textContent();
  if (!waitsText.startsWith("Waits for you: Which opening hours")) fail(`waits-for: ${waitsText}`);
  const cost = (title) => row(title).locator('td[data-label="Cost"]').textContent();
  if (!/^\$0\.\d{4}$/.test(await cost("Bakery hours question"))) fail(`priced task cost: ${await cost("Bakery hours question")}`);
  if (!/tokens$/.test(await cost("Bakery files"))) fail(`unpriced task shows ${await cost("Bakery files")}, not tokens`);
  const duration = await row("Bakery files").locator('td[data-label="Duration"]').textContent();
  if (!/^\d+(s|m \d\ds)$/.test(duration)) fail(`duration: ${duration}`);
  const count = (s) => page.locator(`[data-count="${s}"]`).textContent().then(Number);
  const waitingBefore = await count("waiting_for_input");
  const completedBefore = await count("completed");
  if (waitingBefore < 1 || completedBefore < 1) fail(`counts: waiting ${waitingBefore}, completed ${completedBefore}`);
  step(`dashboard: ${await rows.count()} tasks, waiting ${waitingBefore}, completed ${completedBefore}`);
  await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });

  // keyboard: "/" focuses the search; Tab reaches the rows (one stop each), with a visible focus; Enter opens one
  await page.locator("body").click({ position: { x: 5, y: 5 } });
  await page.keyboard.press("/");
  if (!(await page.evaluate(() => document.activeElement?.getAttribute("aria-label") === "search"))) fail("/ did not focus the search");
  await page.keyboard.press("Tab"); // status filter
  await page.keyboard.press("Tab"); // phase filter
  await page.keyboard.press("Tab"); // the first row
  const focused = await page.evaluate(() => document.activeElement?.tagName + " " + document.activeElement?.getAttribute("aria-label"));
  if (!focused.startsWith("TR open task")) fail(`Tab reached ${focused}, not a row`);
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  if (outline === "none") fail("the focused row has no visible focus");
  await page.keyboard.press("ArrowDown");
  const second2 = await page.evaluate(() => document.activeElement?.getAttribute("aria-label"));
  await page.keyboard.press("Enter");
  await page.locator(".task-detail h2").waitFor();
  if (`open task ${await page.locator(".task-detail h2").textContent()}` !== second2) fail(`Enter opened the wrong task (${second2})`);
  step(`keyboard: / focuses the search, Tab reaches the rows, Enter opened "${second2}"`);
  await page.goBack();
  await row("Bakery hours question").waitFor();

  // a phone: no page-wide horizontal scroll, one card per task
  await page.setViewportSize({ width: 375, height: 812 });
  await row("Bakery hours question").locator(".waits-for").waitFor();
  const phoneWide = await page.evaluate(() => document.documentElement.scrollWidth);
  if (phoneWide > 375) fail(`the dashboard is ${phoneWide}px wide on a 375px screen`);
  if ((await page.locator("table.tasks thead").boundingBox())?.height > 2) fail("the table header shows on a phone");
  await page.screenshot({ path: `${shots}/dashboard-phone.png`, fullPage: true });
  step("dashboard fits a 375px screen");

  // live: the waiting task answered through the API; the counts move without a reload
  const answered = await page.evaluate(async ([id, t]) => {
    const r = await fetch(`/api/tasks/${id}/answer`, { method: "POST", headers: { Authorization: `Bearer ${t}`, "Content-Type": "application/json" }, body: JSON.stringify({ text: "Saturdays too" }) });
    return r.status;
  }, [waitingId, token]);
  if (answered !== 200) fail(`answer: HTTP ${answered}`);
  await page.waitForFunction(([w, c]) => Number(document.querySelector('[data-count="waiting_for_input"]')?.textContent) === w
    && Number(document.querySelector('[data-count="completed"]')?.textContent) === c, [waitingBefore - 1, completedBefore + 1], { timeout: 60000 });
  if (await row("Bakery hours question").locator(".waits-for").count()) fail("the answered task still says it waits");
  step("counts moved live: waiting -1, completed +1");

  if (dialogs.length) fail(`dialogs appeared: ${dialogs.join("; ")}`);
  step("done");
});
