# The data stage: every dataset in config["datasets"] becomes data/<name>/{manifest.json,<split>.arrow}.
#
#   source: synthetic  -> rule synthetic_<name>  (emcom.data.synthetic.write(**params))
#   source: tfds       -> rule download (downloads/<name>.tar.gz, resumable, sha256-verified)
#                         -> rule convert_<name> (emcom.data.tfds.convert)
#
# Rules are generated per dataset because a dataset's split list (its output files) is part of its
# config; downstream rules take data/{dataset}/manifest.json as input.

import re as _data_re

DATA_SYNTHETIC_SPLITS = ["train", "valid", "test", "test_official"]
_DATA_TFDS = [name for name, ds in config.get("datasets", {}).items() if ds.get("source") == "tfds"]


if _DATA_TFDS:

    rule download:
        output:
            archive="downloads/{dataset}.tar.gz",
            checksum="downloads/{dataset}.tar.gz.sha256",
        wildcard_constraints:
            dataset="|".join(_data_re.escape(name) for name in _DATA_TFDS),
        params:
            url=lambda wildcards: config["datasets"][wildcards.dataset]["url"],
            sha256=lambda wildcards: config["datasets"][wildcards.dataset].get("sha256"),
        # Cluster compute nodes often have no internet: download on the submitting host.
        localrule: True
        retries: 2
        log:
            "logs/data/download_{dataset}.log",
        benchmark:
            "benchmarks/data/download_{dataset}.tsv"
        conda:
            "../envs/emcom.yaml"
        script:
            "../scripts/data_download.py"


for _name, _ds in config.get("datasets", {}).items():
    if _ds.get("source") == "synthetic":

        rule:
            name:
                f"synthetic_{_name}"
            output:
                manifest=f"data/{_name}/manifest.json",
                provenance=f"data/{_name}/manifest.json.provenance.json",
                splits=[f"data/{_name}/{split}.arrow" for split in DATA_SYNTHETIC_SPLITS],
            params:
                knobs=dict(_ds.get("params") or {}),
                name=_name,
            log:
                f"logs/data/synthetic_{_name}.log",
            benchmark:
                f"benchmarks/data/synthetic_{_name}.tsv"
            conda:
                "../envs/emcom.yaml"
            script:
                "../scripts/data_synthetic.py"

    elif _ds.get("source") == "tfds":

        rule:
            name:
                f"convert_{_name}"
            input:
                archive=f"downloads/{_name}.tar.gz",
                checksum=f"downloads/{_name}.tar.gz.sha256",
            output:
                manifest=f"data/{_name}/manifest.json",
                provenance=f"data/{_name}/manifest.json.provenance.json",
                splits=[f"data/{_name}/{split}.arrow" for split in _ds["splits"]],
            params:
                splits=list(_ds["splits"]),
                limits={k: _ds[k] for k in ("max_members", "max_bytes") if k in _ds},
            log:
                f"logs/data/convert_{_name}.log",
            benchmark:
                f"benchmarks/data/convert_{_name}.tsv"
            conda:
                "../envs/emcom.yaml"
            script:
                "../scripts/data_convert.py"
