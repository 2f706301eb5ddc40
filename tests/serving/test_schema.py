"""The OpenAPI document is what the server does: schemathesis generates requests from it against
a live server (real HTTP; on SQLite, and on a Redis Cluster) and checks every response (no
server error, a declared status, a body that matches its schema, requests the schema allows are
accepted and those it forbids refused; see tests/serving/schemathesis.toml for the bodies exempt
from the last two). Bounded: a dozen examples per operation and phase;
``ZPD_FUZZ_EXAMPLES=300 ZPD_FUZZ_SEED=7`` runs a deeper one."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from configs import load_config
from serving.app import create_app
from serving.auth import create_key
from serving.stores import open_store

from .conftest import LiveServer, store_url

pytestmark = pytest.mark.slow  # a live server and a few hundred generated requests

HERE = Path(__file__).resolve().parent
#: how long one ``schemathesis run`` may take: 10 minutes for the dozen examples of CI, more for a
#: deeper run (``ZPD_FUZZ_EXAMPLES=300`` takes 10-15 minutes per store on 2 cores)
RUN_TIMEOUT_S = max(600, 6 * int(os.environ.get("ZPD_FUZZ_EXAMPLES") or 0))


@pytest.mark.parametrize("kind", ["sqlite", "redis-cluster"])
@pytest.mark.timeout(2 * RUN_TIMEOUT_S + 300)  # two runs (the API, the framework import) and the setup
def test_schemathesis_finds_no_failure(request, tmp_path, shared_engine, kind) -> None:
    store = open_store(store_url(request, tmp_path, kind))
    key = create_key(store, "fuzz", ["ingest", "read", "teacher", "admin"])
    server = LiveServer(create_app(load_config(env={}), store=store, engine=shared_engine))
    try:
        # a rostered school, so the class routes (named in schemathesis.toml) plan real classes
        bundle = io.BytesIO()
        with zipfile.ZipFile(bundle, "w") as archive:
            for path in sorted((HERE.parent / "data" / "oneroster_school").glob("*.csv")):
                archive.write(path, path.name)
        imported = httpx.post(
            f"{server.url}/v1/rosters",
            content=bundle.getvalue(),
            headers={"Authorization": f"Bearer {key}", "content-type": "application/zip"},
            timeout=60,
        )
        assert imported.status_code == 200, imported.text
        # A framework import replaces the tenant's standards, and the fuzzer makes some packages
        # that are valid: on the tenant of the rest, the later phases would plan over a toy
        # framework (a placement with nothing to ask, a goal of unknown standards). It is fuzzed
        # on a tenant of its own.
        framework_key = create_key(store, "fuzz-framework", ["ingest", "read", "teacher", "admin"])
        for name, auth, selection in (
            ("api", key, ["--exclude-path", "/v1/standards/import"]),
            # (no stateful phase: no link leads to or from it)
            (
                "framework",
                framework_key,
                ["--include-path", "/v1/standards/import", "--phases", "examples,coverage,fuzzing"],
            ),
        ):
            result = _schemathesis(server.url, auth, selection, tmp_path / name)
            assert result.returncode == 0, name + ": " + result.stdout[-4000:] + result.stderr[-2000:]
    finally:
        server.stop()
        store.close()


def _schemathesis(url: str, key: str, selection: list[str], folder: Path) -> subprocess.CompletedProcess:
    """``schemathesis run`` on the server's schema, for the operations ``selection`` names."""
    st = Path(sys.executable).parent / "schemathesis"
    return subprocess.run(
        [
            str(st),
            "--no-color",
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            f"{url}/openapi.json",
            "-H",
            f"Authorization: Bearer {key}",
            *selection,
            "--seed",
            os.environ.get("ZPD_FUZZ_SEED", "1"),
            *(["--max-examples", os.environ["ZPD_FUZZ_EXAMPLES"]] if os.environ.get("ZPD_FUZZ_EXAMPLES") else []),
            "--report",
            "junit",
            "--report-dir",
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )


def test_docs_work_offline(api) -> None:
    """/docs and /redoc load their assets from this server, never from a CDN."""
    for path in ("/docs", "/redoc"):
        html = api.client.get(path).text
        assert "http://" not in html and "https://" not in html, path
    assert api.client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    redoc = api.client.get("/docs-assets/redoc.offline.js")
    assert redoc.status_code == 200 and b"cdn.redoc.ly" not in redoc.content  # its logo, fetched at run time
    doc = api.client.get("/openapi.json").json()
    assert set(doc["components"]["securitySchemes"]) == {"apiKey", "basic"}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if path.startswith(("/v1", "/xapi/statements", "/caliper/")):
                assert op.get("security"), (method, path)
                assert {"401", "403", "422", "503"} <= set(op["responses"]), (method, path)


def test_every_json_body_has_a_schema(api) -> None:
    """A client generated from the document gets typed bodies, those the routes check in code
    (events, statements, items, CASE packages) included; every reference resolves."""
    doc = api.client.get("/openapi.json").json()
    components = doc["components"]["schemas"]
    refs: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.add(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            schema = body["schema"]
            assert "$ref" in schema or "anyOf" in schema or "type" in schema, (method, path, schema)
            walk(schema)
    walk(components)
    assert {r.rsplit("/", 1)[-1] for r in refs} <= set(components)
    for name in ("NativeEventIn", "XapiStatementIn", "ItemIn", "CasePackageIn"):
        assert f"#/components/schemas/{name}" in refs, name
    events = doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert events["examples"]  # the route's examples stay next to the schema


def test_every_link_names_an_operation_of_the_document(api) -> None:
    """The OpenAPI links (from a list to what takes one of its ids) name operations that exist,
    with the path parameter they take."""
    doc = api.client.get("/openapi.json").json()
    paths, found = doc["paths"], 0
    for path, methods in paths.items():
        for method, op in methods.items():
            for response in op["responses"].values():
                for name, link in response.get("links", {}).items():
                    target, _, verb = link["operationRef"].removeprefix("#/paths/").rpartition("/")
                    target = target.replace("~1", "/").replace("~0", "~")
                    assert verb in paths.get(target, {}), (method, path, name)
                    for parameter in link["parameters"]:
                        assert "{" + parameter + "}" in target, (method, path, name, parameter)
                    found += 1
    assert found >= 12


def test_the_placement_links_walk_a_diagnostic(api) -> None:
    """A placement answer links to the answer to its next question, the standard read from the
    answer by the link's own expression: following the links by hand (as a client or the fuzzer
    does) walks the diagnostic, each answer accepted and counted."""
    doc = api.client.get("/openapi.json").json()
    path = "/v1/learners/{learner_id}/placement"
    links = doc["paths"][path]["post"]["responses"]["200"]["links"]
    assert links == doc["paths"][path + "/answers"]["post"]["responses"]["200"]["links"]

    def resolve(value, answer: dict):
        if isinstance(value, str) and value.startswith("$response.body#/"):
            for part in value.removeprefix("$response.body#/").split("/"):
                answer = answer[int(part) if isinstance(answer, list) else part]
            return answer
        return value

    h = api.h("a_all")
    assert api.client.post("/v1/learners/p1", json={"grade": "4"}, headers=h).status_code == 200
    answer = api.client.post("/v1/learners/p1/placement", headers=h).json()
    for step in range(6):
        assert not answer["finished"] and answer["asked"] == step
        link = links["answer" if step % 2 else "answer_wrong"]
        learner = resolve(link["parameters"]["learner_id"], answer)
        body = {key: resolve(value, answer) for key, value in link["requestBody"].items()}
        assert body["standard"] == answer["question"]["standard"]
        reply = api.client.post(f"/v1/learners/{learner}/placement/answers", json=body, headers=h)
        assert reply.status_code == 200, reply.text
        answer = reply.json()
