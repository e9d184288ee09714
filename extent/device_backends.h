// Internal to extent/: constructors of the Device backends.
#pragma once

#include <unistd.h>

#include <memory>
#include <string>

#include "extent/device.h"

namespace nosyncfs {

// Closes an fd on scope exit unless released (fd = -1).
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

// Both take ownership of `fd` (open, locked) in all outcomes. With
// `read_only` (an O_RDONLY fd) they map without write access.
Result<std::unique_ptr<Device>> OpenEmulatedDevice(int fd, uint64_t size, bool read_only,
                                                   const std::string& path);
Result<std::unique_ptr<Device>> OpenPmem2Device(int fd, uint64_t size, bool block_device,
                                                bool read_only, const std::string& path);

}  // namespace nosyncfs
