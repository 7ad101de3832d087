import { useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { Dashboard } from "./Dashboard";
import { Memory } from "./Memory";
import { NewTask } from "./NewTask";
import { TaskDetail } from "./TaskDetail";
import "./styles.css";

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return hash;
}

function App() {
  const hash = useHash();
  const task = hash.match(/^#\/tasks\/([0-9a-f-]{36})/);
  return (
    <>
      <nav>
        <a className="brand" href="#/">Morgus</a>
        <a href="#/">Dashboard</a>
        <a href="#/new">New task</a>
        <a href="#/memory">Memory</a>
      </nav>
      <main>{task ? <TaskDetail id={task[1]} /> : hash === "#/new" ? <NewTask /> : hash === "#/memory" ? <Memory /> : <Dashboard />}</main>
    </>
  );
}

createRoot(document.getElementById("root")!).render(<App />);
