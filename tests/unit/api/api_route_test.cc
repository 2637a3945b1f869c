#include "api/api_route.h"

#include <gtest/gtest.h>

#include "crypto/crypto.h"

namespace warden::api {
namespace {

TEST(MatchRoute, MapsEveryEndpoint) {
  EXPECT_EQ(matchRoute("GET", "/healthz").kind, RouteKind::kHealth);
  EXPECT_EQ(matchRoute("GET", "/.well-known/est/cacerts").kind, RouteKind::kEstCacerts);
  EXPECT_EQ(matchRoute("POST", "/.well-known/est/simpleenroll").kind, RouteKind::kEstSimpleEnroll);
  EXPECT_EQ(matchRoute("POST", "/.well-known/est/simplereenroll").kind, RouteKind::kEstSimpleReenroll);
  EXPECT_EQ(matchRoute("GET", "/.well-known/est/csrattrs").kind, RouteKind::kEstCsrAttrs);
  EXPECT_EQ(matchRoute("POST", "/.well-known/est/serverkeygen").kind, RouteKind::kEstServerKeygen);
  EXPECT_EQ(matchRoute("POST", "/.well-known/est/fullcmc").kind, RouteKind::kEstFullCmc);
  EXPECT_EQ(matchRoute("POST", "/.well-known/est/csrattrs").kind, RouteKind::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("POST", "/v1/devices").kind, RouteKind::kDeviceAdd);
  EXPECT_EQ(matchRoute("GET", "/v1/devices").kind, RouteKind::kDeviceList);
  EXPECT_EQ(matchRoute("PUT", "/v1/policy").kind, RouteKind::kPolicyApply);
  EXPECT_EQ(matchRoute("GET", "/v1/policy").kind, RouteKind::kPolicyShow);
  EXPECT_EQ(matchRoute("POST", "/v1/policy/explain").kind, RouteKind::kPolicyExplain);
  EXPECT_EQ(matchRoute("GET", "/v1/policy/versions").kind, RouteKind::kPolicyHistory);
  EXPECT_EQ(matchRoute("POST", "/v1/policy/rollback").kind, RouteKind::kPolicyRollback);
  Route version = matchRoute("GET", "/v1/policy/versions/12");
  EXPECT_EQ(version.kind, RouteKind::kPolicyVersion);
  EXPECT_EQ(version.version, "12");
  EXPECT_EQ(matchRoute("GET", "/v1/policy/explain").kind, RouteKind::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("GET", "/v1/policy/versions/1/x").kind, RouteKind::kNotFound);
  EXPECT_EQ(matchRoute("PUT", "/v1/policy?force=true").query, "force=true");
  EXPECT_EQ(matchRoute("GET", "/v1/events?since=3").kind, RouteKind::kEventsRead);
}

TEST(MatchRoute, CapturesDeviceNameAndVerb) {
  Route show = matchRoute("GET", "/v1/devices/temp-1");
  EXPECT_EQ(show.kind, RouteKind::kDeviceShow);
  EXPECT_EQ(show.device, "temp-1");
  Route revoke = matchRoute("POST", "/v1/devices/temp-1/revoke");
  EXPECT_EQ(revoke.kind, RouteKind::kDeviceRevoke);
  EXPECT_EQ(revoke.device, "temp-1");
  EXPECT_EQ(matchRoute("POST", "/v1/devices/v/quarantine").kind, RouteKind::kDeviceQuarantine);
  EXPECT_EQ(matchRoute("POST", "/v1/devices/v/release").kind, RouteKind::kDeviceRelease);
  EXPECT_EQ(matchRoute("POST", "/v1/devices/v/token").kind, RouteKind::kDeviceToken);
}

TEST(MatchRoute, UnknownPathsAreNotFound) {
  EXPECT_EQ(matchRoute("GET", "/").kind, RouteKind::kNotFound);
  EXPECT_EQ(matchRoute("GET", "/v1/devices/").kind, RouteKind::kNotFound);
  EXPECT_EQ(matchRoute("POST", "/v1/devices/a/explode").kind, RouteKind::kNotFound);
  EXPECT_EQ(matchRoute("POST", "/v1/devices/a/revoke/x").kind, RouteKind::kNotFound);
  EXPECT_EQ(matchRoute("GET", "/.well-known/est/enroll").kind, RouteKind::kNotFound);
  EXPECT_EQ(matchRoute("GET", "/v1/devicesX").kind, RouteKind::kNotFound);
}

TEST(MatchRoute, WrongMethodNamesTheAllowedOnes) {
  Route r = matchRoute("DELETE", "/v1/devices");
  EXPECT_EQ(r.kind, RouteKind::kMethodNotAllowed);
  EXPECT_EQ(r.allow, "GET, POST");
  EXPECT_EQ(matchRoute("GET", "/v1/devices/a/revoke").allow, "POST");
  EXPECT_EQ(matchRoute("GET", "/.well-known/est/simpleenroll").kind, RouteKind::kMethodNotAllowed);
}

TEST(MatchRoute, KeepsTheQuery) {
  EXPECT_EQ(matchRoute("GET", "/v1/events?since=1&wait=5").query, "since=1&wait=5");
  EXPECT_EQ(matchRoute("GET", "/v1/devices/a?x=1").device, "a");
}

TEST(MatchRoute, CertificateAndCaRoutes) {
  EXPECT_EQ(matchRoute("GET", "/v1/certs?expiring=3600").kind, RouteKind::kCertList);
  EXPECT_EQ(matchRoute("GET", "/v1/certs?expiring=3600").query, "expiring=3600");
  Route revoke = matchRoute("POST", "/v1/certs/5f0c2a9e/revoke");
  EXPECT_EQ(revoke.kind, RouteKind::kCertRevoke);
  EXPECT_EQ(revoke.device, "5f0c2a9e");
  EXPECT_EQ(matchRoute("GET", "/v1/certs/5f0c2a9e/revoke").kind, RouteKind::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("POST", "/v1/certs//revoke").kind, RouteKind::kNotFound);
  EXPECT_EQ(matchRoute("POST", "/v1/certs/a/b/revoke").kind, RouteKind::kNotFound);
  EXPECT_EQ(matchRoute("GET", "/v1/cas").kind, RouteKind::kCaList);
  EXPECT_EQ(matchRoute("POST", "/v1/cas").kind, RouteKind::kCaRotate);
  EXPECT_EQ(matchRoute("DELETE", "/v1/cas").kind, RouteKind::kMethodNotAllowed);
  Route retire = matchRoute("POST", "/v1/cas/issuing-1/retire");
  EXPECT_EQ(retire.kind, RouteKind::kCaRetire);
  EXPECT_EQ(retire.device, "issuing-1");
  EXPECT_EQ(adminAction(RouteKind::kCertList), "admin:cert.list");
  EXPECT_EQ(adminAction(RouteKind::kCertRevoke), "admin:cert.revoke");
  EXPECT_EQ(adminAction(RouteKind::kCaList), "admin:ca.list");
  EXPECT_EQ(adminAction(RouteKind::kCaRotate), "admin:ca.rotate");
  EXPECT_EQ(adminAction(RouteKind::kCaRetire), "admin:ca.retire");
}

TEST(MatchRoute, EnrollmentAdminRoutes) {
  EXPECT_EQ(matchRoute("PATCH", "/v1/devices/a").kind, RouteKind::kDeviceSet);
  EXPECT_EQ(matchRoute("DELETE", "/v1/devices/a").kind, RouteKind::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("GET", "/v1/enrollments").kind, RouteKind::kEnrollList);
  Route approve = matchRoute("POST", "/v1/enrollments/r0123/approve");
  EXPECT_EQ(approve.kind, RouteKind::kEnrollApprove);
  EXPECT_EQ(approve.id, "r0123");
  EXPECT_EQ(matchRoute("POST", "/v1/enrollments/r0123/deny").kind, RouteKind::kEnrollDeny);
  EXPECT_EQ(matchRoute("POST", "/v1/enrollments/r0123/other").kind, RouteKind::kNotFound);
  EXPECT_EQ(matchRoute("POST", "/v1/enrollments//approve").kind, RouteKind::kNotFound);
  EXPECT_EQ(matchRoute("GET", "/v1/manufacturers").kind, RouteKind::kManufacturerList);
  EXPECT_EQ(matchRoute("POST", "/v1/manufacturers").kind, RouteKind::kManufacturerAdd);
  Route remove = matchRoute("DELETE", "/v1/manufacturers/acme");
  EXPECT_EQ(remove.kind, RouteKind::kManufacturerRemove);
  EXPECT_EQ(remove.id, "acme");
  EXPECT_EQ(matchRoute("GET", "/v1/manufacturers/acme").kind, RouteKind::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("DELETE", "/v1/manufacturers/a/b").kind, RouteKind::kNotFound);
}

TEST(MatchRoute, AttestationAndTpmTrust) {
  EXPECT_EQ(matchRoute("POST", "/attest/v1/challenge").kind, RouteKind::kAttestChallenge);
  EXPECT_EQ(matchRoute("POST", "/attest/v1/evidence").kind, RouteKind::kAttestEvidence);
  EXPECT_EQ(matchRoute("POST", "/attest/v1/ak").kind, RouteKind::kAttestAk);
  EXPECT_EQ(matchRoute("POST", "/attest/v1/ak/activate").kind, RouteKind::kAttestAkActivate);
  EXPECT_EQ(matchRoute("GET", "/attest/v1/challenge").kind, RouteKind::kMethodNotAllowed);
  EXPECT_EQ(matchRoute("POST", "/attest/v1/other").kind, RouteKind::kNotFound);
  EXPECT_EQ(matchRoute("GET", "/v1/tpm-cas").kind, RouteKind::kTpmCaList);
  EXPECT_EQ(matchRoute("POST", "/v1/tpm-cas").kind, RouteKind::kTpmCaAdd);
  Route remove = matchRoute("DELETE", "/v1/tpm-cas/sha256:ab");
  EXPECT_EQ(remove.kind, RouteKind::kTpmCaRemove);
  EXPECT_EQ(remove.id, "sha256:ab");
  EXPECT_EQ(matchRoute("DELETE", "/v1/tpm-cas/a/b").kind, RouteKind::kNotFound);
  Route ek = matchRoute("PUT", "/v1/devices/plc-1/ek");
  EXPECT_EQ(ek.kind, RouteKind::kDeviceEkSet);
  EXPECT_EQ(ek.device, "plc-1");
  EXPECT_EQ(matchRoute("DELETE", "/v1/devices/plc-1/ek").kind, RouteKind::kDeviceEkRemove);
  EXPECT_EQ(matchRoute("POST", "/v1/devices/plc-1/ek").kind, RouteKind::kMethodNotAllowed);
  // Attestation is the device's own business: never an admin route.
  for (RouteKind k : {RouteKind::kAttestChallenge, RouteKind::kAttestEvidence, RouteKind::kAttestAk,
                      RouteKind::kAttestAkActivate}) {
    EXPECT_TRUE(isAttestRoute(k));
    EXPECT_FALSE(isAdminRoute(k));
  }
  EXPECT_FALSE(isAttestRoute(RouteKind::kEstSimpleReenroll));
}

TEST(AdminAction, EveryAdminRouteHasItsAction) {
  EXPECT_EQ(adminAction(RouteKind::kTpmCaAdd), "admin:tpm-ca.add");
  EXPECT_EQ(adminAction(RouteKind::kTpmCaList), "admin:tpm-ca.list");
  EXPECT_EQ(adminAction(RouteKind::kTpmCaRemove), "admin:tpm-ca.remove");
  EXPECT_EQ(adminAction(RouteKind::kDeviceEkSet), "admin:device.set");
  EXPECT_EQ(adminAction(RouteKind::kDeviceEkRemove), "admin:device.set");
  EXPECT_EQ(adminAction(RouteKind::kDeviceAdd), "admin:device.add");
  EXPECT_EQ(adminAction(RouteKind::kDeviceList), "admin:device.list");
  EXPECT_EQ(adminAction(RouteKind::kDeviceShow), "admin:device.show");
  EXPECT_EQ(adminAction(RouteKind::kDeviceToken), "admin:device.token");
  EXPECT_EQ(adminAction(RouteKind::kDeviceRevoke), "admin:device.revoke");
  EXPECT_EQ(adminAction(RouteKind::kDeviceQuarantine), "admin:device.quarantine");
  EXPECT_EQ(adminAction(RouteKind::kDeviceRelease), "admin:device.release");
  EXPECT_EQ(adminAction(RouteKind::kPolicyApply), "admin:policy.apply");
  EXPECT_EQ(adminAction(RouteKind::kPolicyShow), "admin:policy.show");
  EXPECT_EQ(adminAction(RouteKind::kPolicyExplain), "admin:policy.explain");
  EXPECT_EQ(adminAction(RouteKind::kPolicyHistory), "admin:policy.history");
  EXPECT_EQ(adminAction(RouteKind::kPolicyVersion), "admin:policy.history");
  EXPECT_EQ(adminAction(RouteKind::kPolicyRollback), "admin:policy.apply");
  EXPECT_EQ(adminAction(RouteKind::kEventsRead), "admin:events.read");
  EXPECT_EQ(adminAction(RouteKind::kDeviceSet), "admin:device.set");
  EXPECT_EQ(adminAction(RouteKind::kEnrollList), "admin:device.list");
  EXPECT_EQ(adminAction(RouteKind::kEnrollApprove), "admin:device.approve");
  EXPECT_EQ(adminAction(RouteKind::kEnrollDeny), "admin:device.approve");
  EXPECT_EQ(adminAction(RouteKind::kManufacturerAdd), "admin:manufacturer.add");
  EXPECT_EQ(adminAction(RouteKind::kManufacturerList), "admin:manufacturer.list");
  EXPECT_EQ(adminAction(RouteKind::kManufacturerRemove), "admin:manufacturer.remove");
  EXPECT_FALSE(isAdminRoute(RouteKind::kEstSimpleEnroll));
  EXPECT_FALSE(isAdminRoute(RouteKind::kEstCsrAttrs));
  EXPECT_FALSE(isAdminRoute(RouteKind::kHealth));
  EXPECT_TRUE(isAdminRoute(RouteKind::kEventsRead));
}

TEST(ParseEventsQuery, ParsesAllParameters) {
  auto q = parseEventsQuery("since=10&limit=5&wait=30", 30);
  ASSERT_TRUE(q.isOk()) << q.status().toString();
  EXPECT_EQ(*q->since, 10);
  EXPECT_EQ(*q->limit, 5);
  EXPECT_EQ(q->wait_seconds, 30);
  auto empty = parseEventsQuery("", 30);
  ASSERT_TRUE(empty.isOk());
  EXPECT_FALSE(empty->since.has_value());
  EXPECT_FALSE(empty->limit.has_value());
  EXPECT_EQ(empty->wait_seconds, 0);
}

TEST(ParseEventsQuery, RejectsBadValues) {
  EXPECT_FALSE(parseEventsQuery("since=-1", 30).isOk());
  EXPECT_FALSE(parseEventsQuery("since=abc", 30).isOk());
  EXPECT_FALSE(parseEventsQuery("since=", 30).isOk());
  EXPECT_FALSE(parseEventsQuery("limit=0", 30).isOk());
  EXPECT_FALSE(parseEventsQuery("limit=10001", 30).isOk());
  EXPECT_FALSE(parseEventsQuery("wait=31", 30).isOk());
  EXPECT_FALSE(parseEventsQuery("since=1&since=2", 30).isOk());
  EXPECT_FALSE(parseEventsQuery("follow=1", 30).isOk());
  EXPECT_FALSE(parseEventsQuery("since=99999999999999999999", 30).isOk());
}

TEST(ParseBasicAuth, DecodesUserAndPassword) {
  auto c = parseBasicAuth("Basic " + crypto::base64Encode("temp-1:tok:en"));
  ASSERT_TRUE(c.isOk());
  EXPECT_EQ(c->user, "temp-1");
  EXPECT_EQ(c->password, "tok:en");
  auto lower = parseBasicAuth("basic " + crypto::base64Encode("a:b"));
  ASSERT_TRUE(lower.isOk());
  EXPECT_EQ(lower->user, "a");
}

TEST(ParseBasicAuth, RejectsMalformedCredentials) {
  EXPECT_EQ(parseBasicAuth("").status().code(), core::ErrorCode::kUnauthenticated);
  EXPECT_FALSE(parseBasicAuth("Bearer abc").isOk());
  EXPECT_FALSE(parseBasicAuth("Basic").isOk());
  EXPECT_FALSE(parseBasicAuth("Basic !!!").isOk());
  EXPECT_FALSE(parseBasicAuth("Basic " + crypto::base64Encode("no-colon")).isOk());
  EXPECT_FALSE(parseBasicAuth("Basic " + std::string(2000, 'A')).isOk());
}

TEST(MediaType, StripsParametersAndCase) {
  EXPECT_EQ(mediaType("Application/PKCS10; charset=x"), "application/pkcs10");
  EXPECT_EQ(mediaType("  application/json "), "application/json");
  EXPECT_EQ(mediaType(""), "");
}

TEST(SanitizeFilename, KeepsSafeCharactersOnly) {
  EXPECT_EQ(sanitizeFilename("examples/demo-policy.yaml"), "examples/demo-policy.yaml");
  EXPECT_EQ(sanitizeFilename("a b\n:c"), "a_b__c");
  EXPECT_EQ(sanitizeFilename(""), "policy");
  EXPECT_EQ(sanitizeFilename(std::string(400, 'x')).size(), 255u);
}

}  // namespace
}  // namespace warden::api
