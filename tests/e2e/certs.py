"""Certificates crafted for attacks (python3-cryptography): signed by the
fleet's real issuing CA with a serial it never issued, expired, with bad
identities, or from a foreign CA."""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _load(path):
    with open(path, "rb") as f:
        return f.read()


def issuing_ca(fleet):
    cert = x509.load_pem_x509_certificate(_load(os.path.join(fleet.dir, "pki", "issuing.pem")))
    key = serialization.load_pem_private_key(_load(os.path.join(fleet.dir, "pki", "issuing.key")), None)
    return cert, key


def foreign_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Foreign CA")])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_leaf(fleet, out_dir, *, cn, uris, issuer=None, days_valid=1, expired=False):
    """Writes key.pem, cert.pem (leaf + issuer) and ca.pem into |out_dir|."""
    os.makedirs(out_dir, exist_ok=True)
    ca_cert, ca_key = issuer or issuing_ca(fleet)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow()
    if expired:
        nb, na = now - datetime.timedelta(days=3), now - datetime.timedelta(days=1)
    else:
        nb, na = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days_valid)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(ca_cert.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(nb).not_valid_after(na)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if uris:
        b = b.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
                            critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    with open(os.path.join(out_dir, "key.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(os.path.join(out_dir, "key.pem"), 0o600)
    with open(os.path.join(out_dir, "cert.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(out_dir, "ca.pem"), "wb") as f:
        f.write(_load(os.path.join(fleet.dir, "pki", "ca-bundle.pem")))
    return cert
