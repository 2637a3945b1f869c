#include "keystore/tss2_private_key.h"

#include <algorithm>

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "core/byte_reader.h"
#include "crypto/openssl_ptr.h"

namespace warden::keystore {

namespace {

using core::ByteReader;
using core::invalidArgument;
using core::Result;

constexpr uint8_t kTagBoolean = 0x01, kTagInteger = 0x02, kTagOctetString = 0x04, kTagOid = 0x06,
                  kTagSequence = 0x30;
// Context-specific, constructed: [n] EXPLICIT.
constexpr uint8_t kTagExplicit0 = 0xa0;
// id-loadablekey 2.23.133.10.1.3, DER contents.
constexpr uint8_t kLoadableKeyOid[] = {0x67, 0x81, 0x05, 0x0a, 0x01, 0x03};
// The largest field: a TPM2B_PRIVATE or TPM2B_PUBLIC is well under 2 KiB.
constexpr size_t kMaxBlobBytes = 4096;

// readTlv reads one DER element with a one-byte tag and a definite length
// of at most 3 length bytes; false if it does not fit in |reader|.
bool readTlv(ByteReader& reader, uint8_t& tag, ByteReader& contents) {
  uint8_t first = 0;
  if (!reader.readU8(tag) || !reader.readU8(first)) return false;
  size_t length = first;
  if (first & 0x80) {
    const size_t n = first & 0x7f;
    if (n == 0 || n > 3) return false;  // indefinite or absurd lengths
    length = 0;
    for (size_t i = 0; i < n; ++i) {
      uint8_t b = 0;
      if (!reader.readU8(b)) return false;
      if (i == 0 && b == 0) return false;  // DER: minimal length encoding
      length = (length << 8) | b;
    }
    if (length < 0x80) return false;
  }
  return reader.readSub(length, contents);
}

Result<std::string> tpm2bBlob(ByteReader& seq, std::string_view what) {
  uint8_t tag = 0;
  ByteReader contents;
  if (!readTlv(seq, tag, contents) || tag != kTagOctetString) {
    return invalidArgument(fmt::format("TSS2 PRIVATE KEY: '{}' is not an OCTET STRING", what));
  }
  if (contents.remaining() < 3 || contents.remaining() > kMaxBlobBytes) {
    return invalidArgument(fmt::format("TSS2 PRIVATE KEY: '{}' has {} bytes", what, contents.remaining()));
  }
  // The blob is a TPM2B: a big-endian size, then exactly that many bytes.
  ByteReader peek = contents;
  uint16_t size = 0;
  if (!peek.readU16(size) || size == 0 || size != peek.remaining()) {
    return invalidArgument(fmt::format("TSS2 PRIVATE KEY: '{}' is not a TPM2B (its size prefix does not match)", what));
  }
  return std::string(core::asStringView(contents.rest()));
}

}  // namespace

Result<Tss2PrivateKey> parseTss2PrivateKeyDer(std::string_view der) {
  ByteReader outer(reinterpret_cast<const uint8_t*>(der.data()), der.size());
  uint8_t tag = 0;
  ByteReader seq;
  if (!readTlv(outer, tag, seq) || tag != kTagSequence || !outer.empty()) {
    return invalidArgument("TSS2 PRIVATE KEY: not one DER SEQUENCE");
  }
  ByteReader field;
  if (!readTlv(seq, tag, field) || tag != kTagOid) return invalidArgument("TSS2 PRIVATE KEY: no key type OID");
  const auto oid = field.rest();
  if (oid.size() != sizeof(kLoadableKeyOid) || !std::equal(oid.begin(), oid.end(), kLoadableKeyOid)) {
    return invalidArgument("TSS2 PRIVATE KEY: the key type is not id-loadablekey (2.23.133.10.1.3)");
  }
  // Optional [0]..[5], in order, then parent.
  int last_option = -1;
  for (;;) {
    uint8_t next = 0;
    if (!seq.peekU8(next)) return invalidArgument("TSS2 PRIVATE KEY: truncated before 'parent'");
    if ((next & 0xe0) != kTagExplicit0) break;
    const int option = next & 0x1f;
    if (option <= last_option || option > 5) {
      return invalidArgument(fmt::format("TSS2 PRIVATE KEY: unexpected optional field [{}]", option));
    }
    last_option = option;
    ByteReader explicit_contents;
    if (!readTlv(seq, tag, explicit_contents)) return invalidArgument("TSS2 PRIVATE KEY: truncated optional field");
    if (option == 0) {
      ByteReader value;
      uint8_t b = 0;
      if (!readTlv(explicit_contents, tag, value) || tag != kTagBoolean || !explicit_contents.empty() ||
          !value.readU8(b) || !value.empty()) {
        return invalidArgument("TSS2 PRIVATE KEY: 'emptyAuth' is not a BOOLEAN");
      }
      // tpm2-openssl writes TRUE as 0x01 (BER), not DER's 0xff: any non-zero is TRUE.
      if (b == 0) {
        return invalidArgument("TSS2 PRIVATE KEY: the key has an authorization value (emptyAuth FALSE); only keys "
                               "without one are supported");
      }
    } else if (option >= 1 && option <= 3) {
      return invalidArgument(fmt::format(
          "TSS2 PRIVATE KEY: the key carries a {} ([{}]), which this agent cannot satisfy",
          option == 1 ? "policy" : option == 2 ? "secret" : "authPolicy", option));
    }
    // [4] description and [5] rsaParent say nothing needed here.
  }
  if (!readTlv(seq, tag, field) || tag != kTagInteger) return invalidArgument("TSS2 PRIVATE KEY: 'parent' is not an INTEGER");
  uint8_t b = 0;
  if (field.remaining() == 0 || field.remaining() > 5 || !field.peekU8(b) || (b & 0x80) != 0 ||
      (field.remaining() == 5 && b != 0)) {
    return invalidArgument("TSS2 PRIVATE KEY: 'parent' is not a 32-bit handle");
  }
  uint32_t parent = 0;
  while (field.readU8(b)) parent = (parent << 8) | b;
  if ((parent >> 24) != 0x81) {
    return invalidArgument(fmt::format(
        "TSS2 PRIVATE KEY: the parent 0x{:08x} is not a persistent handle (0x81xxxxxx)", parent));
  }
  Tss2PrivateKey out;
  out.parent = parent;
  WARDEN_ASSIGN_OR_RETURN(out.key_public, tpm2bBlob(seq, "pubkey"));
  WARDEN_ASSIGN_OR_RETURN(out.key_private, tpm2bBlob(seq, "privkey"));
  if (!seq.empty()) return invalidArgument("TSS2 PRIVATE KEY: bytes after 'privkey'");
  return out;
}

Result<Tss2PrivateKey> parseTss2PrivateKeyPem(std::string_view pem) {
  if (pem.size() > kMaxTss2PemBytes) {
    return invalidArgument(fmt::format("TSS2 PRIVATE KEY: larger than {} bytes", kMaxTss2PemBytes));
  }
  crypto::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  const int ok = bio ? PEM_read_bio(bio.get(), &name, &header, &data, &len) : 0;
  crypto::OpenSslBytesPtr owned_data(data);
  const std::string pem_name = name != nullptr ? name : "";
  OPENSSL_free(name);
  OPENSSL_free(header);
  ERR_clear_error();
  if (ok != 1 || len <= 0) return invalidArgument("TSS2 PRIVATE KEY: not a PEM block");
  if (pem_name != "TSS2 PRIVATE KEY") {
    return invalidArgument(fmt::format("the PEM block is a '{}', not a TSS2 PRIVATE KEY", pem_name.substr(0, 64)));
  }
  return parseTss2PrivateKeyDer(std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(len)));
}

}  // namespace warden::keystore
