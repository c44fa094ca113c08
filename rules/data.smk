# The data stage: every dataset in config["datasets"] becomes data/<name>/{manifest.json,<split>.arrow}.
#
#   source: synthetic  -> rule synthetic        (emcom.data.synthetic.write(**params))
#   source: tfds       -> rule download (downloads/<name>.tar.gz, resumable, sha256-verified)
#                         -> rule convert_<name> (emcom.data.tfds.convert)
#
# A TFDS dataset's rule is generated per dataset because its split list (its output files) is part
# of its config; a synthetic dataset writes every split. Downstream rules take
# data/{dataset}/manifest.json as input.

import re as _data_re

import emcom.names as _data_names

_DATA_TFDS = [name for name, ds in config.get("datasets", {}).items() if ds.get("source") == "tfds"]
_DATA_SYNTHETIC = [
    name for name, ds in config.get("datasets", {}).items() if ds.get("source") == "synthetic"
]


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
            "logs/download/{dataset}.log",
        benchmark:
            "benchmarks/download/{dataset}.tsv"
        conda:
            "../envs/emcom.yaml"
        script:
            "../scripts/data_download.py"


if _DATA_SYNTHETIC:

    rule synthetic:
        output:
            manifest="data/{dataset}/manifest.json",
            provenance="data/{dataset}/manifest.json.provenance.json",
            splits=expand("data/{{dataset}}/{split}.arrow", split=_data_names.SPLITS),
        wildcard_constraints:
            dataset="|".join(_data_re.escape(name) for name in _DATA_SYNTHETIC),
        params:
            knobs=lambda wildcards: dict(config["datasets"][wildcards.dataset].get("params") or {}),
        log:
            "logs/synthetic/{dataset}.log",
        benchmark:
            "benchmarks/synthetic/{dataset}.tsv"
        conda:
            "../envs/emcom.yaml"
        script:
            "../scripts/data_synthetic.py"


for _name, _ds in config.get("datasets", {}).items():
    if _ds.get("source") == "tfds":

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
                f"logs/convert_{_name}/{_name}.log",
            benchmark:
                f"benchmarks/convert_{_name}/{_name}.tsv"
            conda:
                "../envs/emcom.yaml"
            script:
                "../scripts/data_convert.py"
