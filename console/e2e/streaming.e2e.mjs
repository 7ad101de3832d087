// End-to-end in real headless Chromium: the model's reply appears in the task page while it is generated (before its
// step lands), survives a reload, and is replaced by the step. The test holds the scripted stream mid-reply and lets
// it go when this script prints "e2e: release". Screenshot: docs/screenshots/task-streaming.png.
//   node console/e2e/streaming.e2e.mjs <base url> <task id> <screenshot dir>
import { inChromium, step } from "./harness.mjs";

const [base, taskId, shots] = process.argv.slice(2);
await inChromium({ shots }, async ({ page }) => {
  await page.goto(`${base}/#/tasks/${taskId}`);
  const live = page.locator(".step-live-llm");
  await live.getByText("Sourdough", { exact: false }).waitFor({ timeout: 60000 });
  const seq = await live.getAttribute("data-seq");
  if (await page.locator(`.step[data-seq="${seq}"]:not(.step-live)`).count()) throw new Error("the step landed already");
  step(`live reply shown before its step (seq ${seq}): ${JSON.stringify((await live.locator("pre").innerText()).slice(0, 60))}`);
  await page.screenshot({ path: `${shots}/task-streaming.png`, fullPage: true });

  await page.reload();
  await page.locator(".step-live-llm").getByText("Sourdough", { exact: false }).waitFor({ timeout: 30000 });
  step("live reply survives a reload");
  step("release");

  // the step (collapsed to its first 160 characters, like every long reply) takes the live reply's place
  await page.locator(`.step-llm_response[data-seq="${seq}"]`).getByText("Sourdough first", { exact: false }).waitFor({ timeout: 60000 });
  await page.locator(".step-live").first().waitFor({ state: "detached", timeout: 30000 });
  const shown = await page.locator(`.step-llm_response[data-seq="${seq}"] pre`).innerText();
  if ((shown.match(/Sourdough/g) || []).length !== 1) throw new Error(`the reply is not shown once: ${shown}`);
  step("the step replaced the live reply");
});
