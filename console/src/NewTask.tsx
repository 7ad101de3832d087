import { useEffect, useState } from "react";
import { api, type Config } from "./api";

export function NewTask() {
  const [config, setConfig] = useState<Config | null>(null);
  const [title, setTitle] = useState("");
  const [description, setDescription] = useState("");
  const [model, setModel] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => { api.config().then(setConfig).catch((e) => setError(e.message)); }, []);

  async function submit(e: React.FormEvent) {
    e.preventDefault();
    setBusy(true);
    try {
      const task = await api.create({ title, description, model: model || null });
      location.hash = `#/tasks/${task.id}`;
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="new-task" onSubmit={submit}>
      <h2>New task</h2>
      <label>Title <input name="title" value={title} onChange={(e) => setTitle(e.target.value)} placeholder="Bakery landing page" /></label>
      <label>Description
        <textarea name="description" required rows={6} value={description} onChange={(e) => setDescription(e.target.value)}
                  placeholder="A landing page for my bakery, deployed" />
      </label>
      <label>Model
        <select name="model" value={model} onChange={(e) => setModel(e.target.value)}>
          <option value="">default ({config?.default_model ?? "…"})</option>
          {config?.models.map((m) => <option key={m} value={m}>{m}</option>)}
        </select>
      </label>
      {error && <p className="error">{error}</p>}
      <button type="submit" disabled={busy || !description.trim()}>{busy ? "Starting…" : "Start task"}</button>
    </form>
  );
}
