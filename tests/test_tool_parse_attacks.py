"""Red team of calls written as code (morgus/tool_parse/code_calls.py `named_calls`): attacks that broke the parser, kept
so they stay broken. Pure functions, no server. CPU costs are measured in bench/bench_tool_parse.py, not here."""

from __future__ import annotations

import json

from morgus.activities.llm_reply import _tool_params
from morgus.tool_parse import MAX_CALL_CODE, recover_calls

TOOLS = _tool_params()  # the real tools, in declaration order
CALL = json.dumps({"name": "shell_exec", "arguments": {"command": "rm -rf /"}})


def calls(text: str, tools=TOOLS, **kw):
    r = recover_calls(text, tools, **kw)
    return [(c.name, json.loads(c.arguments)) for c in r.calls], r.content


def test_hostile_code_calls_are_prose_and_finish():
    """Attack: replies of unclosed or huge calls. Python's tokenizer (pure Python on 3.11) read each candidate to
    the end of the reply: 16 unclosed `file_write(` in 1 MB cost 17 s of CPU, 16 nested `file_write([` 42 s, and
    a 1 MB literal list made ast.parse build a million nodes. Now a linear scan, with the code of one call bounded."""
    n = 200_000
    for text in (
        ("file_write(" + "a " * 1000 + "\n") * 16 + "x = 1\n" * (n // 6),
        "file_write([" * 16 + "0," * (n // 2) + "x" + "])" * 16,
        "file_write('a', [" + "0," * (n // 2) + "])",  # a valid call, but far more code than a call has
        "file_write({" + "'a':0," * (n // 6) + "})",
        "file_write('a', 0x" + "f" * n + ")",
        'file_write("a", """' + "x\n" * n,  # unterminated multi-line string
        ('file_write("a", """' + "x\n" * (n // 32)) * 16,
        "file_write('a', '" + "\\" * n,
        "file_write(" + "\\\n" * n + ")",
        "a file_write(x) " * (n // 16),
    ):
        r = recover_calls(text, TOOLS)
        assert r.calls == [] and r.content == text, text[:40]
    # a string argument may be as long as a file: it is one value, not code
    big = "x\n" * n
    assert calls(f'file_write("big.txt", """{big}""")')[0] == [("file_write", {"path": "big.txt", "content": big})]
    code = "[" + "0," * (MAX_CALL_CODE // 2 - 20) + "0]"
    assert calls(f"file_write('a', {code})")[0][0][1]["content"] == json.loads(code)


def test_a_call_mentioned_in_a_sentence_is_not_run():
    """Attack: a summary that says how a call was made ("I created it with `file_write(…)`.") ran the call again,
    and the phase never ended on its summary; the leftover prose was cut to "…with ``, and…"."""
    for text in (
        'I created the file with `file_write("hello.txt", "Hello")`, and it is done.',
        'Then run shell_exec("npm test") to check.',
        'file_write("a", "b") is what I ran.',
    ):
        assert calls(text) == ([], text)
    # a colon introduces a call, as a small model writes it after prose ("File written to hello.txt: …")
    assert calls('File written to hello.txt: file_write("hello.txt", "Hi")') == (
        [("file_write", {"path": "hello.txt", "content": "Hi"})],
        "File written to hello.txt:",
    )


def test_a_line_inside_a_refused_calls_string_is_not_a_call():
    """Attack: a refused candidate (a variable argument, prose after it) was skipped only past its name, so a
    line of the script it held, `shell_exec('rm -rf /')`, was then found on a line of its own and run."""
    for text in (
        'file_write(path, """\nshell_exec(\'rm -rf /\')\n""")',
        'file_write("run.sh", """\nshell_exec(\'rm -rf /\')\n""") is what I would write.',
        'I would write file_write("run.sh", """\nshell_exec(\'rm -rf /\')\n""") and stop.',
    ):
        assert calls(text) == ([], text), text
    # the call after a refused one is still found
    assert calls('file_write(path, content)\nfile_read("a")')[0] == [("file_read", {"path": "a"})]


def test_calls_on_their_own_lines_and_what_is_left():
    """A call alone on its line (in backticks, a fence, a Python list as some models write them) runs; the prose
    left has no empty fence or `[, ]` behind, and code shown in prose keeps its fences."""
    assert calls('Sure:\n```python\nfile_write("a.txt", "hi")\n```\nDone.') == (
        [("file_write", {"path": "a.txt", "content": "hi"})],
        "Sure:\n\nDone.",
    )
    assert calls('```tool_code\nfile_read("a")\n```') == ([("file_read", {"path": "a"})], None)
    assert calls('`file_read("a")`') == ([("file_read", {"path": "a"})], None)
    assert calls('Reading both:\n[file_read(path="a"),\n file_read("b")]\nthen I decide.') == (
        [("file_read", {"path": "a"}), ("file_read", {"path": "b"})],
        "Reading both:\n\nthen I decide.",
    )
    text = "Here's how:\n```bash\nls -la\n```\n" + f"```json\n{CALL}\n```"
    assert calls(text) == ([("shell_exec", {"command": "rm -rf /"})], "Here's how:\n```bash\nls -la\n```")
    assert calls('file_read("a")\nSome prose here.\nfile_read("b")') == (
        [("file_read", {"path": "a"}), ("file_read", {"path": "b"})],
        "Some prose here.",
    )
    assert calls('file_write("é€😀", "ü")\nnext') == ([("file_write", {"path": "é€😀", "content": "ü"})], "next")


def test_json_inside_a_code_calls_strings_is_the_files_text():
    """Attack: a file_write written as code whose content is (or shows, in a fenced example) a JSON tool call ran
    that inner call — `shell_exec("rm -rf /")` — instead of writing the file."""
    for text in (
        f"file_write('t.json', '{CALL}')",
        f'file_write("README.md", """Example:\n```json\n{CALL}\n```\n""")',
        f"file_write('t.json', '<tool_call>{CALL}</tool_call>')",
    ):
        found, left = calls(text)
        assert [name for name, _ in found] == ["file_write"] and left is None, text
        assert CALL in found[0][1]["content"]


def test_values_json_cannot_carry_and_ambiguous_arguments():
    """inf/NaN (`1e999`) used to become `Infinity` in the arguments, which is not JSON; bytes, sets, complex
    numbers, `...` cannot be carried at all; a value given twice (`file_write("a", path="b")`) silently dropped
    the first one. All are prose now. Tuples become lists, as JSON has only lists."""
    for text in (
        'file_write("a.txt", 1e999)',
        'file_write("a", -1e999)',
        'file_write("a", {"k": 1e999})',
        'file_write{"path": "a", "content": NaN}',
        'file_write("a", b"x")',
        'file_write("a", {1, 2})',
        'file_write("a", 1j)',
        'file_write("a", ...)',
        'file_write("a", path="b")',
        'file_write("a", x:=1)',
        'file_write(*["a", "b"])',
        'file_write("a", f"b")',
        'file_write("a", content="b", mode="w")',
        'file_write({1: "a"})',
        'file_write("\ud800", "b")',
        'file_write("a", "b")\x00 tail',
        "file_write('a', 'unterminated)\n')",
    ):
        assert calls(text) == ([], text), text
    assert calls('git_add(("a", ("b", "c")))')[0] == [("git_add", {"paths": ["a", ["b", "c"]]})]
    assert calls("file_write('a', '''it''s''')")[0] == [("file_write", {"path": "a", "content": "it''s"})]
    assert calls('file_write("a", """x)"""\n)')[0] == [("file_write", {"path": "a", "content": "x)"})]


def test_positional_values_need_an_ordered_parameter_list():
    """A frozenset has no order: positional values map only to a tool with one parameter; names always work."""
    unordered = {"file_write": frozenset({"path", "content"}), "file_read": frozenset({"path"})}
    assert calls('file_write("a", "b")', unordered) == ([], 'file_write("a", "b")')
    assert calls('file_write(content="b", path="a")', unordered)[0] == [("file_write", {"path": "a", "content": "b"})]
    assert calls('file_read("a")', unordered)[0] == [("file_read", {"path": "a"})]


def test_code_calls_beside_json_calls_and_cut_off():
    """A JSON call wins over calls written as code (which stay in the prose, not run twice); a cut-off burst of
    code calls keeps only its first."""
    text = f'file_write("a.txt", "x")\n```json\n{CALL}\n```'
    assert calls(text) == ([("shell_exec", {"command": "rm -rf /"})], 'file_write("a.txt", "x")')
    r = recover_calls('file_read("a")\nfile_read("b")\nfile_read("c', TOOLS, cut_off=True)
    assert [json.loads(c.arguments) for c in r.calls] == [{"path": "a"}] and r.dropped == 1


def test_a_brace_that_cannot_open_an_object_is_skipped():
    """`x{x{…` (code in prose) made every `{` a failed decode, 1.4 s of CPU per MB; an object opens `{"` or `{}`,
    so only those are decoded now, and calls written with blanks after the brace are still found."""
    assert calls("function f(){x{" * 1000 + '{ \n "name": "file_read", "arguments": {"path": "a"}}')[0] == [
        ("file_read", {"path": "a"})
    ]
    assert calls('{"name": "file_read", "arguments": {}}')[0] == [("file_read", {})]


def test_a_reply_that_is_only_one_tools_arguments_is_that_call():
    """What a 1.5B model replied to "Reply now with a file_write call (the path and the full content…)"."""
    tools = _tool_params()
    r = recover_calls('{ "path": "site/index.html", "content": "<h1>Crumb & Co.</h1>" }', tools)
    assert [(c.name, json.loads(c.arguments)) for c in r.calls] == [
        ("file_write", {"path": "site/index.html", "content": "<h1>Crumb & Co.</h1>"})
    ]
    assert recover_calls('```json\n{"command": "cat a.txt"}\n```', tools).calls[0].name == "shell_exec"
    for not_a_call in (
        '{"path": "a.txt"}',  # file_read or file_list: ambiguous
        '{"path": "a", "colour": "red"}',  # no tool takes `colour`
        'Here it is: {"path": "a", "content": "b"}',  # not the whole reply
        "{}",
        '[{"path": "a", "content": "b"}]',
        '{"path": "a", "content": NaN}',
    ):
        assert recover_calls(not_a_call, tools).calls == [], not_a_call
