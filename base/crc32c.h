// CRC-32C (Castagnoli), used to checksum the superblock and log records.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nosyncfs {

// Extends `crc` (0 to start) over `n` bytes at `data`.
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);

}  // namespace nosyncfs
