// Strict persistence emulation.
//
// The image is mapped MAP_PRIVATE: loads see the image, stores land in
// private copy-on-write pages that die with the process. Persist() copies the
// range into the image with pwrite, so the image holds exactly what was
// persisted, as persistent memory would after a power failure. The image
// contents survive the daemon's death in the host's page cache; nothing here
// models a crash of the host kernel itself.
#include <sys/mman.h>
#include <unistd.h>

#include "base/crash_point.h"
#include "extent/device_backends.h"

namespace nosyncfs {
namespace {

class EmulatedDevice final : public Device {
 public:
  EmulatedDevice(int fd, char* base, uint64_t size) : Device(base, size), fd_(fd) {}
  ~EmulatedDevice() override {
    munmap(base_, size_);
    ::close(fd_);
  }

  PersistGranularity granularity() const override {
    return PersistGranularity::kStrictEmulation;
  }

  Status DoPersist(uint64_t off, size_t len) override {
    if (CrashPointHit("device.persist")) {
      // A power failure in the middle of a persist: only a prefix lands.
      (void)!::pwrite(fd_, base_ + off, (len / 2) & ~size_t{7}, static_cast<off_t>(off));
      CrashNow();
    }
    while (len > 0) {
      ssize_t n = ::pwrite(fd_, base_ + off, len, static_cast<off_t>(off));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("persist (emulated)");
      }
      off += static_cast<uint64_t>(n);
      len -= static_cast<size_t>(n);
    }
    return Status::Ok();
  }

 private:
  int fd_;
};

}  // namespace

Result<std::unique_ptr<Device>> OpenEmulatedDevice(int fd, uint64_t size,
                                                   const std::string& path) {
  FdCloser closer{fd};
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
  if (base == MAP_FAILED) return ErrnoStatus(path + ": mmap");
  closer.fd = -1;
  return std::unique_ptr<Device>(new EmulatedDevice(fd, static_cast<char*>(base), size));
}

}  // namespace nosyncfs
