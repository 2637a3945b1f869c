#include "synthetic_policy.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>

#include <fmt/format.h>

namespace warden::bench {

std::string syntheticPolicyYaml() {
  std::string y = "segments:\n";
  for (int i = 0; i < kSyntheticSegments; ++i) y += fmt::format("  seg-{0}: {{role: role-{0}}}\n", i);
  y += "services:\n";
  for (int i = 0; i < kSyntheticSegments; ++i) {
    y += fmt::format("  svc-{0}: {{segment: seg-{0}, mqtt: [\"s{0}/#\"]}}\n", i);
  }
  y += "flows:\n";
  for (int i = 0; i < kSyntheticSegments; ++i) {
    y += fmt::format("  - {{from: seg-{}, to: svc-{}, actions: [mqtt:publish]}}\n", i, (i + 1) % kSyntheticSegments);
  }
  y += "rules:\n";
  for (int i = 0; i < kSyntheticSegments; ++i) {
    for (int j = 0; j + 1 < kSyntheticRulesPerSegment; ++j) {
      y += fmt::format(
          "  - id: seg-{0}-r{1}\n    effect: permit\n    principals: {{segment: seg-{0}}}\n"
          "    actions: [mqtt:publish, mqtt:subscribe]\n    resources: [\"s{0}/${{principal.id}}/r{1}/#\"]\n",
          i, j);
    }
    y += fmt::format(
        "  - id: seg-{0}-forbid\n    effect: forbid\n    principals: {{segment: seg-{0}}}\n"
        "    actions: [mqtt:publish]\n    resources: [\"s{0}/+/forbidden/#\"]\n",
        i);
  }
  return y;
}

std::string syntheticPolicyCedar() {
  // A topic "a/b/c" arrives as resource Topic::"a/b/c" with attributes
  // l0 = "a", l1 = "b", l2 = "c" (as many as it has levels).
  std::string c;
  for (int i = 0; i < kSyntheticSegments; ++i) {
    for (int j = 0; j + 1 < kSyntheticRulesPerSegment; ++j) {
      // s<i>/${principal.id}/r<j>/#: '#' also matches the parent level.
      c += fmt::format(
          "@id(\"seg-{0}-r{1}\")\npermit(principal, action in [Action::\"mqtt:publish\", "
          "Action::\"mqtt:subscribe\"], resource)\nwhen {{ principal.role == \"role-{0}\" && resource.l0 == \"s{0}\" "
          "&& resource has l1 && resource.l1 == principal.id && resource has l2 && resource.l2 == \"r{1}\" }};\n",
          i, j);
    }
    c += fmt::format(
        "@id(\"seg-{0}-forbid\")\nforbid(principal, action == Action::\"mqtt:publish\", resource)\n"
        "when {{ principal.role == \"role-{0}\" && resource.l0 == \"s{0}\" && resource has l1 && resource has l2 "
        "&& resource.l2 == \"forbidden\" }};\n",
        i);
  }
  // Flows: publishing into svc-i ("s<i>/#") from outside seg-i needs the
  // flow seg-(i-1) -> svc-i.
  for (int i = 0; i < kSyntheticSegments; ++i) {
    int from = (i + kSyntheticSegments - 1) % kSyntheticSegments;
    c += fmt::format(
        "@id(\"no-flow-into-svc-{0}\")\nforbid(principal, action == Action::\"mqtt:publish\", resource)\n"
        "when {{ resource.l0 == \"s{0}\" && principal.role != \"role-{0}\" && principal.role != \"role-{1}\" }};\n",
        i, from);
  }
  return c;
}

const policy::Policy& syntheticPolicy() {
  static std::shared_ptr<const policy::Policy> policy = [] {
    auto p = policy::Policy::parse(syntheticPolicyYaml(), "synthetic.yaml");
    if (!p.isOk()) {
      std::fprintf(stderr, "%s\n", p.status().message().c_str());
      std::abort();
    }
    return *p;
  }();
  return *policy;
}

const std::vector<policy::Principal>& syntheticPrincipals() {
  static const std::vector<policy::Principal> principals = [] {
    std::vector<policy::Principal> out;
    for (int k = 0; k < kSyntheticPrincipals; ++k) {
      out.push_back(policy::Principal{fmt::format("dev-{}", k), core::PrincipalKind::kDevice,
                                      fmt::format("role-{}", k % kSyntheticSegments), {{"site", "plant1"}}, false});
    }
    return out;
  }();
  return principals;
}

std::vector<SyntheticRequest> syntheticRequests(bool subscribe, int count, uint32_t seed) {
  const auto& principals = syntheticPrincipals();
  std::mt19937 rng(seed);
  std::vector<SyntheticRequest> out;
  out.reserve(static_cast<size_t>(count));
  for (int n = 0; n < count; ++n) {
    const policy::Principal& p = principals[rng() % principals.size()];
    const int seg = std::stoi(p.role.substr(5));
    const int j = static_cast<int>(rng() % (kSyntheticRulesPerSegment - 1));
    const bool permit = n % 2 == 0;
    std::string r;
    if (subscribe) {
      r = permit ? fmt::format("s{}/{}/r{}/+", seg, p.id, j) : fmt::format("s{}/+/r{}/#", seg, j);
    } else if (permit) {
      r = fmt::format("s{}/{}/r{}/temp", seg, p.id, j);
    } else {
      switch (rng() % 3) {
        case 0: r = fmt::format("s{}/dev-x{}/r{}/temp", seg, n, j); break;                        // no permit
        case 1: r = fmt::format("s{}/{}/forbidden/x", seg, p.id); break;                         // forbidden
        default: r = fmt::format("s{}/{}/r{}/temp", (seg + 2) % kSyntheticSegments, p.id, j); break;  // no flow
      }
    }
    out.push_back(SyntheticRequest{&p, std::move(r), permit});
  }
  return out;
}

}  // namespace warden::bench
