#pragma once

// posture.h: the posture engine of continuous verification (issue 6). It
// turns attestation results (from the verifier behind /attest/v1/evidence),
// the clock (deadlines) and behaviour (denials of a device's own
// authenticated sessions) into a posture, a trust score, and automatic
// quarantine and re-admission of the device's live sessions.
//
// Threading: every method runs on the server's io thread (one thread). Store
// writes go to the worker through PostureDeps::run_blocking, and changes
// reach the gateway through PostureDeps::publish_change, as the admin API's
// quarantine does. No Asio here: the server calls tick() every second.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/status.h"
#include "identity/fleet_state.h"
#include "monitor/event.h"
#include "policy/policy.h"
#include "store/store.h"
#include "trust/measurement.h"
#include "trust/trust_score.h"


namespace warden::monitor {
class EventLog;
}

namespace warden::trust {

// AttestationReport is the verifier's account of one piece of evidence.
struct AttestationReport {
  std::string device;  // device name (authenticated by mTLS)
  std::chrono::system_clock::time_point at;
  policy::AttestationAssurance assurance = policy::AttestationAssurance::kSoftware;  // kSoftware | kTpm
  bool ok = false;             // the evidence verified: nonce, signature, PCR replay, resetCount
  std::string reason, detail;  // when !ok: an attestation_failed reason (docs/attestation.md "Outcomes")
  std::string boot;            // "tpm:<resetCount>" or "sw:<boot_id>": a new value = a new log
  std::vector<Measurement> log;  // the (verified) measurement log
};

// PostureReply is the body of the answer to POST /attest/v1/evidence.
struct PostureReply {
  std::string result;  // "ok" | "failed"
  std::string reason;  // the attestation_failed reason, "" when ok
  std::string state;   // "healthy" | "suspect" | "quarantined"
  int trust = 0;
  std::optional<int64_t> next_due_s;  // the device's interval, or nullopt if no segment requires attestation
};

// AttestationPlan is what the policy asks of one device (merged over its
// segments: shortest interval and grace, strictest assurance).
struct AttestationPlan {
  bool required = false;
  std::chrono::seconds interval{0}, grace{0};
  std::optional<policy::AttestationAssurance> min_assurance;
};

// Quarantine reasons (docs/events.md). Every one but kReasonManual is automatic.
inline constexpr std::string_view kReasonAttestationFailed = "attestation_failed";
inline constexpr std::string_view kReasonStale = "stale";
inline constexpr std::string_view kReasonLowTrust = "low_trust";
inline constexpr std::string_view kReasonApprovalRevoked = "approval_revoked";
inline constexpr std::string_view kReasonManual = "manual";

// kMinQuarantine: re-admission waits at least this long (no flapping).
inline constexpr std::chrono::seconds kMinQuarantine{30};
// kActorTrust is the actor of automatic quarantine and re-admission events.
inline constexpr std::string_view kActorTrust = "trust";

// RevokeOutcome is what revoking a firmware approval does (or would do).
struct RevokeOutcome {
  std::vector<store::FirmwareApproval> revoked;  // empty on a dry run
  std::vector<std::string> devices;              // running the release (its digest in their last log)
  std::vector<std::string> would_quarantine;     // of those, the ones not quarantined yet
  bool applied = false;
};

struct PostureDeps {
  store::Store& store;
  monitor::EventLog& events;
  const core::Clock& clock;
  std::string trust_domain;
  TrustWeights weights;
  // run_blocking runs |work| on the worker thread, then |then| on the io thread.
  std::function<void(std::function<void()> work, std::function<void()> then)> run_blocking;
  // publish_change brings the decision snapshot up to date for |scope| and
  // re-evaluates its live sessions; |done| runs on the io thread after.
  std::function<void(identity::ChangeScope scope, std::function<void()> done)> publish_change;
  // current returns the policy and the fleet the gateway decides with now.
  std::function<std::pair<std::shared_ptr<const policy::Policy>, std::shared_ptr<const identity::FleetState>>()>
      current;
};

class PostureEngine {
 public:
  explicit PostureEngine(PostureDeps deps);
  PostureEngine(const PostureEngine&) = delete;
  PostureEngine& operator=(const PostureEngine&) = delete;

  // load reads the stored postures and firmware approvals. It blocks on the
  // store: call it once before the io thread runs. Everything starts one
  // grace period from now (a restarted server gives every device one).
  core::Status load();

  // plan returns what the current policy asks of |device| (required: false
  // for an unknown device or one outside every attestation segment).
  AttestationPlan plan(const std::string& device) const;

  // record judges |report| (if report.ok: every measurement against the
  // approved reference values for the device's `model` label ->
  // unapproved_firmware, and the plan's min_assurance ->
  // assurance_insufficient), stores the posture and the log, recomputes
  // trust, applies quarantine or re-admission and calls |done| on the io
  // thread with the reply once the change reached the device's live sessions.
  void record(const AttestationReport& report, std::function<void(PostureReply)> done);

  // tick applies deadlines, denial expiry and pending re-admissions at
  // |now|; the server calls it every second.
  void tick(core::SystemTime now);

  // noteDenial counts one deny decision of the gateway on a packet of
  // |device|'s own authenticated session (never a failure that merely names it).
  void noteDenial(const std::string& device);

  // operatorQuarantined records that an operator quarantined |device|
  // (reason manual); operatorReleased that an operator released it (every
  // reason cleared, one grace period from now, denials forgotten). Call both
  // after the state change committed.
  void operatorQuarantined(const std::string& device);
  void operatorReleased(const std::string& device);

  // approveFirmware stores |approval| (worker) and updates the reference
  // values; |done| gets Store::approveFirmware's answer on the io thread.
  void approveFirmware(store::FirmwareApproval approval, std::function<void(core::Result<bool>)> done);

  // revokeApproval re-judges postures: without |apply| it only says which
  // devices run |digest| (for |model| if given) and which it would
  // quarantine. With |apply| it revokes the approval in the store, marks
  // those devices firmware not approved with reason approval_revoked, and
  // calls |done| once they were quarantined. kNotFound if the digest is not
  // approved (for that model).
  void revokeApproval(const Digest& digest, std::optional<std::string> model, std::string actor, bool apply,
                      std::function<void(core::Result<RevokeOutcome>)> done);

  // describe returns the posture of |device| as `warden device show -o json`
  // prints it under "posture": state, reasons, last attestation, firmware,
  // deadlines, and every trust component with what it cost.
  nlohmann::json describe(const std::string& device) const;

  // stateOf returns "healthy", "suspect" or "quarantined" for |device|.
  std::string stateOf(const std::string& device) const;

  // trustOf returns |device|'s current trust score.
  int trustOf(const std::string& device) const;

 private:
  struct DeviceTrust {
    store::PostureRecord rec;
    std::vector<Measurement> log;
    std::deque<core::SystemTime> denials;
    core::SystemTime base{};  // deadlines start no earlier than this (first seen, start, release)
    bool known = false;       // seen in the fleet (base set)
    bool quarantined = false; // the engine's view of the device state
    std::string shown;        // the last state announced by an event ("" at first)
    bool dirty = false;       // rec differs from what is stored
    std::optional<store::DeviceState> move;  // state change to commit with rec
    bool publish = false;     // a value the policy reads changed
    std::vector<monitor::Event> pending_events;
    bool applying = false, again = false;
    std::vector<std::function<void()>> waiters;
  };

  struct Visible {
    int trust = 0;
    int firmware = -1;
    std::string assurance;
    int64_t last_good = 0;
    bool quarantined = false;
    bool operator==(const Visible&) const = default;
  };

  DeviceTrust& entryFor(const std::string& device, core::SystemTime now);
  AttestationPlan planFor(const policy::Policy* policy, const identity::DeviceEntry* entry) const;
  AttestationStanding standing(const DeviceTrust& d, const AttestationPlan& plan, core::SystemTime now) const;
  bool stale(const DeviceTrust& d, const AttestationPlan& plan, core::SystemTime now) const;
  bool overdue(const DeviceTrust& d, const AttestationPlan& plan, core::SystemTime now) const;
  core::SystemTime due(const DeviceTrust& d, const AttestationPlan& plan) const;
  void pruneDenials(DeviceTrust& d, core::SystemTime now) const;
  int trustNow(const DeviceTrust& d, const AttestationPlan& plan, core::SystemTime now) const;
  std::string stateNow(const DeviceTrust& d, const AttestationPlan& plan, core::SystemTime now) const;
  // evaluate brings |d| up to date at |now| (trust, reasons, quarantine or
  // re-admission, posture events) and marks what must be committed.
  void evaluate(const std::string& name, DeviceTrust& d, const AttestationPlan& plan, core::SystemTime now,
                const std::string& model);
  // flush commits |d|'s pending change (store, then gateway, then events)
  // and runs |after| once done; one commit per device at a time.
  void flush(const std::string& name, std::function<void()> after);
  void event(DeviceTrust& d, const std::string& name, std::string_view type, std::string reason,
             nlohmann::json detail);
  bool approved(const Digest& digest, const std::string& model) const;
  std::optional<std::string> versionOf(const Digest& digest, const std::string& model) const;
  Visible visible(const DeviceTrust& d) const;
  const identity::DeviceEntry* fleetEntry(const std::string& device, const policy::Policy** policy) const;

  PostureDeps deps_;
  core::SystemTime started_{};
  std::unordered_map<std::string, DeviceTrust> devices_;
  // Approved reference values: (digest text, model) -> version.
  std::map<std::pair<std::string, std::string>, std::string> approvals_;
};

}  // namespace warden::trust
