"""rules/data.smk end to end: synthetic, and both fixture archives downloaded from a loopback server."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from data_helpers import FIXTURES, serve
from emcom.data import load_split, read_manifest

RULES = Path(__file__).resolve().parents[1] / "rules" / "data.smk"


def test_rules_produce_all_datasets(tmp_path):
    imagenet_sha = hashlib.sha256((FIXTURES / "byol_imagenet2012.tar.gz").read_bytes()).hexdigest()
    with serve(FIXTURES) as server:
        config = {"datasets": {
            "synthetic": {"source": "synthetic",
                          "params": {"num_identities": 30, "images_per_identity": 8,
                                     "official_test_identities": 4, "feature_dim": 8}},
            "celeba": {"source": "tfds", "url": f"{server.url}/byol_celeb_a2.tar.gz",
                       "sha256": None, "splits": ["train", "valid", "test"]},
            "imagenet": {"source": "tfds", "url": f"{server.url}/byol_imagenet2012.tar.gz",
                         "sha256": imagenet_sha,
                         "splits": ["train", "valid", "test", "test_official"]}}}
        (tmp_path / "config.json").write_text(json.dumps(config))
        (tmp_path / "Snakefile").write_text(
            'configfile: "config.json"\n'
            f'include: "{RULES}"\n'
            'rule all:\n'
            '    input: expand("data/{d}/manifest.json", d=config["datasets"])\n')
        result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--quiet",
                                 "-s", str(tmp_path / "Snakefile"), "--directory", str(tmp_path)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert len(server.requests) == 2
    celeba_sha = hashlib.sha256((FIXTURES / "byol_celeb_a2.tar.gz").read_bytes()).hexdigest()
    assert read_manifest(tmp_path / "data" / "celeba")["source"]["sha256"] == celeba_sha
    assert read_manifest(tmp_path / "data" / "imagenet")["splits"]["test_official"] == 16
    assert read_manifest(tmp_path / "data" / "synthetic")["feature_dim"] == 8
    for dataset, split in [("synthetic", "test_official"), ("celeba", "test"), ("imagenet", "train")]:
        assert np.isfinite(load_split(tmp_path / "data" / dataset, split).features).all()
    for job in ["synthetic/synthetic", "download/celeba", "convert_celeba/celeba",
                "download/imagenet", "convert_imagenet/imagenet"]:  # <rule>/<dataset>
        assert (tmp_path / "logs" / f"{job}.log").stat().st_size > 0
        assert (tmp_path / "benchmarks" / f"{job}.tsv").is_file()
    assert (tmp_path / "downloads" / "celeba.tar.gz.sha256").read_text().startswith(celeba_sha)
