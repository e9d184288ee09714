#include "base/status.h"

#include <cerrno>
#include <cstring>

namespace nosyncfs {

std::string Status::ToString() const {
  if (ok()) return "ok";
  return message_ + " (" + std::strerror(code_) + ")";
}

Status ErrnoStatus(const std::string& context) {
  int err = errno;
  if (err <= 0) err = EIO;
  return Status::Error(err, context + ": " + std::strerror(err));
}

}  // namespace nosyncfs
