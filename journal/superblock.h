// Superblock: the first 4096 bytes of a nosyncfs device. Layout in
// journal/FORMAT.md.
#pragma once

#include <array>
#include <cstring>
#include <cstdint>
#include <string>

#include "base/status.h"

namespace nosyncfs {

struct Superblock {
  static constexpr char kMagic[8] = {'N', 'O', 'S', 'Y', 'N', 'C', 'F', 'S'};
  static constexpr uint32_t kVersion = 1;
  static constexpr size_t kSize = 4096;
  static constexpr size_t kCrcOffset = kSize - 4;
  static constexpr size_t kMaxMetaDir = 1024;
  static constexpr uint64_t kMinDeviceSize = 16ull << 20;

  uint32_t version = kVersion;
  uint32_t block_size = 4096;
  std::array<uint8_t, 16> uuid{};
  // The uuid's first 8 bytes as a native integer: ties log records and
  // size slots to this format (an earlier file system's never match).
  uint64_t LogSalt() const {
    uint64_t salt;
    std::memcpy(&salt, uuid.data(), sizeof(salt));
    return salt;
  }
  uint64_t device_size = 0;
  uint64_t log_offset = 0;   // bytes
  uint64_t log_length = 0;   // bytes
  uint64_t data_offset = 0;  // bytes; block-aligned
  uint64_t data_blocks = 0;
  std::string meta_dir;      // where the metadata store lives

  // Geometry for a new file system; EINVAL for a bad block size (power of
  // two, 1 KiB..64 KiB), ENOSPC if the device is under kMinDeviceSize.
  static Result<Superblock> Plan(uint64_t device_size, uint32_t block_size);

  // Exactly kSize bytes, checksummed.
  std::string Encode() const;

  // Checks magic ("not a nosyncfs device"), checksum and version, in that
  // order, and that the geometry fits `device_size`. EINVAL or EUCLEAN.
  static Result<Superblock> Decode(const char* data, size_t len, uint64_t device_size);

  std::string UuidString() const;
  uint64_t BlockOffset(uint64_t pblk) const { return data_offset + pblk * block_size; }
};

}  // namespace nosyncfs
