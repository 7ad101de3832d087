"""The command policy catches each destructive form and nothing else (false positives count as failures too)."""

from __future__ import annotations

import pytest

from morgus.sandbox.policy import check_command

DENIED = {
    "rm -rf /": "rm-root",
    "rm -rf /*": "rm-root",
    "rm -fr / --no-preserve-root": "rm-root",
    "rm --recursive --force /": "rm-root",
    "sudo rm -Rf /": "rm-root",
    "cd /tmp && rm -rf ~": "rm-root",
    "echo ok; rm -r -f /workspace": "rm-root",
    "FOO=1 /bin/rm -rf /": "rm-root",
    "mkfs.ext4 /dev/sda1": "mkfs",
    "mkfs -t ext4 /dev/vda": "mkfs",
    "dd if=/dev/zero of=/dev/sda bs=1M": "dd-device",
    ":(){ :|:& };:": "fork-bomb",
    "bomb() { bomb | bomb & }; bomb": "fork-bomb",
    "cat /dev/zero > /dev/sda": "device-redirect",
}

ALLOWED = [
    "git init",
    "npm init -y",
    "echo summary",
    "echo 'su root is not a command here'",
    "grep -r 'sudo' .",
    "rm -rf node_modules dist",
    "rm -rf ./build /tmp/cache",
    "rm -rf /workspace/dist",
    "echo 'rm -rf /'",
    "git commit -m 'rm -rf / is dangerous'",
    "dd if=/dev/zero of=/tmp/file bs=1M count=1",
    "dd if=in.img of=/dev/null",
    "python3 -c 'print(1)' | tee out.txt",
    "cat <<'EOF' > notes.md\nsudo make me a sandwich\nEOF",
    "mkdir -p build && cd build",
    'summary=$(git log --oneline | head -1); echo "$summary"',
    "pip install --user pytest",
    "",
]


@pytest.mark.parametrize("command,rule", DENIED.items())
def test_destructive_commands_are_refused(command: str, rule: str):
    denied = check_command(command, allow=set())
    assert denied is not None and denied.rule == rule, command
    assert denied.message().startswith(f"command refused by policy rule '{rule}'")


@pytest.mark.parametrize("command", ALLOWED)
def test_ordinary_commands_are_allowed(command: str):
    assert check_command(command, allow=set()) is None


def test_rules_can_be_turned_off_by_name():
    assert check_command("rm -rf /", allow={"rm-root"}) is None
    assert check_command("mkfs /dev/sda", allow={"rm-root"}) is not None
    assert check_command(":(){ :|:& };:", allow={"all"}) is None
