"""Each feed is declared once (`defs/feeds/<feed>/spec.py`); everything else must follow from it.

A declared feed that lacks its asset, checks, automation, freshness, resource, environment
variables, health probe or data-quality tag fails here, and `clinker health` must see every
source in the same mode as the pipeline for each combination of key and base-URL variables.
"""

import itertools
import json
import re
from pathlib import Path

import dagster as dg
import pytest

from clinker_pipeline.cli import main
from clinker_pipeline.definitions import defs
from clinker_pipeline.defs.feeds.spec import discover_feeds, feed_assets
from clinker_pipeline.defs.planning.assets import FEED_INPUTS
from clinker_pipeline.defs.quality.assets import ASSET_FEED
from clinker_pipeline.defs.resources import build_resources, source_resources
from clinker_pipeline.lib.feed_runtime import FEED_CHECK_NAMES, FEED_TAG
from clinker_pipeline_tests.helpers import REPO

SPECS = discover_feeds()
FOLDERS = sorted(
    p.name
    for p in (REPO / "clinker_pipeline" / "defs" / "feeds").iterdir()
    if p.is_dir() and (p / "__init__.py").exists()
)


def test_every_feed_folder_is_declared_once():
    assert len(SPECS) == len(FOLDERS) == 5
    assert len({s.name for s in SPECS}) == len({s.asset for s in SPECS}) == 5
    tables = [t for s in SPECS for t in s.tables]
    assert len(tables) == len(set(tables))  # a table belongs to one feed


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_the_asset_carries_everything_its_declaration_says(spec):
    asset = defs.resolve_assets_def(spec.asset)
    assert asset in feed_assets() or spec.asset in {a.key.to_user_string() for a in feed_assets()}
    node = asset.specs_by_key[dg.AssetKey(spec.asset)]
    assert node.tags[FEED_TAG] == spec.name
    assert node.owners and node.group_name
    assert {f"dagster/kind/{k}" for k in spec.kinds} <= set(node.tags)
    assert node.automation_condition is not None
    assert spec.cron in node.automation_condition.get_label()
    assert node.freshness_policy is not None
    assert node.metadata["clinker/tables"] == list(spec.tables)
    assert {c.name for c in asset.check_specs} == set(FEED_CHECK_NAMES)
    assert set(spec.resources) <= asset.required_resource_keys


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_resources_env_vars_health_and_quality_follow_the_declaration(spec):
    resources = build_resources()
    for key, cls in spec.resources.items():
        assert type(resources[key]) is cls
    assert spec.probe.resource_key in spec.resources
    names = spec.env_names()
    assert names, "a feed without environment variables cannot be configured"
    example = (REPO / ".env.example").read_text()
    readme = (REPO / "README.md").read_text()
    for name in names:
        assert re.search(rf"^# {name}=", example, re.M), f"{name} missing from .env.example"
        assert f"`{name}`" in readme, f"{name} missing from the README"
    assert ASSET_FEED[spec.asset] == spec.name
    assert (spec.asset in FEED_INPUTS) == spec.plan_input


# ---- health and the pipeline agree on every source's mode ------------------------------------

#: per source: the variables that can switch it live (key, base URL)
SWITCHES = {
    "sap": ("SAP_BASE_URL",),
    "oracle": ("ORACLE_HOST",),
    "weather": ("WEATHER_API_KEY", "OPENWEATHER_BASE_URL"),
    "diesel": ("FUEL_PRICE_API_KEY", "EIA_BASE_URL"),
    "fx": ("FX_API_KEY", "FX_BASE_URL"),
    "worldbank": ("WORLDBANK_BASE_URL",),
    "market": ("MARKET_DATA_API_KEY", "MARKET_DATA_URL"),
}
#: what the README promises: which variables make each source live
LIVE_WHEN = {
    "sap": {"SAP_BASE_URL"},
    "oracle": {"ORACLE_HOST"},
    "weather": {"WEATHER_API_KEY"},
    "diesel": {"FUEL_PRICE_API_KEY"},
    "fx": {"FX_BASE_URL"},
    "worldbank": {"WORLDBANK_BASE_URL"},
    "market": {"MARKET_DATA_URL"},
}
HEALTH_NAME = {"sap": "SAP", "oracle": "Oracle"} | {
    s.probe.resource_key: s.probe.title for s in SPECS
}


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_source_env(monkeypatch, tmp_path):
    for names in SWITCHES.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)
    for name in ("IOT_BROKER_URL", "DAGSTER_POSTGRES_URL", "DAGSTER_PG_HOST", "DAGSTER_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLINKER_DUCKDB_PATH", str(tmp_path / "none.duckdb"))


def test_health_and_pipeline_agree_on_every_mode(no_source_env, monkeypatch, capsys):
    port = _closed_port()
    values = {name: f"http://127.0.0.1:{port}" for name in ("SAP_BASE_URL",)} | {
        "ORACLE_HOST": "127.0.0.1",
        "OPENWEATHER_BASE_URL": f"http://127.0.0.1:{port}",
        "EIA_BASE_URL": f"http://127.0.0.1:{port}",
        "FX_BASE_URL": f"http://127.0.0.1:{port}",
        "WORLDBANK_BASE_URL": f"http://127.0.0.1:{port}",
        "MARKET_DATA_URL": f"http://127.0.0.1:{port}/prices",
        "WEATHER_API_KEY": "k-weather",
        "FUEL_PRICE_API_KEY": "k-eia",
        "FX_API_KEY": "k-fx",
        "MARKET_DATA_API_KEY": "k-market",
    }
    monkeypatch.setenv("ORACLE_PORT", str(port))
    width = max(len(v) for v in SWITCHES.values())
    for mask in itertools.product((False, True), repeat=width):
        # the same on/off pattern for every source at once: all sources x all combinations
        for names in SWITCHES.values():
            for name, on in zip(names, mask, strict=False):
                if on:
                    monkeypatch.setenv(name, values[name])
                else:
                    monkeypatch.delenv(name, raising=False)
        pipeline = {k: r.sample_mode for k, r in build_resources().items() if k in SWITCHES}
        main(["health", "--json", "--timeout", "1"])
        health = {s["name"]: s for s in json.loads(capsys.readouterr().out)["sources"]}
        for source, names in SWITCHES.items():
            set_now = {n for n, on in zip(names, mask, strict=False) if on}
            expected_live = LIVE_WHEN[source] <= set_now
            assert pipeline[source] is not expected_live, (source, set_now)
            reported = health[HEALTH_NAME[source]]
            assert reported["configured"] is expected_live, (source, set_now, reported)
            assert reported["detail"] == "sample mode" or expected_live


def test_only_a_weather_base_url_is_sample_mode_everywhere(no_source_env, monkeypatch, capsys):
    """The reported defect: the pipeline ran on samples while health said Weather was DOWN."""
    monkeypatch.setenv("OPENWEATHER_BASE_URL", f"http://127.0.0.1:{_closed_port()}")
    assert source_resources()["weather"].sample_mode
    code = main(["health", "--json", "--timeout", "1"])
    health = {s["name"]: s for s in json.loads(capsys.readouterr().out)["sources"]}
    assert code == 0
    assert health["Weather"]["detail"] == "sample mode" and health["Weather"]["ok"]


def test_settings_are_read_at_run_time_not_at_import(no_source_env, monkeypatch):
    resources = build_resources()  # the definitions' objects, built before the variable is set
    assert resources["diesel"].sample_mode
    monkeypatch.setenv("FUEL_PRICE_API_KEY", "set-after-load")
    assert not resources["diesel"].sample_mode
    assert resources["diesel"].setting("api_key") == "set-after-load"
    # the secret is never part of the resource's configuration (what Dagster shows)
    assert "set-after-load" not in json.dumps(resources["diesel"].model_dump(), default=str)


def test_a_bad_number_in_the_environment_names_the_variable(no_source_env, monkeypatch):
    from clinker_pipeline.errors import InvalidSetting

    monkeypatch.setenv("ORACLE_PORT", "fifteen21")
    with pytest.raises(InvalidSetting, match="ORACLE_PORT"):
        source_resources()["oracle"].setting("port")


def test_package_has_no_hand_kept_feed_registry():
    package = Path(REPO / "clinker_pipeline")
    text = "\n".join(p.read_text() for p in package.rglob("*.py"))
    for name in ("EXTERNAL_ASSETS", "EXTERNAL_FEEDS"):
        assert name not in text


def test_the_plan_input_source_resolves_at_run_time(no_source_env, monkeypatch):
    from clinker_pipeline.errors import InvalidSetting

    erp = build_resources()["erp"]
    monkeypatch.delenv("CLINKER_INPUT_SOURCE", raising=False)
    assert erp.plan_input_source() == "files"
    monkeypatch.setenv("CLINKER_INPUT_SOURCE", " ERP ")
    assert erp.plan_input_source() == "erp"
    monkeypatch.setenv("CLINKER_INPUT_SOURCE", "sap")
    with pytest.raises(InvalidSetting, match="CLINKER_INPUT_SOURCE"):
        erp.plan_input_source()
