"""`cvops review serve --tls-cert/--tls-key`: the page serves HTTPS itself, so a remote reviewer's token and images
cross the network encrypted; a pair that cannot work is refused before anything listens, naming the option."""

from __future__ import annotations

import pytest
import requests

from cvops.errors import ConfigurationError
from pipelines.review import web
from tests.tls_certificates import self_signed

pytestmark = pytest.mark.azurite

TOKEN = "kP3vX9qL2mZ7wR4tN8bY1cF6"


def test_with_a_certificate_the_page_answers_https_and_its_cookies_are_secure(review_world, tmp_path):
    cert, key = self_signed(tmp_path)
    review_world.add("tls/one.jpg", {"beach": 0.7, "city": 0.3})
    options = web.listen_options("127.0.0.1", 0, reviewer="alice", token=TOKEN, allow_remote=False,
                                 tls_cert=cert, tls_key=key)
    page = web.start(review_world.blob_service, review_world.config, options)
    page.serve_in_thread()
    try:
        assert page.url.startswith("https://127.0.0.1:")
        with requests.Session() as browser:
            signed_in = browser.get(page.url + "queue?token=" + TOKEN, verify=cert, timeout=10)
            assert signed_in.status_code == 200 and 'url=/queue"' in signed_in.text
            answer = browser.get(page.url + "queue", verify=cert, timeout=10)
            assert answer.status_code == 200 and "1 waiting for review" in answer.text
            cookies = {c.name: c for c in browser.cookies}
            assert cookies and all(c.secure for c in cookies.values())  # never sent back over plain HTTP
            port = page.server.port  # per server, and __Host-: no other host or plain-HTTP page can plant them
            assert set(cookies) == {f"__Host-cvops_review_token_{port}", f"__Host-cvops_review_session_{port}"}
        with pytest.raises(requests.exceptions.ConnectionError):  # plain HTTP to the TLS port: no page
            requests.get(page.url.replace("https://", "http://") + "queue", timeout=10)
        with pytest.raises(requests.exceptions.SSLError):  # a client that does not trust it is not fooled either
            requests.get(page.url + "queue", timeout=10)
    finally:
        page.stop()


def test_a_certificate_without_its_key_is_refused_naming_both_options(tmp_path):
    cert, _ = self_signed(tmp_path)
    with pytest.raises(ConfigurationError, match="--tls-cert and --tls-key go together") as refused:
        web.listen_options("127.0.0.1", 0, reviewer="alice", token=None, allow_remote=False, tls_cert=cert)
    assert refused.value.setting == "--tls-cert/--tls-key"


def test_a_key_of_another_certificate_is_refused_before_anything_listens(tmp_path):
    cert, _ = self_signed(tmp_path, "one")
    _, other_key = self_signed(tmp_path, "two")
    with pytest.raises(ConfigurationError, match="do not load as a certificate and its key") as refused:
        web.listen_options("127.0.0.1", 0, reviewer="alice", token=None, allow_remote=False,
                           tls_cert=cert, tls_key=other_key)
    assert "does not belong to the certificate" in refused.value.hint
    assert "BEGIN" not in str(refused.value)  # names the problem, never the files' contents


def test_an_encrypted_key_is_refused_not_prompted_for(tmp_path):
    cert, key = self_signed(tmp_path, passphrase=b"correct horse battery")
    with pytest.raises(ConfigurationError, match="--tls-key is encrypted"):
        web.listen_options("127.0.0.1", 0, reviewer="alice", token=None, allow_remote=False, tls_cert=cert,
                           tls_key=key)


@pytest.mark.parametrize("which", ["cert", "key"])
def test_a_missing_or_non_pem_file_is_named(tmp_path, which):
    cert, key = self_signed(tmp_path)
    (tmp_path / "notes.txt").write_text("not a certificate")
    missing = {"cert": (str(tmp_path / "absent.crt"), key), "key": (cert, str(tmp_path / "absent.key"))}[which]
    with pytest.raises(ConfigurationError, match=f"--tls-{which} .* is not a file"):
        web.listen_options("127.0.0.1", 0, reviewer="alice", token=None, allow_remote=False,
                           tls_cert=missing[0], tls_key=missing[1])
    garbage = {"cert": (str(tmp_path / "notes.txt"), key), "key": (cert, str(tmp_path / "notes.txt"))}[which]
    with pytest.raises(ConfigurationError, match="do not load as a certificate and its key"):
        web.listen_options("127.0.0.1", 0, reviewer="alice", token=None, allow_remote=False,
                           tls_cert=garbage[0], tls_key=garbage[1])
