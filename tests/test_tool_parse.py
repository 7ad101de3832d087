"""Tool calls as real models write them (morgus/tool_parse/, morgus/activities/llm.py reply_calls): pure, no server."""

from __future__ import annotations

import json
from types import SimpleNamespace

from morgus.activities.llm_reply import reply_calls
from morgus.contracts import Phase
from morgus.reply_text import drop_other_phase_text
from morgus.tool_parse import normalise_arguments, recover_calls

TOOLS = {
    "file_write": frozenset({"path", "content"}),
    "file_read": frozenset({"path"}),
    "shell_exec": frozenset({"command", "timeout_s"}),
    "wrap": frozenset({"arguments"}),
}


def only(text: str, **kw):
    r = recover_calls(text, TOOLS, **kw)
    return [(c.name, json.loads(c.arguments)) for c in r.calls], r.content


def test_fenced_json_block():
    text = 'I will write the page.\n\n```json\n{"name": "file_write", "arguments": {"path": "index.html", "content": "<h1>Hi</h1>"}}\n```'
    calls, prose = only(text)
    assert calls == [("file_write", {"path": "index.html", "content": "<h1>Hi</h1>"})]
    assert prose == "I will write the page."


def test_tool_call_tags_and_bare_object():
    assert only('<tool_call>\n{"name": "file_read", "arguments": {"path": "a.txt"}}\n</tool_call>') == (
        [("file_read", {"path": "a.txt"})],
        None,
    )
    assert only('{"name": "file_read", "arguments": {"path": "a.txt"}}') == ([("file_read", {"path": "a.txt"})], None)


def test_wrong_wrappers_and_string_arguments():
    assert only('{"name": "file_read", "parameters": {"path": "a"}}')[0] == [("file_read", {"path": "a"})]
    assert only('{"name": "file_read", "arguments": "{\\"path\\": \\"a\\"}"}')[0] == [("file_read", {"path": "a"})]
    assert only('{"type": "function", "function": {"name": "file_read", "arguments": {"path": "a"}}}')[0] == [
        ("file_read", {"path": "a"})
    ]
    assert only('{"tool_calls": [{"name": "file_read", "args": {"path": "a"}}]}')[0] == [("file_read", {"path": "a"})]
    assert only('{"name": "file_read", "path": "a"}')[0] == [("file_read", {"path": "a"})]  # arguments beside the name
    assert normalise_arguments('{"arguments": {"path": "a"}}', TOOLS["file_read"]) == '{"path": "a"}'
    # a tool that really takes an argument called "arguments" keeps it
    assert json.loads(normalise_arguments('{"arguments": {"x": 1}}', TOOLS["wrap"])) == {"arguments": {"x": 1}}
    assert normalise_arguments("", None) == "{}"
    assert normalise_arguments("not json", None) == "not json"  # passed through: the tool's validation explains
    assert normalise_arguments('{"path":  "a"}', None) == '{"path":  "a"}'  # the model's own bytes when fine


def test_prose_with_json_that_is_not_a_call_stays_prose():
    text = 'Here is the config:\n```json\n{"name": "my-app", "version": "1.0"}\n```'
    assert only(text) == ([], text)
    assert only('{"name": "rm_rf", "arguments": {}}') == ([], '{"name": "rm_rf", "arguments": {}}')  # not a tool
    assert only("") == ([], "")
    assert only(None) == ([], None)


def test_code_fences_inside_the_arguments_survive():
    content = "# App\n```bash\npip install app\n```\n"
    text = (
        "```json\n"
        + json.dumps({"name": "file_write", "arguments": {"path": "README.md", "content": content}})
        + "\n```"
    )
    assert only(text)[0] == [("file_write", {"path": "README.md", "content": content})]


def test_a_cut_off_burst_keeps_only_its_first_call():
    one = '```json\n{"name": "file_read", "arguments": {"path": "%s"}}\n```\n\n'
    text = one % "a" + one % "b" + '```json\n{"name": "file_read", "argum'
    r = recover_calls(text, TOOLS, cut_off=True)
    assert [json.loads(c.arguments) for c in r.calls] == [{"path": "a"}] and r.dropped == 1
    r = recover_calls(text, TOOLS, cut_off=False)  # a complete burst: every complete call, none made up
    assert [json.loads(c.arguments) for c in r.calls] == [{"path": "a"}, {"path": "b"}]


def _reply(content=None, tool_calls=None):
    return SimpleNamespace(content=content, tool_calls=tool_calls)


def test_reply_calls_native_and_recovered():
    native = [SimpleNamespace(id="c1", function=SimpleNamespace(name="file_read", arguments='"{\\"path\\": \\"x\\"}"'))]
    content, calls, info = reply_calls(_reply("reading", native), "tool_calls", 3, ["file_read"])
    assert (
        content == "reading" and calls[0].id == "c1" and json.loads(calls[0].arguments) == {"path": "x"} and info == {}
    )
    text = 'Done with the plan.\n```json\n{"name": "shell_exec", "arguments": {"command": "pytest -q"}}\n```'
    content, calls, info = reply_calls(_reply(text), "stop", 7, ["shell_exec"])
    assert content == "Done with the plan." and [(c.id, c.name) for c in calls] == [("call_7_0", "shell_exec")]
    assert calls[0].digest and info == {"recovered_calls": 1}
    content, calls, info = reply_calls(_reply("All done, nothing more to do."), "stop", 8, ["shell_exec"])
    assert calls == [] and content == "All done, nothing more to do." and info == {}


def test_a_call_under_a_copied_phase_header_is_still_a_call():
    """Found by red-teaming: a model that copies its opening's header before its call ("**Phase: BUILD**" then
    `file_write: …`) lost the call in the forms that must be the whole reply (`name: values`, a lone arguments
    object), while the Python and JSON forms were recovered; the header alone was then dropped and asked again."""
    for text in (
        '**Phase: BUILD**\nfile_write: site/index.html, "<h1>Hi</h1>"',
        'Phase: BUILD\n{"path": "site/index.html", "content": "<h1>Hi</h1>"}',
        'Phase: BUILD\nfile_write("site/index.html", "<h1>Hi</h1>")',
    ):
        content, calls, info = reply_calls(_reply(text), "stop", 4, ["file_write"])
        assert [(c.name, json.loads(c.arguments)) for c in calls] == [
            ("file_write", {"path": "site/index.html", "content": "<h1>Hi</h1>"})
        ], text
        assert drop_other_phase_text(content, Phase.BUILD)[0] is None  # the header is not kept as the model's words
    # prose under a header stays prose (and is dropped by drop_other_phase_text, then asked again)
    assert reply_calls(_reply("**Phase: BUILD**\nfile_write: site/index.html"), "stop", 5, ["file_write"])[1] == []


ORDERED = {"file_write": ("path", "content"), "file_list": ("path",), "shell_exec": ("command", "timeout_s")}


def test_calls_written_as_code():
    """What a 1.5B model wrote when nudged (docs/eval.md): a Python call, or the name followed by the arguments."""

    def calls(text):
        r = recover_calls(text, ORDERED)
        return [(c.name, json.loads(c.arguments)) for c in r.calls], r.content

    assert calls('file_write("hello.txt", "Hello from Morgus")') == (
        [("file_write", {"path": "hello.txt", "content": "Hello from Morgus"})],
        None,
    )
    assert calls('File written to hello.txt: file_write{"path": "hello.txt", "content": "Hi"}') == (
        [("file_write", {"path": "hello.txt", "content": "Hi"})],
        "File written to hello.txt:",
    )
    assert calls("shell_exec(command='ls (x)', timeout_s=5)\nfile_list('src')")[0] == [
        ("shell_exec", {"command": "ls (x)", "timeout_s": 5}),
        ("file_list", {"path": "src"}),
    ]
    assert calls('file_write("a.py", """print(")")\n""")')[0] == [
        ("file_write", {"path": "a.py", "content": 'print(")")\n'})
    ]
    assert calls('file_write({"path": "a", "content": "b"})')[0] == [("file_write", {"path": "a", "content": "b"})]
    assert calls("file_list()")[0] == [("file_list", {})]  # the whole reply


def test_prose_that_mentions_a_tool_stays_prose():
    for text in (
        "I will call file_write(path, content) next.",
        "Use file_list() to see the files.",
        'file_write("a", "b", "c")',
        'file_write(**{"path": "a"})',
        'file_write(mode="w")',
        'xfile_write("a", "b")',
        'os.file_write("a", "b")',
        'file_write{"mode": 1}',
        "file_write(" + "(" * 50_000,
        'file_write("' + "x" * 10_000,
        "file_write(__import__('os'))",
    ):
        r = recover_calls(text, ORDERED)
        assert r.calls == [] and r.content == text, text[:60]


def test_a_reply_that_is_name_colon_values():
    """`file_write: site/index.html, "<!doctype html>…"` was every BUILD call of a 1.5B model in `make demo-local`
    (copied after each retry, so BUILD never wrote a file): the values fill the parameters in order."""

    def calls(text):
        r = recover_calls(text, ORDERED)
        return [(c.name, json.loads(c.arguments)) for c in r.calls], r.content

    demo = (
        'file_write: site/index.html, "<!doctype html>\\n<html lang=\\"en\\">\\n<h1>Crumb & Co.</h1>\\n'
        '<p>Open Mon-Sat 7:00-18:00</p>\\n</html>"'
    )
    assert calls(demo) == (
        [
            (
                "file_write",
                {
                    "path": "site/index.html",
                    "content": (
                        '<!doctype html>\n<html lang="en">\n<h1>Crumb & Co.</h1>\n<p>Open Mon-Sat 7:00-18:00</p>\n</html>'
                    ),
                },
            )
        ],
        None,
    )
    assert calls('file_write: a.txt, "one\ntwo"')[0] == [("file_write", {"path": "a.txt", "content": "one\ntwo"})]
    # a bare word stays the text written; the tool's arguments model makes "30" the number its schema says
    assert calls('`shell_exec: "ls -la", 30`')[0] == [("shell_exec", {"command": "ls -la", "timeout_s": "30"})]
    assert calls('file_write: "a.txt", "hi"')[0] == [("file_write", {"path": "a.txt", "content": "hi"})]
    assert calls("file_list, dist")[0] == [("file_list", {"path": "dist"})]  # "deploy_local, dist", every retry
    assert calls("shell_exec, ls, 30")[0] == [("shell_exec", {"command": "ls", "timeout_s": "30"})]


def test_a_bare_colon_value_is_not_made_a_number():
    """Found by red-teaming: a bare word that looked like a number became a JSON number, so `file_write: 2024, …`
    was refused ("path: Input should be a valid string") and `-0`, `1.50` lost characters. The arguments model
    (pydantic, lax) still makes a numeric parameter a number."""
    from morgus.activities.tools.files import FileWriteArgs
    from morgus.activities.tools.shell import ShellExecArgs

    for path in ("2024", "-0", "1.50", "007"):
        (call,) = recover_calls(f'file_write: {path}, "x"', ORDERED).calls
        assert FileWriteArgs.model_validate_json(call.arguments).path == path
    (call,) = recover_calls('shell_exec: "ls", 30', ORDERED).calls
    assert ShellExecArgs.model_validate_json(call.arguments).timeout_s == 30


def test_colon_lines_that_are_not_calls_stay_prose():
    """The one-line report a phase ends with, prose after the values, more values than parameters, an unknown
    name, an unclosed string: all stay text, each read once (a 1 MB unclosed string is not rescanned)."""
    for text in (
        "file_write: site/index.html",
        "file_write: site/index.html, index.css",
        'file_write: a.txt, "x" and then I deployed it',
        'file_write: "a", "b", "c"',
        'Note: "x"',
        'deploy_local: "site"',
        'file_write: a b, "c"',
        'file_write: a, "unclosed',
        'file_write: , "x"',
        'file_write: a, "' + "x" * 1_000_000,
        'Plan:\nfile_write: a.txt, "hi"',
        "file_list, dist\nfile_list, src",  # unquoted values after a comma: one line only
        "file_list, the dist folder",
        "file_list, shell_exec",  # a list of tools (red team: "git_add, git_commit" became git_add(paths=…))
        'file_write: file_list, "x"',
    ):
        r = recover_calls(text, ORDERED)
        assert r.calls == [] and r.content == text, text[:60]
