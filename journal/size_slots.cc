#include "journal/size_slots.h"

#include <cstring>

namespace nosyncfs {

namespace {
constexpr uint64_t kTagMagic = 0x4e53465a534c4f54ull;  // "NSFZSLOT"
enum : uint8_t { kFree = 0, kNamed = 1, kRetired = 2 };
}  // namespace

SizeSlots::SizeSlots(Device* device, uint64_t log_offset, uint64_t salt)
    : device_(device), table_(log_offset + kTableOffset), salt_(salt), state_(kCount, kFree) {}

uint64_t SizeSlots::Tag(uint64_t ino) const { return kTagMagic ^ salt_ ^ (ino * 0x9e3779b97f4a7c15ull); }

uint64_t SizeSlots::Load(uint32_t index, uint64_t at) const {
  // Native byte order: a client stores these words with plain 8-byte stores.
  auto* word = reinterpret_cast<uint64_t*>(device_->data() + DeviceOffset(index) + at);
  return std::atomic_ref<uint64_t>(*word).load(std::memory_order_acquire);
}

std::vector<SizeSlots::Recorded> SizeSlots::Valid() const {
  std::vector<Recorded> out;
  for (uint32_t i = 0; i < kCount; ++i) {
    const uint64_t ino = Load(i, kInoAt);
    if (ino != 0 && Load(i, kTagAt) == Tag(ino)) out.push_back({i, ino, Load(i, kSizeAt)});
  }
  return out;
}

Status SizeSlots::ClearAll() {
  std::lock_guard lock(mu_);
  device_->Zero(table_, kCount * kSlotBytes);
  NSF_RETURN_IF_ERROR(device_->Persist(table_, kCount * kSlotBytes));
  std::fill(state_.begin(), state_.end(), kFree);
  return Status::Ok();
}

Result<std::optional<uint32_t>> SizeSlots::Claim(uint64_t ino, uint64_t size) {
  std::lock_guard lock(mu_);
  for (uint32_t i = 0; i < kCount; ++i) {
    if (state_[i] != kFree) continue;
    // Size and counters first, the name last: a torn claim names nothing.
    uint64_t words[4] = {0, ino, size, 0};
    device_->Write(DeviceOffset(i) + kInoAt, &words[1], 3 * sizeof(uint64_t));
    NSF_RETURN_IF_ERROR(device_->Persist(DeviceOffset(i), kSlotBytes));
    words[0] = Tag(ino);
    device_->Write(DeviceOffset(i) + kTagAt, &words[0], sizeof(uint64_t));
    NSF_RETURN_IF_ERROR(device_->Persist(DeviceOffset(i), kSlotBytes));
    state_[i] = kNamed;
    return std::optional<uint32_t>(i);
  }
  return std::optional<uint32_t>();
}

Status SizeSlots::Unname(uint32_t index) {
  const uint64_t zero = 0;
  device_->Write(DeviceOffset(index) + kTagAt, &zero, sizeof(zero));
  return device_->Persist(DeviceOffset(index), kSlotBytes);
}

Status SizeSlots::Free(uint32_t index) {
  std::lock_guard lock(mu_);
  NSF_RETURN_IF_ERROR(Unname(index));
  state_[index] = kFree;
  return Status::Ok();
}

Status SizeSlots::Retire(uint32_t index) {
  std::lock_guard lock(mu_);
  NSF_RETURN_IF_ERROR(Unname(index));
  state_[index] = kRetired;
  return Status::Ok();
}

void SizeSlots::Reuse(uint32_t index) {
  std::lock_guard lock(mu_);
  if (state_[index] == kRetired) state_[index] = kFree;
}

uint32_t SizeSlots::in_use() const {
  std::lock_guard lock(mu_);
  uint32_t n = 0;
  for (uint8_t s : state_) n += s != kFree;
  return n;
}

}  // namespace nosyncfs
