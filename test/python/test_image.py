"""Images in Python app files, as Modal spells them (python/gantry/image.py), and how their local
files are packed at deploy (python/gantry/_assets.py): what a user asks for, and the hostile case
beside it. No daemon and no Docker: that images build is test/integration's business.
"""
from __future__ import annotations

import base64
import importlib
import os
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

import gantry
from gantry import _assets
from gantry._appfile import AppFileError
from gantry.exception import InvalidError
from gantry.image import PYTHON_SOURCE_DIR, Image

pytestmark = pytest.mark.no_daemon


@pytest.fixture(autouse=True)
def on_the_deploying_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    # In a function's container local paths are not checked; these tests are on the deploying side.
    monkeypatch.delenv("GANTRY_CONTAINER_ID", raising=False)


def write(root: Path, files: Dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def text(asset: _assets.Asset, name: str) -> str:
    return base64.b64decode(asset[name]["data"]).decode()


def pack(*images: Image) -> "tuple[List[Dict[str, Any]], Dict[str, _assets.Asset]]":
    functions = [{"name": f"f{i}", "options": {"image": img.to_spec()}} for i, img in enumerate(images)]
    assets: Dict[str, _assets.Asset] = {}
    _assets.pack_images(functions, assets)
    return functions, assets


# to_spec: the plain data the daemon takes (camelCase), local paths still named until deploy


def test_bases() -> None:
    assert Image.debian_slim().to_spec() == {"base": {"kind": "python"}, "steps": []}
    assert Image.debian_slim(python_version="3.12").to_spec()["base"] == {"kind": "python", "version": "3.12"}
    assert Image.from_registry("python:3.12-slim").to_spec()["base"] == {"kind": "registry", "ref": "python:3.12-slim"}
    assert gantry.Image is Image


@pytest.mark.parametrize("bad", ["3", "3.12.1", "py3.12", 3.12])
def test_debian_slim_refuses_a_python_version_that_is_not_one(bad: Any) -> None:
    with pytest.raises(InvalidError, match="python_version"):
        Image.debian_slim(python_version=bad)


def test_from_dockerfile_names_its_file_and_context(tmp_path: Path) -> None:
    write(tmp_path, {"Dockerfile": "FROM python:3.12\n"})
    base = Image.from_dockerfile(tmp_path / "Dockerfile", context_dir=tmp_path).to_spec()["base"]
    assert base == {"kind": "dockerfile", "local": str(tmp_path / "Dockerfile"), "contextDir": str(tmp_path)}
    with pytest.raises(InvalidError, match="is not a file"):
        Image.from_dockerfile(tmp_path / "Nope")
    with pytest.raises(InvalidError, match="context_dir .* is not a folder"):
        Image.from_dockerfile(tmp_path / "Dockerfile", context_dir=tmp_path / "nope")


def test_each_step_kind(tmp_path: Path) -> None:
    write(tmp_path, {"req.txt": "numpy\n", "data/a.txt": "A", "conf.toml": "x", "wheels/w.whl": ""})
    img = (
        Image.debian_slim()
        .apt_install("curl", ["git", "ffmpeg"])
        .pip_install("numpy<3", "fastapi[standard]")
        .pip_install(
            ["torch"],
            index_url="https://download.pytorch.org/whl/cpu",
            extra_index_url="https://pypi.corp/simple",
            find_links="https://wheels.corp/",
            pre=True,
            extra_options="--no-deps --no-cache-dir",
        )
        .uv_pip_install("polars", requirements=[tmp_path / "req.txt"], extra_index_url=["https://a.corp/simple", "https://b.corp/simple"])
        .pip_install_from_requirements(str(tmp_path / "req.txt"), find_links=str(tmp_path / "wheels"))
        .run_commands("echo one", ["echo two"])
        .env({"MODEL": "small v2"})
        .workdir("/srv")
        .add_local_dir(tmp_path / "data", "/srv/data", copy=True, ignore=["*.log"])
        .add_local_file(tmp_path / "conf.toml", "/etc/app/", copy=True)
    )
    assert img.to_spec()["steps"] == [
        {"kind": "apt", "packages": ["curl", "git", "ffmpeg"]},
        {"kind": "pip", "packages": ["numpy<3", "fastapi[standard]"]},
        {
            "kind": "pip",
            "packages": ["torch"],
            "options": {
                "indexUrl": "https://download.pytorch.org/whl/cpu",
                "extraIndexUrls": ["https://pypi.corp/simple"],
                "findLinks": "https://wheels.corp/",
                "pre": True,
                "extraOptions": "--no-deps --no-cache-dir",
            },
        },
        {
            "kind": "pip",
            "packages": ["polars"],
            "installer": "uv",
            "requirementsLocal": str(tmp_path / "req.txt"),
            "options": {"extraIndexUrls": ["https://a.corp/simple", "https://b.corp/simple"]},
        },
        {"kind": "pip", "packages": [], "requirementsLocal": str(tmp_path / "req.txt"), "options": {"findLinksLocal": str(tmp_path / "wheels")}},
        {"kind": "run", "commands": ["echo one", "echo two"]},
        {"kind": "env", "vars": {"MODEL": "small v2"}},
        {"kind": "workdir", "path": "/srv"},
        {"kind": "dir", "local": str(tmp_path / "data"), "remote": "/srv/data", "copy": True, "ignore": ["*.log"]},
        {"kind": "file", "local": str(tmp_path / "conf.toml"), "remote": "/etc/app/conf.toml", "copy": True},
    ]


def test_steps_are_immutable_and_to_spec_is_a_copy() -> None:
    a = Image.debian_slim()
    b = a.apt_install("curl")
    assert a.to_spec()["steps"] == []
    spec = b.to_spec()
    spec["steps"][0]["packages"].append("evil")
    spec["base"]["kind"] = "registry"
    assert b.to_spec() == {"base": {"kind": "python"}, "steps": [{"kind": "apt", "packages": ["curl"]}]}


def test_the_image_keeps_its_own_copy_of_what_it_was_given(tmp_path: Path) -> None:
    vars = {"MODEL": "small"}
    ignore = ["*.log"]
    img = Image.debian_slim().env(vars).add_local_dir(tmp_path, "/d", ignore=ignore)
    vars["MODEL"] = "changed"
    ignore.append("*")
    steps = img.to_spec()["steps"]
    assert steps[0]["vars"] == {"MODEL": "small"}
    assert steps[1]["ignore"] == ["*.log"]


def test_pip_install_with_no_packages_is_the_same_image() -> None:
    img = Image.debian_slim().apt_install("curl")
    assert img.pip_install() is img
    assert img.pip_install([]) is img
    assert img.uv_pip_install() is img


@pytest.mark.parametrize("option", ["--index-url=https://evil.example/simple", "-r", " -e .", "--pre"])
def test_an_option_passed_as_a_package_is_refused(option: str) -> None:
    with pytest.raises(InvalidError, match="is an option, not a package: pass options with extra_options="):
        Image.debian_slim().pip_install("numpy", option)
    with pytest.raises(InvalidError, match="uv_pip_install"):
        Image.debian_slim().uv_pip_install(option)


@pytest.mark.parametrize("bad", ["", None, 3])
def test_packages_are_non_empty_strings(bad: Any) -> None:
    with pytest.raises(InvalidError, match="non-empty strings"):
        Image.debian_slim().pip_install("numpy", bad)
    with pytest.raises(InvalidError, match="apt_install needs at least one argument"):
        Image.debian_slim().apt_install()


def test_find_links_is_a_url_or_a_folder_of_this_machine(tmp_path: Path) -> None:
    with pytest.raises(InvalidError, match="find_links=.*is neither a URL nor a folder of this machine"):
        Image.debian_slim().pip_install("x", find_links=str(tmp_path / "nope"))


@pytest.mark.parametrize(
    "call, option",
    [
        (lambda img: img.pip_install("numpy", secrets=["s"]), "secrets"),
        (lambda img: img.pip_install("numpy", gpu="A100"), "gpu"),
        (lambda img: img.pip_install("numpy", force_build=True), "force_build"),
        (lambda img: img.apt_install("curl", gpu="A100"), "gpu"),
        (lambda img: img.run_commands("nvidia-smi", gpu="A100"), "gpu"),
        (lambda img: img.run_commands("ls", secrets=["s"]), "secrets"),
        (lambda img: img.uv_pip_install("x", uv_version="0.4"), "uv_version"),
        (lambda img: img.pip_install_from_requirements("r.txt", force_build=True), "force_build"),
        (lambda img: Image.debian_slim(force_build=True), "force_build"),
        (lambda img: Image.from_registry("python:3.12", secret="s"), "secret"),
        (lambda img: Image.from_registry("python:3.12", setup_dockerfile_commands=["RUN x"]), "setup_dockerfile_commands"),
        (lambda img: Image.from_dockerfile("Dockerfile", gpu="A100"), "gpu"),
    ],
)
def test_unsupported_options_are_refused_by_name(call: Any, option: str) -> None:
    with pytest.raises(InvalidError, match=f"{option}= is not supported"):
        call(Image.debian_slim())


def test_pip_install_with_no_packages_still_refuses_unsupported_options() -> None:
    with pytest.raises(InvalidError, match="secrets="):
        Image.debian_slim().pip_install(secrets=["s"])


# pip_install_from_pyproject


PYPROJECT = """
[project]
name = "demo"
dependencies = ["numpy<3", "fastapi[standard]>=0.110"]

[project.optional-dependencies]
dev = ["pytest"]
gpu = ["torch==2.3.*", "triton"]
"""


def test_pip_install_from_pyproject_reads_dependencies_and_optional_groups(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": PYPROJECT})
    steps = Image.debian_slim().pip_install_from_pyproject(tmp_path / "pyproject.toml", optional_dependencies=["gpu"], index_url="https://pypi.corp/simple").to_spec()["steps"]
    assert steps == [{"kind": "pip", "packages": ["numpy<3", "fastapi[standard]>=0.110", "torch==2.3.*", "triton"], "options": {"indexUrl": "https://pypi.corp/simple"}}]
    plain = Image.debian_slim().pip_install_from_pyproject(str(tmp_path / "pyproject.toml")).to_spec()["steps"]
    assert plain[0]["packages"] == ["numpy<3", "fastapi[standard]>=0.110"]


def test_pip_install_from_pyproject_names_the_groups_it_has(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": PYPROJECT})
    with pytest.raises(InvalidError, match=r"no optional dependencies 'docs' \(it has dev, gpu\)"):
        Image.debian_slim().pip_install_from_pyproject(tmp_path / "pyproject.toml", optional_dependencies=["docs"])


def test_pip_install_from_pyproject_refuses_a_file_without_project_dependencies(tmp_path: Path) -> None:
    # A Poetry project keeps its dependencies elsewhere: installing nothing would be a silent surprise.
    write(tmp_path, {"pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.11"\nnumpy = "*"\n'})
    with pytest.raises(InvalidError, match=r"\[project\].*dependencies"):
        Image.debian_slim().pip_install_from_pyproject(tmp_path / "pyproject.toml")


def test_pip_install_from_pyproject_refuses_a_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidError, match="is not a file"):
        Image.debian_slim().pip_install_from_pyproject(tmp_path / "pyproject.toml")
    write(tmp_path, {"pyproject.toml": "[project\n"})
    with pytest.raises(InvalidError, match="is not valid TOML"):
        Image.debian_slim().pip_install_from_pyproject(tmp_path / "pyproject.toml")


def test_pip_install_from_pyproject_refuses_an_option_in_its_dependencies(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": '[project]\nname = "x"\ndependencies = ["--index-url=https://evil.example"]\n'})
    with pytest.raises(InvalidError, match="is an option, not a package"):
        Image.debian_slim().pip_install_from_pyproject(tmp_path / "pyproject.toml")


# add_local_python_source


def test_add_local_python_source_finds_a_package_and_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {"gantry_t_pkg/__init__.py": "", "gantry_t_pkg/sub/x.py": "X = 1\n", "gantry_t_mod.py": "Y = 2\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    steps = Image.debian_slim().add_local_python_source("gantry_t_pkg", "gantry_t_mod").to_spec()["steps"]
    assert steps[0]["kind"] == "dir"
    assert steps[0]["local"] == str(tmp_path / "gantry_t_pkg")
    assert steps[0]["remote"] == f"{PYTHON_SOURCE_DIR}/gantry_t_pkg" == "/opt/gantry/src/gantry_t_pkg"
    assert steps[0]["copy"] is False
    assert steps[1] == {"kind": "file", "local": str(tmp_path / "gantry_t_mod.py"), "remote": "/opt/gantry/src/gantry_t_mod.py", "copy": False}
    assert "gantry_t_pkg" not in sys.modules  # found, not imported


def test_add_local_python_source_leaves_out_bytecode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {"gantry_t_pkg2/__init__.py": "", "gantry_t_pkg2/__pycache__/m.cpython-311.pyc": "", "gantry_t_pkg2/old.pyc": "", "gantry_t_pkg2/m.py": ""})
    monkeypatch.syspath_prepend(str(tmp_path))
    _, assets = pack(Image.debian_slim().add_local_python_source("gantry_t_pkg2"))
    assert [sorted(a) for a in assets.values()] == [["__init__.py", "m.py"]]


@pytest.mark.parametrize("name", ["gantry_no_such_module_3f9c", "sys", "os.path", "../etc"])
def test_add_local_python_source_refuses_what_is_not_local_python(name: str) -> None:
    with pytest.raises(InvalidError, match="is not a module or package of pure Python that import finds here"):
        Image.debian_slim().add_local_python_source(name)


# Steps after files added when the container starts


def test_a_build_step_after_add_local_dir_without_copy_is_refused(tmp_path: Path) -> None:
    late = Image.debian_slim().add_local_dir(tmp_path, "/data")
    for step in (lambda i: i.pip_install("x"), lambda i: i.run_commands("ls"), lambda i: i.env({"A": "1"}), lambda i: i.workdir("/x")):
        with pytest.raises(InvalidError, match="pass copy=True to it, or move it to the end"):
            step(late)
    # More local files are fine, and so is a build step after copy=True.
    write(tmp_path, {"f.txt": ""})
    late.add_local_file(tmp_path / "f.txt", "/f.txt").add_local_dir(tmp_path, "/more")
    Image.debian_slim().add_local_dir(tmp_path, "/data", copy=True).run_commands("ls /data")


def test_add_local_paths_are_checked(tmp_path: Path) -> None:
    write(tmp_path, {"f.txt": ""})
    with pytest.raises(InvalidError, match="is not a folder"):
        Image.debian_slim().add_local_dir(tmp_path / "f.txt", "/x")
    with pytest.raises(InvalidError, match="is not a file"):
        Image.debian_slim().add_local_file(tmp_path, "/x")
    with pytest.raises(InvalidError, match="remote_path must be an absolute path"):
        Image.debian_slim().add_local_dir(tmp_path, "relative")
    with pytest.raises(InvalidError, match="remote_path must be an absolute path"):
        Image.debian_slim().workdir("srv")


# Packing at deploy (_assets.pack_images)


def test_asset_hash_matches_the_daemons() -> None:
    # The same files' hash in test/unit/image-assets.test.ts (protocol/image-spec.ts assetHash).
    asset = {
        "bin/run": {"data": base64.b64encode(b"#!/bin/sh\n").decode(), "mode": 0o755},
        "a.txt": {"data": base64.b64encode(b"hi\n").decode(), "mode": 0o644},
    }
    assert _assets.asset_hash(asset) == "38b34933d59fa12815cc36fb9021511e692601a5dbb9d8051c8ba3e91d69bcce"


def test_pack_images_replaces_local_paths_with_hashes(tmp_path: Path) -> None:
    write(tmp_path, {"data/a.txt": "A", "data/sub/b.txt": "B", "data/x.log": "L", "req.txt": "numpy\n", "wheels/w-1.whl": "W"})
    os.chmod(tmp_path / "data" / "a.txt", 0o755)
    img = (
        Image.debian_slim()
        .pip_install_from_requirements(tmp_path / "req.txt", find_links=str(tmp_path / "wheels"))
        .add_local_dir(tmp_path / "data", "/srv/data", ignore=["*.log"])
    )
    functions, assets = pack(img)
    steps = functions[0]["options"]["image"]["steps"]
    assert "local" not in str(functions) and "Local" not in str(functions)
    for h, files in assets.items():
        assert _assets.asset_hash(files) == h
    pip, folder = steps
    assert pip == {"kind": "pip", "packages": [], "requirements": pip["requirements"], "options": {"findLinksHash": pip["options"]["findLinksHash"]}}
    assert sorted(assets[pip["requirements"]]) == ["requirements.txt"]
    assert text(assets[pip["requirements"]], "requirements.txt") == "numpy\n"
    assert sorted(assets[pip["options"]["findLinksHash"]]) == ["w-1.whl"]
    assert folder == {"kind": "dir", "remote": "/srv/data", "copy": False, "hash": folder["hash"]}
    assert sorted(assets[folder["hash"]]) == ["a.txt", "sub/b.txt"]
    assert assets[folder["hash"]]["a.txt"]["mode"] == 0o755
    assert assets[folder["hash"]]["sub/b.txt"]["mode"] == 0o644


def test_an_unchanged_folder_packs_to_the_same_hash_and_a_changed_one_does_not(tmp_path: Path) -> None:
    write(tmp_path, {"a.txt": "A"})
    img = Image.debian_slim().add_local_dir(tmp_path, "/d")
    h1 = pack(img)[0][0]["options"]["image"]["steps"][0]["hash"]
    assert pack(img)[0][0]["options"]["image"]["steps"][0]["hash"] == h1
    (tmp_path / "a.txt").write_text("B")
    assert pack(img)[0][0]["options"]["image"]["steps"][0]["hash"] != h1


def test_add_local_file_asset_is_one_file_named_like_the_remote(tmp_path: Path) -> None:
    write(tmp_path, {"local-name.cfg": "cfg", "other.txt": "x"})
    functions, assets = pack(
        Image.debian_slim().add_local_file(tmp_path / "local-name.cfg", "/etc/app/remote.cfg"),
        Image.debian_slim().add_local_file(tmp_path / "local-name.cfg", "/etc/app/"),
    )
    first = functions[0]["options"]["image"]["steps"][0]
    second = functions[1]["options"]["image"]["steps"][0]
    assert list(assets[first["hash"]]) == ["remote.cfg"]
    assert text(assets[first["hash"]], "remote.cfg") == "cfg"
    assert second["remote"] == "/etc/app/local-name.cfg"
    assert list(assets[second["hash"]]) == ["local-name.cfg"]


def test_pack_folder_ignore_globs(tmp_path: Path) -> None:
    write(tmp_path, {"keep.py": "", "app.log": "", "sub/deep.log": "", "data/big.bin": "", "top.tmp": "", "sub/x/y.tmp": "", "v1.cfg": "", "v10.cfg": ""})
    asset = _assets.pack_folder(str(tmp_path), "add_local_dir", ["*.log", "data/*", "**/*.tmp", "v?.cfg"])
    assert sorted(asset) == ["keep.py", "v10.cfg"]
    called: List[Path] = []
    asset = _assets.pack_folder(str(tmp_path), "add_local_dir", lambda p: called.append(p) or p.suffix == ".log")
    assert "app.log" not in asset and "keep.py" in asset
    assert all(isinstance(p, Path) and p.is_absolute() for p in called)


def test_pack_folder_does_not_follow_links_out(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"secret.txt": "TOP SECRET", "d/s.txt": "S"})
    root = write(tmp_path / "src", {"ok.txt": "ok"})
    os.symlink(outside / "secret.txt", root / "link.txt")
    os.symlink(outside / "d", root / "linkdir")
    assert sorted(_assets.pack_folder(str(root), "add_local_dir")) == ["ok.txt"]


def test_pack_folder_stops_at_the_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_assets, "MAX_FOLDER_BYTES", 10)
    write(tmp_path, {"a.txt": "12345", "b.txt": "123456"})
    with pytest.raises(AppFileError, match="add_local_dir\\(x\\): the files are over the limit of 10 bytes"):
        _assets.pack_folder(str(tmp_path), "add_local_dir(x)")


def test_a_folder_gone_by_deploy_fails_it(tmp_path: Path) -> None:
    write(tmp_path, {"d/a.txt": ""})
    img = Image.debian_slim().add_local_dir(tmp_path / "d", "/d")
    (tmp_path / "d" / "a.txt").unlink()
    (tmp_path / "d").rmdir()
    with pytest.raises(AppFileError, match="is not a folder"):
        pack(img)


# from_dockerfile: only the files COPY and ADD name, never from outside the context


def test_from_dockerfile_packs_only_copy_sources(tmp_path: Path) -> None:
    ctx = write(
        tmp_path / "ctx",
        {
            "Dockerfile": "FROM python:3.12 AS base\nCOPY requirements.txt /r.txt\nCOPY --chown=1:1 app /app\nADD https://example.com/x.tgz /opt/\n"
            'COPY ["conf/a b.toml", "/etc/"]\nCOPY --from=base /usr /usr\nCOPY *.cfg \\\n  /etc/\n',
            "requirements.txt": "numpy\n",
            "app/main.py": "",
            "app/pkg/m.py": "",
            "conf/a b.toml": "",
            "one.cfg": "",
            "two.cfg": "",
            ".env": "SECRET=1",
            "unrelated/big.bin": "zzz",
        },
    )
    functions, assets = pack(Image.from_dockerfile(ctx / "Dockerfile", context_dir=ctx))
    base = functions[0]["options"]["image"]["base"]
    assert set(base) == {"kind", "dockerfile", "context", "path"}
    assert base["dockerfile"] == (ctx / "Dockerfile").read_text()
    assert _assets.asset_hash(assets[base["context"]]) == base["context"]
    assert sorted(assets[base["context"]]) == ["app/main.py", "app/pkg/m.py", "conf/a b.toml", "one.cfg", "requirements.txt", "two.cfg"]


def test_copy_sources_read_as_docker_reads_them() -> None:
    dockerfile = (
        "FROM python:3.12\r\n"
        "# COPY commented.txt /nope\r\n"
        "COPY it's.txt /x/\r\n"
        "COPY a.txt \\\r\n    b.txt /app/\r\n"
        'COPY ["with space.txt", "/app/"]\r\n'
        'COPY --chown=1:1 ["flagged json.txt", "/app/"]\r\n'
        "COPY --from=build /src /dst\r\n"
        "ADD https://example.com/t.tgz /opt/\r\n"
        "RUN echo COPY no /x\r\n"
    )
    assert _assets._copy_sources(dockerfile) == ["it's.txt", "a.txt", "b.txt", "with space.txt", "flagged json.txt"]


def test_from_dockerfile_context_defaults_to_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {"Dockerfile": "FROM x\nCOPY a.txt /a\n", "a.txt": "A"})
    monkeypatch.chdir(tmp_path)
    functions, assets = pack(Image.from_dockerfile("Dockerfile"))
    assert sorted(assets[functions[0]["options"]["image"]["base"]["context"]]) == ["a.txt"]


@pytest.mark.parametrize("line", ["COPY ../secret /x", "COPY sub/../../secret /x", 'COPY ["..", "/x"]', "ADD ../secret /x"])
def test_from_dockerfile_refuses_a_source_leaving_the_context(tmp_path: Path, line: str) -> None:
    write(tmp_path, {"secret": "TOP SECRET"})
    ctx = write(tmp_path / "ctx", {"Dockerfile": f"FROM python:3.12\n{line}\n", "sub/ok.txt": ""})
    with pytest.raises(AppFileError, match="leaves the context folder"):
        pack(Image.from_dockerfile(ctx / "Dockerfile", context_dir=ctx))


def test_from_dockerfile_refuses_a_link_leading_out(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"secret.txt": "TOP SECRET", "d/s.txt": "S"})
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM x\nCOPY link.txt /x\n", "Dockerfile.dir": "FROM x\nCOPY linkdir /x\n", "Dockerfile.in": "FROM x\nCOPY app /app\n", "app/ok.txt": ""})
    os.symlink(outside / "secret.txt", ctx / "link.txt")
    os.symlink(outside / "d", ctx / "linkdir")
    for name in ("Dockerfile", "Dockerfile.dir"):
        with pytest.raises(AppFileError, match="leads out of the context folder"):
            pack(Image.from_dockerfile(ctx / name, context_dir=ctx))
    # Inside a copied folder: a link to a file out is refused, a link to a folder out is not followed.
    os.symlink(outside / "d", ctx / "app" / "linkdir")
    functions, assets = pack(Image.from_dockerfile(ctx / "Dockerfile.in", context_dir=ctx))
    assert sorted(assets[functions[0]["options"]["image"]["base"]["context"]]) == ["app/ok.txt"]
    os.symlink(outside / "secret.txt", ctx / "app" / "leak.txt")
    with pytest.raises(AppFileError, match="leak.txt leads out of the context folder"):
        pack(Image.from_dockerfile(ctx / "Dockerfile.in", context_dir=ctx))


def test_from_dockerfile_names_a_missing_source(tmp_path: Path) -> None:
    ctx = write(tmp_path, {"Dockerfile": "FROM x\nCOPY nothing.txt /x\n"})
    with pytest.raises(AppFileError, match="'nothing.txt' matches nothing in the context folder .*context_dir="):
        pack(Image.from_dockerfile(ctx / "Dockerfile", context_dir=ctx))


# One Image, several functions


def test_one_image_used_by_two_functions_packs_for_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.import_module("gantry.app"), "_apps", {})  # this App is forgotten after the test
    write(tmp_path, {"data/a.txt": "A", "Dockerfile": "FROM x\nCOPY data /data\n"})
    img = Image.from_dockerfile(tmp_path / "Dockerfile", context_dir=tmp_path).add_local_dir(tmp_path / "data", "/data")
    app = gantry.App("image-test-two-functions", image=img)

    @app.function()
    def one() -> None: ...

    @app.function(image=img)
    def two() -> None: ...

    functions = app.manifest()
    assets: Dict[str, _assets.Asset] = {}
    _assets.pack_images(functions, assets)
    specs = [f["options"]["image"] for f in functions]
    assert specs[0] == specs[1]
    assert specs[0]["steps"][0]["hash"] in assets and specs[0]["base"]["context"] in assets
    assert specs[0] is not specs[1]
    # The Image itself still names its local paths, for the next deploy.
    assert img.to_spec()["steps"][0]["local"] == str(tmp_path / "data")
    assert img.to_spec()["base"]["local"] == str(tmp_path / "Dockerfile")


def test_a_function_without_an_image_packs_nothing() -> None:
    functions = [{"name": "f", "options": {"image": None}}]
    assets: Dict[str, _assets.Asset] = {}
    _assets.pack_images(functions, assets)
    assert functions == [{"name": "f", "options": {"image": None}}] and assets == {}
