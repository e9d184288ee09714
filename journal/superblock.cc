#include "journal/superblock.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "base/crc32c.h"
#include "base/encoding.h"

namespace nosyncfs {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace

Result<Superblock> Superblock::Plan(uint64_t device_size, uint32_t block_size) {
  if (block_size < 1024 || block_size > 65536 || (block_size & (block_size - 1)) != 0) {
    return Status::Error(EINVAL, "block size " + std::to_string(block_size) +
                                     " is not a power of two between 1024 and 65536");
  }
  if (device_size < kMinDeviceSize) {
    return Status::Error(ENOSPC, "device is too small: " + std::to_string(device_size) +
                                     " bytes, at least " + std::to_string(kMinDeviceSize) +
                                     " needed");
  }
  Superblock sb;
  sb.block_size = block_size;
  sb.device_size = device_size;
  sb.log_offset = AlignUp(kSize, block_size);
  // The log holds transactions between checkpoints: 1/64 of the device,
  // between 2 MiB and 64 MiB.
  uint64_t log = std::clamp<uint64_t>(device_size / 64, 2 * kMiB, 64 * kMiB);
  sb.log_length = AlignUp(log, block_size);
  sb.data_offset = sb.log_offset + sb.log_length;
  sb.data_blocks = (device_size - sb.data_offset) / block_size;
  return sb;
}

std::string Superblock::Encode() const {
  std::string out(kMagic, sizeof(kMagic));
  PutFixed32(&out, version);
  PutFixed32(&out, block_size);
  out.append(reinterpret_cast<const char*>(uuid.data()), uuid.size());
  PutFixed64(&out, device_size);
  PutFixed64(&out, log_offset);
  PutFixed64(&out, log_length);
  PutFixed64(&out, data_offset);
  PutFixed64(&out, data_blocks);
  PutBytes(&out, meta_dir.substr(0, kMaxMetaDir));
  out.resize(kCrcOffset, '\0');
  PutFixed32(&out, Crc32c(out.data(), kCrcOffset));
  return out;
}

Result<Superblock> Superblock::Decode(const char* data, size_t len, uint64_t device_size) {
  if (len < kSize || std::memcmp(data, kMagic, sizeof(kMagic)) != 0) {
    return Status::Error(EINVAL, "not a nosyncfs device (no superblock magic)");
  }
  if (Crc32c(data, kCrcOffset) != DecodeFixed32(data + kCrcOffset)) {
    return Status::Error(EUCLEAN, "superblock checksum mismatch: the superblock is corrupted");
  }
  Decoder d(std::string_view(data + sizeof(kMagic), kCrcOffset - sizeof(kMagic)));
  Superblock sb;
  d.GetFixed32(&sb.version);
  if (sb.version != kVersion) {
    return Status::Error(EINVAL, "unsupported format version " + std::to_string(sb.version) +
                                     " (this build reads version " + std::to_string(kVersion) +
                                     ")");
  }
  bool ok = d.GetFixed32(&sb.block_size) && d.GetRaw(sb.uuid.data(), sb.uuid.size());
  ok = ok && d.GetFixed64(&sb.device_size) && d.GetFixed64(&sb.log_offset) &&
       d.GetFixed64(&sb.log_length) && d.GetFixed64(&sb.data_offset) &&
       d.GetFixed64(&sb.data_blocks) && d.GetBytes(&sb.meta_dir);
  if (!ok) return Status::Error(EUCLEAN, "superblock is truncated");
  // Every field is untrusted: each bound is checked without overflow.
  auto fits = [](uint64_t start, uint64_t len, uint64_t limit) {
    return start <= limit && len <= limit - start;
  };
  constexpr uint64_t kMinLogLength = 64 << 10;  // the header slots and some records
  bool geometry_ok =
      sb.block_size >= 1024 && sb.block_size <= 65536 &&
      (sb.block_size & (sb.block_size - 1)) == 0 && sb.log_offset >= kSize &&
      sb.log_length >= kMinLogLength && fits(sb.log_offset, sb.log_length, sb.device_size) &&
      sb.data_offset >= sb.log_offset + sb.log_length && sb.data_offset % sb.block_size == 0 &&
      sb.data_offset <= sb.device_size &&
      sb.data_blocks <= (sb.device_size - sb.data_offset) / sb.block_size &&
      sb.meta_dir.size() <= kMaxMetaDir;
  if (!geometry_ok) return Status::Error(EUCLEAN, "superblock geometry is inconsistent");
  if (sb.device_size > device_size) {
    return Status::Error(EINVAL, "device is smaller (" + std::to_string(device_size) +
                                     " bytes) than the file system on it (" +
                                     std::to_string(sb.device_size) + " bytes)");
  }
  return sb;
}

std::string Superblock::UuidString() const {
  char buf[37];
  const auto* u = uuid.data();
  std::snprintf(buf, sizeof(buf),
                "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0],
                u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13],
                u[14], u[15]);
  return buf;
}

}  // namespace nosyncfs
