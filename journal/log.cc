#include "journal/log.h"

#include <cstring>
#include <string>

#include "base/crc32c.h"
#include "base/encoding.h"

namespace nosyncfs {
namespace {

constexpr char kHeaderMagic[8] = {'N', 'S', 'F', 'L', 'O', 'G', 'H', 'D'};
constexpr uint64_t kSlotSize = 512;
constexpr size_t kHeaderLen = 8 + 8 + 8 + 8 + 4;  // magic, generation, start, salt, crc
constexpr uint32_t kRecordMagic = 0x4e53524c;  // "NSRL"
constexpr size_t kRecordHeaderLen = 24;        // magic, length, seq, crc, pad

uint64_t Align8(uint64_t v) { return (v + 7) & ~uint64_t{7}; }

}  // namespace

uint32_t Log::RecordCrc(uint32_t len, uint64_t seq, std::string_view payload) const {
  std::string head;
  PutFixed64(&head, salt_);
  PutFixed32(&head, len);
  PutFixed64(&head, seq);
  return Crc32c(payload.data(), payload.size(), Crc32c(head.data(), head.size()));
}

Log::Log(Device* device, uint64_t offset, uint64_t length)
    : device_(device), offset_(offset), length_(length) {}

Status Log::WriteHeader(int slot, uint64_t generation, uint64_t start_seq) {
  std::string h(kHeaderMagic, sizeof(kHeaderMagic));
  PutFixed64(&h, generation);
  PutFixed64(&h, start_seq);
  PutFixed64(&h, salt_);
  PutFixed32(&h, Crc32c(h.data(), h.size()));
  uint64_t at = offset_ + static_cast<uint64_t>(slot) * kSlotSize;
  device_->Write(at, h.data(), h.size());
  return device_->Persist(at, h.size());
}

Status Log::Format(uint64_t start_seq, uint64_t salt) {
  salt_ = salt;
  // Invalidate both slots and the first record position, then write slot 0.
  device_->Zero(offset_, kRecordsOffset + kRecordHeaderLen);
  NSF_RETURN_IF_ERROR(device_->Persist(offset_, kRecordsOffset + kRecordHeaderLen));
  NSF_RETURN_IF_ERROR(WriteHeader(0, 1, start_seq));
  active_slot_ = 0;
  generation_ = 1;
  start_seq_ = next_seq_ = start_seq;
  durable_seq_ = start_seq - 1;
  tail_ = persisted_ = kRecordsOffset;
  return Status::Ok();
}

Status Log::Open(const RecordFn& fn) {
  // Pick the valid header slot with the newest generation.
  int best = -1;
  uint64_t best_gen = 0, best_start = 0;
  for (int slot = 0; slot < 2; ++slot) {
    const char* h = device_->data() + offset_ + static_cast<uint64_t>(slot) * kSlotSize;
    if (std::memcmp(h, kHeaderMagic, sizeof(kHeaderMagic)) != 0) continue;
    if (Crc32c(h, kHeaderLen - 4) != DecodeFixed32(h + kHeaderLen - 4)) continue;
    uint64_t gen = DecodeFixed64(h + 8);
    if (best < 0 || gen > best_gen) {
      best = slot;
      best_gen = gen;
      best_start = DecodeFixed64(h + 16);
      salt_ = DecodeFixed64(h + 24);
    }
  }
  if (best < 0) return Status::Error(EUCLEAN, "log header is corrupted (no valid header slot)");
  active_slot_ = best;
  generation_ = best_gen;
  start_seq_ = next_seq_ = best_start;
  durable_seq_ = best_start - 1;

  uint64_t pos = kRecordsOffset;
  while (pos + kRecordHeaderLen <= length_) {
    const char* r = device_->data() + offset_ + pos;
    uint32_t magic = DecodeFixed32(r);
    uint32_t len = DecodeFixed32(r + 4);
    uint64_t seq = DecodeFixed64(r + 8);
    uint32_t crc = DecodeFixed32(r + 16);
    if (magic != kRecordMagic || seq != next_seq_ ||
        pos + kRecordHeaderLen + len > length_) {
      break;
    }
    std::string_view payload(r + kRecordHeaderLen, len);
    if (RecordCrc(len, seq, payload) != crc) break;
    NSF_RETURN_IF_ERROR(fn(seq, payload));
    pos = Align8(pos + kRecordHeaderLen + len);
    durable_seq_ = seq;
    ++next_seq_;
  }
  tail_ = persisted_ = pos;
  return Status::Ok();
}

bool Log::Fits(size_t len) const {
  return Align8(kRecordHeaderLen + len) <= capacity_bytes();
}

Result<uint64_t> Log::Append(std::string_view payload) {
  uint64_t size = Align8(kRecordHeaderLen + payload.size());
  if (tail_ + size > length_) {
    return Status::Error(ENOSPC, "log is full");
  }
  uint64_t seq = next_seq_;
  std::string rec;
  rec.reserve(size);
  PutFixed32(&rec, kRecordMagic);
  PutFixed32(&rec, static_cast<uint32_t>(payload.size()));
  PutFixed64(&rec, seq);
  PutFixed32(&rec, RecordCrc(static_cast<uint32_t>(payload.size()), seq, payload));
  PutFixed32(&rec, 0);
  rec.append(payload);
  rec.resize(size, '\0');
  device_->Write(offset_ + tail_, rec.data(), rec.size());
  tail_ += size;
  ++next_seq_;
  return seq;
}

Log::Pending Log::pending() const {
  return Pending{offset_ + persisted_, tail_ - persisted_, tail_, next_seq_ - 1};
}

void Log::MarkPersisted(const Pending& p) {
  // A Reset() in between started a new epoch; its records are not ours.
  if (p.last_seq <= durable_seq_ || p.tail < persisted_) return;
  persisted_ = p.tail;
  durable_seq_ = p.last_seq;
}

Status Log::Sync() {
  Pending p = pending();
  if (p.len == 0) return Status::Ok();
  NSF_RETURN_IF_ERROR(device_->Persist(p.offset, p.len));
  MarkPersisted(p);
  return Status::Ok();
}

Status Log::Reset(uint64_t start_seq) {
  int slot = 1 - active_slot_;
  NSF_RETURN_IF_ERROR(WriteHeader(slot, generation_ + 1, start_seq));
  active_slot_ = slot;
  ++generation_;
  start_seq_ = next_seq_ = start_seq;
  durable_seq_ = start_seq - 1;
  tail_ = persisted_ = kRecordsOffset;
  return Status::Ok();
}

}  // namespace nosyncfs
