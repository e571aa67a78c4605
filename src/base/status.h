// Errors as values. Every fallible call returns a Status or a Result<T>; the
// message is written for the user: what failed, why, and what to do.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace pampa {

enum class ErrorCode {
  kOk,
  kInvalid,       // the request is malformed; nothing changed
  kNotFound,      // a named object does not exist
  kConflict,      // the object exists already or is in the wrong state
  kBusy,          // another operation on the same object is running
  kUnauthorized,  // missing or wrong credentials
  kUnavailable,   // a dependency (QEMU, the guest agent) does not answer
  kInternal,      // a bug or an unexpected OS failure
  kCancelled,     // the user cancelled the work; nothing is half-done
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status Invalid(std::string m) { return {ErrorCode::kInvalid, std::move(m)}; }
  static Status NotFound(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
  static Status Conflict(std::string m) { return {ErrorCode::kConflict, std::move(m)}; }
  static Status Busy(std::string m) { return {ErrorCode::kBusy, std::move(m)}; }
  static Status Unauthorized(std::string m) { return {ErrorCode::kUnauthorized, std::move(m)}; }
  static Status Unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
  static Status Internal(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }
  static Status Cancelled(std::string m) { return {ErrorCode::kCancelled, std::move(m)}; }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // Returns a copy whose message is prefixed with context ("starting vm web: ...").
  Status Context(const std::string& what) const { return ok() ? *this : Status(code_, what + ": " + message_); }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  // REQUIRES: ok()
  T& value() { return std::get<T>(v_); }
  const T& value() const { return std::get<T>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  // Ok() when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

#define PAMPA_RETURN_IF_ERROR(expr) \
  do {                              \
    ::pampa::Status _st = (expr);   \
    if (!_st.ok()) return _st;      \
  } while (0)

#define PAMPA_CONCAT_INNER(a, b) a##b
#define PAMPA_CONCAT(a, b) PAMPA_CONCAT_INNER(a, b)
#define PAMPA_ASSIGN_OR_RETURN(lhs, expr) PAMPA_ASSIGN_OR_RETURN_IMPL(PAMPA_CONCAT(_res_, __LINE__), lhs, expr)
#define PAMPA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp.value())

}  // namespace pampa
