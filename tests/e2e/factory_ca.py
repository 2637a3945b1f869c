"""Manufacturer CAs and factory certificates (IEEE 802.1AR IDevIDs) made with
`openssl` commands, as a device maker's factory would: the serialNumber in the
subject and a notAfter of 99991231235959Z ("no well-defined expiration")."""

import os
import subprocess

OPENSSL_CA_CONF = """
[ ca ]
default_ca = factory
[ factory ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/issued
serial = $dir/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
[ anything ]
commonName = optional
serialNumber = optional
organizationName = optional
[ idevid ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ idevid_eku ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""


def _run(*args):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {r.stderr}")
    return r


class FactoryCa:
    """A manufacturer's CA in |dir| with subject |subject| (a look-alike CA is
    another FactoryCa with the same subject and its own key)."""

    def __init__(self, dir, subject="/O=Acme Devices/CN=Acme IDevID CA"):
        self.dir = dir
        os.makedirs(os.path.join(dir, "issued"), exist_ok=True)
        with open(os.path.join(dir, "index.txt"), "w"):
            pass
        with open(os.path.join(dir, "serial"), "w") as f:
            f.write("1000\n")
        self.conf = os.path.join(dir, "ca.conf")
        with open(self.conf, "w") as f:
            f.write(OPENSSL_CA_CONF.format(dir=dir))
        self.key = os.path.join(dir, "ca.key")
        self.cert = os.path.join(dir, "ca.pem")
        _run("openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", self.key)
        _run("openssl", "req", "-new", "-x509", "-key", self.key, "-subj", subject, "-days", "7300",
             "-config", self.conf, "-extensions", "ca_ext", "-out", self.cert)

    def idevid(self, out_dir, serial_number=None, cn="acme-sensor", eku=False):
        """Issues a factory certificate; returns (cert_path, key_path)."""
        os.makedirs(out_dir, exist_ok=True)
        key = os.path.join(out_dir, "idevid.key")
        csr = os.path.join(out_dir, "idevid.csr")
        cert = os.path.join(out_dir, "idevid.pem")
        _run("openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", key)
        subject = f"/O=Acme Devices/CN={cn}"
        if serial_number is not None:
            subject += f"/serialNumber={serial_number}"
        _run("openssl", "req", "-new", "-key", key, "-subj", subject, "-out", csr)
        _run("openssl", "ca", "-batch", "-notext", "-config", self.conf, "-name", "factory",
             "-extensions", "idevid_eku" if eku else "idevid", "-enddate", "99991231235959Z",
             "-cert", self.cert, "-keyfile", self.key, "-in", csr, "-out", cert)
        os.chmod(key, 0o600)
        return cert, key
