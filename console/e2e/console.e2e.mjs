// End-to-end in real headless Chromium: New Task -> live timeline -> steer from the message box -> answer the question -> completed with its
// artifact link -> Dashboard filter and search. Screenshots go to docs/screenshots/.
//   node console/e2e/console.e2e.mjs <base url> <scenario marker> <screenshot dir>
import { inChromium, step } from "./harness.mjs";

const [base, marker, shots] = process.argv.slice(2);
await inChromium({ shots }, async ({ page }) => {
  await page.goto(`${base}/#/new`);
  await page.getByRole("heading", { name: "New task" }).waitFor();
  await page.fill("input[name=title]", "Bakery landing page");
  await page.fill("textarea[name=description]", `A landing page for my bakery, deployed. ${marker}`);
  await page.screenshot({ path: `${shots}/new-task.png` });
  await page.click("button[type=submit]");
  await page.waitForURL(/#\/tasks\/[0-9a-f-]{36}$/);
  const taskUrl = page.url();
  step(`started ${taskUrl}`);

  // steer while the first LLM call is in flight: the message reaches the model at its next turn, then the timeline
  await page.locator(".step-phase_start").first().waitFor({ timeout: 60000 });
  await page.fill("textarea[aria-label='message to the agent']", "Use Tailwind instead.");
  await page.click(".say button[type=submit]");
  await page.getByText("Sent: the agent reads it at its next turn.").waitFor();
  step("release"); // the first LLM call was held until now: the message reaches the model at its next turn
  await page.locator(".step-user_message").getByText("Use Tailwind instead.").waitFor({ timeout: 60000 });
  step("steering message in the timeline");
  await page.screenshot({ path: `${shots}/task-steer.png`, fullPage: true });

  await page.getByText("The agent asks:").waitFor({ timeout: 60000 });
  await page.locator(".step").first().waitFor();
  step(`question shown after ${await page.locator(".step").count()} live steps`);
  await page.screenshot({ path: `${shots}/task-question.png`, fullPage: true });
  await page.fill("input[aria-label=answer]", "Blue and cream, please.");
  await page.click(".question button[type=submit]");

  await page.locator(".task-detail .badge-completed").waitFor({ timeout: 60000 });
  const link = page.locator(".artifacts a").first();
  await link.waitFor({ timeout: 30000 });
  step(`completed; artifact ${await link.getAttribute("href")}`);
  if ((await page.locator(".phase-done").count()) !== 5) throw new Error("phase progress is not complete");
  if (!(await page.getByText("Blue and cream, please.").count())) throw new Error("the answer is not in the timeline");
  await page.screenshot({ path: `${shots}/task-detail.png`, fullPage: true });

  await page.goto(`${base}/#/`);
  await page.fill("input[aria-label=search]", "Bakery landing");
  await page.locator("table.tasks tbody tr").first().waitFor();
  await page.selectOption("select[aria-label='status filter']", "completed");
  await page.waitForTimeout(500);
  const rows = await page.locator("table.tasks tbody tr").count();
  if (rows < 1) throw new Error("the completed task is not listed");
  await page.selectOption("select[aria-label='status filter']", "error");
  await page.getByText("No tasks match").waitFor();
  await page.selectOption("select[aria-label='status filter']", "");
  await page.fill("input[aria-label=search]", "");
  await page.locator("table.tasks tbody tr").first().waitFor();
  // dashboard.png itself is files.e2e.mjs's (the dashboard with a waiting task, costs and durations)
  await page.screenshot({ path: `${shots}/dashboard-filters.png`, fullPage: true });
  step("dashboard filters and search work");
});
