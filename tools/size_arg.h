// Parsing of size arguments such as "64M" for the command-line tools.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace nosyncfs {

// Decimal bytes with an optional K, M, G or T suffix (powers of 1024);
// nullopt when malformed or overflowing.
std::optional<uint64_t> ParseSizeArg(std::string_view text);

}  // namespace nosyncfs
