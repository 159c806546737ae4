"""The HA log filter of scripts/ha-check reads both log formats: a filter that understands no
line would find no problem and pass vacuously."""

import pytest

from tests.ha.check_home_assistant import our_problems, parse_log

C = "homeassistant.components."
ENTRIES = [
    ("WARNING", "homeassistant.bootstrap", "Skipping pip installation of required modules"),
    ("ERROR", C + "mqtt.entity", "Error 'extra keys not allowed @ data['bogus']'"),
    ("ERROR", C + "automation", "Blueprint 'SophonFog' generated invalid automation"),
    ("DEBUG", C + "mqtt.discovery", "Found new component: device_automation a b"),
]


@pytest.mark.parametrize(
    "stamp",
    ["2025-05-20 06:38:10.094", "2026-12-02 06:38:10.094+00:00"],
    ids=["HA 2025 format", "HA 2026 format (UTC offset)"],
)
def test_both_formats_parse_and_our_errors_are_found(stamp):
    lines = [f"{stamp} {level} (MainThread) [{logger}] {text}" for level, logger, text in ENTRIES]
    lines.insert(3, 'Traceback (most recent call last):\n  File "x.py", line 1')
    entries = parse_log("\n".join(lines))
    assert [e.level for e in entries] == ["WARNING", "ERROR", "ERROR", "DEBUG"]
    assert "Traceback" in entries[2].text  # continuation lines stay with their entry
    assert [p.logger for p in our_problems(entries)] == [C + "mqtt.entity", C + "automation"]


def test_an_unknown_format_parses_to_nothing():
    assert parse_log("06:38:10 E [mqtt] something broke\n") == []


def test_a_traceback_path_naming_the_project_is_not_ours():
    entry = parse_log(
        "2025-05-20 06:38:10.094 ERROR (ImportExecutor_0) [homeassistant.components.camera"
        ".img_util] Error loading libturbojpeg\n"
        '  File "/srv/ha/venv/lib/x.py", line 100'
    )
    assert len(entry) == 1 and our_problems(entry) == []
