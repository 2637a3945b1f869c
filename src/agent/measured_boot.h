#pragma once

// measured_boot.h: the agent's measured boot, simulated faithfully
// (docs/attestation.md, "Agent"). The firmware image is measured into PCR 10
// (SHA-256 bank) when the agent starts on a fresh boot and whenever the
// image's digest changes; every extend is appended to a log kept in the
// agent directory with the TPM's resetCount, so an agent restart without a
// TPM reset resumes the same log. Without a TPM the same log is kept in
// memory with a random boot_id: each agent start is a boot.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "trust/measurement.h"

namespace warden::agent {

class TpmAttestor;

// MeasurementLogFile is A/attestation-log.json:
// {"reset_count": N, "log": [{pcr, digest, type, name}, ...]}.
struct MeasurementLogFile {
  uint32_t reset_count = 0;
  std::vector<trust::Measurement> entries;
};

// loadMeasurementLog reads |path|; nullopt if it does not exist,
// kDataLoss naming the file if it is malformed.
core::Result<std::optional<MeasurementLogFile>> loadMeasurementLog(const std::string& path);
// saveMeasurementLog writes |log| to |path| atomically (0600).
core::Status saveMeasurementLog(const std::string& path, const MeasurementLogFile& log);

// measureFile returns the SHA-256 of the file at |path| (read in chunks, no
// size limit); kNotFound / kFailedPrecondition naming it otherwise.
core::Result<trust::Digest> measureFile(const std::string& path);

class MeasuredBoot {
 public:
  // start begins or resumes the log. With |tpm|: if the TPM's resetCount
  // equals the one in |log_path|, the log is resumed (an agent restart), and
  // |firmware| is measured again only if its digest differs from the last
  // entry's; otherwise it is a boot: a new log, and |firmware| is measured.
  // Without |tpm| (software assurance): a new log with a new random boot_id
  // and nothing written to disk. An empty |firmware| measures nothing.
  static core::Result<std::unique_ptr<MeasuredBoot>> start(std::string log_path, TpmAttestor* tpm,
                                                           std::string firmware);

  // refresh measures the firmware again and, if its digest changed since the
  // last entry, extends PCR 10 and appends it. Extends cannot be undone: an
  // image that was once measured stays in the log until the next boot.
  // Returns whether an entry was added.
  core::Result<bool> refresh();

  const std::vector<trust::Measurement>& log() const { return log_.entries; }
  // bootId is the software boot's random 32 hex characters ("" with a TPM).
  const std::string& bootId() const { return boot_id_; }
  // resumed reports whether start() continued an earlier log of this boot.
  bool resumed() const { return resumed_; }

 private:
  MeasuredBoot(std::string log_path, TpmAttestor* tpm, std::string firmware)
      : log_path_(std::move(log_path)), tpm_(tpm), firmware_(std::move(firmware)) {}
  core::Status append(const trust::Digest& digest);

  std::string log_path_;
  TpmAttestor* tpm_;
  std::string firmware_;
  MeasurementLogFile log_;
  std::string boot_id_;
  bool resumed_ = false;
};

}  // namespace warden::agent
