"""examples/chat.py end to end: a real hub process and every user as an OS process of its own.

The scenario of issue 10: a group of three is created, messages go every way, a fourth member is
added, one member is stopped (offline) through the next change, another is removed, one is
killed with SIGKILL and restarted from its saved db, and the offline one comes back and catches
up. Then every message must have reached exactly the members it was sent to, each once, with the
right sender, and the removed member nothing sent after its removal.

The epoch changes run on the hub's real clock (spec 11: an epoch other than the first must be 60 s
old before a change is announced, then a 10 s announcement window), so the scenario takes about
100 s of real time (the removal waits out the 60 s); it is not marked slow: CI runs it.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import triple_ratchet.client as client_api

REPO = Path(__file__).resolve().parents[1]
CHAT = REPO / "examples" / "chat.py"

START_TIMEOUT = 60.0  # a process up and printing its first line
STEP_TIMEOUT = 90.0  # messages delivered, a group created or joined
# An epoch change: the epoch must be 60 s old (hub time), a 10 s announcement window, the run.
EPOCH_TIMEOUT = 240.0
EXIT_TIMEOUT = 20.0


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Hub:
    """`python -m triple_ratchet hub` on the SQLite store, as a subprocess."""

    def __init__(self, tmp: Path) -> None:
        self.log = tmp / "hub.log"
        with self.log.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "triple_ratchet", "hub", "--host", "127.0.0.1",
                 "--port", "0", "--store", f"sqlite:{tmp / 'hub.sqlite3'}",
                 "--log-level", "info"],
                stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)})
        assert self.proc.stdout is not None
        # The hub prints the address it listens on once the port is open.
        line = _readline_within(self.proc, START_TIMEOUT)
        if not line.startswith("hub listening on 127.0.0.1:"):
            _end(self.proc)
            raise AssertionError(f"the hub did not start: {line!r}\n{_tail(self.log)}")
        self.url = f"ws://127.0.0.1:{int(line.rsplit(':', 1)[1])}"

    def stop(self) -> None:
        _end(self.proc)


def _readline_within(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline()),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0] if got else ""


def _end(proc: subprocess.Popen[str]) -> None:
    """Terminate, then kill: no process outlives the test."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class User:
    """One user: examples/chat.py on a db of its own; every line it ever printed, across
    restarts, in `lines` (in order)."""

    def __init__(self, name: str, tmp: Path, hub: Hub) -> None:
        self.name = name
        self.tmp = tmp
        self.hub = hub
        self.db = tmp / f"{name}.db"
        self.err = tmp / f"{name}.stderr"
        self.lines: list[str] = []
        self.invite = ""
        self.proc: subprocess.Popen[str] | None = None
        self._changed = threading.Condition()

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        with self._changed:
            since = len(self.lines)
        with self.err.open("a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-u", str(CHAT), str(self.db), "--hub", self.hub.url,
                 "--name", self.name],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                bufsize=1, cwd=self.tmp,
                env={**os.environ, "PYTHONPATH": str(REPO),
                     "CHAT_PASSPHRASE": f"{self.name}'s long passphrase"})
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        line = self.wait_for(lambda s: s.startswith("invite "), "its invite",
                             START_TIMEOUT, since=since)
        self.invite = line.split(" ", 1)[1]

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def type(self, line: str) -> int:
        """Type `line` into the chat; returns the output position before it."""
        assert self.proc is not None and self.proc.stdin is not None
        with self._changed:
            mark = len(self.lines)
        if not self.running:
            raise AssertionError(f"{self.name} is not running\n{self.failure()}")
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return mark

    def wait_for(self, match: Callable[[str], bool], what: str, timeout: float,
                 since: int = 0) -> str:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[since:]:
                    if match(line):
                        return line
                    if line.startswith("error "):
                        raise AssertionError(f"{self.name}: {line}\n{self.failure()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: no {what} within {timeout:.0f} s\n"
                                         f"{self.failure()}")
                if not self.running:
                    raise AssertionError(f"{self.name} exited while waiting for {what}\n"
                                         f"{self.failure()}")
                self._changed.wait(min(left, 1.0))

    def failure(self) -> str:
        return (f"--- {self.name} stdout (last lines):\n" + "\n".join(self.lines[-25:])
                + f"\n--- {self.name} stderr:\n{_tail(self.err)}"
                + f"\n--- hub log:\n{_tail(self.hub.log, 15)}")

    def received(self) -> list[tuple[str, str]]:
        """(sender, text) of every message it printed, in order."""
        with self._changed:
            return [(m[1], m[2]) for line in self.lines
                    if (m := re.fullmatch(r"message (\S+) (.*)", line))]

    def quit(self) -> None:
        if not self.running:
            return
        assert self.proc is not None
        self.type("/quit")
        try:
            self.proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"{self.name} did not quit\n{self.failure()}") from None

    def sigkill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def end(self) -> None:
        if self.proc is not None:
            _end(self.proc)


class Ledger:
    """Every message the test typed: its sender and the members it was meant for."""

    def __init__(self, users: dict[str, User]) -> None:
        self.users = users
        self.sent: dict[str, tuple[str, frozenset[str]]] = {}

    def send(self, sender: str, members: set[str], tag: str) -> str:
        text = f"{tag} from {sender} #{len(self.sent)}"
        user = self.users[sender]
        mark = user.type(text)
        user.wait_for(lambda s: re.fullmatch(r"sent [0-9a-f]+", s) is not None,
                      f"send confirmation of {text!r}", STEP_TIMEOUT, since=mark)
        self.sent[text] = (sender, frozenset(members - {sender}))
        return text

    def round(self, senders: list[str], members: set[str], tag: str) -> list[str]:
        return [self.send(s, members, tag) for s in senders]

    def delivered(self, texts: list[str], to: list[str]) -> None:
        """Wait until each of `to` (that the text was meant for) printed each text."""
        for name in to:
            user = self.users[name]
            for text in texts:
                if name in self.sent[text][1]:
                    user.wait_for(lambda s, t=text: s.endswith(" " + t) and s.startswith(
                        "message "), f"message {text!r}", STEP_TIMEOUT)

    def check(self) -> None:
        """Exactly its recipients, each once, with the right sender; nothing else."""
        got: dict[str, Counter[str]] = {text: Counter() for text in self.sent}
        for name, user in self.users.items():
            for sender, text in user.received():
                assert text in self.sent, f"{name} printed a message nobody sent: {text!r}"
                assert sender == self.sent[text][0], (
                    f"{name} got {text!r} from {sender}, sent by {self.sent[text][0]}")
                got[text][name] += 1
        for text, (_, meant) in self.sent.items():
            assert set(got[text]) == meant, (
                f"{text!r} reached {sorted(got[text])}, meant for {sorted(meant)}")
            assert all(n == 1 for n in got[text].values()), f"{text!r} twice: {got[text]}"


@pytest.fixture
def users(tmp_path: Path) -> Iterator[dict[str, User]]:
    hub = Hub(tmp_path)
    users = {name: User(name, tmp_path, hub) for name in ("alice", "bob", "carol", "dave")}
    try:
        yield users
    finally:
        for user in users.values():
            user.end()
        hub.stop()


def _members_line(*names: str) -> Callable[[str], bool]:
    want = "members " + " ".join(sorted(names))
    return lambda s: s == want


def test_three_processes_chat_through_a_real_hub(users: dict[str, User]) -> None:
    alice, bob, carol, dave = (users[n] for n in ("alice", "bob", "carol", "dave"))
    ledger = Ledger(users)
    began = time.monotonic()

    def phase(what: str) -> None:  # the real time each part took (pytest -s shows it)
        print(f"  {time.monotonic() - began:6.1f} s  {what}")

    for user in users.values():
        user.start()

    phase("processes started")

    # A group of three.
    mark = alice.type(f"/group friends {bob.invite} {carol.invite}")
    alice.wait_for(lambda s: s == "created friends", "the group", STEP_TIMEOUT, since=mark)
    for user in (bob, carol):
        user.wait_for(lambda s: s == "joined friends invited by alice", "the invitation",
                      STEP_TIMEOUT)
    members = {"alice", "bob", "carol"}
    ledger.delivered(ledger.round(["alice", "bob", "carol", "bob"], members, "hello"),
                     sorted(members))

    phase("group of three created, messages every way")

    # A fourth member (the epoch change waits for the epoch's minimum age on the hub's clock).
    marks = {u.name: len(u.lines) for u in (alice, bob, carol)}
    alice.type(f"/add {dave.invite}")
    dave.wait_for(lambda s: s == "joined friends invited by alice", "its invitation",
                  EPOCH_TIMEOUT)
    for user in (alice, bob, carol):
        user.wait_for(_members_line("alice", "bob", "carol", "dave"), "dave's addition",
                      EPOCH_TIMEOUT, since=marks[user.name])
    members.add("dave")
    ledger.delivered(ledger.round(["dave", "alice", "bob", "carol"], members, "welcome"),
                     sorted(members))

    phase("dave added")

    # Carol goes offline (her process ends); the group goes on without her.
    carol.quit()
    missed = ledger.round(["alice", "bob", "dave"], members, "while carol is away")
    ledger.delivered(missed, ["alice", "bob", "dave"])

    phase("carol offline, messages without her")

    # Bob is removed while carol is offline.
    marks = {u.name: len(u.lines) for u in (alice, dave)}
    alice.type("/remove bob")
    bob.wait_for(lambda s: s == "removed friends", "its removal", EPOCH_TIMEOUT)
    for user in (alice, dave):
        user.wait_for(_members_line("alice", "carol", "dave"), "bob's removal", EPOCH_TIMEOUT,
                      since=marks[user.name])
    members.discard("bob")
    after_removal = ledger.round(["alice", "dave"], members, "after bob left")
    ledger.delivered(after_removal, ["alice", "dave"])

    phase("bob removed")

    # Dave is killed outright the moment his message is stored (maybe before it left: then it
    # goes from his saved outbox after the restart), and restarted from his saved db; what was
    # sent meanwhile arrives.
    while_dead = [ledger.send("dave", members, "just before dave is killed")]
    dave.sigkill()
    while_dead += ledger.round(["alice"], members, "while dave is dead")
    dave.start()
    ledger.delivered(while_dead, ["alice", "dave"])
    after_restart = ledger.round(["dave", "alice"], members, "dave is back")
    ledger.delivered(after_restart, ["alice", "dave"])

    phase("dave killed and restarted")

    # Carol comes back and catches up: the removal, then every message she missed.
    mark = len(carol.lines)
    carol.start()
    carol.wait_for(_members_line("alice", "carol", "dave"), "the catch-up to bob's removal",
                   EPOCH_TIMEOUT, since=mark)
    ledger.delivered(missed + after_removal + while_dead + after_restart, ["carol"])
    ledger.delivered(ledger.round(["carol", "alice", "dave"], members, "all caught up"),
                     sorted(members))

    phase("carol caught up")

    # Let stray deliveries land, end every process cleanly, then check the whole record.
    time.sleep(2.0)
    for user in users.values():
        user.quit()
    elapsed = time.monotonic() - began
    ledger.check()
    bob_got = {text for _, text in bob.received()}
    late = [t for t in after_removal + while_dead + after_restart if t in bob_got]
    assert not late, f"the removed member read {late}"
    assert sum(len(m) for _, m in ledger.sent.values()) >= 40
    print(f"\nthree-process chat scenario: {elapsed:.1f} s of real time")


def _app_lines(path: Path) -> list[str]:
    """The app code: every line that is neither blank nor a comment."""
    return [line for line in path.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _library_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {f"{node.module}.{alias.name}" for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("triple_ratchet")
            for alias in node.names}


def test_chat_example_is_at_most_60_lines_on_the_public_api() -> None:
    assert len(_app_lines(CHAT)) <= 60
    names = _library_names(CHAT)
    # Only the client layer's public names (and the one error hierarchy).
    assert {n.rsplit(".", 1)[0] for n in names} <= {"triple_ratchet.client",
                                                    "triple_ratchet.errors"}
    assert all(n.rsplit(".", 1)[1] in client_api.__all__ or n.startswith("triple_ratchet.errors")
               for n in names)
    assert len(names) <= 8


def _readme_quick_start() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    two, _, rest = text.partition("## Quick start")
    assert "## Two commands" in two, "the quick start comes below the two commands"
    (code,) = re.findall(r"^```python\n(.*?)^```$", rest.split("\n## ", 1)[0], flags=re.S | re.M)
    return str(code)


def test_readme_quick_start_runs_against_a_real_hub(tmp_path: Path) -> None:
    """README's quick start, as written (only its file name and hub address swapped): Alice's
    code creates a group with Bob from his invite and says hi; Bob answers; Alice prints it."""
    code = _readme_quick_start()
    assert len([line for line in code.splitlines() if line.strip()]) <= 14
    assert code.rstrip().endswith("asyncio.run(main())")
    hub = Hub(tmp_path)
    try:
        code = code.replace('"alice.db"', repr(str(tmp_path / "alice.db")))
        code = code.replace("ws://127.0.0.1:8765", hub.url).rstrip()
        code = code.removesuffix("asyncio.run(main())")
        asyncio.run(asyncio.wait_for(_quick_start_with_bob(code, hub.url, tmp_path),
                                     STEP_TIMEOUT))
    finally:
        hub.stop()


async def _quick_start_with_bob(code: str, url: str, tmp: Path) -> None:
    bob = await client_api.Client.open(tmp / "bob.db", hub=url, passphrase="bob's passphrase",
                                       name="bob")
    printed: list[str] = []
    namespace: dict[str, object] = {
        "__name__": "readme_quick_start",
        "input": lambda prompt="": bob.invite(),  # Bob's invite, pasted
        "print": lambda *words: printed.append(" ".join(map(str, words))),
    }
    exec(compile(code, "README.md quick start", "exec"), namespace)
    main = namespace["main"]
    assert callable(main)
    alice = asyncio.create_task(main())
    try:
        while True:
            event = await bob.next_event()
            if isinstance(event, client_api.GroupMessage):
                break
        assert (event.sender.name, event.text) == ("alice", "hi Bob")
        await event.group.send("hi Alice")
        while "bob: hi Alice" not in printed:
            assert not alice.done(), alice.exception()
            await asyncio.sleep(0.05)
        assert printed == ["bob: hi Alice"]
    finally:
        alice.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await alice
        await bob.close()
