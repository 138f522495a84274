"""ca_certificates: the host's system bundle by default, 'none' to hand none."""

from caffebox import images
from caffebox.settings import DEFAULTS


def test_default_is_the_first_system_bundle_that_exists(tmp_path):
    fedora = tmp_path / "ca-bundle.crt"
    fedora.write_text("PEM")
    candidates = (str(tmp_path / "debian.crt"), str(fedora))
    assert DEFAULTS["caffebox"]["ca_certificates"] == "auto"
    assert images.certificates_file("auto", candidates) == str(fedora)
    assert images.certificates_file("auto", (str(tmp_path / "none.crt"),)) == ""


def test_none_and_paths():
    assert images.certificates_file("none") == ""
    assert images.certificates_file("") == ""
    assert images.certificates_file("/my/ca.pem") == "/my/ca.pem"


def test_the_default_list_names_each_distributions_bundle():
    """auto: Debian/Ubuntu first, then RHEL/Fedora (both places), Alpine, SUSE."""
    assert images.SYSTEM_CA_BUNDLES == (
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/ssl/cert.pem",
        "/etc/ssl/ca-bundle.pem",
    )


def test_the_hosts_bundle_reaches_the_build_context(tmp_path):
    """The bundle auto picks on this (Debian) host travels as build/ca-certificates.crt."""
    import tarfile

    from caffebox.source import CaffeSource
    from caffebox.variants import CPU

    bundle = images.certificates_file("auto")
    assert bundle == "/etc/ssl/certs/ca-certificates.crt"
    src = tmp_path / "caffe"
    src.mkdir()
    (src / "Makefile").write_text("all:\n")
    request = images.BuildRequest(variant=CPU, source=CaffeSource.from_options(str(src), None,
                                  None), tag="t", ca_certificates="auto")  # fmt: skip
    with tarfile.open(fileobj=images.build_context(request)) as tar:
        sent = tar.extractfile("build/ca-certificates.crt").read()
    assert sent == open(bundle, "rb").read() and b"BEGIN CERTIFICATE" in sent
