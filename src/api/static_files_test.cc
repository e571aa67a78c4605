#include "api/static_files.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "api/tickets.h"
#include "base/fs.h"

namespace pampa {
namespace {

class StaticFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pampa-ui-XXXXXX";
    root_ = mkdtemp(tmpl);
    ASSERT_TRUE(MakeDirs(root_ + "/web/assets").ok());
    ASSERT_TRUE(WriteFileAtomic(root_ + "/web/index.html", "<html>app</html>").ok());
    ASSERT_TRUE(WriteFileAtomic(root_ + "/web/assets/app-1a2b.js", "console.log(1)").ok());
    ASSERT_TRUE(WriteFileAtomic(root_ + "/web/assets/app-1a2b.js.gz", "GZ").ok());
    ASSERT_TRUE(WriteFileAtomic(root_ + "/secret", "token").ok());
    std::filesystem::create_symlink(root_ + "/secret", root_ + "/web/leak.txt");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::string root_;
};

TEST_F(StaticFilesTest, ServesTheAppWithCachingByName) {
  StaticFiles ui(root_ + "/web");
  ASSERT_TRUE(ui.available());
  auto index = ui.Serve("/", "gzip");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(*index.raw, "<html>app</html>");
  EXPECT_EQ(index.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(index.headers["Cache-Control"], "no-cache");
  EXPECT_NE(index.headers["Content-Security-Policy"].find("default-src 'self'"), std::string::npos);

  auto js = ui.Serve("/assets/app-1a2b.js", "gzip, deflate, br");
  EXPECT_EQ(*js.raw, "GZ");
  EXPECT_EQ(js.headers["Content-Encoding"], "gzip");
  EXPECT_NE(js.headers["Cache-Control"].find("immutable"), std::string::npos);
  auto plain = ui.Serve("/assets/app-1a2b.js", "identity");
  EXPECT_EQ(*plain.raw, "console.log(1)");
  EXPECT_EQ(plain.headers.count("Content-Encoding"), 0u);
  EXPECT_EQ(ui.Serve("/assets/app-1a2b.js", "xgzip").headers.count("Content-Encoding"), 0u);
}

TEST_F(StaticFilesTest, NothingOutsideTheRoot) {
  StaticFiles ui(root_ + "/web");
  for (const char* path : {"/../secret", "/assets/../../secret", "/leak.txt", "//etc/passwd", "/.hidden", "/assets/",
                           "/a b", "/missing.js"}) {
    EXPECT_EQ(ui.Serve(path, "").status, 404) << path;
  }
}

TEST_F(StaticFilesTest, AMissingBuildSaysHowToMakeIt) {
  StaticFiles ui(root_ + "/nothing");
  EXPECT_FALSE(ui.available());
  auto r = ui.Serve("/", "");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.raw->find("make build"), std::string::npos);
}

TEST(WebSocketTickets, OpenOneEndpointOnce) {
  WebSocketTickets tickets;
  std::string t = tickets.Issue(TicketKind::kSerial, "web");
  EXPECT_EQ(t.size(), 48u);
  EXPECT_FALSE(tickets.Redeem(t, TicketKind::kVnc, "web"));  // wrong endpoint: used up anyway
  EXPECT_FALSE(tickets.Redeem(t, TicketKind::kSerial, "web"));
  std::string u = tickets.Issue(TicketKind::kSerial, "web");
  EXPECT_FALSE(tickets.Redeem(u, TicketKind::kSerial, "db"));
  std::string v = tickets.Issue(TicketKind::kEvents, "");
  EXPECT_TRUE(tickets.Redeem(v, TicketKind::kEvents, ""));
  EXPECT_FALSE(tickets.Redeem(v, TicketKind::kEvents, ""));
  EXPECT_FALSE(tickets.Redeem("", TicketKind::kEvents, ""));
  EXPECT_NE(tickets.Issue(TicketKind::kEvents, ""), tickets.Issue(TicketKind::kEvents, ""));
}

}  // namespace
}  // namespace pampa
