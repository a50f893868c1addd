"""Secrets never reach what a run writes: every value `secret_values` names is replaced by ``***`` in
error messages (`redact`) and in every text file (`redact_file`), and a run specification that holds one
is refused (`check_no_secrets`). Light (no pydantic, no pandas): every worker imports it."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..exceptions import CredentialsError, SpecError, fixes
from ..yamlio import read_yaml_mapping

#: Names that look like they hold a credential (matched anywhere in a key, any case).
#: ``pwd`` only after a separator: the shell's PWD and OLDPWD hold the working directory.
SECRET_NAME = re.compile(r"passw|[_-]pwd|secret|token|credential|api[_-]?key|private[_-]?key|access[_-]?key", re.I)
#: The environment variable listing further variables whose values are secrets (a dataset.yaml's
#: `password_env` / `url_env`), inherited by the run's workers and kernels.
SECRET_NAMES_VARIABLE = "WORKBENCH_SCRUB_VARIABLES"


def secret_values(min_length: int = 6) -> list[str]:
    """Values to scrub from everything a run writes (longest first): of environment variables whose
    names look like credentials, and of those a dataset.yaml reads credentials from (`password_env`,
    `url_env`, named in `SECRET_NAMES_VARIABLE`; kept from 4 characters), for `workbench.run.jobs`."""
    named = {n for n in os.environ.get(SECRET_NAMES_VARIABLE, "").split(",") if n}
    values = {v for k, v in os.environ.items()
              if (SECRET_NAME.search(k) and len(v) >= min_length) or (k in named and len(v) >= 4)}
    return sorted(values, key=len, reverse=True)


def credential_variables(dataset_yaml: Path) -> list[str]:
    """Names of the environment variables a dataset.yaml reads credentials from (`password_env`,
    `url_env`, in any source); none when it cannot be read (loading it will say why)."""
    try:
        raw = read_yaml_mapping(Path(dataset_yaml), "deals", "an example in `examples/`")
    except (SpecError, OSError):
        return []
    names = []

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("password_env", "url_env") and isinstance(item, str):
                    names.append(item)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(raw)
    return sorted(set(names))


def name_secret_variables(names) -> None:
    """Treat these environment variables as secrets in this process and the workers and kernels it starts."""
    known = {n for n in os.environ.get(SECRET_NAMES_VARIABLE, "").split(",") if n}
    os.environ[SECRET_NAMES_VARIABLE] = ",".join(sorted(known | set(names)))


def check_no_secrets(raw: dict, origin: str) -> None:
    """Refuse keys that look like credentials, and keys or values equal to a secret in the environment
    (a filter named after a password would be published in the index).

    Raises
    ------
    CredentialsError
        Naming every offending key path.
    """
    secrets = set(secret_values())
    bad_keys, bad_values = [], []

    def walk(value, where):
        if isinstance(value, dict):
            for k, v in value.items():
                key_path = f"{where}.{k}" if where else str(k)
                # Under `split`, keys are filter labels and deal columns, not settings.
                if SECRET_NAME.search(str(k)) and not key_path.startswith("split."):
                    bad_keys.append(key_path)
                elif str(k) in secrets:
                    bad_values.append(f"{where or '(top level)'} (a key)")
                walk(v, key_path)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]")
        elif isinstance(value, str) and value in secrets:
            bad_values.append(where)

    walk(raw, "")
    if bad_keys or bad_values:
        where = ", ".join(f"`{k}`" for k in bad_keys + bad_values)
        raise CredentialsError(
            f"`{origin}`: {where} {'looks' if len(bad_keys + bad_values) == 1 else 'look'} like a credential. "
            "Parameters are written into every executed notebook and report, so a secret never goes there. "
            + fixes("remove it from the parameter file",
                    "read it inside the dataset's source from an environment variable (`password_env:` or "
                    "`url_env:` in dataset.yaml) and export that variable before `workbench run`"))


# --- scrubbing what a run writes ---------------------------------------------------------------



def redact(text: str) -> str:
    """The text with every secret of the environment replaced by ``***``."""
    for secret in secret_values():
        text = text.replace(secret, "***")
    return text


def redact_file(path: Path) -> None:
    """Replace every secret of the environment in a text file (as written, JSON-escaped or HTML-escaped)."""
    if path.suffix not in (".ipynb", ".html", ".json", ".txt", ".md", ".csv", ".yaml", ".log"):
        return
    original = path.read_text(errors="surrogateescape")
    text = redact_text(original)
    if text != original:
        path.write_text(text, errors="surrogateescape")


def redact_text(text: str) -> str:
    """The text of a file with every secret of the environment replaced, as written, JSON-escaped or
    HTML-escaped."""
    import html

    for secret in secret_values():
        for form in dict.fromkeys((secret, json.dumps(secret)[1:-1], html.escape(secret),
                                   json.dumps(html.escape(secret))[1:-1])):
            text = text.replace(form, "***")
    return text
