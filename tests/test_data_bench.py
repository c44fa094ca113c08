"""`python -m emcom.bench tfds` runs and reports conversion speed as JSON lines."""

import json

from emcom.bench.__main__ import main


def test_tfds_benchmark_reports_records_per_cpu_second(capsys):
    assert main(["tfds", "--records", "300", "--dim", "2048", "--shards", "2", "--repeats", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["stage"] for line in lines] == ["parse", "convert"]
    assert lines[1]["records"] == 303 and lines[1]["dim"] == 2048
    assert lines[1]["records_per_cpu_s"] > 0 and lines[1]["shard_bytes"] > 303 * 2048 * 4
