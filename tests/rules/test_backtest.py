"""``rongguan backtest`` over an embedded store filled with a known stream."""

from __future__ import annotations

import json

import yaml

from contracts.config import DeploymentConfig
from ingest.store.embedded import EmbeddedStore
from rules.backtest import main, run
from tests.rules._helpers import DM, S, frame, pm10

T0 = 1_700_000_000 * S
STALE = {"id": "offline", "family": "stale", "domain": "dust", "kind": DM, "silent_s": 300}


def _filled(tmp_path) -> DeploymentConfig:
    cfg = DeploymentConfig(var_dir=str(tmp_path), rules=[pm10(), STALE])
    store = EmbeddedStore(cfg.path(cfg.store.path))
    rows = []
    for t in range(0, 1200, 5):
        # D1: two episodes above 200 for 60 s (t 100-160 and 700-760), else 80
        high = 100 <= t < 160 or 700 <= t < 760
        rows.append(("D1", DM, T0 + t * S, "pm10", 250.0 if high else 80.0))
        if t < 400:  # D2 falls silent at t=400: offline from t≈700
            rows.append(("D2", DM, T0 + t * S, "pm10", 50.0))
    for off in range(0, len(rows), 100):  # several ingest batches, like the real writer
        store.write(frame(rows[off : off + 100]))
    store.close()
    return cfg


def test_run_reports_the_known_alarms(tmp_path) -> None:
    cfg = _filled(tmp_path)
    progress = []
    res = run(cfg, on_progress=lambda *a: progress.append(a), slice_s=300)
    assert res["rows"] == 240 + 80
    assert res["per_rule"]["pm10"] == {"raised": 2, "cleared": 2, "subjects": 1}
    assert res["per_rule"]["offline"]["raised"] == 1
    pm = [(r["device_id"], (r["ts"] - T0) // S) for r in res["raises"] if r["rule_id"] == "pm10"]
    assert pm == [("D1", 110), ("D1", 710)]  # for_s 10 after each episode starts
    (off,) = [r for r in res["raises"] if r["rule_id"] == "offline"]
    assert off["device_id"] == "D2"
    assert len(progress) == 4 and progress[-1][1] == res["rows"]
    # a window: only the second episode
    part = run(cfg, start_ns=T0 + 600 * S, end_ns=T0 + 900 * S)
    assert part["per_rule"]["pm10"]["raised"] == 1


def test_cli_with_a_rules_file_prints_a_json_last_line(tmp_path, capsys) -> None:
    cfg = _filled(tmp_path)
    conf = tmp_path / "rongguan.yaml"
    conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json")), encoding="utf-8")
    only = tmp_path / "rules.yaml"
    only.write_text(yaml.safe_dump([pm10(for_s=120).model_dump(mode="json")]), encoding="utf-8")
    out_file = tmp_path / "raises.jsonl"
    assert main(["-c", str(conf), "--rules", str(only), "--raises", str(out_file)]) == 0
    out, err = capsys.readouterr()
    res = json.loads(out.strip().splitlines()[-1])
    assert res["alarms"] == 0 and res["per_rule"] == {}  # 60 s episodes never last 120 s
    assert "backtest [" in err and "100%" in err
    assert out_file.read_text() == ""
    assert main(["-c", str(conf), "--json", "--start", "2023-11-14T22:20:00Z"]) == 0
    res = json.loads(capsys.readouterr().out)
    # from T0+400 s: the second episode only; D2, silent since then, is never seen at all
    assert res["start_ns"] == T0 + 400 * S and res["alarms"] == 1


def test_cli_errors_are_one_line(tmp_path, capsys) -> None:
    cfg = _filled(tmp_path)
    conf = tmp_path / "rongguan.yaml"
    conf.write_text(yaml.safe_dump(cfg.model_dump(mode="json")), encoding="utf-8")
    assert main(["-c", str(conf), "--start", "yesterday"]) == 2
    assert "not an ISO time" in capsys.readouterr().err


def test_history_recorded_at_speed_is_judged_as_it_was_live(tmp_path) -> None:
    """A monitor polled every 5 wall s at x120 reports every 600 simulated s: the backtest
    of a deployment at that speed calls it offline only after a wall minute's silence."""
    rows = [("D3", DM, T0 + t * S, "pm10", 60.0) for t in range(0, 6 * 3600, 600)]
    rows.append(("D3", DM, T0 + 6 * 3600 * S + 9000 * S, "pm10", 60.0))  # 2.5 h of silence
    store = EmbeddedStore(tmp_path / "store.db")
    store.write(frame(rows))
    store.close()
    clock = {"speed": 120, "start": "2023-11-14T08:00", "anchor": 1_700_000_000}
    fast = DeploymentConfig(var_dir=str(tmp_path), rules=[STALE], clock=clock)
    assert run(fast)["per_rule"]["offline"]["raised"] == 1  # the 2.5 h only (> 2 h floor)
    wall = DeploymentConfig(var_dir=str(tmp_path), rules=[STALE])
    assert run(wall)["per_rule"]["offline"]["raised"] >= 6  # at speed 1: the gaps (ticked hourly)
