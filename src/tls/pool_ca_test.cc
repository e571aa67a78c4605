#include "tls/pool_ca.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <regex>

#include "base/fs.h"

namespace pampa::tls {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using CertPtr = std::unique_ptr<X509, X509Free>;

CertPtr Parse(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  return CertPtr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// OpenSSL's own chain check, independent of LoadHostFiles.
bool Verifies(const std::string& ca_pem, const std::string& leaf_pem) {
  CertPtr ca = Parse(ca_pem), leaf = Parse(leaf_pem);
  if (!ca || !leaf) return false;
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
  X509_STORE_add_cert(store.get(), ca.get());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), nullptr);
  return X509_verify_cert(ctx.get()) == 1;
}

// The SANs as "DNS:x" / "IP:a.b.c.d" / "IP:v6".
std::vector<std::string> Sans(X509* cert) {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    if (g->type == GEN_DNS) {
      out.push_back("DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.dNSName)),
                                         ASN1_STRING_length(g->d.dNSName)));
    } else if (g->type == GEN_IPADD) {
      char buf[INET6_ADDRSTRLEN];
      int af = ASN1_STRING_length(g->d.iPAddress) == 4 ? AF_INET : AF_INET6;
      inet_ntop(af, ASN1_STRING_get0_data(g->d.iPAddress), buf, sizeof buf);
      out.push_back(std::string("IP:") + buf);
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

bool Critical(X509* cert, int nid) {
  int idx = X509_get_ext_by_NID(cert, nid, -1);
  return idx >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, idx)) == 1;
}

std::string SubjectField(X509* cert, int nid) {
  char buf[256];
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), nid, buf, sizeof buf);
  return n < 0 ? "" : std::string(buf, n);
}

int ModeOf(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return -1;
  return st.st_mode & 0777;
}

class PoolCaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pool_ca_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    data_dir_ = tmpl;
    auto ca = MakeCa("0badcafe");
    ASSERT_TRUE(ca.ok()) << ca.status().message();
    ca_ = *ca;
    auto host = IssueCert(ca_, "h1", {"10.0.0.5", "fd00::5", "h1.example"});
    ASSERT_TRUE(host.ok()) << host.status().message();
    host_ = *host;
  }
  void TearDown() override { std::filesystem::remove_all(data_dir_); }

  std::string data_dir_;
  Issued ca_;
  Issued host_;
};

TEST_F(PoolCaTest, CaIsAPathLenZeroCa) {
  CertPtr ca = Parse(ca_.cert);
  ASSERT_TRUE(ca);
  EXPECT_EQ(SubjectField(ca.get(), NID_commonName), "pampa pool CA 0badcafe");
  EXPECT_EQ(X509_get_version(ca.get()), X509_VERSION_3);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_EQ(X509_get_pathlen(ca.get()), 0);
  EXPECT_TRUE(Critical(ca.get(), NID_basic_constraints));
  EXPECT_TRUE(Critical(ca.get(), NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(ca.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_NE(X509_get0_subject_key_id(ca.get()), nullptr);
  EXPECT_NE(ca_.key.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
}

TEST_F(PoolCaTest, HostCertificateChainsToTheCa) {
  EXPECT_TRUE(Verifies(ca_.cert, host_.cert));
  auto other = MakeCa("00000000");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(Verifies(other->cert, host_.cert));
}

TEST_F(PoolCaTest, HostCertificateCarriesWhatQemuAndEtcdCheck) {
  CertPtr leaf = Parse(host_.cert);
  ASSERT_TRUE(leaf);
  EXPECT_EQ(SubjectField(leaf.get(), NID_commonName), "h1");
  EXPECT_EQ(SubjectField(leaf.get(), NID_organizationName), "pampa pool");
  EXPECT_EQ(Sans(leaf.get()), (std::vector<std::string>{"DNS:h1", "IP:10.0.0.5", "IP:fd00::5", "DNS:h1.example"}));
  EXPECT_EQ(X509_check_ca(leaf.get()), 0);
  EXPECT_TRUE(Critical(leaf.get(), NID_basic_constraints));
  EXPECT_TRUE(Critical(leaf.get(), NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(leaf.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
  EXPECT_EQ(X509_get_extended_key_usage(leaf.get()), static_cast<uint32_t>(XKU_SSL_SERVER | XKU_SSL_CLIENT));
  // authorityKeyIdentifier names the CA's key.
  CertPtr ca = Parse(ca_.cert);
  ASSERT_NE(X509_get0_authority_key_id(leaf.get()), nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf.get()), X509_get0_subject_key_id(ca.get())), 0);
  // Serials are random and positive.
  CertPtr again = Parse(IssueCert(ca_, "h1", {})->cert);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(leaf.get()), X509_get0_serialNumber(again.get())), 0);
  EXPECT_NE(host_.key.find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
}

TEST_F(PoolCaTest, CertNameIsTheDnsName) {
  EXPECT_EQ(*CertName(host_.cert), "h1");
  EXPECT_EQ(*CertName(ca_.cert), "pampa pool CA 0badcafe");  // no SAN: the CN
  EXPECT_EQ(CertName("garbage").status().code(), ErrorCode::kInvalid);
}

TEST_F(PoolCaTest, FingerprintIsStableAndFormatted) {
  auto f = Fingerprint(ca_.cert);
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(std::regex_match(*f, std::regex("sha256:[0-9a-f]{64}"))) << *f;
  EXPECT_EQ(*Fingerprint(ca_.cert), *f);
  EXPECT_NE(*Fingerprint(host_.cert), *f);
  EXPECT_EQ(Fingerprint("").status().code(), ErrorCode::kInvalid);
}

TEST_F(PoolCaTest, NotAfterIsFiveYearsAway) {
  auto na = NotAfter(host_.cert);
  ASSERT_TRUE(na.ok());
  ASSERT_TRUE(std::regex_match(*na, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << *na;
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  int year = std::stoi(na->substr(0, 4));
  EXPECT_GE(year, tm.tm_year + 1900 + 4);
  EXPECT_LE(year, tm.tm_year + 1900 + 5);
  EXPECT_GE(std::stoi(NotAfter(ca_.cert)->substr(0, 4)), tm.tm_year + 1900 + 9);
}

TEST_F(PoolCaTest, BadNamesAndAddressesAreRefused) {
  for (const std::string& bad : {std::string(""), std::string("a b"), std::string("a/b"), std::string("-h"),
                                 std::string("h,1"), std::string(64, 'a')}) {
    auto r = IssueCert(ca_, bad, {});
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalid) << bad;
  }
  EXPECT_NE(IssueCert(ca_, "a b", {}).status().message().find("invalid host name 'a b'"), std::string::npos);
  EXPECT_TRUE(IssueCert(ca_, "Host_1.a-b", {}).ok());
  EXPECT_TRUE(IssueCert(ca_, std::string(63, 'a'), {}).ok());
  for (const std::string& bad : {std::string(""), std::string("10.0.0.1,IP:1.2.3.4"), std::string("a b")}) {
    auto r = IssueCert(ca_, "h1", {bad});
    EXPECT_EQ(r.status().code(), ErrorCode::kInvalid) << bad;
  }
  EXPECT_NE(IssueCert(ca_, "h1", {"a,b"}).status().message().find("comma"), std::string::npos);
}

TEST_F(PoolCaTest, ForeignCaKeyIsRefused) {
  auto other = MakeCa("11111111");
  ASSERT_TRUE(other.ok());
  Issued mixed{ca_.cert, other->key};
  EXPECT_EQ(IssueCert(mixed, "h1", {}).status().code(), ErrorCode::kInvalid);
}

TEST_F(PoolCaTest, WriteHostFilesLaysOutFilesWithTheirModes) {
  TlsPaths paths(data_dir_);
  ASSERT_TRUE(WriteHostFiles(paths, ca_, host_).ok());
  EXPECT_EQ(ModeOf(paths.dir), 0700);
  EXPECT_EQ(ModeOf(paths.qemu_dir()), 0700);
  for (const std::string& key :
       {paths.ca_key(), paths.host_key(), paths.qemu_dir() + "/server-key.pem", paths.qemu_dir() + "/client-key.pem"})
    EXPECT_EQ(ModeOf(key), 0600) << key;
  for (const std::string& cert :
       {paths.ca(), paths.host(), paths.qemu_dir() + "/ca-cert.pem", paths.qemu_dir() + "/server-cert.pem",
        paths.qemu_dir() + "/client-cert.pem", paths.qemu_dir() + "/dh-params.pem"})
    EXPECT_EQ(ModeOf(cert), 0644) << cert;
  EXPECT_EQ(*ReadFile(paths.host()), host_.cert + ca_.cert);
  EXPECT_EQ(*ReadFile(paths.qemu_dir() + "/ca-cert.pem"), ca_.cert);
  EXPECT_EQ(*ReadFile(paths.qemu_dir() + "/server-cert.pem"), host_.cert);
  EXPECT_EQ(*ReadFile(paths.qemu_dir() + "/client-key.pem"), host_.key);
  EXPECT_TRUE(ReadFile(paths.qemu_dir() + "/dh-params.pem")->starts_with("-----BEGIN DH PARAMETERS-----"));
}

TEST_F(PoolCaTest, LoadHostFilesGivesAPoolFormedBeforeThemQemusDhParameters) {
  TlsPaths paths(data_dir_);
  ASSERT_TRUE(WriteHostFiles(paths, ca_, host_).ok());
  ASSERT_EQ(unlink((paths.qemu_dir() + "/dh-params.pem").c_str()), 0);
  ASSERT_TRUE(LoadHostFiles(paths).ok());
  EXPECT_TRUE(ReadFile(paths.qemu_dir() + "/dh-params.pem")->starts_with("-----BEGIN DH PARAMETERS-----"));
}

TEST_F(PoolCaTest, LoadHostFilesReadsBackWhatWasWritten) {
  TlsPaths paths(data_dir_);
  ASSERT_TRUE(WriteHostFiles(paths, ca_, host_).ok());
  auto loaded = LoadHostFiles(paths);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->name, "h1");
  EXPECT_EQ(loaded->host.cert, host_.cert);  // the leaf only
  EXPECT_EQ(loaded->host.key, host_.key);
  EXPECT_EQ(loaded->ca.cert, ca_.cert);
  EXPECT_EQ(loaded->ca.key, ca_.key);
  EXPECT_EQ(loaded->ca_sha256, *Fingerprint(ca_.cert));
  EXPECT_EQ(loaded->not_after, *NotAfter(host_.cert));
}

TEST_F(PoolCaTest, LoadHostFilesWithoutTheCaKey) {
  TlsPaths paths(data_dir_);
  ASSERT_TRUE(WriteHostFiles(paths, ca_, host_).ok());
  std::filesystem::remove(paths.ca_key());
  auto loaded = LoadHostFiles(paths);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_TRUE(loaded->ca.key.empty());
}

TEST_F(PoolCaTest, LoadHostFilesOnAnEmptyDirIsNotFound) {
  auto r = LoadHostFiles(TlsPaths(data_dir_));
  EXPECT_EQ(r.status().code(), ErrorCode::kNotFound);
  EXPECT_NE(r.status().message().find("no pool certificate"), std::string::npos);
}

TEST_F(PoolCaTest, LoadHostFilesRefusesACertificateOfAnotherCa) {
  auto other = MakeCa("22222222");
  ASSERT_TRUE(other.ok());
  auto foreign = IssueCert(*other, "h1", {"10.0.0.5"});
  ASSERT_TRUE(foreign.ok());
  TlsPaths paths(data_dir_);
  ASSERT_TRUE(WriteHostFiles(paths, ca_, *foreign).ok());
  auto r = LoadHostFiles(paths);
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalid);
  EXPECT_NE(r.status().message().find("does not verify against the pool CA"), std::string::npos)
      << r.status().message();
}

TEST_F(PoolCaTest, LoadHostFilesRefusesAKeyOfAnotherCertificate) {
  auto second = IssueCert(ca_, "h2", {});
  ASSERT_TRUE(second.ok());
  TlsPaths paths(data_dir_);
  ASSERT_TRUE(WriteHostFiles(paths, ca_, Issued{host_.cert, second->key}).ok());
  EXPECT_EQ(LoadHostFiles(paths).status().code(), ErrorCode::kInvalid);
}

TEST_F(PoolCaTest, LoadHostFilesRefusesAnIncompleteDirectory) {
  TlsPaths paths(data_dir_);
  ASSERT_TRUE(WriteHostFiles(paths, ca_, host_).ok());
  std::filesystem::remove(paths.ca());
  auto r = LoadHostFiles(paths);
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalid);
  EXPECT_NE(r.status().message().find("ca.pem is missing"), std::string::npos) << r.status().message();
}

TEST_F(PoolCaTest, FormPoolWritesEverythingOnceOnly) {
  TlsPaths paths(data_dir_);
  Status st = FormPool(paths, "h1", {"10.0.0.5"}, {"10.0.0.5", "127.0.0.1"});
  ASSERT_TRUE(st.ok()) << st.message();
  auto loaded = LoadHostFiles(paths);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->name, "h1");
  EXPECT_TRUE(std::regex_match(*CertName(loaded->ca.cert), std::regex("pampa pool CA [0-9a-f]{8}")));

  EXPECT_EQ(ModeOf(paths.dir + "/etcd"), 0700);
  EXPECT_EQ(ModeOf(paths.etcd_key()), 0600);
  std::string etcd = *ReadFile(paths.etcd_cert());
  EXPECT_TRUE(Verifies(loaded->ca.cert, etcd));
  CertPtr etcd_cert = Parse(etcd);
  EXPECT_EQ(Sans(etcd_cert.get()), (std::vector<std::string>{"DNS:etcd", "IP:10.0.0.5", "IP:127.0.0.1"}));
  EXPECT_EQ(X509_get_extended_key_usage(etcd_cert.get()), static_cast<uint32_t>(XKU_SSL_SERVER | XKU_SSL_CLIENT));

  std::string fingerprint = loaded->ca_sha256;
  EXPECT_EQ(FormPool(paths, "h1", {"10.0.0.5"}, {}).code(), ErrorCode::kConflict);
  EXPECT_EQ(LoadHostFiles(paths)->ca_sha256, fingerprint);  // untouched
}

TEST_F(PoolCaTest, FormPoolWithABadNameWritesNothing) {
  TlsPaths paths(data_dir_);
  EXPECT_EQ(FormPool(paths, "bad name", {}, {"127.0.0.1"}).code(), ErrorCode::kInvalid);
  EXPECT_FALSE(Exists(paths.dir));
  EXPECT_TRUE(FormPool(paths, "h1", {}, {}).ok());
  EXPECT_FALSE(Exists(paths.etcd_cert()));
}

}  // namespace
}  // namespace pampa::tls
