#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace warden::core {

// ErrorCode is the machine-readable half of a Status. The names follow the
// usual canonical codes so that an operator reading an event or a log line
// recognizes them.
enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,    // the input is malformed or violates a limit
  kNotFound,           // the named thing does not exist
  kAlreadyExists,      // the name is taken (names are never reused)
  kPermissionDenied,   // authenticated but not allowed
  kUnauthenticated,    // no or bad credentials
  kFailedPrecondition, // the current state does not allow the operation
  kResourceExhausted,  // a rate or size limit was hit
  kUnavailable,        // a peer or service cannot be reached
  kDeadlineExceeded,   // a timeout passed
  kDataLoss,           // stored data is corrupt or was tampered with
  kUnimplemented,      // the operation is not supported
  kInternal,           // a bug or an unexpected library failure
};

// errorCodeName returns the stable snake_case name of |code|, e.g.
// "invalid_argument"; it is used in JSON output and events.
std::string_view errorCodeName(ErrorCode code);

// Status is the result of an operation that returns no value. A failed
// Status carries a code and a message a person can act on.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }

  bool isOk() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const { return isOk(); }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // toString returns "code: message", or "ok".
  std::string toString() const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

inline Status invalidArgument(std::string m) { return {ErrorCode::kInvalidArgument, std::move(m)}; }
inline Status notFound(std::string m) { return {ErrorCode::kNotFound, std::move(m)}; }
inline Status alreadyExists(std::string m) { return {ErrorCode::kAlreadyExists, std::move(m)}; }
inline Status permissionDenied(std::string m) { return {ErrorCode::kPermissionDenied, std::move(m)}; }
inline Status unauthenticated(std::string m) { return {ErrorCode::kUnauthenticated, std::move(m)}; }
inline Status failedPrecondition(std::string m) { return {ErrorCode::kFailedPrecondition, std::move(m)}; }
inline Status resourceExhausted(std::string m) { return {ErrorCode::kResourceExhausted, std::move(m)}; }
inline Status unavailable(std::string m) { return {ErrorCode::kUnavailable, std::move(m)}; }
inline Status dataLoss(std::string m) { return {ErrorCode::kDataLoss, std::move(m)}; }
inline Status unimplemented(std::string m) { return {ErrorCode::kUnimplemented, std::move(m)}; }
inline Status internalError(std::string m) { return {ErrorCode::kInternal, std::move(m)}; }

// Result<T> holds either a value or a failed Status (g++ 12 has no
// std::expected).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.isOk()) status_ = internalError("Result constructed from an ok Status without a value");
  }

  bool isOk() const { return value_.has_value(); }
  explicit operator bool() const { return isOk(); }
  const Status& status() const { return status_; }

  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace warden::core

// WARDEN_RETURN_IF_ERROR returns the Status of |expr| from the enclosing
// function if it failed.
#define WARDEN_RETURN_IF_ERROR(expr)                \
  do {                                              \
    ::warden::core::Status warden_status_ = (expr); \
    if (!warden_status_.isOk()) return warden_status_; \
  } while (0)

#define WARDEN_CONCAT_INNER_(a, b) a##b
#define WARDEN_CONCAT_(a, b) WARDEN_CONCAT_INNER_(a, b)
// WARDEN_ASSIGN_OR_RETURN(lhs, expr) evaluates the Result |expr|, returns its
// Status on failure, else moves the value into |lhs| (which may declare).
#define WARDEN_ASSIGN_OR_RETURN(lhs, expr)                                   \
  auto WARDEN_CONCAT_(warden_result_, __LINE__) = (expr);                    \
  if (!WARDEN_CONCAT_(warden_result_, __LINE__).isOk())                      \
    return WARDEN_CONCAT_(warden_result_, __LINE__).status();                \
  lhs = std::move(WARDEN_CONCAT_(warden_result_, __LINE__)).value()
