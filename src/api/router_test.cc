#include "api/router.h"

#include <gtest/gtest.h>

namespace pampa {
namespace {

TEST(Router, MatchesPlaceholdersAndMethods) {
  Router r;
  r.Add("GET", "/api/v1/vms/{name}", [](const HttpRequest& req) {
    return HttpResponse{200, {{"name", req.params.at("name")}}};
  });
  HttpRequest get{"GET", "/api/v1/vms/web"};
  EXPECT_EQ(r.Dispatch(get).body["name"], "web");
  HttpRequest del{"DELETE", "/api/v1/vms/web"};
  EXPECT_EQ(r.Dispatch(del).status, 405);
  HttpRequest none{"GET", "/api/v1/nothing"};
  EXPECT_EQ(r.Dispatch(none).status, 404);
}

TEST(Router, ErrorsMapToHttpStatuses) {
  EXPECT_EQ(ErrorResponse(Status::Invalid("x")).status, 400);
  EXPECT_EQ(ErrorResponse(Status::NotFound("x")).status, 404);
  EXPECT_EQ(ErrorResponse(Status::Busy("busy: start in progress")).status, 409);
  EXPECT_EQ(ErrorResponse(Status::Busy("x")).body["code"], "busy");
  EXPECT_EQ(ErrorResponse(Status::Cancelled("backup cancelled")).status, 499);
  EXPECT_EQ(ErrorResponse(Status::Cancelled("x")).body["code"], "cancelled");
}

TEST(Router, HandlerExceptionsBecome500) {
  Router r;
  r.Add("GET", "/x", [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); });
  HttpRequest req{"GET", "/x"};
  auto resp = r.Dispatch(req);
  EXPECT_EQ(resp.status, 500);
}

TEST(Router, QueryAndBody) {
  auto q = ParseQuery("token=a%20b&x=1");
  EXPECT_EQ(q["token"], "a b");
  HttpRequest bad{"POST", "/x", "{not json"};
  EXPECT_FALSE(bad.Json().ok());
  HttpRequest empty{"POST", "/x", ""};
  EXPECT_TRUE(empty.Json()->is_object());
}

}  // namespace
}  // namespace pampa
