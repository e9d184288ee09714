// Device::Open picks the backend; the backends live in pmem2_device.cc and
// emulated_device.cc.
#include "extent/device.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "extent/device_backends.h"

namespace nosyncfs {

const char* PersistGranularityName(PersistGranularity g) {
  switch (g) {
    case PersistGranularity::kCacheLine: return "cache line (persistent memory)";
    case PersistGranularity::kPage: return "page (msync)";
    case PersistGranularity::kStrictEmulation: return "strict emulation";
  }
  return "unknown";
}

const char* PersistGranularityKey(PersistGranularity g) {
  switch (g) {
    case PersistGranularity::kCacheLine: return "cache_line";
    case PersistGranularity::kPage: return "page";
    case PersistGranularity::kStrictEmulation: return "strict_emulation";
  }
  return "unknown";
}

void Device::Read(uint64_t off, void* buf, size_t len) const {
  std::memcpy(buf, base_ + off, len);
}

void Device::Write(uint64_t off, const void* buf, size_t len) {
  std::memcpy(base_ + off, buf, len);
  if (evicting_) Evict(off, len);
}

void Device::Zero(uint64_t off, size_t len) {
  std::memset(base_ + off, 0, len);
  if (evicting_) Evict(off, len);
}

Status Device::StartEvicting(uint64_t /*seed*/) {
  return Status::Error(EINVAL, "early evictions need strict persistence emulation");
}

namespace {

// Size of whatever `fd` is: file size, or the block device's capacity.
Result<uint64_t> DeviceSize(int fd, const struct stat& st, const std::string& path) {
  if (S_ISREG(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    uint64_t bytes = 0;
    if (ioctl(fd, BLKGETSIZE64, &bytes) != 0) return ErrnoStatus(path + ": BLKGETSIZE64");
    return bytes;
  }
  if (S_ISCHR(st.st_mode)) {
    // devdax: the size is published in sysfs; libpmem2 reads it for us.
    return uint64_t{0};
  }
  return Status::Error(EINVAL, path + ": not a file, block device or DAX character device");
}

}  // namespace

Result<bool> Device::Locked(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(path);
  FdCloser closer{fd};
  // Our own open file description: it conflicts with every other holder's.
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return false;  // closing drops it
  if (errno == EWOULDBLOCK) return true;
  return ErrnoStatus(path + ": lock");
}

Result<std::unique_ptr<Device>> Device::Open(const std::string& path,
                                             const DeviceOptions& options) {
  int fd = ::open(path.c_str(), (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(path);
  FdCloser closer{fd};
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoStatus(path);
  // A reader shares the lock with other readers; a writer excludes both.
  if (options.lock && flock(fd, (options.read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Status::Error(EBUSY, path + ": device is in use by another process");
    }
    return ErrnoStatus(path + ": lock");
  }
  NSF_ASSIGN_OR_RETURN(uint64_t size, DeviceSize(fd, st, path));
  if (S_ISREG(st.st_mode) && size == 0) {
    return Status::Error(EINVAL, path + ": image file is empty");
  }
  if (options.evict_seed != 0 && !options.strict_emulation) {
    return Status::Error(EINVAL, path + ": early evictions need strict emulation");
  }
  if (options.evict_seed != 0 && options.read_only) {
    return Status::Error(EINVAL, path + ": early evictions need a writable device");
  }
  closer.fd = -1;  // ownership passes to the backend
  std::unique_ptr<Device> device;
  if (options.strict_emulation) {
    if (S_ISCHR(st.st_mode)) {
      ::close(fd);
      return Status::Error(EINVAL, path + ": strict emulation needs an image file or block device");
    }
    NSF_ASSIGN_OR_RETURN(device, OpenEmulatedDevice(fd, size, options.read_only, path));
    if (options.evict_seed != 0) NSF_RETURN_IF_ERROR(device->StartEvicting(options.evict_seed));
  } else {
    NSF_ASSIGN_OR_RETURN(device,
                         OpenPmem2Device(fd, size, S_ISBLK(st.st_mode), options.read_only, path));
  }
  device->read_only_ = options.read_only;
  return device;
}

}  // namespace nosyncfs
