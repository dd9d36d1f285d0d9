"""Files in a chat, both ways (docs/protocol.md, "Files (attachments)"): the allowlist and the size
limit from the back office, images that must be images, ClamAV scanning when configured (against
a stand-in clamd speaking its INSTREAM protocol), storage, and who may open a file."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator

import pytest
from channels.db import database_sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from chat import attachments, services
from chat.models import (
    AllowedOrigin,
    Attachment,
    AttachmentSettings,
    Conversation,
    Message,
)
from compliance.models import AuditEntry
from tests.auth import staff_client
from tests.chat.helpers import open_chat, receive_until

pytestmark = pytest.mark.django_db(transaction=True)

EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def png_bytes(size: tuple[int, int] = (8, 8)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def upload(name: str, data: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CLAMAV_ADDRESS = ""


def stored_files(settings) -> list:
    root = settings.MEDIA_ROOT / "attachments"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
def chat(agent):
    """An active chat between a visitor (token) and alice, without sockets."""
    from chat import assignment
    from chat.models import AgentProfile

    AgentProfile.objects.filter(pk=agent.pk).update(presence="online")
    visitor, token = services.create_visitor()
    conversation = services.start_conversation(
        visitor=visitor, department_slug="support", name="Vera", message="hello"
    )
    assignment.accept_offer(agent=AgentProfile.objects.get(pk=agent.pk), conversation_id=conversation.pk)
    conversation.refresh_from_db()
    assert conversation.status == "active"
    return conversation, token


def visitor_post(token, file, *, client_id="f-1", origin=None):
    headers = {"HTTP_ORIGIN": origin} if origin else {}
    return Client().post("/chat/attachments/", {"token": token, "client_id": client_id, "file": file}, **headers)


# --- visitor → agent --------------------------------------------------------------------------


def test_visitor_sends_an_image_that_the_agent_and_the_visitor_can_open(chat, agent, settings):
    conversation, token = chat
    response = visitor_post(token, upload("photo.PNG", png_bytes()), origin="http://127.0.0.1")
    assert response.status_code == 200, response.content
    assert response["Access-Control-Allow-Origin"] == "http://127.0.0.1"
    answer = response.json()["message"]
    attachment = Attachment.objects.get()
    assert (attachment.name, attachment.content_type, attachment.is_image, attachment.scan) == (
        "photo.PNG", "image/png", True, "not_scanned",
    )
    message = attachment.message
    assert message.body == "[Attachment: photo.PNG]" and message.role == "visitor"
    assert message.meta["attachment"]["id"] == attachment.pk and message.client_id == "f-1"
    assert answer["seq"] == message.public_seq and answer["attachment"]["url"].startswith(
        f"/chat/attachments/{attachment.pk}/"
    )
    # The visitor's signed link serves it inline, with the headers that keep it inert.
    got = Client().get(answer["attachment"]["url"])
    assert got.status_code == 200 and got["Content-Type"] == "image/png"
    assert b"".join(got.streaming_content) == png_bytes()
    assert got["X-Content-Type-Options"] == "nosniff" and "sandbox" in got["Content-Security-Policy"]
    # A forged or another file's signature gets nothing.
    assert Client().get(f"/chat/attachments/{attachment.pk}/forged/").status_code == 404
    # The agent opens it through its session; each look is audited.
    staff = staff_client(agent.user)
    got = staff.get(f"/agent/attachments/{attachment.pk}/")
    assert got.status_code == 200
    assert AuditEntry.objects.filter(action="chat.attachment_viewed", target=f"conversation:{conversation.pk}").exists()
    assert len(stored_files(settings)) == 1


async def test_the_file_reaches_both_sides_as_a_message_frame(agent):
    visitor, agent_comm, _, token = await open_chat()
    response = await database_sync_to_async(visitor_post)(token, upload("note.txt", b"order 10442"))
    assert response.status_code == 200
    to_agent = await receive_until(agent_comm, lambda f: f["type"] == "message" and "attachment" in f)
    to_visitor = await receive_until(visitor, lambda f: f["type"] == "message" and "attachment" in f)
    assert to_agent["attachment"]["url"] == f"/agent/attachments/{to_agent['attachment']['id']}/"
    assert to_visitor["attachment"]["url"].startswith("/chat/attachments/")
    assert to_visitor["attachment"]["name"] == "note.txt" and to_visitor["attachment"]["is_image"] is False
    assert "meta" not in to_visitor
    await visitor.disconnect()
    await agent_comm.disconnect()


def test_a_retry_with_the_same_client_id_stores_the_file_once(chat, settings):
    _, token = chat
    first = visitor_post(token, upload("a.pdf", b"%PDF-1.4 one"), client_id="same")
    second = visitor_post(token, upload("a.pdf", b"%PDF-1.4 one"), client_id="same")
    assert first.status_code == second.status_code == 200
    assert first.json()["message"]["seq"] == second.json()["message"]["seq"]
    assert Attachment.objects.count() == 1 and len(stored_files(settings)) == 1


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("tool.exe", b"MZ....", 415, "type_not_allowed"),
        ("noextension", b"abc", 415, "type_not_allowed"),
        ("fake.png", b"this is not a picture", 400, "not_an_image"),
        ("gif-in-disguise.png", None, 400, "not_an_image"),
        ("empty.txt", b"", 400, "empty_file"),
    ],
)
def test_refused_files_are_explained_and_nothing_is_stored(chat, settings, name, data, status, code):
    if data is None:
        from PIL import Image

        out = io.BytesIO()
        Image.new("RGB", (4, 4)).save(out, format="GIF")
        data = out.getvalue()
    _, token = chat
    response = visitor_post(token, upload(name, data))
    assert response.status_code == status
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]
    assert not Attachment.objects.exists() and stored_files(settings) == []
    assert Message.objects.filter(body__startswith="[Attachment").count() == 0


def test_size_and_types_come_from_the_back_office(chat, settings):
    _, token = chat
    AttachmentSettings.objects.create(allowed_types="pdf, .CSV", max_bytes=100)
    assert attachments.public_config() == {"enabled": True, "max_bytes": 100, "extensions": ["csv", "pdf"]}
    too_big = visitor_post(token, upload("big.pdf", b"x" * 101))
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "too_large"
    assert visitor_post(token, upload("photo.png", png_bytes())).json()["error"]["code"] == "type_not_allowed"
    assert visitor_post(token, upload("list.csv", b"a,b\n1,2\n")).status_code == 200
    AttachmentSettings.objects.update(enabled=False)
    off = visitor_post(token, upload("x.csv", b"a"), client_id="f-2")
    assert off.status_code == 403 and off.json()["error"]["code"] == "attachments_off"
    config = Client().get("/widget/config/").json()
    assert config["attachments"]["enabled"] is False


def test_an_oversized_body_is_refused_before_it_is_read(chat):
    _, token = chat
    AttachmentSettings.objects.create(max_bytes=10)
    response = Client().post(
        "/chat/attachments/", {"token": token, "file": upload("a.txt", b"y" * 200_000)}
    )
    assert response.status_code == 413 and not Attachment.objects.exists()


def test_visitor_uploads_need_a_valid_token_an_open_chat_and_an_allowed_site(chat, department):
    _, token = chat
    assert visitor_post("not-a-token" * 3, upload("a.txt", b"a")).json()["error"]["code"] == "invalid_token"
    refused = visitor_post(token, upload("a.txt", b"a"), origin="https://evil.test")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed"
    AllowedOrigin.objects.create(origin="https://shop.test")
    assert visitor_post(token, upload("a.txt", b"a"), origin="https://shop.test").status_code == 200
    _, lonely = services.create_visitor()
    no_chat = visitor_post(lonely, upload("a.txt", b"a"))
    assert no_chat.status_code == 404 and no_chat.json()["error"]["code"] == "not_found"


# --- agent → visitor, and who may open what ----------------------------------------------------


def test_agent_sends_a_file_and_an_internal_one_never_reaches_the_visitor(chat, agent, department_supervisor, make_agent, other_department, compliance_officer):
    conversation, _ = chat
    staff = staff_client(agent.user)
    public = staff.post(
        "/agent/attachments/",
        {"conversation_id": conversation.pk, "client_id": "a-1", "file": upload("form.pdf", b"%PDF-1.4 form")},
    )
    assert public.status_code == 200, public.content
    internal = staff.post(
        "/agent/attachments/",
        {"conversation_id": conversation.pk, "client_id": "a-2", "visibility": "internal",
         "file": upload("notes.txt", b"staff only")},
    )
    assert internal.status_code == 200
    pdf, notes = Attachment.objects.order_by("pk")
    assert pdf.message.role == "agent" and pdf.message.public_seq is not None
    assert notes.message.visibility == "internal" and notes.message.public_seq is None
    conversation.refresh_from_db()
    assert conversation.first_agent_reply_at is not None  # a file is a reply
    # Non-images are downloads.
    got = staff.get(f"/agent/attachments/{pdf.pk}/")
    assert got["Content-Disposition"].startswith("attachment;")
    # The visitor: the public file by its link, never the internal one, even with a valid signature.
    assert Client().get(attachments.visitor_url(pdf.pk)).status_code == 200
    assert Client().get(attachments.visitor_url(notes.pk)).status_code == 404
    # Staff: the department's supervisor and compliance may; an agent of another department not.
    assert staff_client(department_supervisor).get(f"/agent/attachments/{notes.pk}/").status_code == 200
    assert staff_client(compliance_officer).get(f"/agent/attachments/{pdf.pk}/").status_code == 200
    outsider = make_agent("olga", "Olga Other", [other_department])
    assert staff_client(outsider.user).get(f"/agent/attachments/{pdf.pk}/").status_code == 404
    assert Client().get(f"/agent/attachments/{pdf.pk}/").status_code == 302  # log in first


def test_only_the_holder_of_an_active_chat_sends_files(chat, second_agent):
    conversation, _ = chat
    other = staff_client(second_agent.user).post(
        "/agent/attachments/", {"conversation_id": conversation.pk, "file": upload("a.txt", b"a")}
    )
    assert other.status_code == 404
    bad = staff_client(second_agent.user).post("/agent/attachments/", {"conversation_id": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_field"
    assert not Attachment.objects.exists()


def test_purging_a_conversation_removes_its_files(chat, settings):
    conversation, token = chat
    visitor_post(token, upload("a.txt", b"a"))
    assert len(stored_files(settings)) == 1
    services.end_conversation(conversation_id=conversation.pk, ended_by="visitor")
    Conversation.objects.filter(pk=conversation.pk).delete()
    assert stored_files(settings) == []


# --- ClamAV -----------------------------------------------------------------------------------


class FakeClamd:
    """Speaks clamd's INSTREAM: FOUND for the EICAR test string, OK otherwise; or says nothing."""

    def __init__(self, *, answer: bool = True) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.answer = answer
        self.scanned: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                command = b""
                while not command.endswith(b"\0"):
                    command += conn.recv(1)
                assert command == b"zINSTREAM\0"
                data = b""
                while True:
                    size = int.from_bytes(self._exactly(conn, 4), "big")
                    if size == 0:
                        break
                    data += self._exactly(conn, size)
                self.scanned.append(data)
                if not self.answer:
                    continue  # hang up without a verdict
                verdict = b"stream: Eicar-Test-Signature FOUND\0" if EICAR in data else b"stream: OK\0"
                conn.sendall(verdict)

    @staticmethod
    def _exactly(conn, n: int) -> bytes:
        out = b""
        while len(out) < n:
            part = conn.recv(n - len(out))
            if not part:
                raise OSError("closed")
            out += part
        return out

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def clamd(settings) -> Iterator[FakeClamd]:
    fake = FakeClamd()
    settings.CLAMAV_ADDRESS = fake.address
    yield fake
    fake.close()


def test_with_clamav_every_file_is_scanned_and_an_infected_one_refused(chat, clamd, settings):
    _, token = chat
    clean = visitor_post(token, upload("ok.txt", b"all good"), client_id="c-1")
    assert clean.status_code == 200
    assert Attachment.objects.get().scan == "clean" and clamd.scanned == [b"all good"]
    infected = visitor_post(token, upload("eicar.txt", EICAR), client_id="c-2")
    assert infected.status_code == 422 and infected.json()["error"]["code"] == "infected"
    assert Attachment.objects.count() == 1 and len(stored_files(settings)) == 1


def test_when_clamav_does_not_answer_nothing_is_stored_unscanned(chat, settings):
    _, token = chat
    mute = FakeClamd(answer=False)
    settings.CLAMAV_ADDRESS = mute.address
    try:
        response = visitor_post(token, upload("ok.txt", b"fine"))
    finally:
        mute.close()
    assert response.status_code == 503 and response.json()["error"]["code"] == "scan_unavailable"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        settings.CLAMAV_ADDRESS = f"127.0.0.1:{s.getsockname()[1]}"
    assert visitor_post(token, upload("ok.txt", b"fine")).json()["error"]["code"] == "scan_unavailable"
    assert not Attachment.objects.exists() and stored_files(settings) == []
