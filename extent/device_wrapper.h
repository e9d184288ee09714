// DeviceWrapper: a Device that forwards to another one, so that a test can
// change one behaviour (slow persists, failing persists, counting) and keep
// the rest, as RocksDB's FileSystemWrapper does for files. Stores go to the
// inner device's mapping directly; only Persist() and early evictions
// (Device::StartEvicting) pass through here.
#pragma once

#include <memory>

#include "extent/device.h"

namespace nosyncfs {

class DeviceWrapper : public Device {
 public:
  explicit DeviceWrapper(std::unique_ptr<Device> inner)
      : Device(inner->data(), inner->size()), inner_(std::move(inner)) {
    evicting_ = inner_->evicting_;
  }

  PersistGranularity granularity() const override { return inner_->granularity(); }
  std::string persistence_source() const override { return inner_->persistence_source(); }
  SharedFds shared_fds() const override { return inner_->shared_fds(); }
  Status StartEvicting(uint64_t seed) override {
    NSF_RETURN_IF_ERROR(inner_->StartEvicting(seed));
    evicting_ = true;
    return Status::Ok();
  }

 protected:
  Status DoPersist(uint64_t off, size_t len) override { return inner_->Persist(off, len); }
  // Our stores land in the inner mapping; the inner device evicts them.
  void Evict(uint64_t off, size_t len) override { inner_->Evict(off, len); }
  Device& inner() { return *inner_; }

 private:
  std::unique_ptr<Device> inner_;
};

}  // namespace nosyncfs
