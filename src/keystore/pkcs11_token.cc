#include "keystore/pkcs11_token.h"

#include <dlfcn.h>

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#define CRYPTOKI_GNU 1
#include <p11-kit/pkcs11.h>

#include "crypto/crypto.h"

namespace warden::keystore {
namespace {

using core::Result;
using core::Status;

// DER of the OID prime256v1 (1.2.840.10045.3.1.7): CKA_EC_PARAMS.
constexpr unsigned char kP256Params[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

std::string rvName(ck_rv_t rv) {
  switch (rv) {
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    case CKR_TOKEN_WRITE_PROTECTED: return "CKR_TOKEN_WRITE_PROTECTED";
    case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
    case CKR_ATTRIBUTE_VALUE_INVALID: return "CKR_ATTRIBUTE_VALUE_INVALID";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_DEVICE_MEMORY: return "CKR_DEVICE_MEMORY";
    default: return fmt::format("CKR 0x{:x}", rv);
  }
}

// field returns a blank-padded CK_TOKEN_INFO field without the padding.
std::string field(const unsigned char* p, size_t n) {
  std::string s(reinterpret_cast<const char*>(p), n);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

struct Attr {
  ck_attribute_type_t type;
  const void* value;
  unsigned long len;
};

std::vector<struct ck_attribute> makeTemplate(std::initializer_list<Attr> attrs) {
  std::vector<struct ck_attribute> out;
  for (const Attr& a : attrs) {
    struct ck_attribute x {};
    x.type = a.type;
    x.value = const_cast<void*>(a.value);  // PKCS#11 takes non-const pointers it does not write for templates
    x.value_len = a.len;
    out.push_back(x);
  }
  return out;
}

}  // namespace

struct Pkcs11Token::Impl {
  void* lib = nullptr;
  struct ck_function_list* fl = nullptr;
  bool finalize = false;
  ck_session_handle_t session = 0;
  bool session_open = false;

  ~Impl() {
    if (session_open) fl->C_CloseSession(session);
    if (finalize) fl->C_Finalize(nullptr);
    // The module stays loaded: libp11's engine may share it (dlopen counts).
    if (lib != nullptr) ::dlclose(lib);
  }

  // findObjects returns the handles of objects matching |tmpl| (at most 16).
  Result<std::vector<ck_object_handle_t>> findObjects(std::vector<struct ck_attribute>& tmpl) {
    ck_rv_t rv = fl->C_FindObjectsInit(session, tmpl.data(), tmpl.size());
    if (rv != CKR_OK) return core::internalError("C_FindObjectsInit failed: " + rvName(rv));
    std::vector<ck_object_handle_t> found(16);
    unsigned long count = 0;
    rv = fl->C_FindObjects(session, found.data(), found.size(), &count);
    fl->C_FindObjectsFinal(session);
    if (rv != CKR_OK) return core::internalError("C_FindObjects failed: " + rvName(rv));
    found.resize(count);
    return found;
  }

  Result<std::vector<ck_object_handle_t>> findPrivateKeys(const std::string& label, const std::string& id) {
    ck_object_class_t cls = CKO_PRIVATE_KEY;
    std::vector<struct ck_attribute> tmpl = makeTemplate({{CKA_CLASS, &cls, sizeof cls}});
    if (!label.empty()) tmpl.push_back(makeTemplate({{CKA_LABEL, label.data(), label.size()}})[0]);
    if (!id.empty()) tmpl.push_back(makeTemplate({{CKA_ID, id.data(), id.size()}})[0]);
    return findObjects(tmpl);
  }
};

Pkcs11Token::Pkcs11Token(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pkcs11Token::~Pkcs11Token() = default;

Result<std::unique_ptr<Pkcs11Token>> Pkcs11Token::open(const std::string& module_path, const Pkcs11Uri& uri,
                                                      const std::string& pin) {
  auto impl = std::make_unique<Impl>();
  impl->lib = ::dlopen(module_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (impl->lib == nullptr) {
    return core::failedPrecondition(fmt::format("cannot load the PKCS#11 module {}: {}", module_path, ::dlerror()));
  }
  using GetFunctionList = ck_rv_t (*)(struct ck_function_list**);
  auto get = reinterpret_cast<GetFunctionList>(::dlsym(impl->lib, "C_GetFunctionList"));
  if (get == nullptr || get(&impl->fl) != CKR_OK || impl->fl == nullptr) {
    return core::failedPrecondition(fmt::format("{} is not a PKCS#11 module (no C_GetFunctionList)", module_path));
  }
  struct ck_c_initialize_args args {};
  args.flags = CKF_OS_LOCKING_OK;
  ck_rv_t rv = impl->fl->C_Initialize(&args);
  if (rv == CKR_OK) {
    impl->finalize = true;
  } else if (rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    return core::failedPrecondition(fmt::format("PKCS#11 module {}: C_Initialize failed: {}", module_path, rvName(rv)));
  }

  unsigned long n = 0;
  rv = impl->fl->C_GetSlotList(1, nullptr, &n);
  if (rv != CKR_OK) return core::failedPrecondition("C_GetSlotList failed: " + rvName(rv));
  std::vector<ck_slot_id_t> slots(std::min<unsigned long>(n, 256));
  n = slots.size();
  rv = impl->fl->C_GetSlotList(1, slots.data(), &n);
  if (rv != CKR_OK) return core::failedPrecondition("C_GetSlotList failed: " + rvName(rv));
  slots.resize(std::min<unsigned long>(n, slots.size()));
  std::vector<ck_slot_id_t> matches;
  for (ck_slot_id_t slot : slots) {
    struct ck_token_info info {};
    if (impl->fl->C_GetTokenInfo(slot, &info) != CKR_OK) continue;
    if (uri.slot_id && *uri.slot_id != slot) continue;
    if (!uri.token.empty() && field(info.label, sizeof info.label) != uri.token) continue;
    if (!uri.manufacturer.empty() && field(info.manufacturer_id, sizeof info.manufacturer_id) != uri.manufacturer) {
      continue;
    }
    if (!uri.serial.empty() && field(info.serial_number, sizeof info.serial_number) != uri.serial) continue;
    if (!uri.model.empty() && field(info.model, sizeof info.model) != uri.model) continue;
    matches.push_back(slot);
  }
  if (matches.empty()) {
    return core::notFound(fmt::format("no token matching {} in {}: check token= (softhsm2-util --show-slots / "
                                      "pkcs11-tool --list-slots)",
                                      uri.pathOnly(), module_path));
  }
  if (matches.size() > 1) {
    return core::invalidArgument(
        fmt::format("{} matches {} tokens in {}; add token= or serial= to the URI", uri.pathOnly(), matches.size(),
                    module_path));
  }
  rv = impl->fl->C_OpenSession(matches.front(), CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                               &impl->session);
  if (rv != CKR_OK) return core::failedPrecondition("C_OpenSession failed: " + rvName(rv));
  impl->session_open = true;
  if (!pin.empty()) {
    std::string copy = pin;
    rv = impl->fl->C_Login(impl->session, CKU_USER, reinterpret_cast<unsigned char*>(copy.data()), copy.size());
    std::fill(copy.begin(), copy.end(), '\0');
    if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE) {
      return core::permissionDenied(
          fmt::format("the token {} refused the PIN from the pin-source file ({})", uri.pathOnly(), rvName(rv)));
    }
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) return core::failedPrecondition("C_Login failed: " + rvName(rv));
  }
  return std::unique_ptr<Pkcs11Token>(new Pkcs11Token(std::move(impl)));
}

Result<std::string> Pkcs11Token::generateEcKeyPair(const Pkcs11Uri& uri) {
  if (uri.object.empty()) {
    return core::invalidArgument("generating a key in a token needs object=LABEL in the PKCS#11 URI");
  }
  WARDEN_ASSIGN_OR_RETURN(auto by_label, impl_->findPrivateKeys(uri.object, ""));
  if (!by_label.empty()) {
    return core::alreadyExists(
        fmt::format("the token already holds a private key labelled '{}'; use it without --*-generate, or pick "
                    "another object=",
                    uri.object));
  }
  std::string id = uri.id.empty() ? crypto::randomBytes(16) : uri.id;
  WARDEN_ASSIGN_OR_RETURN(auto by_id, impl_->findPrivateKeys("", id));
  if (!by_id.empty()) return core::alreadyExists("the token already holds a private key with that id=");

  unsigned char yes = 1, no = 0;
  ck_key_type_t key_type = CKK_EC;
  ck_object_class_t pub_class = CKO_PUBLIC_KEY, priv_class = CKO_PRIVATE_KEY;
  auto pub = makeTemplate({{CKA_CLASS, &pub_class, sizeof pub_class},
                           {CKA_KEY_TYPE, &key_type, sizeof key_type},
                           {CKA_TOKEN, &yes, 1},
                           {CKA_PRIVATE, &no, 1},
                           {CKA_VERIFY, &yes, 1},
                           {CKA_EC_PARAMS, kP256Params, sizeof kP256Params},
                           {CKA_LABEL, uri.object.data(), uri.object.size()},
                           {CKA_ID, id.data(), id.size()}});
  auto priv = makeTemplate({{CKA_CLASS, &priv_class, sizeof priv_class},
                            {CKA_KEY_TYPE, &key_type, sizeof key_type},
                            {CKA_TOKEN, &yes, 1},
                            {CKA_PRIVATE, &yes, 1},
                            {CKA_SENSITIVE, &yes, 1},
                            {CKA_EXTRACTABLE, &no, 1},
                            {CKA_SIGN, &yes, 1},
                            {CKA_DERIVE, &no, 1},
                            {CKA_DECRYPT, &no, 1},
                            {CKA_LABEL, uri.object.data(), uri.object.size()},
                            {CKA_ID, id.data(), id.size()}});
  struct ck_mechanism mech {};
  mech.mechanism = CKM_EC_KEY_PAIR_GEN;
  ck_object_handle_t pub_handle = 0, priv_handle = 0;
  ck_rv_t rv = impl_->fl->C_GenerateKeyPair(impl_->session, &mech, pub.data(), pub.size(), priv.data(), priv.size(),
                                            &pub_handle, &priv_handle);
  if (rv == CKR_USER_NOT_LOGGED_IN) {
    return core::permissionDenied("the token needs a login to create a key: add ?pin-source=file:/path (0600) to the URI");
  }
  if (rv != CKR_OK) return core::failedPrecondition("C_GenerateKeyPair (EC P-256) failed: " + rvName(rv));
  // Check what the token did rather than what we asked for.
  Pkcs11Uri created = uri;
  created.id = id;
  WARDEN_ASSIGN_OR_RETURN(Pkcs11KeyProtection p, protection(created));
  if (!p.sensitive || p.extractable) {
    return core::failedPrecondition("the token created the key but reports it extractable or not sensitive; refusing "
                                    "to use it (destroy object '" + uri.object + "')");
  }
  return id;
}

Result<Pkcs11KeyProtection> Pkcs11Token::protection(const Pkcs11Uri& uri) {
  WARDEN_ASSIGN_OR_RETURN(auto keys, impl_->findPrivateKeys(uri.object, uri.id));
  if (keys.empty()) return core::notFound(fmt::format("no private key matching {} in the token", uri.pathOnly()));
  if (keys.size() > 1) return core::invalidArgument(fmt::format("{} matches several private keys", uri.pathOnly()));
  unsigned char sensitive = 0, extractable = 1, always = 0, never = 0, local = 0;
  auto tmpl = makeTemplate({{CKA_SENSITIVE, &sensitive, 1},
                            {CKA_EXTRACTABLE, &extractable, 1},
                            {CKA_ALWAYS_SENSITIVE, &always, 1},
                            {CKA_NEVER_EXTRACTABLE, &never, 1},
                            {CKA_LOCAL, &local, 1}});
  ck_rv_t rv = impl_->fl->C_GetAttributeValue(impl_->session, keys.front(), tmpl.data(), tmpl.size());
  if (rv != CKR_OK) return core::failedPrecondition("C_GetAttributeValue failed: " + rvName(rv));
  Pkcs11KeyProtection p;
  p.sensitive = sensitive != 0;
  p.extractable = extractable != 0;
  p.always_sensitive = always != 0;
  p.never_extractable = never != 0;
  p.local = local != 0;
  return p;
}

}  // namespace warden::keystore
