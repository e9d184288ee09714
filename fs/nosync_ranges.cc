#include "fs/nosync_ranges.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <utility>

namespace nosyncfs {
namespace {

// Longest value accepted, not counting an ignored trailing NUL (the kernel's
// XATTR_SIZE_MAX).
constexpr size_t kMaxValueBytes = 64 * 1024;
// Most items one value may list.
constexpr size_t kMaxItems = 4096;
constexpr uint32_t kMinBlockSize = 512;
constexpr uint32_t kMaxBlockSize = 65536;
// Longest piece of the input quoted back in an error message.
constexpr size_t kMaxQuoted = 40;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Multiplier for a size suffix, 0 if `c` is not one.
uint64_t SuffixMultiplier(char c) {
  switch (c) {
    case 'K':
    case 'k':
      return uint64_t{1} << 10;
    case 'M':
    case 'm':
      return uint64_t{1} << 20;
    case 'G':
    case 'g':
      return uint64_t{1} << 30;
    default:
      return 0;
  }
}

// A character for an error message: 'x' if printable, else its byte value.
std::string Describe(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
  char buf[16];
  std::snprintf(buf, sizeof(buf), "byte 0x%02x", static_cast<unsigned>(u));
  return buf;
}

// A piece of the input for an error message, quoted and cut short if long.
std::string Quote(std::string_view s) {
  if (s.size() > kMaxQuoted) return "\"" + std::string(s.substr(0, kMaxQuoted)) + "...\"";
  return "\"" + std::string(s) + "\"";
}

Status Invalid(size_t pos, const std::string& what) {
  return Status::Error(EINVAL,
                       "invalid user.nosync value at byte " + std::to_string(pos) + ": " + what);
}

// Rounds `end` up to a multiple of `block_size`; `end` <= kMaxFileOffset, so
// the sum cannot wrap. The caller checks the result against kMaxFileOffset.
uint64_t RoundUp(uint64_t end, uint64_t block_size) {
  return (end + block_size - 1) & ~(block_size - 1);
}

// kMaxFileOffset in decimal, for messages.
std::string MaxText() { return std::to_string(kMaxFileOffset); }

// Single-pass parser over text_[pos_, end_), where end_ excludes the
// trailing whitespace. Positions in messages are offsets into text_.
class Parser {
 public:
  Parser(std::string_view text, size_t pos, size_t end, uint64_t block_size)
      : text_(text), pos_(pos), end_(end), block_size_(block_size) {}

  // value := item ( ws* "," ws* item )*, with at least one character left.
  Result<std::vector<ByteRange>> ParseList() {
    std::vector<ByteRange> out;
    if (Peek() == ',') return Invalid(pos_, "empty range: the value starts with ','");
    for (size_t index = 1;; ++index) {
      if (index > kMaxItems) {
        return Invalid(pos_, "too many ranges: more than " + std::to_string(kMaxItems));
      }
      NSF_ASSIGN_OR_RETURN(ByteRange range, ParseItem(index));
      out.push_back(range);
      SkipSpace();
      if (AtEnd()) break;
      if (Peek() != ',') {
        return Invalid(pos_, "expected ',' between ranges, found " + Describe(Peek()));
      }
      ++pos_;
      SkipSpace();
      if (AtEnd()) return Invalid(pos_, "empty range: the value ends with ','");
      if (Peek() == ',') return Invalid(pos_, "empty range between two ','");
    }
    return NormalizeRanges(std::move(out));
  }

 private:
  bool AtEnd() const { return pos_ >= end_; }
  char Peek() const { return text_[pos_]; }
  void SkipSpace() {
    while (!AtEnd() && IsSpace(Peek())) ++pos_;
  }

  // True if "all" stands at `pos` as a whole word (for a clearer message).
  bool AllAt(size_t pos) const {
    if (text_.substr(pos, 3) != "all") return false;
    size_t after = pos + 3;
    return after >= end_ || IsSpace(text_[after]) || text_[after] == ',';
  }

  // The digits and suffix letters starting at `pos`, for messages.
  std::string_view NumberTextAt(size_t pos) const {
    size_t e = pos;
    while (e < end_ && (IsDigit(text_[e]) || SuffixMultiplier(text_[e]) != 0)) ++e;
    return text_.substr(pos, e - pos);
  }

  // num := digits [K|M|G|k|m|g]; `what` names it in messages.
  Result<uint64_t> ParseNumber(const std::string& what) {
    const size_t begin = pos_;
    if (AtEnd() || Peek() == ',') return Invalid(begin, "missing " + what);
    const char c = Peek();
    if (IsSpace(c)) {
      return Invalid(begin, "missing " + what + " (no whitespace is allowed inside a range)");
    }
    if (c == '-' || c == '+') {
      return Invalid(begin, "sign " + Describe(c) + " is not allowed: the " + what +
                                " must be an unsigned decimal number");
    }
    if (!IsDigit(c)) {
      if (AllAt(begin)) return Invalid(begin, "'all' must stand alone");
      return Invalid(begin, "expected the " + what + " as a decimal number, found " + Describe(c));
    }
    uint64_t value = 0;
    while (!AtEnd() && IsDigit(Peek())) {
      const auto digit = static_cast<uint64_t>(Peek() - '0');
      if (value > (kMaxFileOffset - digit) / 10) {
        return Invalid(begin,
                       what + " " + Quote(NumberTextAt(begin)) + " is larger than " + MaxText());
      }
      value = value * 10 + digit;
      ++pos_;
    }
    if (!AtEnd()) {
      const uint64_t multiplier = SuffixMultiplier(Peek());
      if (multiplier != 0) {
        if (value > kMaxFileOffset / multiplier) {
          return Invalid(begin, what + " " + Quote(text_.substr(begin, pos_ + 1 - begin)) +
                                    " is larger than " + MaxText());
        }
        value *= multiplier;
        ++pos_;
      }
    }
    return value;
  }

  // item := num "-" num | num "+" num, rounded outward to block_size_.
  Result<ByteRange> ParseItem(size_t index) {
    const size_t begin = pos_;
    const std::string name = "range " + std::to_string(index);
    NSF_ASSIGN_OR_RETURN(uint64_t start, ParseNumber("start of " + name));
    if (AtEnd() || Peek() == ',' || IsSpace(Peek())) {
      return Invalid(pos_, "missing '-' (START-END) or '+' (START+LENGTH) after the start of " +
                               name + " " + Quote(text_.substr(begin, pos_ - begin)));
    }
    const char op = Peek();
    if (op != '-' && op != '+') {
      return Invalid(pos_, "expected '-' (START-END) or '+' (START+LENGTH) after the start of " +
                               name + ", found " + Describe(op));
    }
    ++pos_;
    NSF_ASSIGN_OR_RETURN(uint64_t second,
                         ParseNumber((op == '-' ? "end of " : "length of ") + name));
    if (!AtEnd() && !IsSpace(Peek()) && Peek() != ',') {
      return Invalid(pos_, "unexpected " + Describe(Peek()) + " after " + name + " " +
                               Quote(text_.substr(begin, pos_ - begin)));
    }
    const std::string item = Quote(text_.substr(begin, pos_ - begin));
    uint64_t end = 0;
    if (op == '-') {
      if (second <= start) {
        return Invalid(begin, name + " " + item + ": end " + std::to_string(second) +
                                  " is not after start " + std::to_string(start));
      }
      end = second;
    } else {
      if (second == 0) return Invalid(begin, name + " " + item + ": length is 0");
      if (second > kMaxFileOffset - start) {
        return Invalid(begin, name + " " + item + ": start+length is larger than " + MaxText());
      }
      end = start + second;
    }
    const uint64_t rounded_end = RoundUp(end, block_size_);
    if (rounded_end > kMaxFileOffset) {
      return Invalid(begin, name + " " + item + ": end " + std::to_string(end) +
                                " rounded up to the block size " + std::to_string(block_size_) +
                                " is larger than " + MaxText());
    }
    return ByteRange{start & ~(block_size_ - 1), rounded_end};
  }

  std::string_view text_;
  size_t pos_;
  size_t end_;
  uint64_t block_size_;
};

}  // namespace

Result<std::vector<ByteRange>> ParseNosyncRanges(std::string_view text, uint64_t file_size,
                                                 uint32_t block_size) {
  if (block_size < kMinBlockSize || block_size > kMaxBlockSize ||
      (block_size & (block_size - 1)) != 0) {
    return Status::Error(EINVAL, "invalid block size " + std::to_string(block_size) +
                                     " for user.nosync: not a power of two in 512..65536");
  }
  if (!text.empty() && text.back() == '\0') text.remove_suffix(1);
  if (text.size() > kMaxValueBytes) {
    return Status::Error(EINVAL, "invalid user.nosync value: " + std::to_string(text.size()) +
                                     " bytes, longer than the limit of " +
                                     std::to_string(kMaxValueBytes));
  }
  size_t begin = 0;
  size_t end = text.size();
  while (begin < end && IsSpace(text[begin])) ++begin;
  while (end > begin && IsSpace(text[end - 1])) --end;
  if (begin == end) return std::vector<ByteRange>{};

  if (text.substr(begin, end - begin) == "all") {
    if (file_size == 0) return std::vector<ByteRange>{};
    if (file_size > kMaxFileOffset || RoundUp(file_size, block_size) > kMaxFileOffset) {
      return Invalid(begin, "'all' with file size " + std::to_string(file_size) +
                                " rounded up to the block size is larger than " + MaxText());
    }
    return std::vector<ByteRange>{ByteRange{0, RoundUp(file_size, block_size)}};
  }
  return Parser(text, begin, end, block_size).ParseList();
}

std::string FormatNosyncRanges(const std::vector<ByteRange>& ranges) {
  std::string out;
  for (const ByteRange& r : NormalizeRanges(ranges)) {
    if (!out.empty()) out += ',';
    out += std::to_string(r.start);
    out += '-';
    out += std::to_string(r.end);
  }
  return out;
}

std::vector<ByteRange> NormalizeRanges(std::vector<ByteRange> ranges) {
  std::erase_if(ranges, [](const ByteRange& r) { return r.end <= r.start; });
  std::sort(ranges.begin(), ranges.end(), [](const ByteRange& a, const ByteRange& b) {
    return a.start != b.start ? a.start < b.start : a.end < b.end;
  });
  std::vector<ByteRange> out;
  out.reserve(ranges.size());
  for (const ByteRange& r : ranges) {
    if (!out.empty() && r.start <= out.back().end) {
      out.back().end = std::max(out.back().end, r.end);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

}  // namespace nosyncfs
