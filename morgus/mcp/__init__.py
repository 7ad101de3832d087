"""MCP servers as tool providers: the operator's config (config.py), the names and schemas the model sees
(names.py), bounded transports (transport.py) and one connection per call (client.py). The activities that use
them are in morgus/activities/mcp.py; the workflow only ever sees the fixed tool list and each call's outcome."""
