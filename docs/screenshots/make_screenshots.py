"""Regenerate the README's screenshots: `.venv/bin/python docs/screenshots/make_screenshots.py`.

Starts Coachline on the embedded default in a scratch data directory (COACHLINE_DATA_DIR,
default /tmp/shots-data, wiped first), migrates, runs `seed_demo` (demo users, canned answers,
three weeks of history) and serves it with daphne on a free loopback port. Then Debian's
Chromium (/usr/bin/chromium, never a downloaded browser) is driven through Playwright at
1280x800: staff log in through the real login pages with the backup codes seed_demo prints,
two visitors chat with alice (one through the widget on the demo shop page, one on /chat/),
the supervisor watches the live view and the dashboard, one chat ends with a low rating so the
sampling rule queues it for review, the review is annotated, scored and shared, and alice opens
it. The PNGs are written next to this file and shrunk with Pillow.

Not a test (it lives outside `testpaths`); it needs no network and takes about a minute.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
PYTHON = sys.executable
CHROMIUM = os.environ.get("COACHLINE_CHROMIUM", "/usr/bin/chromium")
DATA_DIR = Path(os.environ.get("COACHLINE_DATA_DIR", "/tmp/shots-data"))
PASSWORD = "coachline-demo"
VIEWPORT = {"width": 1280, "height": 800}
MAX_COLOURS = 256
TIMEOUT_MS = 15_000

expect.set_options(timeout=TIMEOUT_MS)


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    e.update(COACHLINE_DATA_DIR=str(DATA_DIR), DEBUG="false", ALLOWED_HOSTS="127.0.0.1,localhost")
    return e


def manage(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env(),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def backup_codes(seed_output: str) -> dict[str, list[str]]:
    """`    alice       1a2b3c 4d5e6f ...` lines of seed_demo's output."""
    codes = {}
    for line in seed_output.splitlines():
        m = re.match(r"^\s{4}(\w+)\s+((?:[0-9a-f]{6}\s*)+)$", line)
        if m:
            codes[m.group(1)] = m.group(2).split()
    return codes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_daphne(port: int) -> subprocess.Popen:
    log = open(DATA_DIR / "daphne.log", "w")  # noqa: SIM115 (lives as long as the server)
    proc = subprocess.Popen(
        [
            str(Path(PYTHON).parent / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "--websocket-max-message-size",
            "65536",
            "--websocket-max-frame-size",
            "65536",
            "config.asgi:application",
        ],
        cwd=ROOT,
        env=env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.3)
    proc.terminate()
    sys.exit(f"daphne did not start; see {DATA_DIR / 'daphne.log'}")


def save(page: Page, name: str, *, full_page: bool = False) -> None:
    """Screenshot, then shrink: a 256-colour palette keeps UI text crisp at a fraction of the size."""
    raw = page.screenshot(full_page=full_page)
    image = Image.open(io.BytesIO(raw)).convert("RGB")
    small = image.quantize(
        colors=MAX_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    path = OUT / name
    small.save(path, optimize=True)
    print(
        f"  {path.relative_to(ROOT)}: {image.size[0]}x{image.size[1]}, {path.stat().st_size // 1024} KB"
    )


class Staff:
    def __init__(self, codes: dict[str, list[str]]):
        self.codes = codes

    def log_in(self, page: Page, username: str, next_path: str) -> None:
        page.goto(next_path)
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
        page.get_by_label("Code").fill(self.codes[username].pop(0))
        page.get_by_role("button", name="Verify").click()
        page.wait_for_url(f"**{next_path}")


ANNOTATE = """
from chat.models import Conversation, Message
from coaching import services
from coaching.models import Review, Scorecard
from django.contrib.auth import get_user_model

sup = get_user_model().objects.get(username="supervisor")
review = Review.objects.filter(conversation__visitor__name="Maria Lopez").latest("pk")
msgs = list(Message.objects.filter(conversation=review.conversation, visibility="public").order_by("seq"))
canned = next(m for m in msgs if (m.meta or {}).get("canned"))
first = msgs[0]
services.annotate(user=sup, review_id=review.pk, category="praise", message_id=canned.pk,
                  canned_fitted=True, comment="Good: a warm greeting by name within seconds.")
refund = next(m for m in msgs if m.role == "agent" and "5 working days" in m.body)
services.annotate(user=sup, review_id=review.pk, category="coaching", message_id=refund.pk,
                  comment="Acknowledge the double charge first, then give the refund date.")
services.annotate(user=sup, review_id=review.pk, category="compliance",
                  comment="Confirm the patient's identity before discussing a payment.")
card = Scorecard.objects.get(name="Service basics")
values = {c.pk: (1 if c.kind == "yes_no" else 3) for c in card.criteria.all()}
services.fill_scorecard(user=sup, review_id=review.pk, scorecard_id=card.pk, values=values)
services.share_review(user=sup, review_id=review.pk,
                      summary="Friendly and quick. Next time lead with empathy before the refund steps.")
print(review.pk)
"""


def run(base: str, staff: Staff) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )

        def context(url: str = base):
            ctx = browser.new_context(base_url=url, viewport=VIEWPORT)
            ctx.set_default_timeout(TIMEOUT_MS)
            return ctx.new_page()

        # Alice goes online.
        agent = context()
        staff.log_in(agent, "alice", "/agent/")
        expect(agent.locator("#presence")).to_have_value("offline")
        agent.locator("#presence").select_option("online")

        # Visitor 1: the widget on the demo shop page (served as localhost, widget from 127.0.0.1).
        shop = context(base.replace("127.0.0.1", "localhost"))
        shop.goto("/widget/demo/")
        widget = shop.locator("#coachline-widget")
        widget.locator("button.launcher").click()
        widget.get_by_label("Your name").fill("Maria Lopez")
        widget.get_by_label("How can we help?").fill(
            "I was charged twice for my appointment on Monday."
        )
        widget.get_by_role("button", name="Start chat").click()
        card1 = agent.locator("article.chat").filter(has_text="Maria Lopez")
        card1.get_by_role("button", name="Accept").click()
        expect(card1.locator(".title")).to_contain_text("active")

        # Visitor 2: the plain visitor page.
        visitor = context()
        visitor.goto("/chat/")
        visitor.get_by_label("Your name").fill("Tom Becker")
        visitor.get_by_label("Department").select_option("support")
        visitor.get_by_label("How can we help?").fill("Can I move my blood test to next week?")
        visitor.get_by_role("button", name="Start chat").click()
        card2 = agent.locator("article.chat").filter(has_text="Tom Becker")
        card2.get_by_role("button", name="Accept").click()
        expect(card2.locator(".title")).to_contain_text("active")

        def send(card, text: str, *, internal: bool = False) -> None:
            card.locator(".internal").set_checked(internal)
            card.get_by_label("Message").fill(text)
            card.get_by_role("button", name="Send").click()

        # A canned answer (expanded by its shortcut, then sent), a reply, an internal note.
        card1.get_by_label("Message").fill("/greeting")
        card1.get_by_role("button", name="Send").click()
        expect(card1.get_by_label("Message")).to_have_value(re.compile("Hello Maria Lopez"))
        card1.get_by_role("button", name="Send").click()
        expect(widget.locator("ol.log")).to_contain_text("Hello Maria Lopez")
        widget.get_by_label("Message", exact=True).fill(
            "The fee was taken twice, 45 EUR each time."
        )
        widget.get_by_role("button", name="Send").click()
        expect(card1.locator(".log")).to_contain_text("45 EUR each time")
        send(
            card1,
            "Billing: duplicate card payment on Monday, refund the second one.",
            internal=True,
        )
        send(
            card1, "I can see the second payment. Refunds reach your account within 5 working days."
        )
        expect(widget.locator("ol.log")).to_contain_text("5 working days")

        send(card2, "Hello Tom, of course. Which day next week suits you?")
        expect(visitor.locator("#log")).to_contain_text("Which day next week")
        visitor.locator("#message-input").fill("Tuesday morning, if possible.")
        visitor.get_by_role("button", name="Send").click()
        expect(card2.locator(".log")).to_contain_text("Tuesday morning")
        # Typed, not sent: Tom's page shows "typing" while the workspace shows the draft.
        card2.get_by_label("Message").fill("Let me check the Tuesday slots")
        agent.wait_for_timeout(800)

        print("Screenshots:")
        save(agent, "agent.png")
        shop.wait_for_timeout(300)
        save(shop, "visitor.png")

        # The supervisor: live view with both chats, then the reporting dashboard.
        sup = context()
        staff.log_in(sup, "supervisor", "/coaching/live/")
        expect(sup.locator("#live-rows tr")).to_have_count(2)
        row = sup.locator("#live-rows tr").filter(has_text="Maria Lopez")
        row.get_by_role("button", name="Sit in").click()
        expect(sup.locator("#sitin-log")).to_contain_text("5 working days")
        sup.get_by_label("Whisper to the agent").fill(
            "Nice. Offer to e-mail her the refund confirmation."
        )
        sup.get_by_role("button", name="Whisper").click()
        expect(card1.locator(".log li.vis-whisper")).to_contain_text("refund confirmation")
        sup.wait_for_timeout(1500)  # let the duration clocks tick
        save(sup, "supervisor-live.png")

        sup.goto("/admin/reporting/reportingsettings/dashboard/")
        expect(sup.locator("#chart-daily")).to_be_visible()
        # The four charts fill the screen; the figures table above them is scrolled past.
        sup.evaluate(
            "document.querySelector('#chart-daily').closest('figure').parentElement"
            ".scrollIntoView({block: 'center'})"
        )
        sup.wait_for_timeout(1500)  # chart.js animations
        save(sup, "reporting-dashboard.png")

        # Maria ends the chat and rates it 2: the sampling rule "Rated 2 or less" queues it.
        widget.get_by_role("button", name="End chat").click()
        widget.locator("label.rating").nth(1).click()
        widget.get_by_label("Comment (optional)").fill("Took a while to get to the point.")
        widget.get_by_role("button", name="Send feedback").click()
        expect(widget.locator(".survey-done")).to_contain_text("Thank you")
        card1.get_by_role("button", name="Resolved").click()
        time.sleep(1)

        review_id = manage("shell", "-c", ANNOTATE).strip().splitlines()[-1]
        sup.goto(f"/admin/coaching/review/{review_id}/change/")
        expect(sup.locator("#content")).to_contain_text("Maria Lopez")
        save(sup, "coaching-review-admin.png")

        agent.goto(f"/coaching/reviews/{review_id}/")
        expect(agent.locator("body")).to_contain_text("Acknowledge the double charge")
        save(agent, "coaching-agent.png")
        browser.close()


def main() -> None:
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    DATA_DIR.mkdir(parents=True)
    print(f"Data in {DATA_DIR}; migrating and seeding…")
    manage("migrate", "--noinput")
    codes = backup_codes(manage("seed_demo"))
    if not {"alice", "supervisor"} <= codes.keys():
        sys.exit("seed_demo printed no backup codes for alice and supervisor")
    port = free_port()
    server = start_daphne(port)
    try:
        run(f"http://127.0.0.1:{port}", Staff(codes))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
