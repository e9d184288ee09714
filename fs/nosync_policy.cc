#include "fs/nosync_policy.h"

#include <cerrno>

namespace nosyncfs {
namespace {

std::string_view Trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

Status Invalid(const std::string& why) {
  return Status::Error(EINVAL, "user.nosync on a directory: " + why +
                                   " (it takes \"all\" or \"all,grow=SIZE\")");
}

}  // namespace

Result<uint32_t> ParseNosyncPolicy(std::string_view text, uint32_t block_size) {
  if (!text.empty() && text.back() == '\0') text.remove_suffix(1);
  text = Trim(text);
  if (text.empty()) return uint32_t{0};
  uint64_t grow = kDefaultNfGrowBytes;
  const size_t comma = text.find(',');
  if (Trim(text.substr(0, comma)) != "all") {
    return Invalid("a directory has no data, so no ranges");
  }
  if (comma != std::string_view::npos) {
    std::string_view option = Trim(text.substr(comma + 1));
    if (option.substr(0, 5) != "grow=") return Invalid("unknown setting '" + std::string(option) + "'");
    std::string_view num = option.substr(5);
    uint64_t value = 0;
    size_t i = 0;
    for (; i < num.size() && num[i] >= '0' && num[i] <= '9'; ++i) {
      value = value * 10 + static_cast<uint64_t>(num[i] - '0');
      if (value > kMaxNfGrowBytes) return Invalid("grow is larger than 1 GiB");
    }
    if (i == 0) return Invalid("grow needs a size");
    if (i + 1 == num.size()) {
      switch (num[i]) {
        case 'K': case 'k': value <<= 10; break;
        case 'M': case 'm': value <<= 20; break;
        case 'G': case 'g': value <<= 30; break;
        default: return Invalid("bad size '" + std::string(num) + "'");
      }
      ++i;
    }
    if (i != num.size()) return Invalid("bad size '" + std::string(num) + "'");
    if (value == 0) return Invalid("grow must be at least one block");
    if (value > kMaxNfGrowBytes) return Invalid("grow is larger than 1 GiB");
    grow = value;
  }
  return static_cast<uint32_t>((grow + block_size - 1) / block_size);
}

std::string FormatNosyncPolicy(uint32_t grow_blocks, uint32_t block_size) {
  if (grow_blocks == 0) return "";
  return "all,grow=" + std::to_string(uint64_t{grow_blocks} * block_size);
}

}  // namespace nosyncfs
