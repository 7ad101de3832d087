import { describe, expect, it } from "vitest";
import { renderToStaticMarkup } from "react-dom/server";
import type { Step } from "./api";
import { StatusBadge } from "./components";
import { approveAllWarning, pendingApproval } from "./TaskDetail";

const step = (seq: number, type: string, metadata: Record<string, unknown> = {}): Step =>
  ({ id: `s${seq}`, seq, type, phase: "FINALIZE", content: "", metadata, created_at: "" }) as unknown as Step;

describe("pendingApproval", () => {
  it("is the latest APPROVAL with no DECISION after it", () => {
    const asked = step(3, "APPROVAL", { call_id: "c2", tool: "git_push", arguments: "{}", why: "the approval policy names git_push" });
    expect(pendingApproval([step(0, "APPROVAL", { call_id: "c1" }), step(1, "DECISION"), step(2, "TOOL_CALL"), asked]))
      .toEqual({ call_id: "c2", tool: "git_push", arguments: "{}", why: "the approval policy names git_push" });
    expect(pendingApproval([asked, step(4, "DECISION")])).toBeNull();
    expect(pendingApproval([])).toBeNull();
  });

  it("labels the new statuses", () => {
    expect(renderToStaticMarkup(<StatusBadge status="waiting_for_approval" />)).toContain("waiting for approval");
    expect(renderToStaticMarkup(<StatusBadge status="paused" />)).toContain("paused");
  });
});

describe("approveAllWarning", () => {
  it("warns before every later shell command is approved at once", () => {
    expect(approveAllWarning("shell_exec")).toMatch(/every later command of this task run without asking/);
  });
  it("says nothing for a tool whose calls are alike", () => {
    expect(approveAllWarning("git_push")).toBeNull();
    expect(approveAllWarning("")).toBeNull();
  });
});
