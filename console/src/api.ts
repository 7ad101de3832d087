// The API's types, mirrored in one place from the pydantic models (starter/api_models.py, morgus/contracts.py);
// /openapi.json is the contract. Every error body is {"error": "<sentence>"}.
import { streamEvents } from "./sse";

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
  created_at: string;
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

/** The body of every error the API answers (4xx, and a bare "internal error" 500 as the last resort). */
export interface ErrorBody {
  error: string;
}

export class ApiError extends Error {}

const TOKEN_KEY = "morgus.token";

function authHeader(): Record<string, string> {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

let asking: Promise<boolean> | null = null;

/** The server has MORGUS_API_TOKEN set: ask once (concurrent 401s share the one prompt), keep it for this browser. */
function askForToken(): Promise<boolean> {
  asking ??= Promise.resolve().then(() => {
    const token = window.prompt("This Morgus server needs its API token (MORGUS_API_TOKEN):");
    if (token?.trim()) localStorage.setItem(TOKEN_KEY, token.trim());
    asking = null;
    return Boolean(token?.trim());
  });
  return asking;
}

async function call<T>(path: string, init?: RequestInit, retried = false): Promise<T> {
  let resp: Response;
  // Every request carries the token (reads too). Writes say application/json, which no cross-site form can send.
  const headers = { ...authHeader(), ...(init?.method && init.method !== "GET" ? { "Content-Type": "application/json" } : {}) };
  try {
    resp = await fetch(path, { ...init, headers });
  } catch {
    throw new ApiError("The Morgus API is not reachable; retrying…");
  }
  if (resp.status === 401 && !retried && (await askForToken())) return call<T>(path, init, true);
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new ApiError(body.error ?? `HTTP ${resp.status}`);
  return body as T;
}

export const api = {
  config: () => call<Config>("/api/config"),
  list: (params: Record<string, string>) => call<TaskList>(`/api/tasks?${new URLSearchParams(params)}`),
  get: (id: string) => call<Task>(`/api/tasks/${encodeURIComponent(id)}`),
  steps: (id: string, after = -1) => call<{ steps: Step[] }>(`/api/tasks/${encodeURIComponent(id)}/steps?after=${after}`),
  artifacts: (id: string) => call<{ artifacts: Artifact[] }>(`/api/tasks/${encodeURIComponent(id)}/artifacts`),
  create: (body: { title: string; description: string; model: string | null }) =>
    call<Task>("/api/tasks", { method: "POST", body: JSON.stringify(body) }),
  answer: (id: string, text: string) =>
    call<{ ok: boolean }>(`/api/tasks/${encodeURIComponent(id)}/answer`, { method: "POST", body: JSON.stringify({ text }) }),
  cancel: (id: string) => call<{ ok: boolean }>(`/api/tasks/${encodeURIComponent(id)}/cancel`, { method: "POST", body: "{}" }),
};

/** Live changes, over fetch so the token goes in a header; resumes from the last event id (no gap, no duplicate). */
export function subscribe(taskId: string | null, onEvent: (kind: string, data: any) => void): () => void {
  return streamEvents({
    url: `/api/events${taskId ? `?task_id=${encodeURIComponent(taskId)}` : ""}`,
    headers: authHeader,
    onUnauthorized: askForToken,
    onEvent: (e) => {
      if (e.event === "task" || e.event === "step" || e.event === "artifact") onEvent(e.event, JSON.parse(e.data));
    },
  });
}
