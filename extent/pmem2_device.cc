// Real media through libpmem2 (the only file that includes <libpmem2.h>).
//
// libpmem2 chooses the persist function for the mapping it made: cache-line
// flush + fence on DAX media, msync on page-cache backed files. Block devices
// are not a libpmem2 source type; they get a plain shared mapping and msync.
#include <libpmem2.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extent/device_backends.h"

namespace nosyncfs {
namespace {

Status Pmem2Error(const std::string& what) {
  return Status::Error(EIO, what + ": " + pmem2_errormsg());
}

class Pmem2Device final : public Device {
 public:
  Pmem2Device(int fd, pmem2_source* source, pmem2_map* map, bool devdax)
      : Device(static_cast<char*>(pmem2_map_get_address(map)), pmem2_map_get_size(map)),
        fd_(fd),
        source_(source),
        map_(map),
        persist_(pmem2_get_persist_fn(map)),
        devdax_(devdax) {}
  // The descriptor (and its lock) first, as EmulatedDevice does: the
  // mapping keeps the file, and nothing is stored through it any more.
  ~Pmem2Device() override {
    ::close(fd_);
    pmem2_map_delete(&map_);
    pmem2_source_delete(&source_);
  }

  PersistGranularity granularity() const override {
    return pmem2_map_get_store_granularity(map_) == PMEM2_GRANULARITY_PAGE
               ? PersistGranularity::kPage
               : PersistGranularity::kCacheLine;
  }

  SharedFds shared_fds() const override {
    if (read_only_) return {};
    return {fd_, -1};
  }
  std::string persistence_source() const override {
    std::string what = devdax_ ? "libpmem2 mapped a devdax device"
                               : "libpmem2 mapped a file";
    switch (pmem2_map_get_store_granularity(map_)) {
      case PMEM2_GRANULARITY_BYTE:
        return what + (devdax_ ? "" : " with MAP_SYNC (DAX)") +
               "; the platform flushes caches on power loss (eADR): persist is a fence";
      case PMEM2_GRANULARITY_CACHE_LINE:
        return what + (devdax_ ? "" : " with MAP_SYNC (DAX)") +
               ": persist is a cache-line flush and a fence";
      case PMEM2_GRANULARITY_PAGE:
        break;
    }
    return what + " without DAX (MAP_SYNC refused: page cache): persist fell back to msync";
  }

  Status DoPersist(uint64_t off, size_t len) override {
    if (len > 0) persist_(base_ + off, len);
    return Status::Ok();
  }

 private:
  int fd_;
  pmem2_source* source_;
  pmem2_map* map_;
  pmem2_persist_fn persist_;
  bool devdax_;
};

// A block device (e.g. /dev/pmem0 without DAX): shared mapping + msync.
class MsyncDevice final : public Device {
 public:
  MsyncDevice(int fd, char* base, uint64_t size) : Device(base, size), fd_(fd) {}
  ~MsyncDevice() override {
    ::close(fd_);  // the lock first, as above
    munmap(base_, size_);
  }
  PersistGranularity granularity() const override { return PersistGranularity::kPage; }
  SharedFds shared_fds() const override {
    if (read_only_) return {};
    return {fd_, -1};
  }
  std::string persistence_source() const override {
    return "a block device (libpmem2 maps no block devices): shared mmap, persist is msync";
  }
  Status DoPersist(uint64_t off, size_t len) override {
    if (len == 0) return Status::Ok();
    uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    uint64_t start = off & ~(page - 1);
    if (msync(base_ + start, len + (off - start), MS_SYNC) != 0) return ErrnoStatus("msync");
    return Status::Ok();
  }

 private:
  int fd_;
};

}  // namespace

Result<std::unique_ptr<Device>> OpenPmem2Device(int fd, uint64_t size, bool block_device,
                                                bool read_only, const std::string& path) {
  FdCloser closer{fd};
  if (block_device) {
    const int prot = read_only ? PROT_READ : PROT_READ | PROT_WRITE;
    void* base = mmap(nullptr, size, prot, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return ErrnoStatus(path + ": mmap");
    closer.fd = -1;
    return std::unique_ptr<Device>(new MsyncDevice(fd, static_cast<char*>(base), size));
  }
  pmem2_source* source = nullptr;
  if (pmem2_source_from_fd(&source, fd) != 0) return Pmem2Error(path);
  pmem2_config* config = nullptr;
  if (pmem2_config_new(&config) != 0) {
    pmem2_source_delete(&source);
    return Pmem2Error(path);
  }
  // Page granularity is the weakest requirement, so every medium qualifies;
  // libpmem2 still reports (and uses) the stronger one where it has it.
  pmem2_config_set_required_store_granularity(config, PMEM2_GRANULARITY_PAGE);
  if (read_only && pmem2_config_set_protection(config, PMEM2_PROT_READ) != 0) {
    Status st = Pmem2Error(path + ": read-only mapping");
    pmem2_config_delete(&config);
    pmem2_source_delete(&source);
    return st;
  }
  pmem2_map* map = nullptr;
  int rc = pmem2_map_new(&map, config, source);
  pmem2_config_delete(&config);
  if (rc != 0) {
    Status st = Pmem2Error(path + ": map");
    pmem2_source_delete(&source);
    return st;
  }
  closer.fd = -1;
  (void)size;
  struct stat st;
  bool devdax = fstat(fd, &st) == 0 && S_ISCHR(st.st_mode);
  return std::unique_ptr<Device>(new Pmem2Device(fd, source, map, devdax));
}

}  // namespace nosyncfs
