#include "agent/measured_boot.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "agent/tpm_attestor.h"
#include "core/file_io.h"
#include "core/log.h"
#include "crypto/crypto.h"
#include "trust/evidence.h"

namespace warden::agent {

namespace {

using core::Result;
using core::Status;

constexpr uint32_t kPcr = 10;
// The log file holds at most kMaxLogEntries entries of ~400 bytes.
constexpr size_t kMaxLogFileBytes = 1024 * 1024;

// imageName is the log entry's informative name: the file's base name in
// printable ASCII (a file name's bytes need not be UTF-8, JSON's must be).
std::string imageName(const std::string& path) {
  std::string name = std::filesystem::path(path).filename().string();
  if (name.size() > trust::kMaxMeasurementNameBytes) name.resize(trust::kMaxMeasurementNameBytes);
  for (char& c : name) {
    if (c < 0x20 || c > 0x7e) c = '_';
  }
  return name;
}

}  // namespace

Result<std::optional<MeasurementLogFile>> loadMeasurementLog(const std::string& path) {
  auto text = core::readFile(path, kMaxLogFileBytes);
  if (!text.isOk()) {
    if (text.status().code() == core::ErrorCode::kNotFound) return std::optional<MeasurementLogFile>();
    return text.status();
  }
  nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](std::string_view why) {
    return core::dataLoss(fmt::format("{}: {}; remove it to start a new measurement log at the next boot", path, why));
  };
  if (doc.is_discarded() || !doc.is_object()) return bad("not a JSON object");
  auto reset = doc.find("reset_count");
  if (reset == doc.end() || !reset->is_number_unsigned() || reset->get<uint64_t>() > UINT32_MAX) {
    return bad("'reset_count' is not a 32-bit unsigned number");
  }
  auto log = doc.find("log");
  if (log == doc.end()) return bad("'log' is missing");
  auto entries = trust::parseLog(*log);
  if (!entries.isOk()) return bad(entries.status().message());
  MeasurementLogFile out;
  out.reset_count = reset->get<uint32_t>();
  out.entries = std::move(entries).value();
  return std::optional<MeasurementLogFile>(std::move(out));
}

Status saveMeasurementLog(const std::string& path, const MeasurementLogFile& log) {
  const nlohmann::json doc = {{"reset_count", log.reset_count}, {"log", trust::logToJson(log.entries)}};
  return core::writeFileAtomic(path, doc.dump(2) + "\n", 0600);
}

Result<trust::Digest> measureFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int err = errno;
    const std::string msg = fmt::format("cannot read the firmware image {}: {}", path, std::strerror(err));
    return err == ENOENT ? core::notFound(msg) : core::failedPrecondition(msg);
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(f, std::fclose);
  crypto::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex2(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return core::internalError("SHA-256 initialization failed");
  }
  std::vector<unsigned char> buffer(64 * 1024);
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), f)) > 0) {
    if (EVP_DigestUpdate(ctx.get(), buffer.data(), n) != 1) return core::internalError("SHA-256 update failed");
  }
  if (std::ferror(f)) return core::failedPrecondition(fmt::format("reading the firmware image {} failed", path));
  trust::Digest digest{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest.data(), &len) != 1 || len != digest.size()) {
    return core::internalError("SHA-256 finalization failed");
  }
  return digest;
}

Result<std::unique_ptr<MeasuredBoot>> MeasuredBoot::start(std::string log_path, TpmAttestor* tpm,
                                                          std::string firmware) {
  std::unique_ptr<MeasuredBoot> boot(new MeasuredBoot(std::move(log_path), tpm, std::move(firmware)));
  if (tpm == nullptr) {
    boot->boot_id_ = crypto::hexEncode(crypto::randomBytes(16));
  } else {
    WARDEN_ASSIGN_OR_RETURN(uint32_t reset_count, tpm->resetCount());
    WARDEN_ASSIGN_OR_RETURN(std::optional<MeasurementLogFile> saved, loadMeasurementLog(boot->log_path_));
    std::optional<trust::Digest> pcr;
    if (saved && saved->reset_count == reset_count) {
      WARDEN_ASSIGN_OR_RETURN(pcr, tpm->readPcr(kPcr));
      // The same resetCount on another (or a re-manufactured) TPM: a PCR
      // still at its reset value with a non-empty log is a new boot.
      if (*pcr == trust::Digest{} && !saved->entries.empty()) saved.reset();
    }
    if (saved && saved->reset_count == reset_count) {
      boot->log_ = std::move(*saved);
      boot->resumed_ = true;
      if (*pcr != trust::replayPcr(boot->log_.entries, kPcr)) {
        // An extend whose log entry was not saved (a crash in between) is
        // the one case that can be repaired: the current image completes it.
        std::optional<trust::Digest> current;
        if (!boot->firmware_.empty()) {
          auto measured = measureFile(boot->firmware_);
          if (measured.isOk()) current = *measured;
        }
        auto repaired = boot->log_.entries;
        if (current) repaired.push_back(trust::Measurement{kPcr, *current, "firmware", imageName(boot->firmware_)});
        if (current && trust::replayPcr(repaired, kPcr) == *pcr) {
          boot->log_.entries = std::move(repaired);
          WARDEN_RETURN_IF_ERROR(saveMeasurementLog(boot->log_path_, boot->log_));
          spdlog::warn("{}: completed the log with the last extend of PCR {}", boot->log_path_, kPcr);
        } else {
          spdlog::warn("{}: PCR {} does not replay the log of this boot (something else extended it); attestation "
                       "will fail until the next boot",
                       boot->log_path_, kPcr);
        }
      }
      spdlog::info("resuming the measurement log of this boot (resetCount {}, {} entries)", reset_count,
                   boot->log_.entries.size());
    } else {
      boot->log_.reset_count = reset_count;
      WARDEN_RETURN_IF_ERROR(saveMeasurementLog(boot->log_path_, boot->log_));
      spdlog::info("new boot (resetCount {}): new measurement log {}", reset_count, boot->log_path_);
    }
  }
  if (!boot->firmware_.empty()) {
    WARDEN_ASSIGN_OR_RETURN(bool added, boot->refresh());
    (void)added;
  }
  return boot;
}

Result<bool> MeasuredBoot::refresh() {
  if (firmware_.empty()) return false;
  WARDEN_ASSIGN_OR_RETURN(trust::Digest digest, measureFile(firmware_));
  if (!log_.entries.empty() && log_.entries.back().digest == digest) return false;
  if (log_.entries.size() >= trust::kMaxLogEntries) {
    return core::resourceExhausted(fmt::format(
        "the measurement log holds {} entries, the most a verifier accepts; reboot to start a new one",
        log_.entries.size()));
  }
  WARDEN_RETURN_IF_ERROR(append(digest));
  spdlog::info("measured {} into PCR {}: {}", firmware_, kPcr, trust::digestText(digest));
  return true;
}

Status MeasuredBoot::append(const trust::Digest& digest) {
  // The PCR first: it is the truth the log must replay. A crash between the
  // two is repaired by start() (see there).
  if (tpm_ != nullptr) WARDEN_RETURN_IF_ERROR(tpm_->extendPcr(kPcr, digest));
  log_.entries.push_back(trust::Measurement{kPcr, digest, "firmware", imageName(firmware_)});
  if (tpm_ != nullptr) WARDEN_RETURN_IF_ERROR(saveMeasurementLog(log_path_, log_));
  return Status::ok();
}

}  // namespace warden::agent
