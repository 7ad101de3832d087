// The API's types, mirrored in one place from the pydantic contracts (morgus/contracts.py, starter/api.py).

export type TaskStatus = "pending" | "running" | "waiting_for_input" | "completed" | "error" | "cancelled";
export const STATUSES: TaskStatus[] = ["pending", "running", "waiting_for_input", "completed", "error", "cancelled"];
export type Phase = "RESEARCH" | "PLAN" | "BUILD" | "EXECUTE" | "FINALIZE";
export const PHASES: Phase[] = ["RESEARCH", "PLAN", "BUILD", "EXECUTE", "FINALIZE"];

export interface Task {
  id: string;
  workflow_id: string;
  title: string;
  description: string;
  status: TaskStatus;
  phase: Phase | null;
  model: string | null;
  pending_question: string | null;
  error_message: string | null;
  step_count: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cached_tokens: number;
  cost_usd: number;
  created_at: string;
  updated_at: string;
  completed_at: string | null;
  temporal_url?: string;
}

export type StepType =
  | "TASK_START" | "PHASE_START" | "LLM_RESPONSE" | "TOOL_CALL" | "TOOL_RESULT"
  | "NOTIFICATION" | "QUESTION" | "ANSWER" | "ERROR" | "TASK_END";

export interface Step {
  id: string;
  task_id: string;
  seq: number;
  phase: Phase | null;
  type: StepType;
  content: string;
  metadata: Record<string, unknown>;
  created_at: string;
}

export interface Artifact {
  id: string;
  task_id: string;
  type: "deployment" | "repository" | "file" | "log";
  name: string;
  url: string | null;
  path: string | null;
  metadata: Record<string, unknown>;
}

export interface TaskList {
  tasks: Task[];
  next_cursor: string | null;
  counts: Partial<Record<TaskStatus, number>>;
}

export interface Config {
  models: string[];
  default_model: string;
  temporal_ui_url: string;
  namespace: string;
  auth: boolean;
}

export class ApiError extends Error {}

function headers(): HeadersInit {
  const token = localStorage.getItem("morgus.token");
  return { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) };
}

async function call<T>(path: string, init?: RequestInit, retried = false): Promise<T> {
  let resp: Response;
  try {
    resp = await fetch(path, { ...init, headers: headers() });
  } catch {
    throw new ApiError("The Morgus API is not reachable; retrying…");
  }
  if (resp.status === 401 && !retried) {
    // The server has MORGUS_API_TOKEN set: ask once, keep it for this browser.
    const token = window.prompt("This Morgus server needs its API token (MORGUS_API_TOKEN):");
    if (token) {
      localStorage.setItem("morgus.token", token.trim());
      return call<T>(path, init, true);
    }
  }
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new ApiError(body.error ?? `HTTP ${resp.status}`);
  return body as T;
}

export const api = {
  config: () => call<Config>("/api/config"),
  list: (params: Record<string, string>) => call<TaskList>(`/api/tasks?${new URLSearchParams(params)}`),
  get: (id: string) => call<Task>(`/api/tasks/${id}`),
  steps: (id: string, after = -1) => call<{ steps: Step[] }>(`/api/tasks/${id}/steps?after=${after}`),
  artifacts: (id: string) => call<{ artifacts: Artifact[] }>(`/api/tasks/${id}/artifacts`),
  create: (body: { title: string; description: string; model: string | null }) =>
    call<Task>("/api/tasks", { method: "POST", body: JSON.stringify(body) }),
  answer: (id: string, text: string) => call<{ ok: boolean }>(`/api/tasks/${id}/answer`, { method: "POST", body: JSON.stringify({ text }) }),
  cancel: (id: string) => call<{ ok: boolean }>(`/api/tasks/${id}/cancel`, { method: "POST", body: "{}" }),
};

/** Live changes; the browser reconnects by itself and resumes from the last event id (no gap, no duplicate). */
export function subscribe(taskId: string | null, onEvent: (kind: string, data: any) => void): () => void {
  const source = new EventSource(`/api/events${taskId ? `?task_id=${taskId}` : ""}`);
  for (const kind of ["task", "step", "artifact"]) {
    source.addEventListener(kind, (e) => onEvent(kind, JSON.parse((e as MessageEvent).data)));
  }
  return () => source.close();
}
