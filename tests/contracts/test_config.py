"""Config: the sample files load; broken configs name file, line, field and bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.config import ConfigError, load_config, parse_config
from rongguan.cli import main

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_there_are_samples_for_each_component():
    assert {p.stem for p in SAMPLES} >= {"agent", "ingest", "rules", "dashboard"}


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_config_loads(path: Path):
    cfg = load_config(path)
    assert Path(cfg.var_dir).is_absolute()
    assert cfg.broker.port == 1883


def test_agent_sample_content():
    cfg = load_config(SAMPLES[[p.stem for p in SAMPLES].index("agent")])
    devices = cfg.devices()
    assert devices["DM-0001"][1].unit_id == 11
    assert devices["TRK-0001"][0].id == "gw-jinjiang-01"


def test_errors_name_file_line_field_and_value(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "broker:\n"
        "  url: http://nope\n"
        "agents:\n"
        "  - id: a1\n"
        "    devices:\n"
        "      - id: LC-1\n"
        "        kind: lamp\n"
        "        protocol: opcua\n"
        "        profile: p\n"
        "        endpoint: e\n"
        "        interval_s: -5\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    errors = info.value.errors
    assert len(errors) == 3
    assert errors[0] == f"{bad}:2: broker.url: expected mqtt://HOST[:PORT] (got 'http://nope')"
    assert errors[1].startswith(f"{bad}:7: agents[0].devices[0].kind: ")
    assert errors[1].endswith("(got 'lamp')")
    assert errors[2].startswith(f"{bad}:11: agents[0].devices[0].interval_s: ")


def test_unknown_keys_and_duplicates_are_errors():
    with pytest.raises(ConfigError, match=r"brokr: Extra inputs are not permitted"):
        parse_config({"brokr": {}})
    dup = {"agents": [{"id": "a"}, {"id": "a"}]}
    with pytest.raises(ConfigError, match="duplicate agents ids: a"):
        parse_config(dup)


def test_hysteresis_must_make_sense():
    rule = {
        "id": "r",
        "domain": "dust",
        "kind": "dust_monitor",
        "field": "pm10",
        "op": "above",
        "set": 100,
        "clear": 120,
    }
    with pytest.raises(ConfigError, match=r"rules\[0\]: clear \(120.0\) must be <= set"):
        parse_config({"rules": [rule]})
    rule.pop("clear")
    assert parse_config({"rules": [rule]}).rules[0].clear == 100


def test_unreadable_and_non_yaml_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    junk = tmp_path / "junk.yaml"
    junk.write_text("broker: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(junk)
    junk.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(junk)


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["check-config", str(SAMPLES[0])]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("partitions: 0\n")
    assert main(["check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:1: partitions: Input should be greater than or equal to 1 (got 0)" in err


def test_timezone_is_validated():
    assert parse_config({}).tz.key == "Asia/Shanghai"
    with pytest.raises(ConfigError, match="timezone: unknown IANA time zone"):
        parse_config({"timezone": "Mars/Olympus"})


def test_device_templates_fill_in_what_a_device_leaves_out():
    cab = {"kind": "lighting_cabinet", "protocol": "opcua", "profile": "opcua_lighting_cabinet",
           "endpoint": "opc.tcp://10.0.0.5:4840", "interval_s": 5}  # fmt: skip
    cfg = parse_config(
        {
            "agents": [
                {
                    "id": "gw",
                    "templates": {"cabinet": cab},
                    "devices": [
                        {"id": "LC-1", "template": "cabinet"},
                        {"id": "LC-2", "template": "cabinet", "interval_s": 2},
                    ],
                }
            ]
        }  # fmt: skip
    )
    devs = cfg.devices()
    assert devs["LC-1"][1].interval_s == 5 and devs["LC-2"][1].interval_s == 2
    assert devs["LC-2"][1].endpoint == "opc.tcp://10.0.0.5:4840"
    with pytest.raises(ConfigError, match="unknown template 'lamp'"):
        parse_config({"agents": [{"id": "gw", "templates": {"cabinet": cab},
                                  "devices": [{"id": "LC-3", "template": "lamp"}]}]})  # fmt: skip


def test_geofences_need_a_shape():
    ok = parse_config({"geofences": [
        {"id": "DS-1", "kind": "disposal_site", "center": [104.2, 30.6], "radius_m": 300},
        {"id": "RT-1", "kind": "approved_route", "line": [[104.0, 30.6], [104.1, 30.7]]},
        {"id": "BZ-1", "kind": "banned_zone", "polygon": [[104.0, 30.6], [104.1, 30.6], [104.1, 30.7]],
         "hours": ["07:00", "09:00"], "fleets": ["construction_waste"]},
    ]})  # fmt: skip
    assert [g.kind for g in ok.geofences] == ["disposal_site", "approved_route", "banned_zone"]
    with pytest.raises(ConfigError, match="needs a polygon, or a center and radius_m"):
        parse_config({"geofences": [{"id": "X", "kind": "depot"}]})
    with pytest.raises(ConfigError, match="out of range"):
        parse_config(
            {"geofences": [{"id": "X", "kind": "depot", "center": [200, 30], "radius_m": 5}]}
        )


def test_ingest_section_defaults_and_policy():
    cfg = parse_config(
        {"ingest": {"spill_policy": "drop_oldest", "limits": {"dust_monitor.pm10": [0, 5000]}}}
    )
    assert cfg.ingest.spill_policy == "drop_oldest"
    assert cfg.ingest.limits["dust_monitor.pm10"] == (0, 5000)
    with pytest.raises(ConfigError, match="spill_policy"):
        parse_config({"ingest": {"spill_policy": "lose_it"}})
