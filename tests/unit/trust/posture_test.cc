#include "trust/posture.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/clock.h"
#include "identity/registry.h"
#include "monitor/event_log.h"
#include "policy/policy.h"
#include "store/sqlite_store.h"
#include "unit/testing/temp_dir.h"

namespace warden::trust {
namespace {

using namespace std::chrono_literals;
using policy::AttestationAssurance;

constexpr int64_t kStart = 1'800'000'000;

constexpr const char* kPolicy = R"(
segments:
  plc:
    role: controller
    attestation: {required: true, interval: 60s, grace: 120s, min_assurance: tpm}
  sensors:
    role: sensor
    attestation: {required: true, interval: 60s, grace: 120s, min_assurance: software}
rules:
  - id: connect
    effect: permit
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["*"]
)";

Digest digestOf(uint8_t b) {
  Digest d{};
  d.fill(b);
  return d;
}

// Harness runs the engine on a real store and registry, with a manual clock,
// the worker inline and a publish that rebuilds the fleet for the scope.
class Harness {
 public:
  explicit Harness(TrustWeights weights = {}, const char* policy_text = kPolicy)
      : clock_(core::fromUnixSeconds(kStart)),
        store_(std::move(store::SqliteStore::open(dir_.file("w.db"), clock_)).value()),
        registry_(*store_, clock_),
        events_(std::make_unique<monitor::EventLog>(*store_, clock_)),
        weights_(weights) {
    registry_.setDefaultTrust(weights.never_attested);
    policy_ = std::move(policy::Policy::parse(policy_text, "policy.yaml")).value();
    addDevice("plc-1", "controller", {{"model", "gw-100"}});
    addDevice("plc-2", "controller", {{"model", "gw-100"}});
    addDevice("sensor-1", "sensor", {{"model", "s-1"}});
    addDevice("free-1", "free", {});
    reload();
    engine_ = makeEngine();
  }

  std::unique_ptr<PostureEngine> makeEngine() {
    auto engine = std::make_unique<PostureEngine>(PostureDeps{
        .store = *store_,
        .events = *events_,
        .clock = clock_,
        .trust_domain = "warden.local",
        .weights = weights_,
        .run_blocking = [](std::function<void()> work, std::function<void()> then) {
          work();
          then();
        },
        .publish_change = [this](identity::ChangeScope scope, std::function<void()> done) {
          published.push_back(scope.everything ? "*" : scope.devices.front());
          fleet_ = std::move(registry_.updateFleetState(*fleet_, scope.devices)).value();
          done();
        },
        .current = [this]() -> std::pair<std::shared_ptr<const policy::Policy>,
                                         std::shared_ptr<const identity::FleetState>> { return {policy_, fleet_}; },
    });
    EXPECT_TRUE(engine->load().isOk());
    return engine;
  }

  void addDevice(const std::string& name, const std::string& role, const core::Labels& labels) {
    ASSERT_TRUE(registry_.addDevice(name, role, labels).isOk());
    ASSERT_TRUE(store_->setDeviceState(name, store::DeviceState::kActive).isOk());
  }
  void reload() { fleet_ = std::move(registry_.loadFleetState()).value(); }

  void approve(uint8_t b, const std::string& model, const std::string& version) {
    store::FirmwareApproval a;
    a.digest = digestText(digestOf(b));
    a.model = model;
    a.version = version;
    a.approved_by = "spiffe://warden.local/user/admin";
    bool called = false;
    engine_->approveFirmware(a, [&](core::Result<bool> r) {
      EXPECT_TRUE(r.isOk());
      called = true;
    });
    EXPECT_TRUE(called);
  }

  PostureReply attest(const std::string& device, AttestationAssurance assurance, std::vector<uint8_t> images,
                      bool ok = true, std::string reason = "") {
    AttestationReport r;
    r.device = device;
    r.at = clock_.now();
    r.assurance = assurance;
    r.ok = ok;
    r.reason = std::move(reason);
    r.boot = "tpm:1";
    for (uint8_t b : images) {
      Measurement m;
      m.digest = digestOf(b);
      m.name = "fw.bin";
      r.log.push_back(m);
    }
    PostureReply reply;
    bool called = false;
    engine_->record(r, [&](PostureReply p) {
      reply = std::move(p);
      called = true;
    });
    EXPECT_TRUE(called);
    return reply;
  }

  void advance(std::chrono::seconds d) {
    clock_.advance(d);
    engine_->tick(clock_.now());
  }

  store::DeviceState state(const std::string& device) {
    return fleet_->findDevice(device)->state;
  }
  std::vector<std::string> reasons(const std::string& device) {
    auto p = store_->getPosture(device);
    return p.isOk() && p->has_value() ? (*p)->quarantine_reasons : std::vector<std::string>{};
  }
  // eventsOf returns "type/reason/actor" of the events about |device|.
  std::vector<std::string> eventsOf(const std::string& device) {
    events_->flush();
    std::vector<std::string> out;
    auto list = store_->listEventsAbout("spiffe://warden.local/device/" + device, 1000);
    for (const auto& e : *list) out.push_back(e.type + "/" + e.reason + "/" + e.actor);
    return out;
  }

  warden::testing::TempDir dir_{"warden-posture"};
  core::ManualClock clock_;
  std::unique_ptr<store::Store> store_;
  identity::Registry registry_;
  std::unique_ptr<monitor::EventLog> events_;
  TrustWeights weights_;
  std::shared_ptr<const policy::Policy> policy_;
  std::shared_ptr<const identity::FleetState> fleet_;
  std::unique_ptr<PostureEngine> engine_;
  std::vector<std::string> published;
};

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(PostureEngine, PlanMergesSegmentsAndIgnoresDevicesOutsideThem) {
  Harness h;
  AttestationPlan plc = h.engine_->plan("plc-1");
  EXPECT_TRUE(plc.required);
  EXPECT_EQ(plc.interval, 60s);
  EXPECT_EQ(plc.grace, 120s);
  EXPECT_EQ(plc.min_assurance, AttestationAssurance::kTpm);
  EXPECT_FALSE(h.engine_->plan("free-1").required);
  EXPECT_FALSE(h.engine_->plan("no-such-device").required);
}

TEST(PostureEngine, ApprovedTpmAttestationIsHealthyAt100) {
  Harness h;
  h.approve(1, "gw-100", "2.1.0");
  PostureReply r = h.attest("plc-1", AttestationAssurance::kTpm, {1});
  EXPECT_EQ(r.result, "ok");
  EXPECT_EQ(r.state, "healthy");
  EXPECT_EQ(r.trust, 100);
  EXPECT_EQ(r.next_due_s, 60);
  const identity::DeviceEntry* e = h.fleet_->findDevice("plc-1");
  EXPECT_EQ(e->trust, 100);
  EXPECT_EQ(e->firmware_approved, true);
  EXPECT_EQ(e->attestation_assurance, "tpm");
  auto stored = std::move(h.store_->getPosture("plc-1")).value();
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->firmware_version, "2.1.0");
  EXPECT_EQ(stored->firmware_model, "gw-100");
}

TEST(PostureEngine, SoftwareAttestationCapsTrustAt80) {
  Harness h;
  h.approve(2, "s-1", "1.0");
  PostureReply r = h.attest("sensor-1", AttestationAssurance::kSoftware, {2});
  EXPECT_EQ(r.result, "ok");
  EXPECT_EQ(r.trust, 80);
}

TEST(PostureEngine, UnapprovedFirmwareQuarantinesWithActorTrust) {
  Harness h;
  h.approve(1, "gw-100", "2.1.0");
  PostureReply r = h.attest("plc-1", AttestationAssurance::kTpm, {1, 9});
  EXPECT_EQ(r.result, "failed");
  EXPECT_EQ(r.reason, "unapproved_firmware");
  EXPECT_EQ(r.state, "quarantined");
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kQuarantined);
  EXPECT_EQ(h.reasons("plc-1"), std::vector<std::string>{"attestation_failed"});
  auto ev = h.eventsOf("plc-1");
  EXPECT_TRUE(contains(ev, "attestation_failed/unapproved_firmware/trust"));
  EXPECT_TRUE(contains(ev, "quarantine/attestation_failed/trust"));
  EXPECT_EQ(h.fleet_->findDevice("plc-1")->firmware_approved, false);
  // Only the device concerned was published.
  for (const std::string& p : h.published) EXPECT_EQ(p, "plc-1");
}

TEST(PostureEngine, VerifierFailureQuarantinesWithItsReason) {
  Harness h;
  PostureReply r = h.attest("plc-1", AttestationAssurance::kTpm, {}, /*ok=*/false, "pcr_mismatch");
  EXPECT_EQ(r.result, "failed");
  EXPECT_EQ(r.reason, "pcr_mismatch");
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kQuarantined);
  EXPECT_EQ(r.trust, 0);
}

TEST(PostureEngine, SoftwareEvidenceWhereTpmRequiredIsInsufficient) {
  Harness h;
  h.approve(1, "gw-100", "2.1.0");
  PostureReply r = h.attest("plc-1", AttestationAssurance::kSoftware, {1});
  EXPECT_EQ(r.result, "failed");
  EXPECT_EQ(r.reason, "assurance_insufficient");
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kQuarantined);
}

TEST(PostureEngine, ReadmissionWaitsForThirtySecondsAndAGoodAttestationAfterQuarantine) {
  Harness h;
  h.approve(1, "gw-100", "2.1.0");
  h.attest("plc-1", AttestationAssurance::kTpm, {9});
  ASSERT_EQ(h.state("plc-1"), store::DeviceState::kQuarantined);
  h.clock_.advance(5s);
  // Good evidence, but too soon: no flapping.
  PostureReply r = h.attest("plc-1", AttestationAssurance::kTpm, {1});
  EXPECT_EQ(r.result, "ok");
  EXPECT_EQ(r.state, "quarantined");
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kQuarantined);
  // The pending re-admission happens on a tick once 30 s have passed.
  h.advance(20s);
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kQuarantined);
  h.advance(6s);
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kActive);
  EXPECT_TRUE(h.reasons("plc-1").empty());
  EXPECT_TRUE(contains(h.eventsOf("plc-1"), "release/readmitted/trust"));
}

TEST(PostureEngine, SoftwareEvidenceCannotLiftAttestationFailedWhereTpmRequired) {
  Harness h;
  h.approve(1, "gw-100", "2.1.0");
  h.attest("plc-1", AttestationAssurance::kTpm, {9});
  h.clock_.advance(40s);
  h.attest("plc-1", AttestationAssurance::kSoftware, {1});
  h.advance(1s);
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kQuarantined);
  EXPECT_TRUE(contains(h.reasons("plc-1"), "attestation_failed"));
  // TPM evidence lifts it.
  h.attest("plc-1", AttestationAssurance::kTpm, {1});
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kActive);
}

TEST(PostureEngine, SoftwareEvidenceLiftsAttestationFailedWhereSoftwareSuffices) {
  Harness h;
  h.approve(2, "s-1", "1.0");
  h.attest("sensor-1", AttestationAssurance::kSoftware, {7});
  ASSERT_EQ(h.state("sensor-1"), store::DeviceState::kQuarantined);
  h.clock_.advance(31s);
  PostureReply r = h.attest("sensor-1", AttestationAssurance::kSoftware, {2});
  EXPECT_EQ(r.state, "healthy");
  EXPECT_EQ(h.state("sensor-1"), store::DeviceState::kActive);
}

TEST(PostureEngine, OperatorQuarantineIsManualAndNeverLiftedAutomatically) {
  Harness h;
  h.approve(1, "gw-100", "2.1.0");
  ASSERT_TRUE(h.registry_.quarantine("plc-1").isOk());
  h.fleet_ = std::move(h.registry_.updateFleetState(*h.fleet_, {"plc-1"})).value();
  h.engine_->operatorQuarantined("plc-1");
  h.attest("plc-1", AttestationAssurance::kTpm, {9});  // adds attestation_failed
  h.clock_.advance(40s);
  h.attest("plc-1", AttestationAssurance::kTpm, {1});
  h.advance(1s);
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kQuarantined);
  EXPECT_EQ(h.reasons("plc-1"), std::vector<std::string>{"manual"});
  // The operator's release clears every reason.
  ASSERT_TRUE(h.registry_.release("plc-1").isOk());
  h.fleet_ = std::move(h.registry_.updateFleetState(*h.fleet_, {"plc-1"})).value();
  h.engine_->operatorReleased("plc-1");
  h.advance(1s);
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kActive);
  EXPECT_TRUE(h.reasons("plc-1").empty());
}

TEST(PostureEngine, MissedDeadlineIsSuspectThenStale) {
  Harness h;
  h.approve(1, "gw-100", "2.1.0");
  h.attest("plc-1", AttestationAssurance::kTpm, {1});
  h.advance(59s);
  EXPECT_EQ(h.engine_->stateOf("plc-1"), "healthy");
  h.advance(2s);  // past due (60 s)
  EXPECT_EQ(h.engine_->stateOf("plc-1"), "suspect");
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kActive);
  h.advance(118s);  // 179 s: within grace
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kActive);
  h.advance(2s);  // 181 s: past due + grace
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kQuarantined);
  EXPECT_EQ(h.reasons("plc-1"), std::vector<std::string>{"stale"});
  EXPECT_EQ(h.engine_->trustOf("plc-1"), 30);
  auto ev = h.eventsOf("plc-1");
  EXPECT_TRUE(contains(ev, "posture_suspect/overdue/trust"));
  EXPECT_TRUE(contains(ev, "quarantine/stale/trust"));
  // A device outside attestation segments is never stale.
  EXPECT_EQ(h.state("free-1"), store::DeviceState::kActive);
}

TEST(PostureEngine, NewDevicesGetOneGracePeriod) {
  Harness h;
  h.advance(1s);  // first sight of plc-2: due now, stale after the grace
  h.advance(119s);
  EXPECT_EQ(h.state("plc-2"), store::DeviceState::kActive);
  h.advance(2s);
  EXPECT_EQ(h.state("plc-2"), store::DeviceState::kQuarantined);
  EXPECT_EQ(h.reasons("plc-2"), std::vector<std::string>{"stale"});
}

TEST(PostureEngine, RestartedServerGivesOneGracePeriod) {
  Harness h;
  h.approve(1, "gw-100", "2.1.0");
  h.attest("plc-1", AttestationAssurance::kTpm, {1});
  // The server is down for an hour; the new engine loads the stored posture.
  h.clock_.advance(3600s);
  h.engine_ = h.makeEngine();
  h.advance(1s);  // first tick: due now
  h.advance(1s);
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kActive);
  EXPECT_EQ(h.engine_->stateOf("plc-1"), "suspect");
  EXPECT_EQ(h.engine_->trustOf("plc-1"), 100);
  h.advance(120s);
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kQuarantined);
}

TEST(PostureEngine, OwnDenialsLowerTrustUpToTheCapAndQuarantineLowTrust) {
  Harness h;
  for (int i = 0; i < 9; ++i) h.engine_->noteDenial("free-1");
  EXPECT_EQ(h.engine_->trustOf("free-1"), 41);
  EXPECT_EQ(h.fleet_->findDevice("free-1")->trust, 41);
  EXPECT_EQ(h.state("free-1"), store::DeviceState::kActive);
  EXPECT_EQ(h.engine_->stateOf("free-1"), "suspect");
  h.engine_->noteDenial("free-1");
  h.engine_->noteDenial("free-1");
  EXPECT_EQ(h.engine_->trustOf("free-1"), 39);
  EXPECT_EQ(h.state("free-1"), store::DeviceState::kQuarantined);
  EXPECT_EQ(h.reasons("free-1"), std::vector<std::string>{"low_trust"});
  for (int i = 0; i < 30; ++i) h.engine_->noteDenial("free-1");
  EXPECT_EQ(h.engine_->trustOf("free-1"), 30);  // at most 20
  // Denials expire after the window; the quarantine stays until the device
  // attests (re-admission needs a good attestation after the quarantine).
  h.advance(601s);
  EXPECT_EQ(h.engine_->trustOf("free-1"), 50);
  EXPECT_EQ(h.state("free-1"), store::DeviceState::kQuarantined);
  h.attest("free-1", AttestationAssurance::kSoftware, {});
  EXPECT_EQ(h.state("free-1"), store::DeviceState::kActive);
}

TEST(PostureEngine, ReadmissionManualLeavesTheDeviceQuarantined) {
  TrustWeights w;
  w.readmission_auto = false;
  Harness h(w);
  h.approve(1, "gw-100", "2.1.0");
  h.attest("plc-1", AttestationAssurance::kTpm, {9});
  h.clock_.advance(40s);
  h.attest("plc-1", AttestationAssurance::kTpm, {1});
  h.advance(5s);
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kQuarantined);
}

TEST(PostureEngine, RevokeApprovalDryRunChangesNothingAndApplyQuarantines) {
  Harness h;
  h.approve(1, "gw-100", "2.1.0");
  h.attest("plc-1", AttestationAssurance::kTpm, {1});
  h.attest("plc-2", AttestationAssurance::kTpm, {1});
  core::Result<RevokeOutcome> dry = core::internalError("not called");
  h.engine_->revokeApproval(digestOf(1), std::nullopt, "admin", false, [&](core::Result<RevokeOutcome> r) { dry = r; });
  ASSERT_TRUE(dry.isOk());
  EXPECT_FALSE(dry->applied);
  EXPECT_EQ(dry->would_quarantine.size(), 2u);
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kActive);
  EXPECT_EQ(std::move(h.store_->listFirmware()).value().front().revoked_at, 0);

  core::Result<RevokeOutcome> done = core::internalError("not called");
  h.engine_->revokeApproval(digestOf(1), std::string("gw-100"), "admin", true,
                            [&](core::Result<RevokeOutcome> r) { done = r; });
  ASSERT_TRUE(done.isOk());
  EXPECT_TRUE(done->applied);
  EXPECT_EQ(done->would_quarantine.size(), 2u);
  EXPECT_EQ(h.state("plc-1"), store::DeviceState::kQuarantined);
  EXPECT_EQ(h.reasons("plc-2"), std::vector<std::string>{"approval_revoked"});
  EXPECT_EQ(h.fleet_->findDevice("plc-1")->firmware_approved, false);
  // Revoked already: not found.
  core::Result<RevokeOutcome> again = RevokeOutcome{};
  h.engine_->revokeApproval(digestOf(1), std::nullopt, "admin", false, [&](core::Result<RevokeOutcome> r) { again = r; });
  EXPECT_EQ(again.status().code(), core::ErrorCode::kNotFound);
}

TEST(PostureEngine, UnchangedPostureDoesNotPublish) {
  Harness h;
  h.approve(1, "gw-100", "2.1.0");
  h.attest("plc-1", AttestationAssurance::kTpm, {1});
  h.published.clear();
  h.clock_.advance(10s);
  // A second good attestation changes nothing the policy reads (it does not
  // read attestation.age).
  h.attest("plc-1", AttestationAssurance::kTpm, {1});
  EXPECT_TRUE(h.published.empty());
}

TEST(PostureEngine, DescribeListsEveryTrustComponent) {
  Harness h;
  for (int i = 0; i < 3; ++i) h.engine_->noteDenial("free-1");
  nlohmann::json d = h.engine_->describe("free-1");
  EXPECT_EQ(d["trust"], 47);
  ASSERT_EQ(d["trust_components"].size(), 2u);
  EXPECT_EQ(d["trust_components"][0]["name"], "attestation");
  EXPECT_EQ(d["trust_components"][0]["value"], "never_attested");
  EXPECT_EQ(d["trust_components"][0]["cost"], 50);
  EXPECT_EQ(d["trust_components"][1]["name"], "denials");
  EXPECT_EQ(d["trust_components"][1]["cost"], 3);
}

TEST(TrustScore, FormulaUsesTheWeights) {
  TrustWeights w;
  EXPECT_EQ(computeTrust(AttestationStanding::kHealthyTpm, 0, w).value, 100);
  EXPECT_EQ(computeTrust(AttestationStanding::kHealthySoftware, 0, w).value, 80);
  EXPECT_EQ(computeTrust(AttestationStanding::kNeverAttested, 0, w).value, 50);
  EXPECT_EQ(computeTrust(AttestationStanding::kStale, 0, w).value, 30);
  EXPECT_EQ(computeTrust(AttestationStanding::kHealthyTpm, 50, w).value, 80);
  EXPECT_EQ(computeTrust(AttestationStanding::kFailed, 5, w).value, 0);
  w.tpm_healthy = 90;
  w.denial_cost = 2;
  EXPECT_EQ(computeTrust(AttestationStanding::kHealthyTpm, 3, w).value, 84);
}

}  // namespace
}  // namespace warden::trust
