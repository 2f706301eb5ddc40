"""A deployment's own catalog file moves items from one deployment to the next: the answers on a
moved item count on its new standards from the next request that reads their learner, whatever
the order of the deployments (a rolling deployment, a rollback), and the learners who never
answered a moved item keep their state as stored."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.content import changed_items, read_stamp

T0 = 1_790_000_000.0  # 2026-09-22: before the server's clock


def test_a_stamp_reads_back_what_the_state_was_folded_with() -> None:
    def read(stamp: str, version: str) -> tuple | None:
        got = read_stamp(stamp, version)
        return None if got is None else (got.catalog, got.checkable, got.alignment)

    assert read("bkt@1", "bkt@1") == (None, None, 0)  # stamped before catalogs were
    assert read("bkt@1+a3", "bkt@1") == (None, None, 3)
    assert read("bkt@1~ab12+c0f3e+k9a+a2", "bkt@1~ab12") == ("0f3e", "9a", 2)
    assert read("bkt@1+c0f3e+k9a", "bkt@1") == ("0f3e", "9a", 0)
    assert read("bkt@1~ab12+c0f3e", "bkt@1") is None  # another framework folded it
    assert read("bkt@12+c0f3e", "bkt@1") is None  # another model
    assert read("bkt@1+cXYZ", "bkt@1") is None


def test_what_changed_between_two_catalogs() -> None:
    old = {"a": [["1.OA.A.1"], False], "b": [["1.OA.A.2"], False], "d": [["K.CC.A.1"], False]}
    assert changed_items(old, dict(old)) == frozenset()
    moved = {**old, "a": [["1.OA.A.2"], False]}
    assert changed_items(old, moved) == {"a"}
    assert changed_items(moved, old) == {"a"}  # a rollback undoes the same move
    gone = {k: v for k, v in old.items() if k != "d"}
    assert changed_items(old, gone) == {"d"} and changed_items(gone, old) == {"d"}  # removed, added
    assert changed_items(old, {**old, "b": [["1.OA.A.2"], True]}) == {"b"}  # made a mastery check


def _deployment(tmp_path: Path, name: str, moves: dict[str, str]) -> tuple[Path, object]:
    """A config whose catalog is the bundled one with ``moves`` (item id -> its one standard), and
    the engine it serves."""
    from configs import load_config
    from engine.catalog import save_catalog
    from serving.app import build_engine

    base = build_engine(load_config(env={}), model_uri="bkt")
    path = tmp_path / f"{name}.csv"
    save_catalog(base.catalog, path)
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    for row in rows:
        if row["id"] in moves:
            row["standards"] = moves[row["id"]]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'[catalog]\nsource = "{path.as_posix()}"\n[serving]\nmodel_uri = "bkt"\n'
        f'data_dir = "{tmp_path.as_posix()}"\n'
        f'[mlflow]\ntracking_uri = "sqlite:///{(tmp_path / "mlflow.db").as_posix()}"\n'
    )
    engine = build_engine(load_config(config, env={}), model_uri="bkt")
    return config, engine


def test_items_a_new_deployment_moves_are_folded_again_for_those_who_answered_them(
    tmp_path, shared_engine, monkeypatch
) -> None:
    from serving import checkpoints
    from serving.stores import open_store
    from zpd.cli import app as cli

    from .conftest import make_api

    monkeypatch.setattr(checkpoints, "EVERY", 2)
    only = [i for i in shared_engine.catalog if len(i.standards) == 1 and not i.mastery_check]
    moving = next(i for i in only if i.standards == ("K.CC.A.1",))
    staying = next(i for i in only if i.standards == ("K.CC.A.2",))
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    first_config, first = _deployment(tmp_path, "first", {})
    second_config, second = _deployment(tmp_path, "second", {moving.id: "1.OA.A.1"})
    assert second.catalog[moving.id].standards == ("1.OA.A.1",)

    def answer(k: int, learner: str, item_id: str) -> dict:
        return {"id": f"{learner}{k}", "learner_id": learner, "item_id": item_id, "correct": True,
                "timestamp": T0 + 60 * k}  # fmt: skip

    def evidence(api, learner: str) -> set[str]:
        got = api.client.get(f"/v1/learners/{learner}/profile", params={"recent": 0}, headers=api.h())
        assert got.status_code == 200, got.text
        return {code for code, m in got.json()["mastery"].items() if m["evidence"]}

    def replay_check(config: Path) -> dict:
        result = CliRunner().invoke(
            cli, ["--config", str(config), "replay", "--store", store.url, "--check", "--json"], catch_exceptions=False
        )
        return {"code": result.exit_code, **json.loads(result.output.strip().splitlines()[-1])}

    api = make_api(store, first)
    with api.client as c:
        old_stamp = c.app.state.service.core("tenant-a").version
        answers = [answer(k, "lia", moving.id) for k in range(2)] + [answer(k, "bob", staying.id) for k in range(2)]
        assert c.post("/v1/events", json=answers, headers=api.h()).status_code == 200
        assert (
            c.post("/v1/events", json=[answer(k, "bob", staying.id) for k in (2, 3)], headers=api.h()).status_code
            == 200
        )
        assert evidence(api, "lia") == {"K.CC.A.1"}
    bob = store.get("tenant-a", "bob")
    assert bob.model_version == old_stamp and len(bob.meta["cp"]) == 2
    # before serving the second catalog, the operator sees what it changes, and for whom
    said = CliRunner().invoke(
        cli, ["--config", str(first_config), "catalog", "validate", str(tmp_path / "second.csv"), "--store", store.url]
    )
    assert said.exit_code == 0, said.output
    assert f"1 moved to other standards ({moving.id})" in said.output
    assert "1 of the store's 2 learner(s) answered there: folded again on their next request" in said.output

    # the new deployment's catalog moved lia's item: her first read folds her again, on its new
    # standard; bob's state holds as it is and is stamped anew (checkpoints too)
    api = make_api(store, second)
    with api.client as c:
        new_stamp = c.app.state.service.core("tenant-a").version
        assert new_stamp != old_stamp and read_stamp(new_stamp, second.models.current.version) is not None
        assert evidence(api, "lia") == {"1.OA.A.1"}
        assert store.get("tenant-a", "lia").model_version == new_stamp
        assert c.get("/v1/learners/bob/next", headers=api.h()).status_code == 200
        kept = store.get("tenant-a", "bob")
        assert kept.state == bob.state and kept.model_version == new_stamp
        assert [cp["model"] for cp in kept.meta["cp"]] == [new_stamp] * 2
        scraped = c.get("/metrics").text  # what an operator watches after a deployment
        assert 'zpd_rebuilt_on_read_total{why="catalog"} 1.0' in scraped
        assert 'zpd_rebuilt_on_read_total{why="restamped"} 1.0' in scraped
        refolds: list[str] = []
        c.app.state.service.on_refold = lambda start, n: refolds.append(start)
        late = c.post("/v1/events", json=[answer(9, "bob", staying.id) | {"timestamp": T0 + 150}], headers=api.h())
        assert late.status_code == 200 and refolds == ["checkpoint"]  # resumed from a retagged checkpoint
    assert replay_check(second_config)["code"] == 0

    # a rollback to the first deployment moves the item back, and lia with it
    api = make_api(store, first)
    with api.client as c:
        assert evidence(api, "lia") == {"K.CC.A.1"}
        assert c.get("/v1/learners/bob/next", headers=api.h()).status_code == 200
    assert replay_check(first_config)["code"] == 0
    checked = replay_check(second_config)  # both stamped by the first deployment's catalog now
    assert checked["code"] == 1 and checked["differing"] == ["tenant-a/lia"]
    assert checked["stamp_only"] == 1  # bob: what the log gives under either catalog, stamped otherwise


def test_a_state_stamped_before_catalogs_were_is_taken_as_folded_with_the_current_one(tmp_path, shared_engine) -> None:
    """A record written before states were stamped with the catalog is kept as it is (stamped
    anew on its first read); one stamped with a catalog the store has no record of is folded again."""
    from serving.stores import open_store
    from zpd.cli import app as cli

    from .conftest import make_api

    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    api = make_api(store, shared_engine)
    item = next(i for i in shared_engine.catalog if i.standards == ("K.CC.A.1",))
    with api.client as c:
        stamp = c.app.state.service.core("tenant-a").version
        version = shared_engine.models.current.version
        for learner, right in (("old", 0), ("lost", 1)):
            sent = [{"id": f"{learner}{k}", "learner_id": learner, "item_id": item.id, "correct": k % 2 == right,
                     "timestamp": T0 + 60 * k} for k in range(3)]  # fmt: skip
            assert c.post("/v1/events", json=sent, headers=api.h()).status_code == 200
        reads: list[tuple] = []
        original = store.events
        store.events = lambda *a: reads.append(a) or original(*a)  # type: ignore[method-assign]
        old, lost = store.get("tenant-a", "old"), store.get("tenant-a", "lost")
        folded = lost.state
        assert folded != old.state
        old.model_version = version  # as written before this stamp had the catalog
        # a learner without an answer: nothing folded, so nothing its stamp could tell
        assert c.post("/v1/learners/quiet", json={"grade": "3"}, headers=api.h()).status_code in (200, 201)
        quiet = store.get("tenant-a", "quiet")
        quiet.model_version = version
        store.commit(quiet, quiet.version, [])
        # stamped with a catalog the store has no record of (and a state that is not its fold there)
        lost.model_version, lost.state = f"{version}+c0123456789ab", old.state
        for record in (old, lost):
            store.commit(record, record.version, [])
        # `zpd replay --check`: the old stamp is no difference (its state is what its log gives)
        config = tmp_path / "zpd.toml"
        config.write_text(f'[serving]\nmodel_uri = "bkt"\ndata_dir = "{tmp_path.as_posix()}"\n')

        def replay_check() -> dict:
            result = CliRunner().invoke(
                cli, ["--config", str(config), "replay", "--store", store.url, "--check", "--json"]
            )
            return {"code": result.exit_code, **json.loads(result.output.strip().splitlines()[-1])}

        checked = replay_check()
        assert (checked["code"], checked["stamp_only"], checked["differing"]) == (1, 1, ["tenant-a/lost"]), checked
        assert checked["matching"] == 1  # quiet
        try:
            for learner in ("old", "lost"):
                assert c.get(f"/v1/learners/{learner}/next", headers=api.h()).status_code == 200
        finally:
            store.events = original  # type: ignore[method-assign]
        assert len(reads) == 2  # each read its log once
        kept, rebuilt = store.get("tenant-a", "old"), store.get("tenant-a", "lost")
        assert kept.model_version == stamp and kept.state == old.state
        assert rebuilt.model_version == stamp and rebuilt.state == folded  # folded again from its log
        checked = replay_check()
        assert (checked["code"], checked["matching"], checked["stamp_only"]) == (0, 3, 0), checked
    store.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis", "redis-cluster"])
def test_each_catalog_is_recorded_once(tmp_path, shared_engine, kind, request) -> None:
    """The store records what folds read of the deployment's catalog under its digest, once,
    whichever process comes first."""
    from serving.content import alignment_setting, checkable_setting, fold_alignment
    from serving.service import LearnerService
    from serving.stores import open_store

    from .conftest import store_url

    store = open_store(store_url(request, tmp_path, kind))
    try:
        services = [LearnerService(shared_engine, store) for _ in range(2)]
        core = services[0].core("t")
        first = services[0].content.catalog_digest()
        assert store.get_setting(alignment_setting(first)) is None  # nothing written to read
        for service in services:
            service.record_stamp(service.core("t"))
        assert services[1].content.catalog_digest() == first == core.catalog_digest
        version, value = store.get_setting(alignment_setting(first))
        assert version == 1 and json.loads(value) == json.loads(json.dumps(fold_alignment(shared_engine.catalog)))
        version, value = store.get_setting(checkable_setting(core.checkable_digest))
        assert version == 1 and json.loads(value) == sorted(shared_engine.index.checkable)
    finally:
        store.close()


def test_an_own_item_made_a_mastery_check_is_folded_again_as_one(api, tmp_path) -> None:
    """A tenant's item made a mastery check changes what the answers on it were evidence of (a
    passed check confirms mastery): not a move to other standards, but the learners who
    answered it are folded again all the same, so their state is what the log gives."""
    c, h, store = api.client, api.h(), api.store
    # on a standard with a check already (the set of standards a check confirms stays as it was)
    item = {"id": "own-check", "title": "Own quiz", "standards": ["K.CC.A.1"], "modality": "online_practice",
            "duration_minutes": 5}  # fmt: skip
    assert c.put("/v1/items", json=[item], headers=h).status_code == 200
    sent = [{"id": f"q{k}", "learner_id": "lia", "item_id": item["id"], "correct": True, "timestamp": T0 + 60 * k}
            for k in range(2)]  # fmt: skip
    assert c.post("/v1/events", json=sent, headers=h).status_code == 200
    before = store.get("tenant-a", "lia")
    flipped = c.put("/v1/items", json=[{**item, "mastery_check": True}], headers=h).json()
    assert (flipped["updated"], flipped["realigned"]) == (1, [])  # on the same standards
    assert c.get("/v1/learners/lia/next", headers=h).status_code == 200
    after = store.get("tenant-a", "lia")
    assert after.model_version == f"{before.model_version}+a1"
    assert after.meta["progress"] != before.meta["progress"]  # its answers count as checks now
    view = c.app.state.service.load("tenant-a", "lia")
    from serving.evidence import evidence

    rebuilt = view.core.rebuild(view.meta, evidence(store.events("tenant-a", "lia")))
    assert rebuilt.meta.to_json()["progress"] == after.meta["progress"]


def test_a_standard_that_loses_its_only_mastery_check_is_folded_again_without_one(api, shared_engine) -> None:
    """With ``require_check``, mastery needs a passed mastery check where a standard has one on
    offer. A tenant that withdraws a standard's only check changes that rule for every answer on
    it, on whatever item: the learners who answered there are folded again under it."""
    from collections import defaultdict

    by_standard = defaultdict(list)
    for item in shared_engine.catalog:
        if len(item.standards) == 1:
            by_standard[item.standards[0]].append(item)
    checks = [i for i in by_standard["K.CC.A.1"] if i.mastery_check]
    practice = [i for i in by_standard["K.CC.A.1"] if not i.mastery_check]
    assert len(checks) == 1 and practice
    c, h = api.client, api.h()
    assert c.post("/v1/learners/lia", json={"grade": "K"}, headers=h).status_code in (200, 201)
    # a streak short of check_wait answers past streak_required: mastery still waits for the check
    sent = [{"id": f"p{k}", "learner_id": "lia", "item_id": practice[k % len(practice)].id, "correct": True,
             "timestamp": T0 + 60 * k} for k in range(5)]  # fmt: skip
    assert c.post("/v1/events", json=sent, headers=h).status_code == 200

    def status() -> str:
        return c.get("/v1/learners/lia/profile", headers=h).json()["mastery"]["K.CC.A.1"]["status"]

    assert status() == "in_progress"  # a streak, but no check passed
    assert c.delete(f"/v1/items/{checks[0].id}", headers=h).status_code == 200
    assert status() == "mastered"  # no check on offer: the streak masters it
    assert c.put("/v1/items", json=[checks[0].to_record()], headers=h).status_code == 200  # offered again
    assert status() == "in_progress"


def test_a_tenant_on_a_framework_of_its_own_follows_the_deployments_catalog_too(tmp_path, shared_engine) -> None:
    """A tenant's own framework is stamped apart from the deployment's catalog: the catalog
    file moving a shared item still refolds the tenant's learners who answered it."""
    from engine.case import graph_to_case
    from serving.stores import open_store

    from .conftest import make_api

    moving = next(i for i in shared_engine.catalog if i.standards == ("K.CC.A.1",) and not i.mastery_check)
    store = open_store(f"sqlite:///{tmp_path / 'zpd.db'}")
    _, first = _deployment(tmp_path, "first", {})
    _, second = _deployment(tmp_path, "second", {moving.id: "1.OA.A.1"})
    package = graph_to_case(first.graph)
    package["CFDocument"]["title"] = "District math framework"

    def evidence(api) -> set[str]:
        got = api.client.get("/v1/learners/lia/profile", params={"recent": 0}, headers=api.h())
        return {code for code, m in got.json()["mastery"].items() if m["evidence"]}

    api = make_api(store, first)
    with api.client as c:
        assert c.post("/v1/standards/import", json=package, headers=api.h()).status_code == 200
        sent = [{"id": f"e{k}", "learner_id": "lia", "item_id": moving.id, "correct": True, "timestamp": T0 + 60 * k}
                for k in range(2)]  # fmt: skip
        assert c.post("/v1/events", json=sent, headers=api.h()).status_code == 200
        assert evidence(api) == {"K.CC.A.1"}
    api = make_api(store, second)
    with api.client as c:
        assert c.app.state.service.graph("tenant-a").title == "District math framework"
        assert evidence(api) == {"1.OA.A.1"}
    store.close()
