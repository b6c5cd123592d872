# A terminal group chat on triple_ratchet's client layer (issue 10: at most 60 lines of app code).
#
#     python examples/chat.py alice.db --hub ws://127.0.0.1:8765 --name alice
#
# The passphrase that seals alice.db comes from $CHAT_PASSPHRASE, else it is asked for. The chat
# prints this user's invite (give it to the others); a line typed on stdin goes to the group;
# the commands are
#
#     /group NAME INVITE...   create a group with the people these invites name
#     /add INVITE             add someone to the group
#     /remove NAME            remove a member
#     /quit                   (or end of input)
#
# Every line it prints starts with one word saying what it is (invite, message, sent, joined,
# members, removed, created, error), so a script can drive it: tests/test_chat_example.py.

import argparse
import asyncio
import getpass
import os
import sys

from triple_ratchet.client import (
    Client,
    GroupJoined,
    GroupMessage,
    MembershipChanged,
    RemovedFromGroup,
)
from triple_ratchet.errors import TripleRatchetError


def say(*words: object) -> None:
    print(*words, flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description="a terminal group chat")
    parser.add_argument("db")
    parser.add_argument("--hub", default="ws://127.0.0.1:8765")
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    passphrase = os.environ.get("CHAT_PASSPHRASE") or getpass.getpass("passphrase: ")
    async with await Client.open(args.db, hub=args.hub, passphrase=passphrase,
                                 name=args.name) as client:
        # The group we chat in: after a restart, the last one we are still in.
        group = next((g for g in reversed(client.groups()) if g.active), None)

        async def show() -> None:
            nonlocal group
            async for event in client.events():
                if isinstance(event, GroupMessage):
                    say("message", event.sender.name, event.text)
                elif isinstance(event, GroupJoined):
                    group = event.group
                    say("joined", group.name, "invited by", event.inviter.name)
                elif isinstance(event, MembershipChanged):
                    say("members", *sorted(m.name for m in event.group.members))
                elif isinstance(event, RemovedFromGroup):
                    group = None
                    say("removed", event.group.name)

        say("invite", client.invite())
        events = asyncio.create_task(show())
        while (line := await asyncio.to_thread(sys.stdin.readline)) and line.strip() != "/quit":
            command, _, rest = (text := line.strip()).partition(" ")
            try:
                if command == "/group":
                    name, *invites = rest.split()
                    people = [(await client.add_contact(i)).identity for i in invites]
                    say("created", (group := await client.create_group(name, people)).name)
                elif group is None:
                    say("error", "not in a group: /group NAME INVITE...")
                elif command == "/add":
                    await group.add((await client.add_contact(rest)).identity)
                elif command == "/remove":
                    await group.remove({m.name: m.identity for m in group.members}[rest])
                elif text:
                    say("sent", (await group.send(text)).hex())
            except (TripleRatchetError, KeyError, ValueError) as exc:
                say("error", exc)
        events.cancel()


if __name__ == "__main__":
    asyncio.run(main())
