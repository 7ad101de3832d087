"""Command policy: a short, parsed deny list for obviously destructive commands against the sandbox itself.

The container is the security boundary; this is a courtesy that stops a model from wrecking its own sandbox by
accident, with an error it can act on. It tokenises the command (shlex, for analysis only: the command runs
exactly as written) and looks at each simple command's program and arguments, never at substrings, so
`git init`, `npm init`, `echo summary` or `su`-containing text are never caught.

Rules can be turned off by name with MORGUS_POLICY_ALLOW="rule,rule" (or "all"); the caller passes
`settings.policy_allowed`.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Set
from dataclasses import dataclass

from morgus.config import POLICY_RULES

_SEPARATORS = {";", "&&", "||", "|", "&", "|&", "(", ")", "\n", ";;"}
_WRAPPERS = {"sudo", "command", "exec", "nice", "nohup", "time", "env", "builtin", "xargs", "timeout", "stdbuf"}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_FORK_BOMB = re.compile(r"(?P<f>[A-Za-z_:.][\w:.]*)\s*\(\)\s*\{\s*(?P=f)\s*\|\s*(?P=f)\s*&\s*\}\s*;?\s*(?P=f)")
_ROOT_TARGETS = {"/", "/*", "/.", "/..", "~", "~/", "$HOME", "${HOME}", "/workspace", "/workspace/", "/workspace/*"}


@dataclass(frozen=True)
class Denied:
    rule: str
    reason: str

    def message(self) -> str:
        return f"command refused by policy rule '{self.rule}': {self.reason}"


def _simple_commands(command: str) -> list[list[str]]:
    lexer = shlex.shlex(command.replace("\n", " ; "), posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: bash will reject it itself
        return []
    commands: list[list[str]] = [[]]
    for tok in tokens:
        if tok in _SEPARATORS or set(tok) <= set(";&|()"):
            commands.append([])
        else:
            commands[-1].append(tok)
    result = []
    for words in commands:
        while words and (
            _ASSIGNMENT.match(words[0]) or os.path.basename(words[0]) in _WRAPPERS or words[0].startswith("-")
        ):
            words = words[1:]
        if words:
            result.append([os.path.basename(words[0]), *words[1:]])
    return result


def _rm_everything(args: list[str]) -> bool:
    flags = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
    long_flags = {a for a in args if a.startswith("--")}
    recursive = "r" in flags or "R" in flags or "--recursive" in long_flags
    targets = [a for a in args if not a.startswith("-")]
    return recursive and any(t in _ROOT_TARGETS for t in targets)


def _check_simple(words: list[str]) -> Denied | None:
    prog, args = words[0], words[1:]
    if prog == "rm" and _rm_everything(args):
        return Denied(
            "rm-root", "recursive delete of the root, home or the whole workspace; delete specific paths instead"
        )
    if prog.startswith("mkfs") or prog in {"mke2fs", "mkswap", "wipefs"}:
        return Denied("mkfs", f"{prog} formats a device")
    if prog == "dd" and any(
        a.startswith("of=/dev/") and a not in ("of=/dev/null", "of=/dev/stdout", "of=/dev/stderr") for a in args
    ):
        return Denied("dd-device", "dd writing to a device")
    return None


RULES = POLICY_RULES  # every Denied below names one of these (tests/test_policy.py checks both ways)
_DEVICE_REDIRECT = re.compile(r">\s*/dev/(sd[a-z]|nvme\d|vd[a-z]|xvd[a-z]|hd[a-z]|mem|kmem|port)")


def check_command(command: str, allow: Set[str] = frozenset()) -> Denied | None:
    """None if the command may run; else the rule that refuses it. `allow`: the rules turned off."""
    if "all" in allow:
        return None
    found: list[Denied] = []
    if _FORK_BOMB.search(command):
        found.append(Denied("fork-bomb", "a fork bomb"))
    if _DEVICE_REDIRECT.search(command):
        found.append(Denied("device-redirect", "writing to a raw device"))
    for words in _simple_commands(command):
        denied = _check_simple(words)
        if denied:
            found.append(denied)
    for d in found:
        if d.rule not in allow:
            return d
    return None
