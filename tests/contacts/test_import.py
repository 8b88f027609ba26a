"""Imports through the command and the service: modes, encodings, hostile files, reports."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from contacts import services
from contacts.imports import ImportFileError, neutralise_cell, run_import
from contacts.models import (
    Contact,
    ContactImport,
    ContactStatus,
    CustomField,
    MailingList,
    Subscription,
    SubscriptionStatus,
)

pytestmark = pytest.mark.django_db


def write(tmp_path, text, name="in.csv", encoding="utf-8"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding=encoding, newline="")
    return path


def run(path, *args):
    from io import StringIO

    out = StringIO()
    call_command("import_contacts", str(path), "--no-progress", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_command_imports_into_new_list_with_typed_fields(tmp_path):
    CustomField.objects.create(name="score", label="Score", type="number")
    path = write(
        tmp_path,
        "E-mail,First name,Last_Name,Score,Plan\n"
        "ann@example.com,Ann,Lee,42,gold\n"
        "BOB@Example.com,Bob,,7.5,\n"
        "not-an-address,X,Y,1,\n"
        "bob@example.COM,Bobby,,3,\n"
        "carl@example.com,Carl,,lots,\n",
    )
    out = run(path, "--list", "Newsletter")
    assert "5 rows: 2 created, 0 updated, 0 unchanged, 2 invalid, 1 duplicates" in out
    newsletter = MailingList.objects.get(name="Newsletter")
    ann = Contact.objects.get(email="ann@example.com")
    assert ann.first_name == "Ann" and ann.last_name == "Lee"
    assert ann.attributes == {"score": 42, "plan": "gold"}
    assert Contact.objects.get(email__iexact="bob@example.com").attributes == {"score": 7.5}
    assert CustomField.objects.get(name="plan").type == "text"
    assert set(Subscription.objects.filter(mailing_list=newsletter).values_list("status", flat=True)) == {
        SubscriptionStatus.CONFIRMED
    }
    record = ContactImport.objects.get()
    report = list(csv.reader(Path(record.report_path).open()))
    assert report[0] == ["E-mail", "First name", "Last_Name", "Score", "Plan", "import row", "import problem"]
    assert report[1][:5] == ["not-an-address", "X", "Y", "1", ""]  # the row as it was
    reasons = {row[5]: row[6] for row in report[1:]}
    assert reasons["4"].startswith("email:")
    assert reasons["6"].startswith("score:") and "not a number" in reasons["6"]
    assert reasons["5"] == "duplicate of row 3"


def test_duplicates_are_decided_by_the_database_whatever_the_filter_flags(tmp_path, monkeypatch):
    """The bounded seen-filter only chooses which rows keep their cells for the report: with every
    row flagged (all false positives but the real duplicates) the result is the same."""
    from contacts import imports

    monkeypatch.setattr(imports._SeenFilter, "seen_or_add", lambda self, key: True)
    path = write(
        tmp_path,
        "email,first_name\na@example.com,A\nB@example.com,B\nb@EXAMPLE.com,B2\nc@example.com,C\n"
        "a@example.com,A2\nbad,X\nb@example.com,B3\n",
    )
    report_path = tmp_path / "report.csv"
    result = run_import(path, report_path=report_path)
    assert Contact.objects.count() == 3
    assert Contact.objects.get(email__iexact="b@example.com").first_name == "B"
    assert (result.created, result.duplicates, result.invalid) == (3, 3, 1)
    reasons = {row[2]: (row[0], row[3]) for row in csv.reader(report_path.open())}
    assert reasons["4"] == ("b@EXAMPLE.com", "duplicate of row 3")
    assert reasons["6"] == ("a@example.com", "duplicate of row 2")
    assert reasons["8"] == ("b@example.com", "duplicate of row 3")


def test_seen_filter_never_misses_and_stays_bounded():
    from contacts.imports import _SeenFilter

    seen = _SeenFilter(10**12)
    assert len(seen._bits) == (1 << 29) // 8  # 64 MB at most, whatever the file
    small = _SeenFilter(1000)
    keys = [f"user{n}@example.com" for n in range(20000)]
    assert not small.seen_or_add("first@example.com")
    for key in keys:
        small.seen_or_add(key)
    assert all(small.seen_or_add(k) for k in keys)  # the second time, always flagged


def test_reimport_updates_and_never_resubscribes(tmp_path):
    path = write(tmp_path, "email,first_name\na@example.com,A\nb@example.com,B\nc@example.com,C\n")
    run(path, "--list", "L")
    mailing_list = MailingList.objects.get(name="L")
    b = Contact.objects.get(email="b@example.com")
    services.contact_unsubscribe(b.id, list_ids=None, source="test")
    c = Contact.objects.get(email="c@example.com")
    services.contact_unsubscribe(c.id, list_ids=[mailing_list.id], source="test")
    path2 = write(
        tmp_path, "email,first_name\na@example.com,Alice\nB@example.com,B\nc@example.com,C\n", "2.csv"
    )
    out = run(path2, "--list", "L")
    assert "3 rows: 0 created, 1 updated, 2 unchanged" in out
    assert "2 not resubscribed" in out
    assert Contact.objects.get(email="a@example.com").first_name == "Alice"
    b.refresh_from_db()
    assert b.status == ContactStatus.UNSUBSCRIBED
    assert Subscription.objects.get(contact=b).status == SubscriptionStatus.UNSUBSCRIBED
    assert Subscription.objects.get(contact=c).status == SubscriptionStatus.UNSUBSCRIBED


@pytest.mark.parametrize("path_taken", ["split", "on_conflict"])
@pytest.mark.parametrize("mode", ["upsert", "add"])
def test_split_merge_and_the_on_conflict_fallback_agree(tmp_path, monkeypatch, mode, path_taken):
    """Upsert and add merge as one join plus an update of the changed rows and plain inserts; if
    an address appears between that join and the insert (here: the join is made to miss every
    contact), the insert's unique violation rolls that back and the ON CONFLICT statement runs.
    Both give the same contacts, subscriptions and counts."""
    from contacts import imports

    lst = MailingList.objects.create(name="L")
    same = Contact.objects.create(email="same@example.com", first_name="S", attributes={"plan": "pro"})
    renamed = Contact.objects.create(email="Renamed@example.com", first_name="Old", last_name="Keep")
    more = Contact.objects.create(email="more@example.com", attributes={"plan": "pro", "seats": 2})
    left = Contact.objects.create(email="left@example.com")
    bounced = Contact.objects.create(email="bounced@example.com", status=ContactStatus.BOUNCED)
    waiting = Contact.objects.create(email="waiting@example.com")
    Subscription.objects.create(contact=same, mailing_list=lst, status=SubscriptionStatus.CONFIRMED)
    Subscription.objects.create(contact=left, mailing_list=lst, status=SubscriptionStatus.UNSUBSCRIBED)
    Subscription.objects.create(contact=waiting, mailing_list=lst, status=SubscriptionStatus.UNCONFIRMED)
    if path_taken == "on_conflict":
        real = imports._match_existing

        def missing_every_contact(cursor, stage, matched, mode):
            real(cursor, stage, matched, mode)
            cursor.execute(f"DELETE FROM {matched}")
            return 0, 0

        monkeypatch.setattr(imports, "_match_existing", missing_every_contact)
    path = write(
        tmp_path,
        "email,first_name,last_name,plan\nsame@example.com,S,,pro\nrenamed@EXAMPLE.com,New,,\n"
        "more@example.com,,,team\nleft@example.com,,,\nbounced@example.com,,,\n"
        "waiting@example.com,,,\nnew@example.com,N,,free\n",
    )
    result = run_import(path, mode=mode, list_ids=[lst.id])
    upsert = mode == "upsert"
    assert (result.created, result.updated, result.unchanged) == (1, 2 if upsert else 0, 4 if upsert else 6)
    assert result.protected == 2  # bounced, and left (gone from the list)
    renamed.refresh_from_db()
    assert (renamed.first_name, renamed.last_name) == ("New" if upsert else "Old", "Keep")
    more.refresh_from_db()
    assert more.attributes == ({"plan": "team", "seats": 2} if upsert else {"plan": "pro", "seats": 2})
    new = Contact.objects.get(email="new@example.com")
    assert (new.first_name, new.attributes, new.status) == ("N", {"plan": "free"}, ContactStatus.ACTIVE)
    statuses = dict(Subscription.objects.filter(mailing_list=lst).values_list("contact__email", "status"))
    confirmed = SubscriptionStatus.CONFIRMED
    assert statuses == {
        "same@example.com": confirmed,
        "Renamed@example.com": confirmed,
        "more@example.com": confirmed,
        "left@example.com": SubscriptionStatus.UNSUBSCRIBED,
        "waiting@example.com": confirmed,
        "new@example.com": confirmed,
    }
    assert Contact.objects.count() == 7
    bounced.refresh_from_db()
    assert bounced.status == ContactStatus.BOUNCED


def test_add_mode_keeps_existing_fields(tmp_path):
    Contact.objects.create(email="a@example.com", first_name="Orig")
    path = write(tmp_path, "email,first_name\na@example.com,New\nn@example.com,N\n")
    out = run(path, "--mode", "add")
    assert "1 created, 0 updated, 1 unchanged" in out
    assert Contact.objects.get(email="a@example.com").first_name == "Orig"


@pytest.mark.parametrize("mode,status", [("unsubscribe", "unsubscribed"), ("blocklist", "blocklisted")])
def test_unsubscribe_and_blocklist_modes(tmp_path, mode, status):
    known = Contact.objects.create(email="k@example.com")
    bounced = Contact.objects.create(email="b@example.com", status=ContactStatus.BOUNCED)
    mailing_list = MailingList.objects.create(name="L")
    Subscription.objects.create(contact=known, mailing_list=mailing_list, status=SubscriptionStatus.CONFIRMED)
    path = write(tmp_path, "email\nk@example.com\nnew@example.com\nb@example.com\n")
    run(path, "--mode", mode)
    known.refresh_from_db()
    bounced.refresh_from_db()
    assert known.status == status
    assert Contact.objects.get(email="new@example.com").status == status
    assert Contact.objects.get(email="new@example.com").consent_at is None
    assert bounced.status == (ContactStatus.BLOCKLISTED if mode == "blocklist" else ContactStatus.BOUNCED)
    assert Subscription.objects.get(contact=known).status == SubscriptionStatus.UNSUBSCRIBED


def test_upsert_import_is_idempotent_for_lists_and_counts(tmp_path):
    path = write(tmp_path, "email\nx@example.com\n")
    run(path, "--list", "A", "--list", "B")
    run(path, "--list", "A", "--list", "B")
    assert Subscription.objects.count() == 2
    assert Contact.objects.count() == 1


@pytest.mark.parametrize(
    "encoding,text",
    [
        ("utf-8-sig", "email,first_name\nz@example.com,Zoë\n"),
        ("utf-16", "email,first_name\nz@example.com,Zoë\n"),
        ("cp1252", "email,first_name\nz@example.com,Zoë\n"),
        ("utf-8", "email;first_name\nz@example.com;Zoë\n"),
        ("utf-8", "email\tfirst_name\nz@example.com\tZoë\n"),
        ("utf-8", '"email"|"first_name"\r\n"z@example.com"|"Zoë"\r\n'),
    ],
)
def test_encodings_and_delimiters_are_detected(tmp_path, encoding, text):
    run(write(tmp_path, text, encoding=encoding))
    assert Contact.objects.get(email="z@example.com").first_name == "Zoë"


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "the file is empty"),
        (b"   \n\n", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "looks binary"),
        (b"email\nok@example.com\n\x81\x8d\x8f\x90\x9d@example.com\n", "neither UTF-8 nor Windows-1252"),
        (b"name,phone\nAnn,123\n", "no email column"),
        (b'email,first_name\na@example.com,"never closed\nb@example.com,x\n', "unterminated quote"),
        (b"email,notes\na@example.com," + b"x" * (1024 * 1024 + 10) + b"\n", "larger than 1 MB"),
    ],
)
def test_unusable_files_fail_with_one_line_and_store_nothing(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(CommandError, match=message) as excinfo:
        run(path, "--list", "Hostile")
    assert "\n" not in str(excinfo.value)
    assert Contact.objects.count() == 0
    assert ContactImport.objects.get().status == "failed"
    assert CustomField.objects.count() == 0


def test_unterminated_quote_names_the_row(tmp_path):
    path = write(tmp_path, 'email\na@example.com\nb@example.com\n"c@example.com\n')
    with pytest.raises(ImportFileError, match="row 4"):
        run_import(path)


def test_wrong_field_count_and_nul_rows_are_reported(tmp_path):
    # A NUL in the first 64 KB means "binary file"; a later one is one bad row.
    filler = "".join(f"f{i}@example.com,F\n" for i in range(4000))
    path = write(
        tmp_path,
        "email,first_name\na@example.com,A,extra\nb@example.com\n" + filler + "c\x00@example.com,C\n",
    )
    result = run_import(path, report_path=tmp_path / "r.csv")
    assert result.invalid == 2 and result.created == 4001
    rows = list(csv.reader((tmp_path / "r.csv").open()))
    assert "3 fields" in rows[1][-1] and "NUL" in rows[2][-1]
    assert rows[1][:3] == ["a@example.com", "A", "extra"] and rows[2][:2] == ["c@example.com", "C"]


def test_report_neutralises_formulas(tmp_path):
    path = write(tmp_path, 'email\n"=HYPERLINK(""http://evil"")"\n+cmd@x\n')
    run_import(path, report_path=tmp_path / "r.csv")
    cells = [row[0] for row in csv.reader((tmp_path / "r.csv").open())][1:]
    assert all(cell.startswith("'") for cell in cells)
    assert neutralise_cell("-1") == "'-1" and neutralise_cell("plain") == "plain"


@pytest.mark.django_db(transaction=True)  # the subprocess commits its import record: flush after
def test_command_from_a_shell_exits_1_with_one_line(tmp_path):
    path = write(tmp_path, b"phone\n123\n")
    from tests.conftest import database_url_for_tests

    env = {
        **__import__("os").environ,
        "DATABASE_URL": database_url_for_tests(),
        "DJANGO_SETTINGS_MODULE": "mailplatform.settings_test",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "import_contacts", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("CommandError:") and "no email column" in lines[-1]
    assert "Traceback" not in done.stderr


def test_an_import_runs_once_and_a_dead_workers_import_runs_again(tmp_path):
    import psycopg

    from contacts.models import ImportStatus
    from tests.conftest import database_url_for_tests

    path = write(tmp_path, "email\none@example.com\n")
    record = services.contact_import_create(path=str(path), filename="in.csv", mode="upsert")
    # Another worker holds the import: this one leaves it alone.
    with psycopg.connect(database_url_for_tests(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [services.IMPORT_LOCK_NAMESPACE, record.pk])
        assert services.contact_import_run(record.pk).status == ImportStatus.PENDING
        # Let go before closing: a closed session's locks are freed when its backend exits, a moment later.
        other.execute("SELECT pg_advisory_unlock(%s, %s)", [services.IMPORT_LOCK_NAMESPACE, record.pk])
    # A worker died mid-run: the row says running, nothing was stored, the next run completes it.
    ContactImport.objects.filter(pk=record.pk).update(status=ImportStatus.RUNNING)
    assert services.contact_import_run(record.pk).status == ImportStatus.DONE
    assert services.contact_import_run(record.pk).created == 1  # done: not run again
    assert Contact.objects.count() == 1


def test_bad_rows_keep_their_columns_and_import_again_once_fixed(tmp_path):
    """Issue #14: the bad-rows file is the rows as they were (plus row number and problem), so
    fixing the cells and importing the file again brings them in, with no stray fields."""
    CustomField.objects.create(name="points", label="Points", type="number")
    path = write(
        tmp_path,
        "email;first_name;Points;city\n"
        "good@example.com;Gina;3;Rome\n"
        "bad-address;Bea;4;Oslo\n"
        "carl@example.com;Carl;many;Lima\n",
    )
    result = run_import(path, report_path=tmp_path / "bad.csv")
    assert result.invalid == 2
    rows = list(csv.reader((tmp_path / "bad.csv").open()))
    assert rows[0] == ["email", "first_name", "Points", "city", "import row", "import problem"]
    assert rows[1][:5] == ["bad-address", "Bea", "4", "Oslo", "3"] and rows[1][5].startswith("email:")
    assert rows[2][:5] == ["carl@example.com", "Carl", "many", "Lima", "4"] and "points" in rows[2][5]

    rows[1][0] = "bea@example.com"
    rows[2][2] = "7"
    fixed = tmp_path / "fixed.csv"
    with fixed.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    again = run_import(fixed, report_path=tmp_path / "bad2.csv")
    assert (again.created, again.invalid) == (2, 0)
    assert Contact.objects.get(email="bea@example.com").attributes == {"points": 4, "city": "Oslo"}
    assert Contact.objects.get(email="carl@example.com").first_name == "Carl"
    assert not CustomField.objects.filter(name__in=["import_row", "import_problem"]).exists()


def test_role_and_disposable_addresses_are_kept_by_default_or_dropped_to_the_bad_rows(tmp_path):
    """Issue #16 item 8: role (info@ …) and disposable-domain addresses, flagged by the same
    `contacts.validation.address_flags` as signup forms; the marketer keeps (default) or drops them."""
    path = write(
        tmp_path, "email,first_name\nann@example.org,Ann\ninfo@example.org,Info\nbob@yopmail.com,Bob\n"
    )
    run(path, "--list", "Kept")
    assert sorted(Contact.objects.values_list("email", flat=True)) == [
        "ann@example.org",
        "bob@yopmail.com",
        "info@example.org",
    ]
    Contact.objects.all().delete()
    run(path, "--list", "Dropped", "--drop-role-and-disposable")
    assert list(Contact.objects.values_list("email", flat=True)) == ["ann@example.org"]
    record = ContactImport.objects.order_by("-id").first()
    assert record.drop_flagged and (record.created, record.invalid) == (1, 2)
    rows = list(csv.reader(Path(record.report_path).open()))
    assert rows[0] == ["email", "first_name", "import row", "import problem"]
    assert rows[1] == ["info@example.org", "Info", "3", "email: a role address, dropped as asked"]
    assert rows[2] == ["bob@yopmail.com", "Bob", "4", "email: a disposable address, dropped as asked"]
    # A row both role and disposable says both; run_import itself defaults to keeping.
    both = write(tmp_path, "email\nadmin@mailinator.com\n", name="both.csv")
    assert run_import(both, report_path=tmp_path / "b.csv", drop_flagged=True).invalid == 1
    assert "a role and disposable address" in (tmp_path / "b.csv").read_text()
    assert run_import(both).created == 1


@pytest.fixture
def reader_pids(monkeypatch):
    """The pids of the reading processes chunked imports fork."""
    import os

    real, pids = os.fork, []

    def fork():
        pid = real()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return pids


def _all_reaped(pids) -> bool:
    import os

    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue  # waited for already: gone
        return False
    return bool(pids)


@pytest.mark.parametrize("flag_every_row", [False, True])
def test_a_chunked_import_keeps_the_first_row_of_each_address_across_slices(
    tmp_path, monkeypatch, flag_every_row, reader_pids
):
    """Slices of two rows merge while the file is still being read: an address seen in an
    earlier slice (another case too) is a duplicate, not an update, and the first row wins; with
    every row flagged by the seen-filter the result is the same (they all merge at the end)."""
    from contacts import imports

    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    if flag_every_row:
        monkeypatch.setattr(imports._SeenFilter, "seen_or_add", lambda self, key: True)
    lst = MailingList.objects.create(name="L")
    old = Contact.objects.create(email="old@example.com", first_name="Before")
    path = write(
        tmp_path,
        "email,first_name,plan\na@example.com,A,pro\nold@example.com,Old,\nbad,X,\nB@example.com,B,\n"
        "A@EXAMPLE.com,A2,team\nc@example.com,C,\nb@example.com,B3,\nold@example.com,Old2,\nd@example.com,D,\n",
    )
    result = run_import(path, list_ids=[lst.id], report_path=tmp_path / "r.csv")
    assert (result.rows, result.created, result.updated, result.unchanged) == (9, 4, 1, 0)
    assert (result.invalid, result.duplicates) == (1, 3)
    assert Contact.objects.get(email__iexact="a@example.com").first_name == "A"
    assert Contact.objects.get(email__iexact="a@example.com").attributes == {"plan": "pro"}
    assert Contact.objects.get(email__iexact="b@example.com").first_name == "B"
    old.refresh_from_db()
    assert old.first_name == "Old"
    assert Subscription.objects.filter(mailing_list=lst, status=SubscriptionStatus.CONFIRMED).count() == 5
    reasons = {row[-2]: row[-1] for row in csv.reader((tmp_path / "r.csv").open())}
    assert reasons["6"] == "duplicate of row 2" and reasons["8"] == "duplicate of row 5"
    assert reasons["9"] == "duplicate of row 3" and reasons["4"].startswith("email:")
    assert _all_reaped(reader_pids)


def test_a_chunked_import_that_fails_in_a_later_slice_stores_nothing(tmp_path, monkeypatch, reader_pids):
    """Slices merged before the failure are rolled back with the rest: one transaction."""
    from contacts import imports

    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    rows = "".join(f"u{i}@example.com,U\n" for i in range(9))
    path = write(tmp_path, "email,first_name\n" + rows + '"broken@example.com,X\n')
    with pytest.raises(ImportFileError, match="row 11"):
        run_import(path)
    assert Contact.objects.count() == 0
    assert _all_reaped(reader_pids)


def test_a_merge_error_stops_the_reading_process_and_stores_nothing(tmp_path, monkeypatch, reader_pids):
    from contacts import imports

    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    real, calls = imports._merge, []

    def fail_the_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(imports, "_merge", fail_the_third)
    path = write(tmp_path, "email\n" + "".join(f"u{i}@example.com\n" for i in range(5000)))
    with pytest.raises(RuntimeError, match="went away"):
        run_import(path)
    assert Contact.objects.count() == 0
    assert _all_reaped(reader_pids)


def test_a_first_import_into_an_empty_table_still_meets_a_contact_created_meanwhile(tmp_path, monkeypatch):
    """Into an empty contacts table the slices do not look for existing contacts; one that
    appears meanwhile (here: just before the first slice merges) makes the plain insert fail, and
    that slice merges through INSERT … ON CONFLICT instead."""
    from contacts import imports

    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    real, calls = imports._merge, []

    def someone_else_first(*args, **kwargs):
        if not calls:
            Contact.objects.create(email="B@example.com", first_name="Other", last_name="Keep")
        calls.append(kwargs.get("all_new"))
        return real(*args, **kwargs)

    monkeypatch.setattr(imports, "_merge", someone_else_first)
    path = write(tmp_path, "email,first_name\na@example.com,A\nb@example.com,B\nc@example.com,C\n")
    result = run_import(path)
    assert calls[0] is True
    assert (result.created, result.updated, result.unchanged) == (2, 1, 0)
    assert Contact.objects.count() == 3
    b = Contact.objects.get(email__iexact="b@example.com")
    assert (b.first_name, b.last_name) == ("B", "Keep")


def test_a_chunked_import_stages_backslashes_tabs_newlines_and_quotes_as_they_are(tmp_path, monkeypatch):
    """The reading process writes COPY text itself: every character COPY treats specially comes
    through as it was, in the contact's fields and attributes and in a duplicate's reported cells."""
    from contacts import imports

    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    name = 'Back\\slash\tTab "quoted" \\N'
    note = "line one\nline two\r\n{a,b} \\t"
    path = write(
        tmp_path,
        "email,first_name,note\n"
        + csv_line(["a@example.com", name, note])
        + csv_line(["b@example.com", "B", ""])
        + csv_line(["A@example.com", name + "2", note + "2"]),
    )
    result = run_import(path, report_path=tmp_path / "r.csv")
    assert (result.created, result.duplicates) == (2, 1)
    a = Contact.objects.get(email="a@example.com")
    assert (a.first_name, a.attributes) == (name, {"note": note})
    report = list(csv.reader((tmp_path / "r.csv").open(newline="")))
    assert report[1][:3] == ["A@example.com", name + "2", note + "2"]


def csv_line(cells):
    from io import StringIO

    out = StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()


def test_a_chunked_import_reads_a_small_first_and_last_slice_and_large_ones_between():
    """Nothing merges before the first slice is read and nothing reads while the last one
    merges: those two are a quarter of a slice, so that the wall time adds little to the
    slower side's work. Sizes follow the bytes read per row so far (a 100-byte row here)."""
    from contacts.imports import CHUNK_ROWS, _Counter, _slice_rows

    small, total = CHUNK_ROWS // 4, 100 * 1_000_000
    assert _slice_rows(_Counter(), total) == small  # nothing read yet
    assert _slice_rows(_Counter(rows=20_000, done=2_000_000), total) == CHUNK_ROWS
    assert _slice_rows(_Counter(rows=850_000, done=85_000_000), total) == CHUNK_ROWS
    assert _slice_rows(_Counter(rows=900_000, done=90_000_000), total) == small  # the last 100,000
    assert _slice_rows(_Counter(rows=1_000_000, done=total), total) == small
