"""Starting and driving tasks: the `morgus` CLI, the embedded dev stack and the demo (the HTTP API joins later)."""
