// Status and Result<T>: the one error type every layer returns.
//
// Errors never cross a layer as exceptions. A failed operation carries a
// positive errno value (what the FUSE glue finally replies with) and a
// human-readable message for logs and command-line tools.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace nosyncfs {

class [[nodiscard]] Status {
 public:
  // A default-constructed Status is success.
  Status() = default;

  static Status Ok() { return Status(); }
  // `code` must be a positive errno value.
  static Status Error(int code, std::string message) {
    assert(code > 0);
    return Status(code, std::move(message));
  }

  bool ok() const { return code_ == 0; }
  // 0 on success, else a positive errno.
  int code() const { return code_; }
  const std::string& message() const { return message_; }
  // "message (strerror)" for logs; "ok" on success.
  std::string ToString() const;

  // Prefixes the message with context, keeping the errno.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  Status(int code, std::string message) : code_(code), message_(std::move(message)) {}

  int code_ = 0;
  std::string message_;
};

// Either a value or a failed Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    assert(!std::get<Status>(v_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The failure; Status::Ok() when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

// Returns early from the enclosing function when `expr` yields an error.
#define NSF_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::nosyncfs::Status nsf_status_ = (expr);   \
    if (!nsf_status_.ok()) return nsf_status_; \
  } while (0)

#define NSF_CONCAT_INNER(a, b) a##b
#define NSF_CONCAT(a, b) NSF_CONCAT_INNER(a, b)
#define NSF_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

// `NSF_ASSIGN_OR_RETURN(auto x, F());` binds x to F()'s value or returns its error.
#define NSF_ASSIGN_OR_RETURN(lhs, expr) \
  NSF_ASSIGN_OR_RETURN_IMPL(NSF_CONCAT(nsf_result_, __LINE__), lhs, expr)

// A Status from the current errno, with context: the one translation point
// for failed system calls.
Status ErrnoStatus(const std::string& context);

}  // namespace nosyncfs
