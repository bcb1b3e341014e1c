"""The sign-up flow: welcome a new user at once, follow up a week later.

"ourapp.user.added" reaches the customer-satisfaction queue, which sends a welcome
email (printed here), schedules "ourapp.cst.user.welcome.followup" for later and
announces "ourapp.cst.user.sentWelcomeEmail", which an audit queue records.

Run it:
    python -m examples.welcome_email --follow-up-in "3 seconds"   # memory backend, ends by itself
    WRKR_URL=amqp://guest:guest@127.0.0.1:5672/ python -m examples.welcome_email --follow-up-in 3s
    wrkr worker examples.welcome_email:app                        # as a long-running worker
The follow-up delay is 7 days unless `--follow-up-in` or WRKR_FOLLOW_UP_IN says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from wrkr import Event, Wrkr

CST_QUEUE = "ourapp.CustomerSatisfactionTeam"
AUDIT_QUEUE = "ourapp.audit"

app = Wrkr.from_url(os.environ.get("WRKR_URL", "memory://"), name="crm")
follow_up_in: str = os.environ.get("WRKR_FOLLOW_UP_IN", "7 days")
followed_up = asyncio.Event()


async def send_welcome_email(user_id: str | None, email: str) -> None:
    """Stand in for the mail service."""
    print(f"[email] welcome, user {user_id} <{email}>!", flush=True)


@app.on("ourapp.user.added", queue=CST_QUEUE)
async def on_user_added(event: Event) -> None:
    """Welcome the user, schedule the follow-up and announce that the email went out."""
    await send_welcome_email(event.tid, event.payload.get("email", "unknown"))
    await app.publish([
        {"name": "ourapp.cst.user.welcome.followup", "tid": event.tid,
         "payload": event.payload, "when": follow_up_in},
        {"name": "ourapp.cst.user.sentWelcomeEmail", "tid": event.tid},
    ])
    print(f"[cst] follow-up for user {event.tid} scheduled in {follow_up_in}", flush=True)


@app.on("ourapp.cst.user.welcome.followup", queue=CST_QUEUE)
async def on_follow_up(event: Event) -> None:
    """Ask how the first days went."""
    print(f"[email] user {event.tid}, how is your {event.payload.get('plan')} plan going?",
          flush=True)
    followed_up.set()


@app.on("ourapp.cst.user.sentWelcomeEmail", queue=AUDIT_QUEUE)
async def on_sent_welcome_email(event: Event) -> None:
    """Keep a record of what was sent."""
    print(f"[audit] welcome email sent to user {event.tid}", flush=True)


async def sign_up_and_wait(deadline: float) -> None:
    """Sign one user up, then consume until the follow-up has been handled."""
    async with app:
        await app.listen()
        await app.publish({"name": "ourapp.user.added", "tid": "42",
                           "payload": {"email": "ada@example.com", "plan": "pro"}})
        print("[app] user 42 signed up", flush=True)
        async with asyncio.timeout(deadline):
            await followed_up.wait()
    print("[app] done", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Run the sign-up flow once and exit when the follow-up went out."""
    global follow_up_in
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--follow-up-in", default=follow_up_in,
                        help="delay of the follow-up, e.g. '3 seconds' (default: %(default)s)")
    parser.add_argument("--deadline", type=float, default=60.0,
                        help="give up after this many seconds (default: %(default)s)")
    args = parser.parse_args(argv)
    follow_up_in = args.follow_up_in
    asyncio.run(sign_up_and_wait(args.deadline))


if __name__ == "__main__":
    main()
