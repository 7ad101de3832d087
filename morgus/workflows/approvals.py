"""Approvals: does a tool call need the user's yes before it runs, and why?

One job: apply a task's `ApprovalPolicy` to one call. A tool named in `policy.tools` always asks (until the user
approves all of that tool for the task); a `shell_exec` whose command matches one of `policy.commands` asks.

The command match is a speed bump for an honest model, not a sandbox boundary (the sandbox is that: no network
unless the task asked for it). It reads the command the way a person skimming it would, generously:
- quotes and backslashes are dropped, so `c\\url`, `'c'url`, `"curl"` and `bash -c 'curl …'` read as curl;
  a backslash-newline continuation is joined first;
- every word counts, not only the first of a command, and a word's directories are dropped: `/usr/bin/curl`,
  `env A=1 curl`, `sudo curl`, `xargs curl`, `$(curl …)` and `echo x | curl` all match `curl`;
- `${IFS}`, `=`, `<`, `>`, `{`, `}`, `,` split words; case is ignored;
- a pattern of several words ('npm publish') matches its first word followed, later in the same simple command
  (up to `;`, `&`, `|`, `(`, `)`, a backquote or a newline), by the others in order: `npm --tag beta publish`.
A separator inside quotes or after a backslash does not end the simple command (`git -c 'a.b=;' push`).
What it cannot catch: a command built at run time (`X=cu; ${X}rl`, `$(echo Y3VybA== | base64 -d)`, ANSI-C
`$'\\x63url'`, a glob such as `/usr/bin/cu?l`, a brace expansion such as `c{u,}rl`), another program doing the
same thing (`python -c "urllib…"`, `node -e "fetch(…)"`, a script the model wrote earlier), or an alias. Being generous, it also asks for harmless commands that merely name a pattern
(`grep curl notes.txt`, `cat docs/ssh`): a question to a person, never a wrong run.

Pure and deterministic (no Temporal call), so the workflow can use it and tests run without a server.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Collection

from morgus.contracts import ApprovalPolicy

_CONTINUATION = re.compile(r"\\\r?\n")
_QUOTING = re.compile(r"[\\'\"]")
_SEGMENT = re.compile(r"[;&|()`\n\r]")
_WORD = re.compile(r"[\s{}<>=,$]+")
ARGUMENTS_SHOWN = 4000  # characters of a call's arguments the approval step and the status query carry


# a quoted or backslash-escaped string: a separator in it is text to the shell, not the end of a command
_QUOTED = re.compile(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"|\\.", re.S)


def _merge_quoted(m: re.Match[str]) -> str:
    return _SEGMENT.sub(" ", m.group())


def _words(text: str, quoted_separators: bool = False) -> list[list[str]]:
    """The command's simple commands, each as its words (lower case, directories dropped, quoting removed).
    `quoted_separators` (approvals-quoted-v1): a `;`, `|`, `&`, parenthesis, backquote or newline inside quotes or
    after a backslash does not end the simple command (`git -c 'a.b=;' push` is one git command that pushes)."""
    text = _CONTINUATION.sub("", text)
    if quoted_separators:
        text = _QUOTED.sub(_merge_quoted, text)
    text = _QUOTING.sub("", text).lower()
    segments = []
    for segment in _SEGMENT.split(text):
        words = [posixpath.basename(w.rstrip("/")) or w for w in _WORD.split(segment) if w]
        if words:
            segments.append(words)
    return segments


def _pattern_words(pattern: str) -> list[str]:
    return [w for seg in _words(pattern) for w in seg]


def command_matches(pattern: str, command: str) -> bool:
    """`pattern`'s first word is a word of `command`, followed in the same simple command by the others in order."""
    return _matches(_pattern_words(pattern), _words(command))


def _matches(wanted: list[str], segments: list[list[str]]) -> bool:
    if not wanted:
        return False
    for words in segments:
        # the first occurrence of the first word is enough: every later one has fewer words after it, so a
        # command of 50,000 words is one pass per pattern, never a pass per occurrence
        try:
            first = words.index(wanted[0])
        except ValueError:
            continue
        rest = iter(words[first + 1 :])
        if all(any(w == want for w in rest) for want in wanted[1:]):  # a subsequence: `rest` is consumed
            return True
    return False


def _command_of(arguments: str | None) -> str:
    """The command of a shell_exec call; the raw arguments when they are not `{"command": "..."}` (the tool then
    refuses them itself, but a match costs only a question)."""
    try:
        data = json.loads(arguments or "")
    except (ValueError, RecursionError):
        return arguments or ""
    command = data.get("command") if isinstance(data, dict) else None
    return command if isinstance(command, str) else (arguments or "")


def approval_needed(
    policy: ApprovalPolicy | None,
    approved_tools: Collection[str],
    tool: str,
    arguments: str | None,
    quoted_separators: bool = False,
) -> str | None:
    """Why the call needs the user's yes, in a few words; None when it may run. `quoted_separators`: see _words."""
    if policy is None or tool in approved_tools:
        return None
    if tool in policy.tools:
        return f"the approval policy names {tool}"
    if tool != "shell_exec":
        return None
    if arguments is None:  # too large to carry: the workflow cannot read it, so it asks
        return "the command is too large to check"
    segments = _words(_command_of(arguments), quoted_separators)  # split once, whatever the number of patterns
    for pattern in policy.commands:
        if _matches(_pattern_words(pattern), segments):
            return f"the command matches {pattern!r}"
    return None


def shown_arguments(arguments: str | None) -> str:
    if arguments is None:
        return "(too large to show)"
    return arguments if len(arguments) <= ARGUMENTS_SHOWN else arguments[:ARGUMENTS_SHOWN] + "…"
