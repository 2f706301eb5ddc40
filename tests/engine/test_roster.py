"""OneRoster bundles as real SIS exports write them: 1.1 and 1.2 layouts, BOM and CRLF, CEDS
grades, e-mail ids, delta files; every bad row named by file, line and field."""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.roster import FIELDS, KINDS, Records, Roster, RosterError, load_bundle, read_bundle, read_zip

SCHOOL = Path(__file__).resolve().parent.parent / "data" / "oneroster_school"


def school(tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(SCHOOL, target)
    (target / "SOURCE.md").unlink()
    return target


def delta_folder(folder: Path, files: dict[str, str], header: str = "propertyName,value") -> Path:
    """A bundle of delta files (file name -> text) with its manifest, in ``folder``."""
    folder.mkdir()
    modes = "".join(f"file.{name.removesuffix('.csv')},delta\n" for name in files)
    (folder / "manifest.csv").write_text(f"{header}\n{modes}")
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_a_real_layout_imports_with_pseudonymous_ids_and_grades(tmp_path) -> None:
    bundle = load_bundle(school(tmp_path))
    roster = Roster().apply(bundle, "t")
    assert roster.counts() == {
        "orgs": 2,
        "sessions": 1,
        "users": 32,
        "students": 30,
        "teachers": 2,
        "classes": 2,
        "enrollments": 32,
    }
    assert any("courses.csv" in note and "ignored" in note for note in bundle.notes)
    text = json.dumps(roster.to_json())
    assert "@" not in text and "password" not in text  # no e-mail address, no credential is kept
    assert "stu-1000" in roster.users and roster.grade_of("stu-1000") == "4"
    assert roster.grade_of("stu-1020") == "5"
    hashed = [u for u in roster.users if u.startswith("a-")]
    assert len(hashed) == 1 and roster.name_of(hashed[0]) == "Hana Sato"
    assert roster.members("class-4a", "teacher") == ["t-ramos"]
    assert len(roster.members("class-4a", "student")) == 15
    assert roster.classes["class-4a"]["school"] == "org-school-7"
    assert roster.orgs["org-school-7"]["parent"] == "org-district-1"
    assert roster.classes["class-4a"]["sessions"] == ["term-2026"]


def test_the_same_bundle_twice_changes_nothing_and_a_delta_moves_a_student(tmp_path) -> None:
    folder = school(tmp_path)
    once = Roster().apply(load_bundle(folder), "t")
    twice = once.apply(load_bundle(folder), "t")
    assert twice.to_json() == once.to_json()

    delta = delta_folder(
        tmp_path / "delta",
        {
            "enrollments.csv": "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role\n"
            "e-0,tobedeleted,2026-09-01,class-4a,org-school-7,stu-1000,student\n"
            "e-0-moved,active,2026-09-01,class-5b,org-school-7,stu-1000,student\n"
        },
    )
    moved = once.apply(load_bundle(delta), "t")
    assert moved.classes_of("stu-1000") == ["class-5b"]
    assert moved.users == once.users  # the people are untouched
    assert len(moved.enrollments) == len(once.enrollments)


def test_applying_a_bundle_leaves_the_roster_it_starts_from_as_it_was(tmp_path) -> None:
    """The result shares the records it keeps with the roster it starts from (a district's
    roster is not copied for each import), so none of them may change: here every kind is
    replaced by a bulk file or merged by a delta, and a user kept from a store of before has no
    role yet (the result gives them one)."""
    import copy

    folder = school(tmp_path)
    start = Roster().apply(load_bundle(folder), "t")
    start.users["stu-1001"] = {k: v for k, v in start.users["stu-1001"].items() if k != "role"}
    frozen = copy.deepcopy(start.to_json())
    delta = tmp_path / "delta"
    delta.mkdir()
    (delta / "manifest.csv").write_text("propertyName,value\nfile.users,delta\nfile.enrollments,delta\n")
    (delta / "users.csv").write_text("sourcedId,status,role,givenName,familyName\nstu-1000,active,student,Ann,New\n")
    (delta / "enrollments.csv").write_text(
        "sourcedId,status,classSourcedId,schoolSourcedId,userSourcedId,role\n"
        "e-0-moved,active,class-5b,org-school-7,stu-1000,student\n"
    )
    for bundle in (load_bundle(delta), load_bundle(folder)):
        after = start.apply(bundle, "t")
        assert after.users["stu-1001"]["role"] == "student"
        assert start.to_json() == frozen
    assert after.to_json() != frozen


def test_a_oneroster_11_layout_and_class_grades(tmp_path) -> None:
    files = {
        "orgs.csv": b"sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\ns1,,,North School,school,,\n",
        "users.csv": (
            b"sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,givenName,familyName,grades\n"
            b"u1,,,true,s1,student,ana,Ana,Lima,\n"
            b"u2,,,true,s1,teacher,bo,Bo,Berg,\n"
        ),
        "classes.csv": b"sourcedId,status,title,grades,schoolSourcedId,classCode\nc1,,Math K,KG,s1,MK\n",
        "enrollments.csv": b"sourcedId,classSourcedId,schoolSourcedId,userSourcedId,role\nx1,c1,s1,u1,student\nx2,c1,s1,u2,teacher\n",
    }
    roster = Roster().apply(read_bundle(files, "bundle"), "t")
    assert roster.users["u1"]["role"] == "student" and roster.users["u2"]["role"] == "teacher"
    assert roster.grade_of("u1") == "K"  # no grade of her own: the class's
    assert roster.users["u1"]["orgs"] == ["s1"]


def test_a_zip_with_a_folder_and_mac_metadata(tmp_path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in school(tmp_path).iterdir():
            archive.write(path, f"export-2026-09-01/{path.name}")
        archive.writestr("__MACOSX/export-2026-09-01/._users.csv", b"\x00\x05\x16\x07")
    roster = Roster().apply(read_zip(buffer.getvalue(), "upload.zip"), "t")
    assert roster.counts()["students"] == 30
    with pytest.raises(RosterError, match="upload.zip: not a readable zip file"):
        read_zip(b"PK\x03\x04 not really", "upload.zip")


def test_a_zip_with_a_directory_out_of_place_or_a_password_is_named(tmp_path) -> None:
    """Damage a fuzzer found: a directory whose offset points past the file (zipfile seeks before
    its start: ValueError), and a file that needs a password (RuntimeError). Both are the
    bundle's fault, said as such."""
    import struct

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(school(tmp_path).iterdir()):
            archive.write(path, path.name)
    data = bytearray(buffer.getvalue())
    end = data.rindex(b"PK\x05\x06")  # the end of central directory record: its offset at +16
    moved = bytearray(data)
    moved[end + 16 : end + 20] = struct.pack("<I", len(data) + 100)
    with pytest.raises(RosterError, match="upload.zip: not a readable zip file"):
        read_zip(bytes(moved), "upload.zip")
    locked = bytearray(data)
    entry = locked.index(b"PK\x01\x02")  # users.csv's entry in the central directory
    while locked[entry + 46 : entry + 46 + struct.unpack("<H", locked[entry + 28 : entry + 30])[0]] != b"users.csv":
        entry = locked.index(b"PK\x01\x02", entry + 4)
    locked[entry + 8] |= 0x01  # its general purpose flag: encrypted
    with pytest.raises(RosterError, match=r"upload.zip: not a readable zip file \(users.csv: .*encrypted"):
        read_zip(bytes(locked), "upload.zip")


def test_a_zip_whose_file_is_damaged_names_it(tmp_path) -> None:
    """Files are unpacked one at a time as they are read: a damaged one is named when its turn comes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(school(tmp_path).iterdir()):
            archive.write(path, path.name)
    data = bytearray(buffer.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("users.csv")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF  # a byte inside users.csv's compressed data
    with pytest.raises(RosterError, match=r"upload.zip: not a readable zip file \(users.csv: "):
        read_zip(bytes(data), "upload.zip")


ENROLLMENTS = "sourcedId,classSourcedId,schoolSourcedId,userSourcedId,role\n"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "enrollments.csv",
            ENROLLMENTS + "x1,class-9z,org-school-7,stu-1000,student\n",
            r"enrollments.csv line 2, field 'classSourcedId': 'class-9z' is no class",
        ),
        (
            "enrollments.csv",
            ENROLLMENTS + "x1,class-4a,org-school-7,nobody,student\n",
            r"line 2, field 'userSourcedId': 'nobody' is no user",
        ),
        (
            "enrollments.csv",
            ENROLLMENTS + "x1,class-4a,org-school-7,stu-1000,wizard\n",
            r"enrollments.csv line 2, field 'role': 'wizard'",
        ),
        (
            "enrollments.csv",
            ENROLLMENTS + "x1,class-4a,org-school-7,stu-1000,student\nx1,class-4a,org-school-7,stu-1001,student\n",
            r"line 3, field 'sourcedId': 'x1' repeats line 2",
        ),
        ("enrollments.csv", "sourcedId,classSourcedId,userSourcedId\n", r"enrollments.csv: missing column\(s\) role"),
        (
            "enrollments.csv",
            ENROLLMENTS + "x1,class-4a,org-school-7,stu-1000,student,extra\n",
            r"enrollments.csv line 2: 6 fields, the header has 5",
        ),
        (
            "classes.csv",
            "sourcedId,title,schoolSourcedId\nc9,Math,org-nowhere\n",
            r"classes.csv line 2, field 'schoolSourcedId'",
        ),
    ],
)
def test_bad_rows_are_named_by_file_line_and_field(tmp_path, name, text, expected) -> None:
    folder = school(tmp_path)
    (folder / name).write_text(text)
    with pytest.raises(RosterError, match=expected):
        Roster().apply(load_bundle(folder), "t")


def test_encodings(tmp_path) -> None:
    folder = school(tmp_path)
    text = (folder / "orgs.csv").read_bytes().decode("utf-8-sig")
    (folder / "orgs.csv").write_bytes(text.encode("utf-16"))  # with its byte-order mark: read
    assert Roster().apply(load_bundle(folder), "t").orgs["org-school-7"]["name"] == "Lincoln Elementary"
    (folder / "orgs.csv").write_bytes(text.replace("Lincoln", "林肯").encode("big5"))
    with pytest.raises(RosterError, match=r"orgs.csv line 3: is not valid UTF-8 .*expected UTF-8"):
        load_bundle(folder)


def test_missing_paths_and_manifest_promises(tmp_path) -> None:
    with pytest.raises(RosterError, match="not found"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "manifest.csv").write_text("propertyName,value\nfile.users,bulk\n")
    with pytest.raises(RosterError, match="names users.csv as bulk, but the bundle has no such file"):
        load_bundle(tmp_path)


def test_a_delta_deleting_users_takes_their_enrollments(tmp_path) -> None:
    roster = Roster().apply(load_bundle(school(tmp_path)), "t")
    delta = delta_folder(
        tmp_path / "left",
        {
            "users.csv": "sourcedId,status,role\nstu-1000,tobedeleted,student\nstu-1001,tobedeleted,student\n"
            "nobody,tobedeleted,student\n"
        },
    )
    after = roster.apply(load_bundle(delta), "t")
    assert "stu-1000" not in after.users and "stu-1001" not in after.users
    assert not after.classes_of("stu-1000") and "stu-1001" not in after.members("class-4a")
    assert len(after.enrollments) == len(roster.enrollments) - 2 and len(after.users) == len(roster.users) - 2
    assert roster.classes_of("stu-1000") == ["class-4a"]  # the roster applied to is left as it was


def test_columns_are_read_whatever_their_case_and_rows_hold_only_what_the_import_reads(tmp_path) -> None:
    """An export whose headers are upper case (``STATUS``, ``GivenName``) is read as one in the
    standard's case: a row marked ``TOBEDELETED`` leaves, names and grades arrive. The rows the
    import holds carry the columns it reads, and no e-mail address, user name, phone number or
    password."""
    roster = Roster().apply(load_bundle(school(tmp_path)), "t")
    delta = delta_folder(
        tmp_path / "shouting",
        {
            "users.csv": "SOURCEDID,STATUS,ROLE,GIVENNAME,FAMILYNAME,GRADES,EMAIL,USERNAME,PHONE,PASSWORD\n"
            "stu-1000,TOBEDELETED,student,,,,,,,\n"
            "stu-1001,active,student,Ada,Okafor,05,ada@example.org,aokafor,555-0100,hunter2\n"
        },
        header="PropertyName,Value",
    )
    bundle = load_bundle(delta)
    assert bundle.modes["users"] == "delta"
    after = roster.apply(bundle, "t")
    assert "stu-1000" not in after.users
    assert after.name_of("stu-1001") == "Ada Okafor" and after.grade_of("stu-1001") == "5"
    held = {column for _, row in bundle.rows["users"] for column in row}
    assert held == {"sourcedId", "status", "role", "givenName", "familyName", "grades"}
    assert "ada@example.org" not in repr(bundle) and "hunter2" not in repr(bundle)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='ab,"\r\n ', max_size=40))
def test_a_file_is_cut_in_lines_as_csv_reads_a_file_opened_for_it(text) -> None:
    """``text_lines`` gives csv the lines an ``io.StringIO(text, newline="")`` gives (line ends
    of every kind, lone CRs, quoted line breaks, no end at the end), without its copy of the text."""
    import csv

    from engine.textfiles import text_lines

    assert list(text_lines(text)) == list(io.StringIO(text, newline=""))
    try:
        expected = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        with pytest.raises(csv.Error, match=re.escape(str(exc))):
            list(csv.reader(text_lines(text)))
    else:
        assert list(csv.reader(text_lines(text))) == expected


def test_an_org_may_name_a_parent_listed_after_it_and_a_row_an_org_removed_meanwhile_is_refused(tmp_path) -> None:
    """Exports list orgs in any order: a school before its district. A class or user naming an
    org the same bundle removes is refused, naming the row."""
    folder = school(tmp_path)
    orgs = (folder / "orgs.csv").read_text(encoding="utf-8-sig").splitlines()
    (folder / "orgs.csv").write_text("\n".join([orgs[0], orgs[2], orgs[1]]) + "\n")
    roster = Roster().apply(load_bundle(folder), "t")
    assert roster.orgs["org-school-7"]["parent"] == "org-district-1"
    assert list(roster.orgs) == ["org-school-7", "org-district-1"]
    gone = delta_folder(
        tmp_path / "gone",
        {
            "orgs.csv": "sourcedId,status,name,type\norg-school-7,tobedeleted,Lincoln Elementary,school\n",
            "classes.csv": "sourcedId,status,title,schoolSourcedId\nclass-new,active,Art,org-school-7\n",
        },
    )
    with pytest.raises(RosterError, match="classes.csv line 2, field 'schoolSourcedId': 'org-school-7' is no org"):
        roster.apply(load_bundle(gone), "t")


def test_erasing_a_user_takes_their_enrollments(tmp_path) -> None:
    roster = Roster().apply(load_bundle(school(tmp_path)), "t")
    records = roster.records_of_users(["stu-1000", "nobody"])
    assert records == [("users", "stu-1000"), ("enrollments", "e-0")]
    erased = roster.with_changes([], records)
    assert "stu-1000" not in json.dumps(erased.to_json()) and erased.records_of_users(["stu-1000"]) == []
    assert "stu-1000" in roster.users  # the roster it was taken from is left as it was


ENROLLMENT_IDS = [f"e{i}" for i in range(12)]
USER_IDS = [f"u{i}" for i in range(6)]
CLASS_IDS = ["c1", "c2", "c3"]
ROLES = ["student", "teacher"]


@st.composite
def roster_changes(draw) -> tuple[list[tuple[str, str, dict]], list[tuple[str, str]]]:
    """Enrollments and users written (new, moved, changed role) and removed."""
    # records of every field (held as compact rows) and of a few (held as they are), mixed
    written = [
        (
            "enrollments",
            key,
            {
                "class": draw(st.sampled_from(CLASS_IDS)),
                "user": draw(st.sampled_from(USER_IDS)),
                "role": draw(st.sampled_from(ROLES)),
                **draw(st.sampled_from([{}, {"primary": True}, {"primary": False}])),
            },
        )
        for key in draw(st.lists(st.sampled_from(ENROLLMENT_IDS), unique=True, max_size=5))
    ]
    written += [
        (
            "users",
            u,
            draw(
                st.sampled_from(
                    [{"role": "student"}, {"given": "A", "family": "B", "role": "student", "grade": "4", "orgs": ["s"]}]
                )
            ),
        )
        for u in draw(st.lists(st.sampled_from(USER_IDS), unique=True, max_size=2))
    ]
    taken = {key for _, key, _ in written}
    removed = [
        ("enrollments", key)
        for key in draw(st.lists(st.sampled_from(ENROLLMENT_IDS), unique=True, max_size=4))
        if key not in taken
    ]
    removed += [
        ("users", u) for u in draw(st.lists(st.sampled_from(USER_IDS), unique=True, max_size=1)) if u not in taken
    ]
    return written, removed


@settings(max_examples=150, deadline=None)
@given(st.lists(roster_changes(), min_size=1, max_size=6), st.booleans())
def test_a_roster_followed_by_its_changes_is_the_roster_built_afresh(steps, read_between) -> None:
    """What a worker's copy does with the store's changes: its records and its membership
    (members, classes, a teacher's students) are those of a roster built from the records."""
    roster = Roster()
    for written, removed in steps:
        if read_between:
            roster.members("c1")  # the index exists: it is carried over and updated
        before = roster.to_json()
        followed = roster.with_changes(written, removed)
        assert roster.to_json() == before  # the copy other threads read is untouched
        records = {(kind, key): record for kind in KINDS for key, record in getattr(roster, kind).items()}
        for kind, key in removed:
            records.pop((kind, key), None)
        records.update({(kind, key): record for kind, key, record in written})
        fresh = Roster.from_records((kind, key, record) for (kind, key), record in records.items())
        assert followed.to_json() == fresh.to_json()
        for class_id in CLASS_IDS:
            for role in (None, *ROLES):
                assert followed.members(class_id, role) == fresh.members(class_id, role)
        for user in USER_IDS:
            assert followed.classes_of(user) == fresh.classes_of(user)
            assert followed.students_of(user) == fresh.students_of(user)
            assert followed.classes_taught(user) == fresh.classes_taught(user)
            assert followed.records_of_users([user]) == fresh.records_of_users([user])
        roster = followed


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=140),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=2),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(list(KINDS)),
    st.data(),
)
def test_a_record_reads_back_as_it_was_written_whatever_its_fields(kind, data) -> None:
    """Records of exactly their kind's fields are held as compact rows, others as they are; either
    reads back equal to what was written, as a new dict its reader may change freely."""
    names = data.draw(
        st.sampled_from([FIELDS[kind], FIELDS[kind][:-1], (*FIELDS[kind], "extra")])
        | st.lists(st.sampled_from([*FIELDS[kind], "extra"]), unique=True)
    )
    record = {name: data.draw(_VALUES, label=name) for name in names}
    held = Records(kind, {"k": record})
    read = held["k"]
    assert read == record and type(read) is dict
    assert held.get("k") == record and held.get("other") is None and "k" in held and len(held) == 1
    for name in names:
        assert held.value("k", name) == record[name]
        assert held.column(name) == [record[name]]
    assert held.value("k", "missing", 7) == 7 and held.column("missing") == [None]
    for value in read.values():
        if isinstance(value, list):
            value.append("changed by its reader")
    read["extra2"] = 1
    assert held["k"] == record  # the roster is not changed through a record read from it
    again = Records(kind, {"k": record})
    assert again == held and not held.differs(again, "k") and held == {"k": record}


def test_a_roster_survives_pickling_and_copying(tmp_path) -> None:
    """A roster may go to another process (a Ray task's): pickled and copied, it is the same
    roster, and a copy's change leaves the original as it was."""
    import copy
    import pickle

    roster = Roster().apply(load_bundle(school(tmp_path)), "t")
    again = pickle.loads(pickle.dumps(roster))
    assert again == roster and again.to_json() == roster.to_json()
    assert again.members("class-4a") == roster.members("class-4a")
    copied = roster.users.copy()
    copied["stu-1000"] = {**copied["stu-1000"], "given": "Changed"}
    assert roster.users["stu-1000"]["given"] != "Changed" and copy.deepcopy(roster) == roster


def test_records_of_every_field_share_their_ids_and_codes() -> None:
    """A district's enrollments name its few thousand classes and users hundreds of thousands of
    times: every enrollment holds the one string of its class's id, its user's and its role."""
    roster = Roster.from_records(
        [
            ("classes", "c-1", {"title": "Math 4", "code": "", "grades": ["4"], "school": None, "sessions": []}),
            *(
                (
                    "enrollments",
                    f"e-{k}",
                    {"class": "".join(["c-", "1"]), "user": f"u-{k % 2}", "role": "student", "primary": False},
                )
                for k in range(4)
            ),
        ]
    )
    column = roster.enrollments.column("class")
    assert column == ["c-1"] * 4 and len({id(c) for c in column}) == 1
    assert len({id(r) for r in roster.enrollments.column("role")}) == 1
    assert next(iter(roster.classes)) is column[0]  # the class's own id, where the roster read it first
    assert roster.members("c-1") == ["u-0", "u-1"]
