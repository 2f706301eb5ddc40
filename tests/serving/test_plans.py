"""Stored class plans and a learner's erasure: the plans that name the learner are rewritten,
found through the store's references, including plans stored before references existed."""

from __future__ import annotations

import orjson

from serving.plans import forget_learners, learner_references, plan_setting, store_plan, stored_plan


def plan(class_id: str, date: str, learners: list[str]) -> dict:
    return {
        "class_id": class_id,
        "date": date,
        "learners": learners,
        "playlists": {s: {"activities": []} for s in learners},
        "gps": {s: {"status": "on_track"} for s in learners},
        "groups": [{"standard": "4.NF.A.1", "learners": learners[:2]}],
        "diagnostic_unseated": learners[:1],
    }


def test_erasure_rewrites_the_plans_that_name_the_learner(store) -> None:
    store_plan(store, "t", plan("c1", "2026-12-01", ["ana", "bob"]))
    store_plan(store, "t", plan("c1", "2026-12-02", ["ana", "bob"]))
    store_plan(store, "t", plan("c2", "2026-12-01", ["cy", "dee"]))
    untouched = store.get_setting(plan_setting("t", "c2", "2026-12-01"))
    forget_learners(store, "t", ["ana"], learner_references(store, "t", ["ana"]))
    for date in ("2026-12-01", "2026-12-02"):
        kept = stored_plan(store, "t", "c1", date)
        assert kept is not None and "ana" not in orjson.dumps(kept).decode()
        assert kept["learners"] == ["bob"] and kept["groups"] == [{"standard": "4.NF.A.1", "learners": ["bob"]}]
        assert kept["diagnostic_unseated"] == []
    assert store.get_setting(plan_setting("t", "c2", "2026-12-01")) == untouched  # not read, not rewritten


def test_plans_stored_before_references_are_found_once(store) -> None:
    """Such a store listed every plan's name in one setting and referenced none."""
    names = []
    for class_id, learners in (("c1", ["ana", "bob"]), ("c2", ["cy", "ana"])):
        name = plan_setting("t", class_id, "2026-11-30")
        store.put_setting(name, orjson.dumps(plan(class_id, "2026-11-30", learners)).decode())
        names.append(name)
    store.put_setting("plans@t", orjson.dumps(names).decode())
    forget_learners(store, "t", ["ana"], learner_references(store, "t", ["ana"]))
    assert all("ana" not in orjson.dumps(stored_plan(store, "t", c, "2026-11-30")).decode() for c in ("c1", "c2"))
    assert store.references("t", "cy") == [plan_setting("t", "c2", "2026-11-30")]
    assert store.get_setting("plans-referenced@t") is not None


def test_classmates_erased_together_rewrite_their_plan_once(store) -> None:
    store_plan(store, "t", plan("c1", "2026-12-01", ["ana", "bob", "cy"]))
    version = store.get_setting(plan_setting("t", "c1", "2026-12-01"))[0]
    forget_learners(store, "t", ["ana", "bob"], learner_references(store, "t", ["ana", "bob"]))
    assert store.get_setting(plan_setting("t", "c1", "2026-12-01"))[0] == version + 1
    assert stored_plan(store, "t", "c1", "2026-12-01")["learners"] == ["cy"]
