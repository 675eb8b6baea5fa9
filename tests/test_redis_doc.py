"""The Redis Streams documentation's examples are requests the model accepts, as the text says."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from envspec.service.requests import config_document, parse_entry
from envspec.service.settings import load_settings
from envspec.worker.streams import ConsumerConfig, Result, StreamConsumer, StreamMessage
from tests.redis_fixtures import RedisServer

REPO = Path(__file__).resolve().parent.parent
# The draft (REDIS.md) until it is merged into the README; then the README alone.
DOCS = [path for path in (REPO / "REDIS.md", REPO / "README.md") if path.exists()]
SETTINGS = load_settings({"K8S_NAMESPACE_PREFIX": "quality-fabric"})
JOBS = "maestro:streams:k8s:jobs"


def xadd_examples() -> list[dict[str, str]]:
    entries = []
    for path in DOCS:
        for line in path.read_text().splitlines():
            if line.startswith(f"redis-cli XADD {JOBS} "):
                words = shlex.split(line)
                assert words[3] == "*", line
                pairs = words[4:]
                assert len(pairs) % 2 == 0, line
                entries.append(dict(zip(pairs[::2], pairs[1::2], strict=True)))
    return entries


def test_every_documented_request_is_accepted() -> None:
    entries = xadd_examples()
    assert len(entries) >= 7
    operations = {parse_entry(fields, SETTINGS).operation for fields in entries}
    assert operations == {"create", "delete", "status", "test", "extend", "cleanup"}


def test_the_documented_shorthand_equivalent_is_what_the_shorthand_becomes() -> None:
    text = "\n".join(path.read_text() for path in DOCS)
    block = re.search(r"same as this spec:\n\n```yaml\n(.*?)```", text, re.S)
    assert block is not None
    documented = YAML(typ="safe").load(block.group(1))
    first = parse_entry(xadd_examples()[0], SETTINGS)
    assert first.config is not None
    assert config_document("test-001", first.config, SETTINGS) == documented


def test_the_documented_result_is_json() -> None:
    text = "\n".join(path.read_text() for path in DOCS)
    block = re.search(r"```json\n(\{\"job_id\".*?)```", text, re.S)
    assert block is not None
    record = json.loads(block.group(1))
    assert {"job_id", "status", "namespace", "resources_created", "duration_ms"} <= set(record)


@pytest.mark.redis
def test_the_documented_commands_pasted_into_redis_cli_reach_a_consumer_intact(redis_server: RedisServer) -> None:
    redis_server.start()
    with redis_server.client() as client:
        client.flushall()
    lines = [
        line for path in DOCS for line in path.read_text().splitlines() if line.startswith(f"redis-cli XADD {JOBS} ")
    ]
    for line in lines:
        argv = ["redis-cli", "-p", str(redis_server.port), *shlex.split(line)[1:]]
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
    seen: list[str] = []

    async def handler(message: StreamMessage) -> Result:
        request = parse_entry(message.fields, SETTINGS)
        seen.append(request.job_id or message.id)
        return Result(fields={"job_id": request.job_id or message.id, "status": "success"})

    consumer = StreamConsumer(ConsumerConfig(url=redis_server.url, block=0.2), handler)

    async def scenario() -> None:
        task = asyncio.create_task(consumer.run())
        while consumer.stats.acknowledged < len(lines):
            await asyncio.sleep(0.02)
        consumer.stop()
        await task

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert seen == [f"job-{i}" for i in range(1, len(lines) + 1)]


def test_the_documented_outcome_mapping_and_test_result_are_what_envspec_writes() -> None:
    from envspec.report.results import CDEVENTS_OUTCOMES, case_record

    text = "\n".join(path.read_text() for path in DOCS)
    table = re.search(r"\| envspec `result` \| CDEvents `outcome` \|\n\|---\|---\|\n((?:\|.*\n)+)", text)
    assert table is not None
    rows = [re.findall(r"`([a-z_]+)`", line) for line in table.group(1).splitlines()]
    documented = {words[0]: words[-1] for words in rows}
    assert documented == {result: outcome for result, outcome in CDEVENTS_OUTCOMES.items() if result != "running"}

    block = re.search(r"```json\n(\{\"job_id\": \"job-8\".*?)```", text, re.S)
    assert block is not None
    record = json.loads(block.group(1))
    assert record["operation"] == "test" and record["status"] == "error"
    for test in record["tests"]:
        assert test == case_record(
            test["name"],
            test["result"],
            duration_seconds=test["duration_seconds"],
            attempts=test["attempts"],
            reason=test["reason"],
            cause=test["cause"],
        )
