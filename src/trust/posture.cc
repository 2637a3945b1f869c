#include "trust/posture.h"

#include <algorithm>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/spiffe_id.h"
#include "monitor/event.h"
#include "monitor/event_log.h"

namespace warden::trust {
namespace {

namespace er = monitor::reason;

constexpr size_t kMaxDetail = 512;

const char* assuranceName(policy::AttestationAssurance a) {
  switch (a) {
    case policy::AttestationAssurance::kTpm: return "tpm";
    case policy::AttestationAssurance::kSoftware: return "software";
    case policy::AttestationAssurance::kNone: return "";
  }
  return "";
}

int64_t secondsOf(core::SystemTime t) { return core::unixSeconds(t); }

nlohmann::json logToJson(const std::vector<Measurement>& log) {
  nlohmann::json out = nlohmann::json::array();
  for (const Measurement& m : log) {
    out.push_back({{"pcr", m.pcr}, {"digest", digestText(m.digest)}, {"type", m.type}, {"name", m.name}});
  }
  return out;
}

// logFromJson reads a stored log back; entries that do not parse are skipped
// (the store only ever holds what logToJson wrote).
std::vector<Measurement> logFromJson(const std::string& text) {
  std::vector<Measurement> out;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_array()) return out;
  for (const auto& e : j) {
    if (!e.is_object()) continue;
    auto digest = e.find("digest");
    if (digest == e.end() || !digest->is_string()) continue;
    auto parsed = parseDigestText(digest->get<std::string>());
    if (!parsed) continue;
    Measurement m;
    m.digest = *parsed;
    if (auto p = e.find("pcr"); p != e.end() && p->is_number_unsigned()) m.pcr = p->get<uint32_t>();
    if (auto t = e.find("type"); t != e.end() && t->is_string()) m.type = t->get<std::string>();
    if (auto n = e.find("name"); n != e.end() && n->is_string()) m.name = n->get<std::string>();
    out.push_back(std::move(m));
  }
  return out;
}

// primaryReason orders reasons for the event's `reason` field: the most
// specific automatic one first, manual last.
std::string primaryReason(const std::vector<std::string>& reasons) {
  for (std::string_view r : {kReasonAttestationFailed, kReasonApprovalRevoked, kReasonStale, kReasonLowTrust,
                             kReasonManual}) {
    if (std::find(reasons.begin(), reasons.end(), r) != reasons.end()) return std::string(r);
  }
  return reasons.empty() ? std::string() : reasons.front();
}

void setReason(std::vector<std::string>& reasons, std::string_view reason, bool present) {
  auto it = std::find(reasons.begin(), reasons.end(), reason);
  if (present && it == reasons.end()) {
    reasons.emplace_back(reason);
    std::sort(reasons.begin(), reasons.end());
  } else if (!present && it != reasons.end()) {
    reasons.erase(it);
  }
}

std::string modelOf(const identity::DeviceEntry* entry) {
  if (entry == nullptr) return {};
  auto it = entry->labels.find("model");
  return it == entry->labels.end() ? std::string() : it->second;
}

bool sessionState(store::DeviceState s) {
  return s == store::DeviceState::kActive || s == store::DeviceState::kQuarantined;
}

}  // namespace

PostureEngine::PostureEngine(PostureDeps deps) : deps_(std::move(deps)) {}

core::Status PostureEngine::load() {
  started_ = deps_.clock.now();
  WARDEN_ASSIGN_OR_RETURN(std::vector<store::PostureRecord> postures, deps_.store.listPostures());
  for (store::PostureRecord& rec : postures) {
    DeviceTrust d;
    d.log = logFromJson(rec.log_json);
    std::string name = rec.device;
    d.rec = std::move(rec);
    devices_.emplace(std::move(name), std::move(d));
  }
  WARDEN_ASSIGN_OR_RETURN(std::vector<store::FirmwareApproval> approvals, deps_.store.listFirmware());
  for (const store::FirmwareApproval& a : approvals) {
    if (a.revoked_at == 0) approvals_[{a.digest, a.model}] = a.version;
  }
  return core::Status::ok();
}

const identity::DeviceEntry* PostureEngine::fleetEntry(const std::string& device,
                                                       const policy::Policy** policy) const {
  auto [pol, fleet] = deps_.current();
  *policy = pol.get();
  if (!pol || !fleet) return nullptr;
  // The snapshot outlives this call: the SnapshotHolder keeps it, and the
  // engine uses the entry only before returning to the io loop.
  return fleet->findDevice(device);
}

AttestationPlan PostureEngine::planFor(const policy::Policy* policy, const identity::DeviceEntry* entry) const {
  AttestationPlan plan;
  if (policy == nullptr || entry == nullptr || !policy->hasAttestation()) return plan;
  policy::Principal p;
  p.id = entry->name;
  p.kind = core::PrincipalKind::kDevice;
  p.role = entry->role;
  p.labels = entry->labels;
  auto req = policy->attestationFor(p);
  if (!req) return plan;
  plan.required = req->required;
  plan.interval = req->interval;
  plan.grace = req->grace;
  plan.min_assurance = req->min_assurance;
  return plan;
}

AttestationPlan PostureEngine::plan(const std::string& device) const {
  auto [pol, fleet] = deps_.current();
  if (!pol || !fleet) return {};
  return planFor(pol.get(), fleet->findDevice(device));
}

PostureEngine::DeviceTrust& PostureEngine::entryFor(const std::string& device, core::SystemTime now) {
  DeviceTrust& d = devices_[device];
  if (!d.known) {
    d.known = true;
    d.base = std::max(now, started_);
    d.rec.device = device;
    if (d.rec.updated_at == 0) d.rec.trust = deps_.weights.never_attested;
  }
  return d;
}

core::SystemTime PostureEngine::due(const DeviceTrust& d, const AttestationPlan& plan) const {
  // New devices and a restarted server get one grace period: never before |base|.
  core::SystemTime due = d.base;
  if (d.rec.last_good_at > 0) due = std::max(due, core::fromUnixSeconds(d.rec.last_good_at) + plan.interval);
  return due;
}

bool PostureEngine::overdue(const DeviceTrust& d, const AttestationPlan& plan, core::SystemTime now) const {
  return plan.required && now > due(d, plan);
}

bool PostureEngine::stale(const DeviceTrust& d, const AttestationPlan& plan, core::SystemTime now) const {
  return plan.required && now > due(d, plan) + plan.grace;
}

void PostureEngine::pruneDenials(DeviceTrust& d, core::SystemTime now) const {
  while (!d.denials.empty() && d.denials.front() + deps_.weights.denial_window <= now) d.denials.pop_front();
}

AttestationStanding PostureEngine::standing(const DeviceTrust& d, const AttestationPlan& plan,
                                            core::SystemTime now) const {
  if (d.rec.result == "failed" || d.rec.firmware_approved == 0) return AttestationStanding::kFailed;
  if (stale(d, plan, now)) return AttestationStanding::kStale;
  if (d.rec.last_good_at == 0) return AttestationStanding::kNeverAttested;
  return d.rec.last_good_assurance == "tpm" ? AttestationStanding::kHealthyTpm
                                            : AttestationStanding::kHealthySoftware;
}

int PostureEngine::trustNow(const DeviceTrust& d, const AttestationPlan& plan, core::SystemTime now) const {
  return computeTrust(standing(d, plan, now), static_cast<int>(d.denials.size()), deps_.weights).value;
}

std::string PostureEngine::stateNow(const DeviceTrust& d, const AttestationPlan& plan, core::SystemTime now) const {
  if (d.quarantined) return "quarantined";
  if (overdue(d, plan, now) || d.rec.trust < deps_.weights.suspectBelow()) return "suspect";
  return "healthy";
}

PostureEngine::Visible PostureEngine::visible(const DeviceTrust& d) const {
  Visible v;
  v.trust = d.rec.trust;
  v.firmware = d.rec.firmware_approved;
  v.assurance = d.rec.last_good_assurance;
  // The age changes with every good attestation; it matters only to a
  // policy that reads it.
  auto [pol, fleet] = deps_.current();
  if (pol && pol->readsAttestationAge()) v.last_good = d.rec.last_good_at;
  v.quarantined = d.quarantined;
  return v;
}

void PostureEngine::event(DeviceTrust& d, const std::string& name, std::string_view type, std::string reason,
                          nlohmann::json detail) {
  monitor::Event e;
  e.type = std::string(type);
  e.principal = core::makeSpiffeId(deps_.trust_domain, core::PrincipalKind::kDevice, name);
  e.actor = std::string(kActorTrust);
  e.resource = name;
  e.reason = std::move(reason);
  e.detail = std::move(detail);
  d.pending_events.push_back(std::move(e));
}

void PostureEngine::evaluate(const std::string& name, DeviceTrust& d, const AttestationPlan& plan,
                             core::SystemTime now, const std::string& /*model*/) {
  pruneDenials(d, now);
  const TrustWeights& w = deps_.weights;
  const int trust = trustNow(d, plan, now);
  d.rec.trust = trust;
  std::vector<std::string>& reasons = d.rec.quarantine_reasons;
  setReason(reasons, kReasonStale, stale(d, plan, now));
  // A stale or failed attestation already explains a low score: low_trust is
  // for behaviour (denials). It clears with hysteresis.
  const AttestationStanding s = standing(d, plan, now);
  const bool behaviour = s != AttestationStanding::kStale && s != AttestationStanding::kFailed;
  if (behaviour && trust < w.quarantine_below) setReason(reasons, kReasonLowTrust, true);
  if (trust >= w.suspectBelow()) setReason(reasons, kReasonLowTrust, false);

  nlohmann::json detail = {{"reasons", reasons}, {"trust", trust}};
  if (!reasons.empty() && !d.quarantined) {
    d.quarantined = true;
    d.rec.quarantined_since = secondsOf(now);
    d.move = store::DeviceState::kQuarantined;
    event(d, name, monitor::event_type::kQuarantine, primaryReason(reasons), detail);
  } else if (d.quarantined && reasons.empty() && w.readmission_auto && d.rec.quarantined_since > 0 &&
             now >= core::fromUnixSeconds(d.rec.quarantined_since) + kMinQuarantine &&
             d.rec.last_good_at > d.rec.quarantined_since && trust >= w.suspectBelow()) {
    d.quarantined = false;
    detail["quarantined_since"] = core::formatRfc3339(core::fromUnixSeconds(d.rec.quarantined_since));
    d.rec.quarantined_since = 0;
    d.move = store::DeviceState::kActive;
    event(d, name, monitor::event_type::kRelease, std::string(er::kReadmitted), detail);
  }
  const std::string state = stateNow(d, plan, now);
  if (state != d.shown) {
    if (!d.shown.empty() && state != "quarantined") {
      const bool suspect = state == "suspect";
      std::string why = suspect ? std::string(overdue(d, plan, now) ? er::kOverdue : er::kTrustWarning)
                                : std::string(er::kHealthy);
      nlohmann::json sd = {{"trust", trust}};
      if (plan.required) sd["next_due"] = core::formatRfc3339(due(d, plan));
      event(d, name, suspect ? monitor::event_type::kPostureSuspect : monitor::event_type::kPostureHealthy,
            std::move(why), std::move(sd));
    }
    d.shown = state;
  }
}

void PostureEngine::flush(const std::string& name, std::function<void()> after) {
  auto it = devices_.find(name);
  if (it == devices_.end()) {
    if (after) after();
    return;
  }
  DeviceTrust& d = it->second;
  if (after) d.waiters.push_back(std::move(after));
  if (d.applying) {
    d.again = true;
    return;
  }
  if (!d.dirty && !d.move && !d.publish && d.pending_events.empty()) {
    auto waiters = std::move(d.waiters);
    d.waiters.clear();
    for (auto& w : waiters) w();
    return;
  }
  d.applying = true;
  d.rec.updated_at = secondsOf(deps_.clock.now());
  auto rec = std::make_shared<store::PostureRecord>(d.rec);
  const std::optional<store::DeviceState> move = d.move;
  const bool publish = d.publish || move.has_value();
  auto events = std::make_shared<std::vector<monitor::Event>>(std::move(d.pending_events));
  auto waiters = std::make_shared<std::vector<std::function<void()>>>(std::move(d.waiters));
  d.pending_events.clear();
  d.waiters.clear();
  d.dirty = false;
  d.move.reset();
  d.publish = false;
  auto status = std::make_shared<core::Status>();
  store::Store* store = &deps_.store;
  deps_.run_blocking([store, rec, move, status] { *status = store->savePosture(*rec, move); },
                     [this, name, status, publish, events, waiters] {
                       auto finish = [this, name, events, waiters, ok = status->isOk()] {
                         if (ok) {
                           for (monitor::Event& e : *events) deps_.events.record(std::move(e));
                         }
                         for (auto& w : *waiters) w();
                         DeviceTrust& d = devices_[name];
                         d.applying = false;
                         if (d.again) {
                           d.again = false;
                           flush(name, nullptr);
                         }
                       };
                       if (!status->isOk()) {
                         // The device left active/quarantined meanwhile (revoked), or the
                         // store failed: keep enforcing what is committed, say so.
                         spdlog::error("trust: cannot store the posture of {}: {}", name, status->message());
                         finish();
                         return;
                       }
                       if (publish) {
                         deps_.publish_change(identity::ChangeScope::device(name), finish);
                       } else {
                         finish();
                       }
                     });
}

bool PostureEngine::approved(const Digest& digest, const std::string& model) const {
  return !model.empty() && approvals_.count({digestText(digest), model}) != 0;
}

std::optional<std::string> PostureEngine::versionOf(const Digest& digest, const std::string& model) const {
  auto it = approvals_.find({digestText(digest), model});
  if (it == approvals_.end()) return std::nullopt;
  return it->second;
}

void PostureEngine::record(const AttestationReport& report, std::function<void(PostureReply)> done) {
  const core::SystemTime now = deps_.clock.now();
  const policy::Policy* policy = nullptr;
  const identity::DeviceEntry* entry = fleetEntry(report.device, &policy);
  if (entry == nullptr || !sessionState(entry->state)) {
    // The API authenticates the device against the same snapshot; a device
    // that is gone or revoked meanwhile gets nothing stored.
    done(PostureReply{"failed", report.ok ? std::string(er::kUnknownDevice) : report.reason, "quarantined", 0,
                      std::nullopt});
    return;
  }
  const AttestationPlan plan = planFor(policy, entry);
  const std::string model = modelOf(entry);
  DeviceTrust& d = entryFor(report.device, now);
  if (!d.applying && !d.move) d.quarantined = entry->state == store::DeviceState::kQuarantined;
  const store::PostureRecord before = d.rec;
  const Visible seen = visible(d);

  bool ok = report.ok;
  std::string reason = ok ? std::string() : report.reason;
  std::string detail = ok ? std::string() : report.detail;
  if (ok) {
    // Judge the verified log: every measurement an approved release of this model.
    const Measurement* unapproved = nullptr;
    for (const Measurement& m : report.log) {
      if (!approved(m.digest, model)) {
        unapproved = &m;
        break;
      }
    }
    if (unapproved != nullptr) {
      ok = false;
      reason = std::string(er::kUnapprovedFirmware);
      detail = fmt::format("{} ({}) is not an approved release for model '{}'", digestText(unapproved->digest),
                           unapproved->name.substr(0, 64), model.empty() ? "(no model label)" : model);
    } else if (plan.min_assurance && report.assurance < *plan.min_assurance) {
      ok = false;
      reason = std::string(er::kAssuranceInsufficient);
      detail = fmt::format("{} evidence where the device's segments require {}", assuranceName(report.assurance),
                           assuranceName(*plan.min_assurance));
    }
    d.log = report.log;
    d.rec.log_json = logToJson(report.log).dump();
    d.rec.boot = report.boot;
    if (report.log.empty()) {
      d.rec.firmware_model.clear();
      d.rec.firmware_version.clear();
      d.rec.firmware_approved = -1;
    } else {
      d.rec.firmware_model = model;
      d.rec.firmware_version = versionOf(report.log.back().digest, model).value_or("");
      d.rec.firmware_approved = unapproved == nullptr ? 1 : 0;
    }
  }
  if (detail.size() > kMaxDetail) detail.resize(kMaxDetail);
  d.rec.attested_at = secondsOf(report.at.time_since_epoch().count() != 0 ? report.at : now);
  d.rec.assurance = assuranceName(report.assurance);
  d.rec.result = ok ? "ok" : "failed";
  d.rec.reason = reason;
  d.rec.detail = detail;
  if (ok) {
    d.rec.last_good_at = secondsOf(now);
    d.rec.last_good_assurance = assuranceName(report.assurance);
    // A good attestation answers the automatic reasons it can: software
    // evidence proves no integrity, so it lifts attestation_failed only where
    // the segments settle for software.
    const bool lifts_failure = report.assurance == policy::AttestationAssurance::kTpm ||
                               (plan.min_assurance && *plan.min_assurance == policy::AttestationAssurance::kSoftware);
    if (lifts_failure) setReason(d.rec.quarantine_reasons, kReasonAttestationFailed, false);
    setReason(d.rec.quarantine_reasons, kReasonApprovalRevoked, false);
  } else {
    setReason(d.rec.quarantine_reasons, kReasonAttestationFailed, true);
    event(d, report.device, monitor::event_type::kAttestationFailed, reason,
          {{"assurance", assuranceName(report.assurance)}, {"detail", detail}, {"boot", report.boot}});
  }
  evaluate(report.device, d, plan, now, model);
  d.dirty = d.dirty || !(d.rec == before);
  d.publish = d.publish || !(visible(d) == seen);
  const std::string device = report.device;
  const std::optional<int64_t> next_due =
      plan.required ? std::optional<int64_t>(plan.interval.count()) : std::nullopt;
  const std::string result = ok ? "ok" : "failed";
  flush(device, [this, device, result, reason, next_due, done = std::move(done)] {
    auto it = devices_.find(device);
    const int trust = it == devices_.end() ? 0 : it->second.rec.trust;
    done(PostureReply{result, reason, stateOf(device), trust, next_due});
  });
}

void PostureEngine::tick(core::SystemTime now) {
  auto [pol, fleet] = deps_.current();
  if (!pol || !fleet) return;
  for (const auto& [name, entry] : fleet->devices) {
    if (!sessionState(entry.state)) continue;
    auto it = devices_.find(name);
    const bool quarantined = entry.state == store::DeviceState::kQuarantined;
    const bool may_need = it != devices_.end() || quarantined || pol->hasAttestation();
    if (!may_need) continue;
    const AttestationPlan p = planFor(pol.get(), &entry);
    if (it == devices_.end() && !quarantined && !p.required) continue;  // nothing to judge: default trust
    DeviceTrust& d = entryFor(name, now);
    if (d.applying || d.move) continue;
    d.quarantined = quarantined;
    const store::PostureRecord before = d.rec;
    const Visible seen = visible(d);
    if (quarantined && d.rec.quarantine_reasons.empty() && d.rec.quarantined_since == 0) {
      // Quarantined before posture existed, or by a path that did not say
      // why: an operator's quarantine.
      setReason(d.rec.quarantine_reasons, kReasonManual, true);
      d.rec.quarantined_since = secondsOf(now);
    }
    evaluate(name, d, p, now, modelOf(&entry));
    d.dirty = d.dirty || !(d.rec == before);
    d.publish = d.publish || !(visible(d) == seen);
    if (d.dirty || d.publish || d.move || !d.pending_events.empty()) flush(name, nullptr);
  }
}

void PostureEngine::noteDenial(const std::string& device) {
  const core::SystemTime now = deps_.clock.now();
  const policy::Policy* policy = nullptr;
  const identity::DeviceEntry* entry = fleetEntry(device, &policy);
  if (entry == nullptr || !sessionState(entry->state)) return;
  const TrustWeights& w = deps_.weights;
  if (w.denial_cost <= 0 || w.denial_max <= 0) return;
  DeviceTrust& d = entryFor(device, now);
  if (!d.applying && !d.move) d.quarantined = entry->state == store::DeviceState::kQuarantined;
  // Only as many denials as can cost anything are kept (the newest).
  const size_t keep = static_cast<size_t>((w.denial_max + w.denial_cost - 1) / w.denial_cost);
  d.denials.push_back(now);
  while (d.denials.size() > keep) d.denials.pop_front();
  const store::PostureRecord before = d.rec;
  const Visible seen = visible(d);
  evaluate(device, d, planFor(policy, entry), now, modelOf(entry));
  d.dirty = d.dirty || !(d.rec == before);
  d.publish = d.publish || !(visible(d) == seen);
  if (d.dirty || d.publish || d.move || !d.pending_events.empty()) flush(device, nullptr);
}

void PostureEngine::operatorQuarantined(const std::string& device) {
  const core::SystemTime now = deps_.clock.now();
  DeviceTrust& d = entryFor(device, now);
  d.quarantined = true;
  setReason(d.rec.quarantine_reasons, kReasonManual, true);
  if (d.rec.quarantined_since == 0) d.rec.quarantined_since = secondsOf(now);
  d.shown = "quarantined";
  d.dirty = true;
  flush(device, nullptr);
}

void PostureEngine::operatorReleased(const std::string& device) {
  const core::SystemTime now = deps_.clock.now();
  const policy::Policy* policy = nullptr;
  const identity::DeviceEntry* entry = fleetEntry(device, &policy);
  DeviceTrust& d = entryFor(device, now);
  const Visible seen = visible(d);
  d.quarantined = false;
  d.rec.quarantine_reasons.clear();
  d.rec.quarantined_since = 0;
  // The operator vouches for the device: one grace period from now, and a
  // clean behaviour record.
  d.base = now;
  d.denials.clear();
  if (d.rec.result == "failed") d.rec.result.clear();
  if (d.rec.firmware_approved == 0) d.rec.firmware_approved = -1;
  d.rec.trust = trustNow(d, planFor(policy, entry), now);
  d.dirty = true;
  d.publish = d.publish || !(visible(d) == seen);
  flush(device, nullptr);
}

void PostureEngine::approveFirmware(store::FirmwareApproval approval, std::function<void(core::Result<bool>)> done) {
  auto result = std::make_shared<core::Result<bool>>(core::internalError("not run"));
  auto shared = std::make_shared<store::FirmwareApproval>(std::move(approval));
  store::Store* store = &deps_.store;
  deps_.run_blocking([store, shared, result] { *result = store->approveFirmware(*shared); },
                     [this, shared, result, done = std::move(done)] {
                       if (result->isOk()) approvals_[{shared->digest, shared->model}] = shared->version;
                       done(*result);
                     });
}

void PostureEngine::revokeApproval(const Digest& digest, std::optional<std::string> model, std::string actor,
                                   bool apply, std::function<void(core::Result<RevokeOutcome>)> done) {
  const std::string text = digestText(digest);
  std::set<std::string> models;
  for (const auto& [key, version] : approvals_) {
    if (key.first == text && (!model || key.second == *model)) models.insert(key.second);
  }
  if (models.empty()) {
    done(core::notFound(fmt::format("{} is not an approved firmware digest{}; `warden firmware list` shows the "
                                    "approvals",
                                    text, model ? fmt::format(" for model '{}'", *model) : std::string())));
    return;
  }
  auto [pol, fleet] = deps_.current();
  auto outcome = std::make_shared<RevokeOutcome>();
  for (const auto& [name, d] : devices_) {
    const identity::DeviceEntry* entry = fleet ? fleet->findDevice(name) : nullptr;
    if (entry == nullptr || !sessionState(entry->state) || models.count(modelOf(entry)) == 0) continue;
    bool runs = false;
    for (const Measurement& m : d.log) runs = runs || m.digest == digest;
    if (!runs) continue;
    outcome->devices.push_back(name);
    if (!d.quarantined && entry->state != store::DeviceState::kQuarantined) outcome->would_quarantine.push_back(name);
  }
  if (!apply) {
    done(*outcome);
    return;
  }
  auto revoked = std::make_shared<core::Result<std::vector<store::FirmwareApproval>>>(core::internalError("not run"));
  store::Store* store = &deps_.store;
  deps_.run_blocking(
      [store, text, model, actor, revoked] {
        *revoked = store->revokeFirmwareApproval(text, model ? std::optional<std::string_view>(*model) : std::nullopt,
                                                 actor);
      },
      [this, revoked, outcome, done = std::move(done)] {
        if (!revoked->isOk()) {
          done(revoked->status());
          return;
        }
        for (const store::FirmwareApproval& a : revoked->value()) approvals_.erase({a.digest, a.model});
        outcome->revoked = revoked->value();
        outcome->applied = true;
        const core::SystemTime now = deps_.clock.now();
        auto remaining = std::make_shared<size_t>(outcome->devices.size() + 1);
        auto one_done = [remaining, outcome, done] {
          if (--*remaining == 0) done(*outcome);
        };
        for (const std::string& name : outcome->devices) {
          const policy::Policy* policy = nullptr;
          const identity::DeviceEntry* entry = fleetEntry(name, &policy);
          DeviceTrust& d = entryFor(name, now);
          const store::PostureRecord before = d.rec;
          const Visible seen = visible(d);
          d.rec.firmware_approved = 0;
          setReason(d.rec.quarantine_reasons, kReasonApprovalRevoked, true);
          evaluate(name, d, planFor(policy, entry), now, modelOf(entry));
          d.dirty = d.dirty || !(d.rec == before);
          d.publish = d.publish || !(visible(d) == seen);
          flush(name, one_done);
        }
        one_done();
      });
}

std::string PostureEngine::stateOf(const std::string& device) const {
  auto it = devices_.find(device);
  const policy::Policy* policy = nullptr;
  const identity::DeviceEntry* entry = fleetEntry(device, &policy);
  const core::SystemTime now = deps_.clock.now();
  if (it == devices_.end()) {
    if (entry != nullptr && entry->state == store::DeviceState::kQuarantined) return "quarantined";
    return deps_.weights.never_attested < deps_.weights.suspectBelow() ? "suspect" : "healthy";
  }
  return stateNow(it->second, planFor(policy, entry), now);
}

int PostureEngine::trustOf(const std::string& device) const {
  auto it = devices_.find(device);
  if (it == devices_.end()) return deps_.weights.never_attested;
  return it->second.rec.trust;
}

nlohmann::json PostureEngine::describe(const std::string& device) const {
  const core::SystemTime now = deps_.clock.now();
  const policy::Policy* policy = nullptr;
  const identity::DeviceEntry* entry = fleetEntry(device, &policy);
  const AttestationPlan p = planFor(policy, entry);
  DeviceTrust fresh;
  fresh.base = std::max(now, started_);
  fresh.rec.device = device;
  fresh.quarantined = entry != nullptr && entry->state == store::DeviceState::kQuarantined;
  auto it = devices_.find(device);
  DeviceTrust d = it == devices_.end() ? std::move(fresh) : it->second;
  if (it != devices_.end() && !d.known) d.base = std::max(now, started_);
  pruneDenials(d, now);
  const AttestationStanding s = standing(d, p, now);
  const TrustScore score = computeTrust(s, static_cast<int>(d.denials.size()), deps_.weights);
  d.rec.trust = score.value;
  nlohmann::json components = nlohmann::json::array();
  for (const TrustComponent& c : score.components) {
    components.push_back({{"name", c.name}, {"value", c.value}, {"cost", c.cost}});
  }
  auto when = [](int64_t t) { return t == 0 ? nlohmann::json(nullptr) : nlohmann::json(core::formatRfc3339(core::fromUnixSeconds(t))); };
  auto text = [](const std::string& v) { return v.empty() ? nlohmann::json(nullptr) : nlohmann::json(v); };
  nlohmann::json attestation = {{"required", p.required}};
  if (p.required) {
    attestation["interval_s"] = p.interval.count();
    attestation["grace_s"] = p.grace.count();
    attestation["next_due"] = core::formatRfc3339(due(d, p));
    attestation["stale_at"] = core::formatRfc3339(due(d, p) + p.grace);
  }
  attestation["min_assurance"] = p.min_assurance ? nlohmann::json(assuranceName(*p.min_assurance)) : nlohmann::json(nullptr);
  const TrustWeights& w = deps_.weights;
  return {
      {"state", stateNow(d, p, now)},
      {"reasons", d.rec.quarantine_reasons},
      {"quarantined_since", when(d.rec.quarantined_since)},
      {"trust", score.value},
      {"trust_components", components},
      {"trust_thresholds", {{"quarantine_below", w.quarantine_below}, {"suspect_below", w.suspectBelow()},
                            {"readmission", w.readmission_auto ? "auto" : "manual"}}},
      {"denials", {{"count", d.denials.size()}, {"window_s", w.denial_window.count()}}},
      {"last_attestation", {{"at", when(d.rec.attested_at)}, {"assurance", text(d.rec.assurance)},
                            {"result", text(d.rec.result)}, {"reason", text(d.rec.reason)},
                            {"detail", text(d.rec.detail)}, {"boot", text(d.rec.boot)}}},
      {"last_good", {{"at", when(d.rec.last_good_at)}, {"assurance", text(d.rec.last_good_assurance)}}},
      {"firmware", {{"model", text(d.rec.firmware_model)}, {"version", text(d.rec.firmware_version)},
                    {"approved", d.rec.firmware_approved < 0 ? nlohmann::json(nullptr)
                                                             : nlohmann::json(d.rec.firmware_approved == 1)}}},
      {"log", logToJson(d.log)},
      {"attestation", attestation},
  };
}

}  // namespace warden::trust
