#include "crypto/crypto.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <arpa/inet.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include "core/file_io.h"

namespace warden::crypto {
namespace {

constexpr size_t kMaxPemBytes = 1024 * 1024;
constexpr size_t kMaxCertsInPem = 64;

// sha256Md returns the SHA-256 implementation fetched once from the default
// provider (conventions: fetch algorithms once and reuse them).
const EVP_MD* sha256Md() {
  static EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) {
      std::fprintf(stderr, "warden: SHA256 is unavailable from OpenSSL providers\n");
      std::abort();
    }
    return fetched;
  }();
  return md;
}

BioPtr memBio(std::string_view data) {
  // BIO_new_mem_buf takes an int length; callers bound |data| first.
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string bioContents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  if (len <= 0 || data == nullptr) return {};
  return std::string(data, static_cast<size_t>(len));
}

SystemTime asn1TimeToSystem(const ASN1_TIME* t) {
  struct tm tm_value {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm_value) != 1) return SystemTime{};
  // system_clock counts nanoseconds in 64 bits and ends in April 2262; X.509
  // allows dates up to 9999 (IEEE 802.1AR's 99991231235959Z, TPM vendor CAs).
  // Later dates are clamped to the last representable second: for every
  // comparison Warden makes they mean "never expires".
  const time_t kMax = static_cast<time_t>(
      std::chrono::duration_cast<std::chrono::seconds>(SystemTime::max().time_since_epoch()).count() - 1);
  return std::chrono::system_clock::from_time_t(std::min(timegm(&tm_value), kMax));
}

std::vector<std::string> sansOfType(X509* cert, int type) {
  std::vector<std::string> out;
  if (cert == nullptr) return out;
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != type) continue;
    if (type == GEN_URI || type == GEN_DNS) {
      const ASN1_IA5STRING* s = type == GEN_URI ? name->d.uniformResourceIdentifier : name->d.dNSName;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      char buf[INET6_ADDRSTRLEN] = {};
      int len = ASN1_STRING_length(ip);
      const unsigned char* bytes = ASN1_STRING_get0_data(ip);
      if (len == 4 && inet_ntop(AF_INET, bytes, buf, sizeof buf) != nullptr) {
        out.emplace_back(buf);
      } else if (len == 16 && inet_ntop(AF_INET6, bytes, buf, sizeof buf) != nullptr) {
        out.emplace_back(buf);
      }
    }
  }
  return out;
}

int base64Value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int base64UrlValue(unsigned char c) {
  if (c == '-') return 62;
  if (c == '_') return 63;
  if (c == '+' || c == '/') return -1;
  return base64Value(c);
}

bool isBase64Whitespace(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// decodeGroups decodes |sym| (symbols only, no whitespace, no padding) whose
// final partial group has |sym.size() % 4| symbols. Unused trailing bits must
// be zero so that each byte string has exactly one encoding.
bool decodeSymbols(const std::vector<int>& sym, std::string& out) {
  size_t rem = sym.size() % 4;
  if (rem == 1) return false;
  out.clear();
  out.reserve(sym.size() / 4 * 3 + 2);
  size_t i = 0;
  for (; i + 4 <= sym.size(); i += 4) {
    uint32_t v = (static_cast<uint32_t>(sym[i]) << 18) | (static_cast<uint32_t>(sym[i + 1]) << 12) |
                 (static_cast<uint32_t>(sym[i + 2]) << 6) | static_cast<uint32_t>(sym[i + 3]);
    out.push_back(static_cast<char>((v >> 16) & 0xff));
    out.push_back(static_cast<char>((v >> 8) & 0xff));
    out.push_back(static_cast<char>(v & 0xff));
  }
  if (rem == 2) {
    if ((sym[i + 1] & 0x0f) != 0) return false;
    uint32_t v = (static_cast<uint32_t>(sym[i]) << 18) | (static_cast<uint32_t>(sym[i + 1]) << 12);
    out.push_back(static_cast<char>((v >> 16) & 0xff));
  } else if (rem == 3) {
    if ((sym[i + 2] & 0x03) != 0) return false;
    uint32_t v = (static_cast<uint32_t>(sym[i]) << 18) | (static_cast<uint32_t>(sym[i + 1]) << 12) |
                 (static_cast<uint32_t>(sym[i + 2]) << 6);
    out.push_back(static_cast<char>((v >> 16) & 0xff));
    out.push_back(static_cast<char>((v >> 8) & 0xff));
  }
  return true;
}

std::string base64EncodeRaw(std::string_view bytes) {
  if (bytes.empty()) return {};
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  // EVP_EncodeBlock takes an int; inputs here are bounded by callers (certs,
  // tokens, EST bodies), far below INT_MAX, but encode in chunks to be safe.
  size_t written = 0;
  constexpr size_t kChunk = 3 * 1024 * 1024;
  for (size_t off = 0; off < bytes.size(); off += kChunk) {
    size_t n = std::min(kChunk, bytes.size() - off);
    int w = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data() + written),
                            reinterpret_cast<const unsigned char*>(bytes.data() + off), static_cast<int>(n));
    written += static_cast<size_t>(w);
  }
  out.resize(written);
  return out;
}

// OpenSSL 3.0 turns a provider key into a SubjectPublicKeyInfo (i2d_PUBKEY,
// X509_set_pubkey) by building an encoder chain, and X509_set_pubkey then
// builds a decoder chain to read the DER back: about 0.1 ms and 0.4 ms here,
// more than the certificate's ECDSA signature, and together a third of the
// server's CPU per enrollment. EC keys on a named curve, every key Warden
// issues for, take shorter routes below; every other key keeps OpenSSL's.

// plainEcCurve returns the NID of the named curve of |key| when it is a
// provider EC key in the common form (named curve, uncompressed point), and
// NID_undef for any other key: for the other forms OpenSSL's encoding
// differs, and a fingerprint must be byte-exact.
int plainEcCurve(EVP_PKEY* key) {
  if (key == nullptr || EVP_PKEY_get0_provider(key) == nullptr || !EVP_PKEY_is_a(key, "EC")) return NID_undef;
  char text[80];
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_ENCODING, text, sizeof text, &len) != 1 ||
      std::string_view(text, len) != OSSL_PKEY_EC_ENCODING_GROUP) {
    return NID_undef;
  }
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, text, sizeof text, &len) != 1 ||
      std::string_view(text, len) != OSSL_PKEY_EC_POINT_CONVERSION_FORMAT_UNCOMPRESSED) {
    return NID_undef;
  }
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, text, sizeof text, &len) != 1) return NID_undef;
  int curve = OBJ_sn2nid(text);
  if (curve == NID_undef) curve = EC_curve_nist2nid(text);
  return curve;
}

// ecPublicKeyInfo makes the fresh |out| hold |key|'s SubjectPublicKeyInfo,
// assembled from the curve and the encoded point the key holds (the same
// DER as i2d_PUBKEY). False, |out| unchanged, for any key plainEcCurve
// refuses.
bool ecPublicKeyInfo(X509_PUBKEY* out, EVP_PKEY* key) {
  if (out == nullptr) return false;
  const int curve = plainEcCurve(key);
  if (curve == NID_undef) return false;
  size_t point_len = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0, &point_len) != 1 ||
      point_len == 0 || point_len > 1024) {
    return false;
  }
  auto* point = static_cast<unsigned char*>(OPENSSL_malloc(point_len));
  if (point == nullptr) return false;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, point_len, &point_len) != 1) {
    OPENSSL_free(point);
    return false;
  }
  // Built-in OIDs are static objects: set0 takes them without copying.
  if (X509_PUBKEY_set0_param(out, OBJ_nid2obj(NID_X9_62_id_ecPublicKey), V_ASN1_OBJECT, OBJ_nid2obj(curve), point,
                             static_cast<int>(point_len)) != 1) {
    OPENSSL_free(point);
    return false;
  }
  return true;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
// legacyEcCopy returns |key| as a legacy (EC_KEY) EVP_PKEY, for which
// X509_set_pubkey encodes the point directly and keeps the key itself as the
// certificate's in-memory public key: ~0.05 ms instead of ~0.4 ms. The
// EC_KEY accessors are deprecated in OpenSSL 3.0 but are its only public
// route to that path; this is their one use in Warden.
EvpPkeyPtr legacyEcCopy(EVP_PKEY* key) {
  EC_KEY* ec = EVP_PKEY_get1_EC_KEY(key);
  if (ec == nullptr) return nullptr;
  EvpPkeyPtr legacy(EVP_PKEY_new());
  if (!legacy || EVP_PKEY_assign_EC_KEY(legacy.get(), ec) != 1) {
    EC_KEY_free(ec);
    return nullptr;
  }
  return legacy;
}
#pragma GCC diagnostic pop

}  // namespace

std::string openSslErrorString() {
  unsigned long err = ERR_get_error();
  std::string first;
  if (err != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof buf);
    first = buf;
  }
  ERR_clear_error();
  return first;
}

Result<EvpPkeyPtr> generateEcKey(int nid) {
  const char* group = nullptr;
  if (nid == NID_X9_62_prime256v1) {
    group = "P-256";
  } else if (nid == NID_secp384r1) {
    group = "P-384";
  } else {
    return core::invalidArgument(fmt::format("unsupported EC curve nid {}: use P-256 or P-384", nid));
  }
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", group));
  if (!key) return core::internalError("EC key generation failed: " + openSslErrorString());
  return key;
}

Result<std::string> privateKeyToPem(EVP_PKEY* key) {
  if (key == nullptr) return core::invalidArgument("no private key given");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return core::internalError("cannot serialize private key: " + openSslErrorString());
  }
  return bioContents(bio.get());
}

Status writePrivateKeyFile(const std::string& path, EVP_PKEY* key) {
  WARDEN_ASSIGN_OR_RETURN(std::string pem, privateKeyToPem(key));
  Status written = core::writeFileAtomic(path, pem, 0600);
  OPENSSL_cleanse(pem.data(), pem.size());
  return written;
}

Result<EvpPkeyPtr> privateKeyFromPem(std::string_view pem) {
  if (pem.empty() || pem.size() > kMaxPemBytes) return core::invalidArgument("private key PEM is empty or too large");
  BioPtr bio = memBio(pem);
  // An empty passphrase callback result makes encrypted keys fail instead of prompting.
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  if (!key) {
    ERR_clear_error();
    return core::invalidArgument("not a PEM private key (unencrypted PKCS#8 or EC key expected)");
  }
  return key;
}

std::string publicKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || key == nullptr || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return {};
  return bioContents(bio.get());
}

Result<X509Ptr> certFromPem(std::string_view pem) {
  if (pem.empty() || pem.size() > kMaxPemBytes) return core::invalidArgument("certificate PEM is empty or too large");
  BioPtr bio = memBio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    ERR_clear_error();
    return core::invalidArgument("no PEM certificate found");
  }
  return cert;
}

Result<std::vector<X509Ptr>> certsFromPem(std::string_view pem) {
  if (pem.empty() || pem.size() > kMaxPemBytes) return core::invalidArgument("certificate PEM is empty or too large");
  BioPtr bio = memBio(pem);
  std::vector<X509Ptr> certs;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
      unsigned long err = ERR_peek_last_error();
      ERR_clear_error();
      // End of input is reported as PEM_R_NO_START_LINE; anything else is a broken block.
      if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) break;
      return core::invalidArgument(fmt::format("certificate #{} in PEM is malformed", certs.size() + 1));
    }
    if (certs.size() >= kMaxCertsInPem) return core::invalidArgument("too many certificates in PEM (max 64)");
    certs.push_back(std::move(cert));
  }
  if (certs.empty()) return core::invalidArgument("no PEM certificate found");
  return certs;
}

std::string certToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || cert == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  return bioContents(bio.get());
}

std::string certsToPem(const std::vector<X509*>& certs) {
  std::string out;
  for (X509* c : certs) out += certToPem(c);
  return out;
}

std::string certToDer(X509* cert) {
  if (cert == nullptr) return {};
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  OpenSslBytesPtr owned(der);
  if (len <= 0) return {};
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

Result<X509Ptr> certFromDer(std::string_view der) {
  if (der.empty() || der.size() > kMaxPemBytes) return core::invalidArgument("certificate DER is empty or too large");
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) {
    ERR_clear_error();
    return core::invalidArgument("not a DER certificate");
  }
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return core::invalidArgument("trailing bytes after DER certificate");
  }
  return cert;
}

std::string sha256(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &len, sha256Md(), nullptr) != 1 || len != 32) {
    std::fprintf(stderr, "warden: SHA-256 failed\n");
    std::abort();
  }
  return std::string(reinterpret_cast<const char*>(digest), len);
}

std::string hexEncode(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0x0f]);
  }
  return out;
}

std::string sha256Hex(std::string_view bytes) { return hexEncode(sha256(bytes)); }

std::string caFingerprint(X509* root) { return "sha256:" + sha256Hex(certToDer(root)); }

std::string publicKeyFingerprint(EVP_PKEY* key) {
  if (key == nullptr) return {};
  unsigned char* der = nullptr;
  int len = -1;
  X509_PUBKEY* info = X509_PUBKEY_new();
  if (info != nullptr && ecPublicKeyInfo(info, key)) {
    len = i2d_X509_PUBKEY(info, &der);
  } else {
    len = i2d_PUBKEY(key, &der);
  }
  X509_PUBKEY_free(info);
  OpenSslBytesPtr owned(der);
  if (len <= 0) return {};
  return sha256Hex(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(len)));
}

Status setCertificatePublicKey(X509* cert, EVP_PKEY* key) {
  if (cert == nullptr || key == nullptr) return core::invalidArgument("no certificate or no public key");
  EvpPkeyPtr legacy = plainEcCurve(key) != NID_undef ? legacyEcCopy(key) : nullptr;
  if (X509_set_pubkey(cert, legacy ? legacy.get() : key) != 1) {
    return core::invalidArgument("cannot use the subject public key: " + openSslErrorString());
  }
  return Status::ok();
}

std::string randomBytes(size_t n) {
  std::string out(n, '\0');
  if (n == 0) return out;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::fprintf(stderr, "warden: RAND_bytes failed: the system RNG is broken\n");
    std::abort();
  }
  return out;
}

std::string base64Encode(std::string_view bytes) { return base64EncodeRaw(bytes); }

std::string base64EncodeWrapped(std::string_view bytes, size_t line_len) {
  std::string flat = base64EncodeRaw(bytes);
  if (line_len == 0) line_len = 64;
  std::string out;
  out.reserve(flat.size() + flat.size() / line_len + 1);
  for (size_t i = 0; i < flat.size(); i += line_len) {
    out.append(flat, i, line_len);
    out.push_back('\n');
  }
  return out;
}

Result<std::string> base64Decode(std::string_view text, bool allow_whitespace) {
  std::vector<int> sym;
  sym.reserve(text.size());
  size_t padding = 0;
  for (unsigned char c : text) {
    if (allow_whitespace && isBase64Whitespace(c)) continue;
    if (c == '=') {
      ++padding;
      if (padding > 2) return core::invalidArgument("input is not base64 (too much padding)");
      continue;
    }
    int v = base64Value(c);
    if (v < 0 || padding > 0) return core::invalidArgument("input is not base64");
    sym.push_back(v);
  }
  // Canonical padding: the symbols plus "=" form whole 4-character groups.
  if ((sym.size() + padding) % 4 != 0) return core::invalidArgument("input is not base64 (bad length or padding)");
  if (padding > 0 && sym.size() % 4 != 4 - padding) return core::invalidArgument("input is not base64 (bad padding)");
  std::string out;
  if (!decodeSymbols(sym, out)) return core::invalidArgument("input is not base64 (non-canonical final group)");
  return out;
}

std::string base64UrlEncode(std::string_view bytes) {
  std::string out = base64EncodeRaw(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    else if (c == '/') c = '_';
  }
  return out;
}

Result<std::string> base64UrlDecode(std::string_view text) {
  std::vector<int> sym;
  sym.reserve(text.size());
  for (unsigned char c : text) {
    int v = base64UrlValue(c);
    if (v < 0) return core::invalidArgument("input is not base64url");
    sym.push_back(v);
  }
  std::string out;
  if (!decodeSymbols(sym, out)) return core::invalidArgument("input is not base64url (bad length)");
  return out;
}

bool constantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string serialHex(X509* cert) {
  if (cert == nullptr) return {};
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) return {};
  OpenSslStringPtr hex(BN_bn2hex(bn.get()));
  if (!hex) return {};
  std::string out(hex.get());
  for (char& c : out) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string subjectKeyIdHex(X509* cert) {
  const ASN1_OCTET_STRING* id = cert != nullptr ? X509_get0_subject_key_id(cert) : nullptr;
  if (id == nullptr) return {};
  return hexEncode(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(id)),
                                    static_cast<size_t>(ASN1_STRING_length(id))));
}

std::string authorityKeyIdHex(X509* cert) {
  const ASN1_OCTET_STRING* id = cert != nullptr ? X509_get0_authority_key_id(cert) : nullptr;
  if (id == nullptr) return {};
  return hexEncode(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(id)),
                                    static_cast<size_t>(ASN1_STRING_length(id))));
}

std::vector<std::string> uriSans(X509* cert) { return sansOfType(cert, GEN_URI); }
std::vector<std::string> dnsSans(X509* cert) { return sansOfType(cert, GEN_DNS); }
std::vector<std::string> ipSans(X509* cert) { return sansOfType(cert, GEN_IPADD); }

std::string commonName(X509* cert) {
  if (cert == nullptr) return {};
  const X509_NAME* subject = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (idx < 0) return {};
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  OpenSslBytesPtr owned(utf8);
  if (len < 0) return {};
  return std::string(reinterpret_cast<const char*>(utf8), static_cast<size_t>(len));
}

SystemTime notAfter(X509* cert) { return asn1TimeToSystem(cert ? X509_get0_notAfter(cert) : nullptr); }
SystemTime notBefore(X509* cert) { return asn1TimeToSystem(cert ? X509_get0_notBefore(cert) : nullptr); }

const char* signingPropertyQuery(EVP_PKEY* key) {
  if (key == nullptr) return nullptr;
  const OSSL_PROVIDER* prov = EVP_PKEY_get0_provider(key);
  if (prov == nullptr) return nullptr;
  return std::string_view(OSSL_PROVIDER_get0_name(prov)) == "tpm2" ? "?tpm2.signature" : nullptr;
}

}  // namespace warden::crypto
