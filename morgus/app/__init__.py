"""What a person drives: the `morgus` CLI (`python -m morgus`), the HTTP API, the embedded dev stack and the demo."""
