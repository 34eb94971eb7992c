"""Secrets in Python app files, as Modal spells them: ``secrets=[gantry.Secret.from_name("NAME")]``.

What happens on this side: names are checked, the deploy request carries names only, and Modal's
``from_dict`` (values in the app file) is refused with what to do instead. That the values reach
the container is test/integration/secrets.test.ts's business.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

import gantry
from gantry.exception import InvalidError
from helpers import ROOT

pytestmark = pytest.mark.no_daemon


def test_from_name_keeps_the_name() -> None:
    s = gantry.Secret.from_name("openai-key_2")
    assert s.name == "openai-key_2"
    assert repr(s) == "Secret.from_name('openai-key_2')"


@pytest.mark.parametrize("bad", ["", "9lives", "has space", "a/b", "x" * 65, 42])
def test_from_name_refuses_a_bad_name(bad: object) -> None:
    with pytest.raises(InvalidError, match=r"a secret name has letters, digits, _ and -"):
        gantry.Secret.from_name(bad)  # type: ignore[arg-type]


def test_from_dict_is_refused_with_what_to_do_instead() -> None:
    with pytest.raises(InvalidError, match=r"gantry secret create NAME KEY=VALUE.*Secret\.from_name\(NAME\)"):
        gantry.Secret.from_dict({"API_KEY": "value"})


def test_function_options_carry_secret_names_in_order() -> None:
    app = gantry.App("py-secrets-options")

    @app.function(secrets=[gantry.Secret.from_name("b"), gantry.Secret.from_name("a")])
    def f() -> None: ...

    @app.function()
    def g() -> None: ...

    assert app.manifest() == [
        {"name": "f", "options": {"secrets": [{"name": "b"}, {"name": "a"}]}},
        {"name": "g", "options": {}},
    ]


@pytest.mark.parametrize("bad", ["openai", gantry.Secret.from_name("one"), ["openai"], [{"name": "openai"}], 3])
def test_secrets_takes_a_list_of_secrets(bad: object) -> None:
    app = gantry.App(f"py-secrets-bad-{abs(hash(repr(bad)))}")
    with pytest.raises(InvalidError, match=r'secrets takes a list of gantry\.Secret\.from_name\("NAME"\)'):
        app.function(secrets=bad)  # type: ignore[arg-type]


def test_the_manifest_reader_sends_names_and_no_values() -> None:
    app_file = ROOT / "test" / "fixtures" / "py" / "secrets" / "py_secrets.py"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "manifest.json")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
        done = subprocess.run([sys.executable, "-m", "gantry._manifest", str(app_file), out], env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        with open(out, encoding="utf-8") as fh:
            manifest = json.load(fh)
    (fn,) = manifest["functions"]
    assert fn["options"]["secrets"] == [{"name": "gt-first"}, {"name": "gt-second"}]
