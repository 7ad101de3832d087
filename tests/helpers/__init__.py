"""Helpers more than one test file uses, one module per kind of real part: `api` (the app under uvicorn),
`backends` (a real sandbox backend or a skip), `tools` (calling a tool as its activity does), `gitrepos`
(repositories and planted traps), `temporal` (the real `temporal` CLI). The services themselves and the task
helpers (start, wait_for, …) are in tests/conftest.py."""
