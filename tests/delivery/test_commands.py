"""Management commands run in-process and fail with one clear line."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from delivery.models import Message
from tests.delivery.smtp_servers import free_port

pytestmark = pytest.mark.django_db


def test_send_mailing_in_process(make_relay, make_audience, start_mailing, sink, capsys):
    make_relay(sink)
    mailing = start_mailing(make_audience(5)[0])
    call_command("send_mailing", str(mailing.pk))
    assert "5 sent" in capsys.readouterr().out
    assert len(sink.handler.recipients()) == 5
    assert set(Message.objects.filter(mailing=mailing).values_list("state", flat=True)) == {"sent"}


def test_send_mailing_says_what_is_wrong(make_relay, make_audience, start_mailing):
    with pytest.raises(CommandError, match="mailing 424242 does not exist"):
        call_command("send_mailing", "424242")
    port = free_port()
    make_relay(port=port)
    mailing = start_mailing(make_audience(2)[0])
    with pytest.raises(CommandError, match=f"connection refused by 127.0.0.1:{port}"):
        call_command("send_mailing", str(mailing.pk))


def test_relay_test_command(make_relay, sink, capsys):
    relay = make_relay(sink, name="sink")
    call_command("relay_test", "sink")
    assert "PIPELINING" in capsys.readouterr().out
    with pytest.raises(CommandError, match="no relay named 'nope'"):
        call_command("relay_test", "nope")
    relay.port = free_port()
    relay.save()
    with pytest.raises(CommandError, match="connection refused"):
        call_command("relay_test", str(relay.pk))


def test_rotate_keys_command(capsys):
    from delivery import relays

    relays.relay_save(name="r", host="smtp.example.com", port=587, password="x")
    call_command("rotate_keys")
    assert "re-encrypted 1 secrets" in capsys.readouterr().out
