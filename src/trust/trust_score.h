#pragma once

// trust_score.h: the trust score formula (docs/attestation.md, "Posture and
// trust") and its weights (`trust:` in warden.yaml). Pure functions, no I/O.

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace warden::trust {

// TrustWeights are the configurable weights and thresholds, with the
// defaults of issue 6.
struct TrustWeights {
  int tpm_healthy = 100;      // last good attestation by TPM quote, not stale
  int software_healthy = 80;  // last good attestation by signed log (caps trust)
  int never_attested = 50;
  int stale = 30;             // past deadline + grace
  int failed = 0;             // the last attestation failed, or the firmware's approval was revoked
  int denial_cost = 1;        // per denial of the device's own authenticated sessions
  int denial_max = 20;        // at most this much in total
  std::chrono::seconds denial_window{600};
  int quarantine_below = 40;  // trust under this quarantines (low_trust)
  bool readmission_auto = true;  // false: `trust.readmission: manual`

  // suspectBelow: trust under threshold + 10 is the warning band (suspect),
  // and re-admission needs at least this much.
  int suspectBelow() const { return quarantine_below + 10; }
};

// AttestationStanding is what the attestation history says, before behaviour.
enum class AttestationStanding { kNeverAttested, kHealthyTpm, kHealthySoftware, kStale, kFailed };

// attestationStandingName: "never_attested", "tpm_healthy", "software_healthy", "stale", "failed".
inline const char* attestationStandingName(AttestationStanding s) {
  switch (s) {
    case AttestationStanding::kNeverAttested: return "never_attested";
    case AttestationStanding::kHealthyTpm: return "tpm_healthy";
    case AttestationStanding::kHealthySoftware: return "software_healthy";
    case AttestationStanding::kStale: return "stale";
    case AttestationStanding::kFailed: return "failed";
  }
  return "failed";
}

// TrustComponent is one term of the score and what it cost (100 - score of
// the whole is the sum of the costs).
struct TrustComponent {
  std::string name;    // "attestation" | "denials"
  std::string value;   // the standing, or the number of denials in the window
  int cost = 0;
};

struct TrustScore {
  int value = 0;  // 0-100
  std::vector<TrustComponent> components;
};

// computeTrust is THE formula:
//   trust = clamp(base(standing) - min(denials * denial_cost, denial_max), 0, 100)
// where base is the weight of the standing (tpm_healthy 100, software_healthy
// 80, never_attested 50, stale 30, failed 0 by default).
inline TrustScore computeTrust(AttestationStanding standing, int denials, const TrustWeights& w) {
  int base = w.failed;
  switch (standing) {
    case AttestationStanding::kNeverAttested: base = w.never_attested; break;
    case AttestationStanding::kHealthyTpm: base = w.tpm_healthy; break;
    case AttestationStanding::kHealthySoftware: base = w.software_healthy; break;
    case AttestationStanding::kStale: base = w.stale; break;
    case AttestationStanding::kFailed: base = w.failed; break;
  }
  base = std::clamp(base, 0, 100);
  const int denial_cost = std::min(std::max(denials, 0) * w.denial_cost, w.denial_max);
  TrustScore score;
  score.value = std::clamp(base - denial_cost, 0, 100);
  score.components.push_back({"attestation", attestationStandingName(standing), 100 - base});
  score.components.push_back({"denials", std::to_string(std::max(denials, 0)), denial_cost});
  return score;
}

}  // namespace warden::trust
