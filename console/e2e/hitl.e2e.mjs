// End-to-end in real headless Chromium: pause a running task and resume it, then approve the git_push it waits on.
// Screenshots: task-paused.png, task-approval.png.
//   node console/e2e/hitl.e2e.mjs <base url> <task id> <screenshot dir>
import { inChromium, step } from "./harness.mjs";

const [base, taskId, shots] = process.argv.slice(2);
await inChromium({ shots }, async ({ page }) => {
  await page.goto(`${base}/#/tasks/${taskId}`);
  // pause while the first LLM call is in flight: it finishes, its tool call waits
  await page.getByRole("button", { name: "Pause" }).click();
  await page.locator(".pause-note").getByText("once its running call has finished").waitFor();
  await page.locator(".task-detail .badge-paused").waitFor({ timeout: 60000 });
  await page.locator(".step-paused").waitFor({ timeout: 30000 });
  step("paused");
  await page.screenshot({ path: `${shots}/task-paused.png`, fullPage: true });
  await page.getByRole("button", { name: "Resume" }).click();
  await page.locator(".step-resumed").waitFor({ timeout: 30000 });
  step("resumed");

  // FINALIZE's git_push waits for approval: the call is shown, approved from the panel
  const panel = page.locator("section.approval");
  await panel.waitFor({ timeout: 60000 });
  await panel.getByText("git_push(").waitFor();
  await page.locator(".task-detail .badge-waiting_for_approval").waitFor();
  step(`approval shown: ${await panel.locator(".approval-call").innerText()}`);
  await page.screenshot({ path: `${shots}/task-approval.png`, fullPage: true });
  await page.fill("input[aria-label=reason]", "ship it");
  await panel.getByRole("button", { name: "Approve", exact: true }).click();
  await page.locator(".task-detail .badge-completed").waitFor({ timeout: 60000 });
  await page.locator(".step-decision").getByText("Approved by the user: git_push").waitFor();
  step("approved; completed");
});
