#include "pki/pki_files.h"

#include <gtest/gtest.h>

namespace warden::pki {
namespace {

TEST(PkiPaths, NamesFilesUnderDataDirPki) {
  PkiPaths p("/var/lib/warden/");
  EXPECT_EQ(p.dir(), "/var/lib/warden/pki");
  EXPECT_EQ(p.root_cert(), "/var/lib/warden/pki/root.pem");
  EXPECT_EQ(p.root_key(), "/var/lib/warden/pki/root.key");
  EXPECT_EQ(p.issuing_cert(), "/var/lib/warden/pki/issuing.pem");
  EXPECT_EQ(p.issuing_key(), "/var/lib/warden/pki/issuing.key");
  EXPECT_EQ(p.gateway_cert(), "/var/lib/warden/pki/gateway.pem");
  EXPECT_EQ(p.gateway_key(), "/var/lib/warden/pki/gateway.key");
  EXPECT_EQ(p.admin_cert(), "/var/lib/warden/pki/admin.pem");
  EXPECT_EQ(p.admin_key(), "/var/lib/warden/pki/admin.key");
  EXPECT_EQ(p.upstream_ca_cert(), "/var/lib/warden/pki/upstream-ca.pem");
  EXPECT_EQ(p.upstream_ca_key(), "/var/lib/warden/pki/upstream-ca.key");
  EXPECT_EQ(p.upstream_client_cert(), "/var/lib/warden/pki/upstream-client.pem");
  EXPECT_EQ(p.upstream_client_key(), "/var/lib/warden/pki/upstream-client.key");
  EXPECT_EQ(p.broker_cert(), "/var/lib/warden/pki/broker.pem");
  EXPECT_EQ(p.broker_key(), "/var/lib/warden/pki/broker.key");
  EXPECT_EQ(PkiPaths("d").root_cert(), "d/pki/root.pem");
}

}  // namespace
}  // namespace warden::pki
