"""Who may reach the app and what a run from it may read (vqvae/app/exposure.py)."""

from __future__ import annotations

import os

import pytest

from vqvae.app.exposure import REFUSED_PATH, Exposure, allowed_source, exposure_for, read_login, without_paths
from vqvae.errors import ExposureError, TrainingError

NO_ENVIRONMENT: dict[str, str] = {}


# --- the mode the app is served in


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_needs_nothing_and_trains(host):
    exposure = exposure_for(host, public=False, auth_file=None, environ=NO_ENVIRONMENT)
    assert exposure == Exposure() and exposure.training


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_a_reachable_host_without_public_or_a_login_is_refused_with_the_way_out(host):
    with pytest.raises(ExposureError, match=f"--host {host} makes the app reachable") as refused:
        exposure_for(host, public=False, auth_file=None, environ=NO_ENVIRONMENT)
    assert "--public" in str(refused.value) and "VQVAE_AUTH" in str(refused.value)


def test_a_public_demo_does_not_train():
    assert not exposure_for("0.0.0.0", public=True, auth_file=None, environ=NO_ENVIRONMENT).training
    assert not exposure_for("0.0.0.0", public=False, auth_file=None, environ={"VQVAE_PUBLIC": "1"}).training
    assert exposure_for("127.0.0.1", public=False, auth_file=None, environ={"VQVAE_PUBLIC": "0"}).training


def test_a_login_comes_from_the_environment_or_a_file_and_lets_its_holders_train(tmp_path):
    from_environment = exposure_for("0.0.0.0", False, None, {"VQVAE_AUTH": "teacher:s3cret:with:colons"})
    assert from_environment.login == ("teacher", "s3cret:with:colons") and from_environment.training
    secret = tmp_path / "login"
    secret.write_text("lab:pw\n")
    behind = exposure_for("0.0.0.0", True, secret, NO_ENVIRONMENT)
    assert behind.login == ("lab", "pw") and behind.public and behind.training


@pytest.mark.parametrize("content", ["", "no-colon", ":password", "user:"])
def test_a_login_file_without_user_and_password_is_refused(tmp_path, content):
    secret = tmp_path / "login"
    secret.write_text(content)
    with pytest.raises(ExposureError, match="user:password"):
        read_login(secret, NO_ENVIRONMENT)


def test_a_missing_login_file_is_refused_by_name(tmp_path):
    with pytest.raises(ExposureError, match="cannot read a login from"):
        read_login(tmp_path / "missing", NO_ENVIRONMENT)


# --- what a run may read


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "data"
    (root / "digits" / "a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return root


def test_named_sources_and_paths_inside_the_data_folder_are_allowed(data_root):
    assert allowed_source("mnist5k", None, None) == "mnist5k"
    assert allowed_source("digits", data_root, None) == "digits"
    assert allowed_source("folder:digits", data_root, None) == f"folder:{(data_root / 'digits').resolve()}"
    assert allowed_source(f"folder:{data_root / 'digits'}", data_root, None).startswith("folder:")
    assert allowed_source("npz:not-there-yet.npz", data_root, None).endswith("not-there-yet.npz")  # checked later


def refusal(source: str, data_root, uploads=None) -> str:
    with pytest.raises(TrainingError) as refused:
        allowed_source(source, data_root, uploads)
    return str(refused.value)


def test_every_path_outside_the_data_folder_gets_one_message_that_tells_nothing(data_root, tmp_path):
    outside = tmp_path / "outside"
    sources = [
        "folder:/root",
        "folder:/root/.ssh",
        "idx:/usr/share",
        f"folder:{outside}",
        f"folder:{outside}/does-not-exist",
        "folder:../outside",
        "folder:digits/../../outside",
        "npz:/etc/passwd",
    ]
    messages = {refusal(source, data_root) for source in sources}
    assert messages == {REFUSED_PATH}
    assert "/root" not in REFUSED_PATH and "/usr" not in REFUSED_PATH and str(tmp_path) not in REFUSED_PATH


def test_a_link_out_of_the_data_folder_is_refused(data_root, tmp_path):
    os.symlink(tmp_path / "outside", data_root / "link")
    assert refusal("folder:link", data_root) == REFUSED_PATH


def test_the_upload_folder_is_refused_even_inside_the_data_folder(data_root):
    uploads = data_root / "uploads"
    uploads.mkdir()
    assert refusal("idx:uploads", data_root, uploads) == REFUSED_PATH
    assert allowed_source("folder:digits", data_root, uploads).startswith("folder:")


def test_without_a_data_folder_only_named_sources_are_open(tmp_path):
    assert refusal(f"folder:{tmp_path}", None) == REFUSED_PATH


def test_an_unknown_kind_is_refused_without_echoing_it(data_root):
    message = refusal("http://example.com/x", data_root)
    assert "unknown data source" in message and "example.com" not in message


def test_messages_for_a_visitor_name_folders_instead_of_their_paths(tmp_path):
    message = f"cannot read image {tmp_path}/data/x.png (truncated); see {tmp_path}/runs/a"
    names = {tmp_path / "data": "<data folder>", tmp_path / "runs": "runs"}
    assert without_paths(message, names) == "cannot read image <data folder>/x.png (truncated); see runs/a"
