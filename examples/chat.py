"""A terminal group chat on triple_ratchet's client layer (issue 10: at most 60 lines of app code).

    python examples/chat.py alice.db --hub ws://127.0.0.1:8765 --name alice

The passphrase that seals alice.db comes from $CHAT_PASSPHRASE, else it is asked for. The chat
prints this user's invite; a line typed on stdin goes to the group; the commands are

    /group NAME INVITE...   create a group with the people these invites name
    /add INVITE             add someone to the group
    /remove NAME            remove a member
    /quit

Every line it prints starts with one word saying what it is, so a script can drive it.
"""

import argparse
import asyncio
import getpass
import os
import sys

from triple_ratchet.client import (
    Client,
    Group,
    GroupJoined,
    GroupMessage,
    MembershipChanged,
    RemovedFromGroup,
)
from triple_ratchet.errors import TripleRatchetError


def say(*words: object) -> None:
    print(*words, flush=True)


async def show(client: Client, chat: dict[str, Group | None]) -> None:
    async for event in client.events():
        if isinstance(event, GroupMessage):
            say("message", event.sender.name, event.text)
        elif isinstance(event, GroupJoined):
            chat["group"] = client.group(event.group.id)
            say("joined", event.group.name, "invited by", event.inviter.name)
        elif isinstance(event, MembershipChanged):
            say("members", *sorted(m.name for m in client.group(event.group.id).members))
        elif isinstance(event, RemovedFromGroup):
            chat["group"] = None
            say("removed", event.group.name)


async def main() -> None:
    parser = argparse.ArgumentParser(description="a terminal group chat")
    parser.add_argument("db")
    parser.add_argument("--hub", default="ws://127.0.0.1:8765")
    parser.add_argument("--name", required=True)
    args = parser.parse_args()
    passphrase = os.environ.get("CHAT_PASSPHRASE") or getpass.getpass("passphrase: ")
    async with await Client.open(args.db, hub=args.hub, passphrase=passphrase,
                                 name=args.name) as client:
        chat = {"group": (client.groups() or [None])[-1]}
        say("invite", client.invite())
        events = asyncio.create_task(show(client, chat))
        while (line := (await asyncio.to_thread(sys.stdin.readline)).strip()) != "/quit":
            command, _, rest = line.partition(" ")
            group = chat["group"]
            try:
                if command == "/group":
                    name, *invites = rest.split()
                    people = [(await client.add_contact(i)).identity for i in invites]
                    chat["group"] = await client.create_group(name, people)
                    say("created", name)
                elif group is None:
                    say("error", "not in a group: /group NAME INVITE...")
                elif command == "/add":
                    await group.add((await client.add_contact(rest)).identity)
                elif command == "/remove":
                    await group.remove(*[m.identity for m in group.members if m.name == rest])
                elif line:
                    say("sent", (await group.send(line)).hex())
            except (TripleRatchetError, ValueError, TypeError) as exc:
                say("error", exc)
        events.cancel()


if __name__ == "__main__":
    asyncio.run(main())
