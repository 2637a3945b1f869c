#include "unit/trust/soft_tpm.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tctildr.h>

namespace warden::testing {

namespace {

bool canBind(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

int freePortPair() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    const int port = ntohs(addr.sin_port);
    if (port > 0 && port < 65535 && canBind(port) && canBind(port + 1)) return port;
  }
  return 0;
}

bool canConnect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

void writeText(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// run executes |command| with the shell, output into |dir|/cmd.log.
bool run(const std::string& dir, const std::string& command) {
  const std::string full = command + " >" + dir + "/cmd.log 2>&1";
  if (std::system(full.c_str()) == 0) return true;
  ADD_FAILURE() << command << " failed:\n" << readText(dir + "/cmd.log");
  return false;
}

}  // namespace

SoftTpm::SoftTpm(bool with_ek_cert) {
  char tmpl[] = "/tmp/warden-unit-tpm-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed";
    return;
  }
  dir_ = tmpl;
  std::filesystem::create_directories(dir_ + "/state");
  if (with_ek_cert && !setup()) return;
  startSwtpm();
}

SoftTpm::~SoftTpm() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

bool SoftTpm::setup() {
  const std::string localca = dir_ + "/localca";
  std::filesystem::create_directories(localca);
  writeText(dir_ + "/localca.conf", "statedir = " + localca + "\nsigningkey = " + localca +
                                        "/signkey.pem\nissuercert = " + localca + "/issuercert.pem\ncertserial = " +
                                        localca + "/certserial\n");
  writeText(dir_ + "/localca.options", "--platform-manufacturer Warden\n--platform-version 2.1\n--platform-model swtpm\n");
  writeText(dir_ + "/swtpm_setup.conf", "create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = " +
                                            dir_ + "/localca.conf\ncreate_certs_tool_options = " + dir_ +
                                            "/localca.options\n");
  return run(dir_, "swtpm_setup --tpm2 --tpmstate " + dir_ + "/state --create-ek-cert --create-platform-cert --config " +
                       dir_ + "/swtpm_setup.conf --overwrite");
}

bool SoftTpm::startSwtpm() {
  // The ports are free when picked but may be taken by a test running in
  // parallel before swtpm binds them: then try other ones.
  constexpr int kAttempts = 5;
  for (int attempt = 1;; ++attempt) {
    std::string log;
    switch (launchSwtpm(log)) {
      case Launch::kListening:
        return true;
      case Launch::kPortTaken:
        if (attempt < kAttempts) continue;
        [[fallthrough]];
      case Launch::kFailed:
        ADD_FAILURE() << log;
        return false;
    }
  }
}

SoftTpm::Launch SoftTpm::launchSwtpm(std::string& error) {
  port_ = freePortPair();
  if (port_ == 0) {
    error = "no two consecutive free ports";
    return Launch::kFailed;
  }
  const std::string server = "type=tcp,port=" + std::to_string(port_);
  const std::string ctrl = "type=tcp,port=" + std::to_string(port_ + 1);
  const std::string state = "dir=" + dir_ + "/state";
  const std::string log = dir_ + "/swtpm.log";
  pid_t pid = ::fork();
  if (pid == 0) {
    FILE* out = std::freopen(log.c_str(), "w", stdout);
    (void)out;
    ::dup2(STDOUT_FILENO, STDERR_FILENO);
    ::execlp("swtpm", "swtpm", "socket", "--tpm2", "--server", server.c_str(), "--ctrl", ctrl.c_str(), "--tpmstate",
             state.c_str(), "--flags", "not-need-init,startup-clear", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  pid_ = pid;
  for (int i = 0; i < 400; ++i) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      const std::string text = readText(log);
      error = "swtpm exited: " + text;
      return text.find("Address already in use") != std::string::npos ? Launch::kPortTaken : Launch::kFailed;
    }
    if (canConnect(port_)) return Launch::kListening;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  error = "swtpm does not listen on " + std::to_string(port_);
  return Launch::kFailed;
}

std::string SoftTpm::tcti() const { return "swtpm:host=127.0.0.1,port=" + std::to_string(port_); }

std::string SoftTpm::ekCaPem() const {
  return readText(dir_ + "/localca/issuercert.pem") + readText(dir_ + "/localca/swtpm-localca-rootca-cert.pem");
}

bool SoftTpm::reboot() {
  if (!run(dir_, "swtpm_ioctl --tcp 127.0.0.1:" + std::to_string(port_ + 1) + " -i")) return false;
  const std::string conf = tcti();
  TSS2_TCTI_CONTEXT* tcti_ctx = nullptr;
  ESYS_CONTEXT* ctx = nullptr;
  bool ok = Tss2_TctiLdr_Initialize(conf.c_str(), &tcti_ctx) == TSS2_RC_SUCCESS &&
            Esys_Initialize(&ctx, tcti_ctx, nullptr) == TSS2_RC_SUCCESS &&
            Esys_Startup(ctx, TPM2_SU_CLEAR) == TSS2_RC_SUCCESS;
  if (ctx != nullptr) Esys_Finalize(&ctx);
  if (tcti_ctx != nullptr) Tss2_TctiLdr_Finalize(&tcti_ctx);
  if (!ok) ADD_FAILURE() << "TPM2_Startup(CLEAR) after swtpm_ioctl -i failed";
  return ok;
}


namespace {

template <typename T>
std::string marshalTpm(const T& value, TSS2_RC (*fn)(const T*, uint8_t*, size_t, size_t*)) {
  std::string out(sizeof(T) + 16, '\0');
  size_t offset = 0;
  EXPECT_EQ(fn(&value, reinterpret_cast<uint8_t*>(out.data()), out.size(), &offset), TSS2_RC_SUCCESS);
  out.resize(offset);
  return out;
}

std::string derTlv(uint8_t tag, const std::string& contents) {
  std::string out(1, static_cast<char>(tag));
  if (contents.size() < 0x80) {
    out.push_back(static_cast<char>(contents.size()));
  } else if (contents.size() < 0x100) {
    out.push_back(static_cast<char>(0x81));
    out.push_back(static_cast<char>(contents.size()));
  } else {
    out.push_back(static_cast<char>(0x82));
    out.push_back(static_cast<char>(contents.size() >> 8));
    out.push_back(static_cast<char>(contents.size() & 0xff));
  }
  return out + contents;
}

}  // namespace

TpmKeys::TpmKeys(const std::string& tcti) {
  if (Tss2_TctiLdr_Initialize(tcti.c_str(), &tcti_) != TSS2_RC_SUCCESS ||
      Esys_Initialize(&ctx_, tcti_, nullptr) != TSS2_RC_SUCCESS) {
    ADD_FAILURE() << "cannot open " << tcti;
  }
}

TpmKeys::~TpmKeys() {
  if (ctx_ != nullptr) Esys_Finalize(&ctx_);
  if (tcti_ != nullptr) Tss2_TctiLdr_Finalize(&tcti_);
}

bool TpmKeys::makeSrk() {
  TPM2B_PUBLIC t{};
  t.publicArea.type = TPM2_ALG_ECC;
  t.publicArea.nameAlg = TPM2_ALG_SHA256;
  t.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                  TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED |
                                  TPMA_OBJECT_DECRYPT;
  t.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
  t.publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
  t.publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
  t.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
  t.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  t.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  const TPM2B_SENSITIVE_CREATE sensitive{};
  const TPM2B_DATA outside{};
  const TPML_PCR_SELECTION pcrs{};
  ESYS_TR primary = ESYS_TR_NONE;
  if (Esys_CreatePrimary(ctx_, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &t,
                         &outside, &pcrs, &primary, nullptr, nullptr, nullptr, nullptr) != TSS2_RC_SUCCESS) {
    return false;
  }
  ESYS_TR persistent = ESYS_TR_NONE;
  const TSS2_RC rc = Esys_EvictControl(ctx_, ESYS_TR_RH_OWNER, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                       kSrkHandle, &persistent);
  Esys_FlushContext(ctx_, primary);
  if (rc != TSS2_RC_SUCCESS) return false;
  Esys_TR_Close(ctx_, &persistent);
  return true;
}

KeyBlobs TpmKeys::makeKey(TPMA_OBJECT attributes) {
  TPM2B_PUBLIC t{};
  t.publicArea.type = TPM2_ALG_ECC;
  t.publicArea.nameAlg = TPM2_ALG_SHA256;
  t.publicArea.objectAttributes = attributes;
  t.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
  t.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
  t.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
  t.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
  ESYS_TR srk = ESYS_TR_NONE;
  EXPECT_EQ(Esys_TR_FromTPMPublic(ctx_, kSrkHandle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &srk), TSS2_RC_SUCCESS);
  const TPM2B_SENSITIVE_CREATE sensitive{};
  const TPM2B_DATA outside{};
  const TPML_PCR_SELECTION pcrs{};
  TPM2B_PRIVATE* priv = nullptr;
  TPM2B_PUBLIC* pub = nullptr;
  const TSS2_RC rc = Esys_Create(ctx_, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &t, &outside,
                                 &pcrs, &priv, &pub, nullptr, nullptr, nullptr);
  Esys_TR_Close(ctx_, &srk);
  EXPECT_EQ(rc, TSS2_RC_SUCCESS);
  KeyBlobs out;
  if (rc == TSS2_RC_SUCCESS) {
    out.key_public = marshalTpm(*pub, Tss2_MU_TPM2B_PUBLIC_Marshal);
    out.key_private = marshalTpm(*priv, Tss2_MU_TPM2B_PRIVATE_Marshal);
  }
  Esys_Free(priv);
  Esys_Free(pub);
  return out;
}

std::string tss2PrivateKeyPem(const KeyBlobs& key) {
  const std::string der =
      derTlv(0x30, derTlv(0x06, std::string("\x67\x81\x05\x0a\x01\x03", 6)) +
                       derTlv(0xa0, derTlv(0x01, std::string(1, '\x01'))) +
                       derTlv(0x02, std::string("\x00\x81\x00\x00\x01", 5)) + derTlv(0x04, key.key_public) +
                       derTlv(0x04, key.key_private));
  BIO* b64 = BIO_new(BIO_f_base64());
  BIO* mem = BIO_new(BIO_s_mem());
  BIO_push(b64, mem);
  BIO_write(b64, der.data(), static_cast<int>(der.size()));
  (void)BIO_flush(b64);
  char* data = nullptr;
  const long len = BIO_get_mem_data(mem, &data);
  std::string pem = "-----BEGIN TSS2 PRIVATE KEY-----\n" + std::string(data, static_cast<size_t>(len)) +
                    "-----END TSS2 PRIVATE KEY-----\n";
  BIO_free_all(b64);
  return pem;
}

}  // namespace warden::testing
