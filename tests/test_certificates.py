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
