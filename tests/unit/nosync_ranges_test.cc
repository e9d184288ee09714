// Unit tests for the user.nosync value parser and formatter.
#include "fs/nosync_ranges.h"

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace Catch {
template <>
struct StringMaker<nosyncfs::ByteRange> {
  static std::string convert(const nosyncfs::ByteRange& r) {
    return "[" + std::to_string(r.start) + ", " + std::to_string(r.end) + ")";
  }
};
}  // namespace Catch

namespace {

using nosyncfs::ByteRange;
using nosyncfs::FormatNosyncRanges;
using nosyncfs::kMaxFileOffset;
using nosyncfs::NormalizeRanges;
using nosyncfs::ParseNosyncRanges;
using Ranges = std::vector<ByteRange>;
using namespace std::string_literals;
using namespace std::string_view_literals;

constexpr uint64_t kKiB = uint64_t{1} << 10;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;
constexpr uint64_t k2Pow62 = uint64_t{1} << 62;
constexpr uint64_t k2Pow63 = uint64_t{1} << 63;

// The text with control and non-ASCII bytes escaped, for failure messages.
std::string Printable(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '\\') {
      out += c;
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", static_cast<unsigned>(u));
      out += buf;
    }
  }
  if (out.size() > 200) out = out.substr(0, 200) + "...(" + std::to_string(text.size()) + " bytes)";
  return "\"" + out + "\"";
}

// Parses `text`, requiring success.
Ranges MustParse(std::string_view text, uint64_t file_size = 0, uint32_t block_size = 4096) {
  auto result = ParseNosyncRanges(text, file_size, block_size);
  INFO("text " << Printable(text) << ", file_size " << file_size << ", block_size " << block_size
               << ": " << result.status().ToString());
  REQUIRE(result.ok());
  return *result;
}

// Parses `text`, requiring EINVAL with a message containing `needle`.
void ExpectInvalid(std::string_view text, const std::string& needle, uint64_t file_size = 0,
                   uint32_t block_size = 4096) {
  auto result = ParseNosyncRanges(text, file_size, block_size);
  INFO("text " << Printable(text) << ", file_size " << file_size << ", block_size " << block_size);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == EINVAL);
  CHECK_THAT(result.status().message(), Catch::Contains(needle));
}

// `item` repeated `count` times, joined with ','.
std::string Repeat(const std::string& item, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) out += ',';
    out += item;
  }
  return out;
}

// A number in [lo, hi] from `rng` (mt19937_64 output is the same everywhere,
// unlike the standard distributions).
uint64_t Uniform(std::mt19937_64& rng, uint64_t lo, uint64_t hi) {
  const uint64_t span = hi - lo;
  if (span == UINT64_MAX) return rng();
  return lo + rng() % (span + 1);
}

// Seeds for the randomized tests: Catch's --rng-seed and the ones after it
// if given, else fixed ones. Each fits Catch's 32-bit --rng-seed, so a
// failing seed can be rerun alone.
std::vector<uint32_t> TestSeeds(uint32_t count) {
  uint32_t base = Catch::rngSeed();
  if (base == 0) base = 0x6e6f7379;  // "nosy"
  std::vector<uint32_t> seeds;
  for (uint32_t i = 0; i < count; ++i) seeds.push_back(base + i);
  return seeds;
}

}  // namespace

TEST_CASE("nosync: START-END items", "[fs][nosync]") {
  CHECK(MustParse("0-4096") == Ranges{{0, 4096}});
  CHECK(MustParse("4096-8192") == Ranges{{4096, 8192}});
  CHECK(MustParse("8192-40960") == Ranges{{8192, 40960}});
  CHECK(MustParse("512-1024", 0, 512) == Ranges{{512, 1024}});
  CHECK(MustParse("1048576-1052672") == Ranges{{kMiB, kMiB + 4096}});
  // Leading zeros are plain decimal, not octal.
  CHECK(MustParse("0000-010240") == Ranges{{0, 12288}});
  CHECK(MustParse("010-020", 0, 512) == Ranges{{0, 512}});
}

TEST_CASE("nosync: START+LENGTH items", "[fs][nosync]") {
  CHECK(MustParse("0+4096") == Ranges{{0, 4096}});
  CHECK(MustParse("4096+4096") == Ranges{{4096, 8192}});
  CHECK(MustParse("8192+1") == Ranges{{8192, 12288}});
  CHECK(MustParse("4096+12288") == Ranges{{4096, 16384}});
  CHECK(MustParse("1024+512", 0, 512) == Ranges{{1024, 1536}});
  CHECK(MustParse("0+1", 0, 512) == Ranges{{0, 512}});
}

TEST_CASE("nosync: size suffixes", "[fs][nosync]") {
  SECTION("K and k") {
    CHECK(MustParse("1K-2K", 0, 512) == Ranges{{kKiB, 2 * kKiB}});
    CHECK(MustParse("1k-2k", 0, 512) == Ranges{{kKiB, 2 * kKiB}});
    CHECK(MustParse("4K+8k") == Ranges{{4 * kKiB, 12 * kKiB}});
    CHECK(MustParse("0K-1K", 0, 512) == Ranges{{0, kKiB}});
  }
  SECTION("M and m") {
    CHECK(MustParse("1M-2M") == Ranges{{kMiB, 2 * kMiB}});
    CHECK(MustParse("0-3m") == Ranges{{0, 3 * kMiB}});
    CHECK(MustParse("2m+1M") == Ranges{{2 * kMiB, 3 * kMiB}});
  }
  SECTION("G and g") {
    CHECK(MustParse("1G+1g") == Ranges{{kGiB, 2 * kGiB}});
    CHECK(MustParse("0-10G") == Ranges{{0, 10 * kGiB}});
    CHECK(MustParse("3g-4G") == Ranges{{3 * kGiB, 4 * kGiB}});
  }
  SECTION("mixed suffixes and plain numbers") {
    CHECK(MustParse("1M-1049600") == Ranges{{kMiB, kMiB + 4096}});
    CHECK(MustParse("4096-1M") == Ranges{{4096, kMiB}});
    CHECK(MustParse("1G+4K,0-1M") == Ranges{{0, kMiB}, {kGiB, kGiB + 4096}});
    CHECK(MustParse("1023K-1M", 0, 1024) == Ranges{{1023 * kKiB, kMiB}});
    CHECK(MustParse("1023K-1M") == Ranges{{1020 * kKiB, kMiB}});
  }
  SECTION("suffixed values are rounded like plain ones") {
    CHECK(MustParse("1K-2K") == Ranges{{0, 4096}});
    CHECK(MustParse("5K+1K") == Ranges{{4096, 8192}});
  }
}

TEST_CASE("nosync: ranges are rounded outward to the block size", "[fs][nosync]") {
  SECTION("block size 4096") {
    // Start not aligned.
    CHECK(MustParse("100-4096") == Ranges{{0, 4096}});
    CHECK(MustParse("4097-8192") == Ranges{{4096, 8192}});
    CHECK(MustParse("8191-12288") == Ranges{{4096, 12288}});
    // End not aligned.
    CHECK(MustParse("0-100") == Ranges{{0, 4096}});
    CHECK(MustParse("4096-4097") == Ranges{{4096, 8192}});
    CHECK(MustParse("0-8191") == Ranges{{0, 8192}});
    // Both.
    CHECK(MustParse("4097-8193") == Ranges{{4096, 12288}});
    CHECK(MustParse("4095-4097") == Ranges{{0, 8192}});
    CHECK(MustParse("1-2") == Ranges{{0, 4096}});
    CHECK(MustParse("1+1") == Ranges{{0, 4096}});
    CHECK(MustParse("4095+2") == Ranges{{0, 8192}});
    // Already aligned.
    CHECK(MustParse("8192-12288") == Ranges{{8192, 12288}});
    CHECK(MustParse("0+8192") == Ranges{{0, 8192}});
  }
  SECTION("block size 512") {
    CHECK(MustParse("100-512", 0, 512) == Ranges{{0, 512}});
    CHECK(MustParse("513-1024", 0, 512) == Ranges{{512, 1024}});
    CHECK(MustParse("0-513", 0, 512) == Ranges{{0, 1024}});
    CHECK(MustParse("100-600", 0, 512) == Ranges{{0, 1024}});
    CHECK(MustParse("511+2", 0, 512) == Ranges{{0, 1024}});
    CHECK(MustParse("1024-1536", 0, 512) == Ranges{{1024, 1536}});
    CHECK(MustParse("4097-8193", 0, 512) == Ranges{{4096, 8704}});
  }
  SECTION("other block sizes") {
    CHECK(MustParse("1-2", 0, 1024) == Ranges{{0, 1024}});
    CHECK(MustParse("1-2", 0, 65536) == Ranges{{0, 65536}});
    CHECK(MustParse("65537-65538", 0, 65536) == Ranges{{65536, 131072}});
    CHECK(MustParse("4097-8193", 0, 8192) == Ranges{{0, 16384}});
  }
}

TEST_CASE("nosync: all", "[fs][nosync]") {
  SECTION("block size 4096") {
    CHECK(MustParse("all", 0).empty());
    CHECK(MustParse("all", 1) == Ranges{{0, 4096}});
    CHECK(MustParse("all", 4095) == Ranges{{0, 4096}});
    CHECK(MustParse("all", 4096) == Ranges{{0, 4096}});
    CHECK(MustParse("all", 4097) == Ranges{{0, 8192}});
    CHECK(MustParse("all", 10 * kGiB + 1) == Ranges{{0, 10 * kGiB + 4096}});
  }
  SECTION("block size 512") {
    CHECK(MustParse("all", 0, 512).empty());
    CHECK(MustParse("all", 1, 512) == Ranges{{0, 512}});
    CHECK(MustParse("all", 4096, 512) == Ranges{{0, 4096}});
    CHECK(MustParse("all", 4097, 512) == Ranges{{0, 4608}});
  }
  SECTION("with whitespace and a trailing NUL") {
    CHECK(MustParse(" all ", 4097) == Ranges{{0, 8192}});
    CHECK(MustParse("\t\nall\n", 1) == Ranges{{0, 4096}});
    CHECK(MustParse("all\0"sv, 4096) == Ranges{{0, 4096}});
    CHECK(MustParse(" all \n\0"sv, 1, 512) == Ranges{{0, 512}});
  }
  SECTION("file size at the largest offset") {
    CHECK(MustParse("all", k2Pow63 - 4096) == Ranges{{0, k2Pow63 - 4096}});
    CHECK(MustParse("all", k2Pow63 - 4097) == Ranges{{0, k2Pow63 - 4096}});
    CHECK(MustParse("all", k2Pow63 - 512, 512) == Ranges{{0, k2Pow63 - 512}});
    ExpectInvalid("all", "'all'", k2Pow63 - 4095);
    ExpectInvalid("all", "'all'", kMaxFileOffset);
    ExpectInvalid("all", "'all'", kMaxFileOffset, 512);
    ExpectInvalid("all", "'all'", UINT64_MAX);
  }
  SECTION("must stand alone") {
    ExpectInvalid("all,0-1", "'all' must stand alone", 4096);
    ExpectInvalid("0-1,all", "'all' must stand alone", 4096);
    ExpectInvalid("0-1, all ", "'all' must stand alone", 4096);
    ExpectInvalid("all , 0-1", "'all' must stand alone", 4096);
    ExpectInvalid("all 0-1", "'all' must stand alone", 4096);
    ExpectInvalid("all all", "'all' must stand alone", 4096);
    ExpectInvalid("all,all", "'all' must stand alone", 4096);
    ExpectInvalid("all,", "'all' must stand alone", 4096);
    ExpectInvalid(",all", "empty range", 4096);
  }
  SECTION("only lower case, only the whole word") {
    ExpectInvalid("ALL", "found 'A'", 4096);
    ExpectInvalid("All", "found 'A'", 4096);
    ExpectInvalid("alll", "found 'a'", 4096);
    ExpectInvalid("al", "found 'a'", 4096);
    ExpectInvalid("all-1", "found 'a'", 4096);
    ExpectInvalid("a ll", "found 'a'", 4096);
  }
}

TEST_CASE("nosync: empty and whitespace-only values are the empty set", "[fs][nosync]") {
  for (uint32_t bs : {512u, 4096u}) {
    for (uint64_t size : {uint64_t{0}, uint64_t{1}, uint64_t{1} << 40}) {
      CHECK(MustParse("", size, bs).empty());
      CHECK(MustParse(" ", size, bs).empty());
      CHECK(MustParse("\t", size, bs).empty());
      CHECK(MustParse("\n", size, bs).empty());
      CHECK(MustParse(" \t\n \n\t ", size, bs).empty());
      CHECK(MustParse("\0"sv, size, bs).empty());
      CHECK(MustParse(" \n\0"sv, size, bs).empty());
    }
  }
  // Other control characters are not whitespace.
  ExpectInvalid("\r", "byte 0x0d");
  ExpectInvalid("\v", "byte 0x0b");
  ExpectInvalid("\f", "byte 0x0c");
  ExpectInvalid("\0\0"sv, "byte 0x00");
}

TEST_CASE("nosync: whitespace around items and commas", "[fs][nosync]") {
  const Ranges two = {{0, 4096}, {8192, 12288}};
  CHECK(MustParse(" 0-1,8192-8193") == two);
  CHECK(MustParse("0-1,8192-8193 ") == two);
  CHECK(MustParse("0-1 ,8192-8193") == two);
  CHECK(MustParse("0-1, 8192-8193") == two);
  CHECK(MustParse("  0-1  ,  8192-8193  ") == two);
  CHECK(MustParse("\t0-1\t,\t8192-8193\t") == two);
  CHECK(MustParse("\n0-1\n,\n8192-8193\n") == two);
  CHECK(MustParse("0-1\n,\t 8192+1 \n") == two);
  CHECK(MustParse("0-1,\n8192+1\n") == two);
  CHECK(MustParse("\n\n\t 0+1 \t\n\n") == Ranges{{0, 4096}});
}

TEST_CASE("nosync: no whitespace inside an item", "[fs][nosync]") {
  ExpectInvalid("0 -4096", "missing '-' (START-END) or '+' (START+LENGTH)");
  ExpectInvalid("0 +4096", "missing '-' (START-END) or '+' (START+LENGTH)");
  ExpectInvalid("0- 4096", "no whitespace is allowed inside a range");
  ExpectInvalid("0+ 4096", "no whitespace is allowed inside a range");
  ExpectInvalid("0 - 4096", "missing '-'");
  ExpectInvalid("4 K-8K", "missing '-'");
  ExpectInvalid("0-8 K", "expected ',' between ranges, found 'K'");
  ExpectInvalid("0-1,4096 -8192", "missing '-'");
}

TEST_CASE("nosync: a trailing NUL byte is ignored", "[fs][nosync]") {
  CHECK(MustParse("0-4096\0"sv) == Ranges{{0, 4096}});
  CHECK(MustParse("0-1 \0"sv) == Ranges{{0, 4096}});
  CHECK(MustParse("0-1,8192+1\0"sv) == Ranges{{0, 4096}, {8192, 12288}});
  CHECK(MustParse("1K-2K\0"sv, 0, 512) == Ranges{{1024, 2048}});
  // Only one, and only at the very end.
  ExpectInvalid("0-1\0\0"sv, "byte 0x00");
  ExpectInvalid("0-1\0 "sv, "byte 0x00");
  ExpectInvalid("0-1\0,8192-8193"sv, "byte 0x00");
  ExpectInvalid(
      "\0"
      "0-1"sv,
      "byte 0x00");
  ExpectInvalid("0\0-1"sv, "byte 0x00");
}

TEST_CASE("nosync: overlapping, adjacent and unsorted items are merged", "[fs][nosync]") {
  SECTION("unsorted") {
    CHECK(MustParse("8192-12288,0-4096") == Ranges{{0, 4096}, {8192, 12288}});
    CHECK(MustParse("40960+4096,16384+4096,0+4096") ==
          Ranges{{0, 4096}, {16384, 20480}, {40960, 45056}});
  }
  SECTION("adjacent") {
    CHECK(MustParse("0-4096,4096-8192") == Ranges{{0, 8192}});
    CHECK(MustParse("4096-8192,0-4096") == Ranges{{0, 8192}});
    CHECK(MustParse("0+4096,4096+4096,8192+4096") == Ranges{{0, 12288}});
  }
  SECTION("adjacent only after rounding") {
    CHECK(MustParse("0-1,4097-4098") == Ranges{{0, 8192}});
    CHECK(MustParse("0-1,1100-1200", 0, 512) == Ranges{{0, 512}, {1024, 1536}});
    CHECK(MustParse("0-1,1100-1200", 0, 4096) == Ranges{{0, 4096}});
    CHECK(MustParse("0-1,600-700", 0, 512) == Ranges{{0, 1024}});
  }
  SECTION("overlapping") {
    CHECK(MustParse("0-5000,4096-8192") == Ranges{{0, 8192}});
    CHECK(MustParse("0-1,100-200") == Ranges{{0, 4096}});
    CHECK(MustParse("4096-16384,8192-20480") == Ranges{{4096, 20480}});
  }
  SECTION("contained and duplicated") {
    CHECK(MustParse("0-64K,4K-8K") == Ranges{{0, 65536}});
    CHECK(MustParse("4K-8K,0-64K") == Ranges{{0, 65536}});
    CHECK(MustParse("0-4096,0-4096,0+4096") == Ranges{{0, 4096}});
  }
  SECTION("a chain joining separate ranges") {
    CHECK(MustParse("0-4K,8K-12K,16K-20K,2K-18K") == Ranges{{0, 20480}});
    CHECK(MustParse("0-4K,8K-12K,16K-20K,5K-6K") == Ranges{{0, 12288}, {16384, 20480}});
    CHECK(MustParse("0-4K,12K-16K,5K-6K") == Ranges{{0, 8192}, {12288, 16384}});
  }
}

TEST_CASE("nosync: EINVAL for empty items", "[fs][nosync]") {
  ExpectInvalid(",", "empty range: the value starts with ','");
  ExpectInvalid(" , ", "empty range: the value starts with ','");
  ExpectInvalid(",0-1", "empty range: the value starts with ','");
  ExpectInvalid("0-1,", "empty range: the value ends with ','");
  ExpectInvalid("0-1 , ", "empty range: the value ends with ','");
  ExpectInvalid("0-1,\0"sv, "empty range: the value ends with ','");
  ExpectInvalid("0-1,,8192-8193", "empty range between two ','");
  ExpectInvalid("0-1, ,8192-8193", "empty range between two ','");
  ExpectInvalid("0-1,\t\n,8192-8193", "empty range between two ','");
  ExpectInvalid(",,", "empty range");
  ExpectInvalid("all,", "'all' must stand alone", 4096);
}

TEST_CASE("nosync: EINVAL for missing numbers", "[fs][nosync]") {
  ExpectInvalid("0-", "missing end of range 1");
  ExpectInvalid("0+", "missing length of range 1");
  ExpectInvalid("0-,8192-8193", "missing end of range 1");
  ExpectInvalid("0-1,8192+", "missing length of range 2");
  ExpectInvalid("0", "missing '-' (START-END) or '+' (START+LENGTH) after the start of range 1");
  ExpectInvalid("4096", "missing '-'");
  ExpectInvalid("4K", "missing '-'");
  ExpectInvalid("0-1,4096", "after the start of range 2");
  ExpectInvalid("4096,0-1", "after the start of range 1");
  ExpectInvalid("0-K", "expected the end of range 1 as a decimal number, found 'K'");
  ExpectInvalid("K-4K", "expected the start of range 1 as a decimal number, found 'K'");
  ExpectInvalid("0+G", "expected the length of range 1 as a decimal number, found 'G'");
}

TEST_CASE("nosync: EINVAL for junk characters", "[fs][nosync]") {
  ExpectInvalid("abc", "expected the start of range 1 as a decimal number, found 'a'");
  ExpectInvalid("0-1x", "unexpected 'x' after range 1");
  ExpectInvalid("0x10-0x20", "found 'x'");
  ExpectInvalid("1.5K-2K", "found '.'");
  ExpectInvalid("1e3-2e3", "found 'e'");
  ExpectInvalid("0-1;8192-8193", "unexpected ';'");
  ExpectInvalid("0-1 8192-8193", "expected ',' between ranges, found '8'");
  ExpectInvalid("0-1 x", "expected ',' between ranges, found 'x'");
  ExpectInvalid("1KB-2KB", "found 'B'");
  ExpectInvalid("0-2KB", "unexpected 'B' after range 1");
  ExpectInvalid("1KK-2K", "found 'K'");
  ExpectInvalid("0-1Kk", "unexpected 'k'");
  ExpectInvalid("1T-2T", "found 'T'");
  ExpectInvalid("0-4K5", "unexpected '5'");
  ExpectInvalid("0-1-2", "unexpected '-'");
  ExpectInvalid("0+1+2", "unexpected '+'");
  ExpectInvalid("0-1+2", "unexpected '+'");
  ExpectInvalid("0_1", "found '_'");
  ExpectInvalid("0:4096", "found ':'");
  ExpectInvalid("0-4096\r", "byte 0x0d");
  ExpectInvalid("0-4096\r\n", "byte 0x0d");
  ExpectInvalid("0-1\xc2\xa0", "byte 0xc2");
  ExpectInvalid("\xef\xbc\x90-1", "byte 0xef");
  ExpectInvalid("0-\x7f", "byte 0x7f");
  ExpectInvalid("[0-1]", "found '['");
  ExpectInvalid("\"0-1\"", "found '\"'");
}

TEST_CASE("nosync: EINVAL for signs", "[fs][nosync]") {
  ExpectInvalid("-5", "sign '-' is not allowed");
  ExpectInvalid("+5", "sign '+' is not allowed");
  ExpectInvalid(" -5", "sign '-' is not allowed");
  ExpectInvalid("-5-10", "sign '-' is not allowed");
  ExpectInvalid("+5+1", "sign '+' is not allowed");
  ExpectInvalid("-0-4096", "sign '-' is not allowed");
  ExpectInvalid("5--6", "sign '-' is not allowed: the end of range 1");
  ExpectInvalid("5-+6", "sign '+' is not allowed: the end of range 1");
  ExpectInvalid("5+-1", "sign '-' is not allowed: the length of range 1");
  ExpectInvalid("5++1", "sign '+' is not allowed: the length of range 1");
  ExpectInvalid("0-1,-8192-8193", "sign '-' is not allowed: the start of range 2");
  ExpectInvalid("-", "sign '-' is not allowed");
  ExpectInvalid("+", "sign '+' is not allowed");
}

TEST_CASE("nosync: EINVAL when END <= START", "[fs][nosync]") {
  ExpectInvalid("4096-4096", "end 4096 is not after start 4096");
  ExpectInvalid("8192-4096", "end 4096 is not after start 8192");
  ExpectInvalid("1-0", "end 0 is not after start 1");
  ExpectInvalid("0-0", "end 0 is not after start 0");
  ExpectInvalid("1K-1024", "end 1024 is not after start 1024");
  ExpectInvalid("2M-1M", "end 1048576 is not after start 2097152");
  // Checked before rounding: both would round to [0, 4096).
  ExpectInvalid("100-50", "end 50 is not after start 100");
  ExpectInvalid("0-4096,8193-8192", "range 2 \"8193-8192\"");
  ExpectInvalid("4096-4096", "not after start", 0, 512);
}

TEST_CASE("nosync: EINVAL when LENGTH is 0", "[fs][nosync]") {
  ExpectInvalid("0+0", "range 1 \"0+0\": length is 0");
  ExpectInvalid("4096+0", "length is 0");
  ExpectInvalid("1K+0K", "length is 0");
  ExpectInvalid("0-1,8192+000", "range 2 \"8192+000\": length is 0");
  ExpectInvalid("1+0", "length is 0", 0, 512);
}

TEST_CASE("nosync: EINVAL for numbers that overflow", "[fs][nosync]") {
  SECTION("too many digits") {
    ExpectInvalid("99999999999999999999-1", "start of range 1 \"99999999999999999999\" is larger");
    ExpectInvalid("0-99999999999999999999", "end of range 1 \"99999999999999999999\" is larger");
    ExpectInvalid("0+99999999999999999999", "length of range 1");
    ExpectInvalid("0-18446744073709551615", "is larger than 9223372036854775807");
    ExpectInvalid("0-18446744073709551616", "is larger than 9223372036854775807");
    ExpectInvalid("0-" + std::string(100, '9'), "is larger than 9223372036854775807");
    ExpectInvalid("0-" + std::string(100, '9'), "...\"");
  }
  SECTION("just above the largest offset") {
    ExpectInvalid("9223372036854775808-9223372036854775809", "start of range 1");
    ExpectInvalid("0-9223372036854775808", "end of range 1 \"9223372036854775808\"");
    ExpectInvalid("0+9223372036854775808", "length of range 1");
    ExpectInvalid("0-9223372036854775810", "is larger than");
  }
  SECTION("the largest offset itself parses as a number") {
    // 9223372036854775807 is accepted as a number; the range fails only
    // because its end rounds up past the limit.
    ExpectInvalid("0-9223372036854775807", "rounded up to the block size 4096");
    ExpectInvalid("9223372036854775807-9223372036854775807", "is not after start");
  }
  SECTION("with a suffix") {
    ExpectInvalid("0-9999999999G", "end of range 1 \"9999999999G\" is larger");
    ExpectInvalid("0-8589934592G", "\"8589934592G\" is larger");              // 2^63
    ExpectInvalid("0-8796093022208M", "\"8796093022208M\" is larger");        // 2^63
    ExpectInvalid("0-9007199254740992K", "\"9007199254740992K\" is larger");  // 2^63
    ExpectInvalid("0-9007199254740992k", "is larger");
    ExpectInvalid("8589934592g+1", "start of range 1");
    ExpectInvalid("0+17179869184G", "length of range 1");
  }
  SECTION("with a suffix just within the limit") {
    CHECK(MustParse("0-8589934591G") == Ranges{{0, k2Pow63 - kGiB}});
    CHECK(MustParse("0-8796093022207M") == Ranges{{0, k2Pow63 - kMiB}});
    CHECK(MustParse("0-9007199254740991K", 0, 512) == Ranges{{0, k2Pow63 - kKiB}});
    // The same end rounds past the limit with 4 KiB blocks.
    ExpectInvalid("0-9007199254740991K", "rounded up", 0, 4096);
  }
}

TEST_CASE("nosync: EINVAL when START+LENGTH overflows", "[fs][nosync]") {
  ExpectInvalid("9223372036854775807+1",
                "range 1 \"9223372036854775807+1\": start+length is larger");
  ExpectInvalid("1+9223372036854775807", "start+length is larger than 9223372036854775807");
  ExpectInvalid("4611686018427387904+4611686018427387904", "start+length");  // 2^63
  ExpectInvalid("9223372036854771712+4096", "start+length");
  ExpectInvalid("8589934591G+1G", "start+length");
  // Just within: ends at 2^63 - 4096.
  CHECK(MustParse("4611686018427387904+4611686018427383808") == Ranges{{k2Pow62, k2Pow63 - 4096}});
  ExpectInvalid("9223372036854771712+4096", "start+length", 0, 512);
  CHECK(MustParse("9223372036854771712+3584", 0, 512) == Ranges{{k2Pow63 - 4096, k2Pow63 - 512}});
}

TEST_CASE("nosync: EINVAL when the rounded end exceeds the largest offset", "[fs][nosync]") {
  SECTION("block size 4096") {
    CHECK(MustParse("0-9223372036854771712") == Ranges{{0, k2Pow63 - 4096}});
    CHECK(MustParse("9223372036854771711-9223372036854771712") ==
          Ranges{{k2Pow63 - 8192, k2Pow63 - 4096}});
    ExpectInvalid("0-9223372036854771713",
                  "end 9223372036854771713 rounded up to the block size 4096");
    ExpectInvalid("0-9223372036854775807", "rounded up");
    ExpectInvalid("9223372036854771712+4095", "rounded up");
    ExpectInvalid("9223372036854771712-9223372036854775807", "rounded up");
    ExpectInvalid("0-4096,9223372036854775000-9223372036854775001", "range 2");
  }
  SECTION("block size 512") {
    CHECK(MustParse("0-9223372036854775296", 0, 512) == Ranges{{0, k2Pow63 - 512}});
    CHECK(MustParse("9223372036854775000-9223372036854775296", 0, 512) ==
          Ranges{{k2Pow63 - 1024, k2Pow63 - 512}});
    ExpectInvalid("0-9223372036854775297", "rounded up to the block size 512", 0, 512);
    ExpectInvalid("0-9223372036854775807", "rounded up", 0, 512);
    // Fine with 512-byte blocks, too far with 4096-byte ones.
    ExpectInvalid("0-9223372036854775296", "rounded up", 0, 4096);
  }
  SECTION("block size 65536") {
    CHECK(MustParse("1-9223372036854710272", 0, 65536) == Ranges{{0, k2Pow63 - 65536}});
    ExpectInvalid("0-9223372036854710273", "rounded up to the block size 65536", 0, 65536);
  }
}

TEST_CASE("nosync: at most 4096 items", "[fs][nosync]") {
  SECTION("4096 identical items are fine") {
    CHECK(MustParse(Repeat("0-1", 4096)) == Ranges{{0, 4096}});
  }
  SECTION("4096 separate items are fine") {
    std::string text;
    Ranges expected;
    for (uint64_t i = 0; i < 4096; ++i) {
      if (i > 0) text += ',';
      text += std::to_string(i * 8192) + "+1";
      expected.push_back({i * 8192, i * 8192 + 4096});
    }
    Ranges got = MustParse(text);
    CHECK(got.size() == 4096);
    CHECK(got == expected);
  }
  SECTION("4097 items are too many") {
    ExpectInvalid(Repeat("0-1", 4097), "too many ranges: more than 4096");
    ExpectInvalid(Repeat("0-1", 5000), "too many ranges: more than 4096");
    ExpectInvalid(Repeat("0-1", 4097) + "\0"s, "more than 4096");
    // The error names where the 4097th item starts.
    ExpectInvalid(Repeat("0-1", 4097), "at byte " + std::to_string(4096 * 4));
  }
}

TEST_CASE("nosync: at most 64 KiB of text", "[fs][nosync]") {
  const std::string item = "0-4096";
  const std::string fits = std::string(65536 - item.size(), ' ') + item;
  REQUIRE(fits.size() == 65536);
  CHECK(MustParse(fits) == Ranges{{0, 4096}});
  CHECK(MustParse(fits + "\0"s) == Ranges{{0, 4096}});
  CHECK(MustParse(std::string(65536, ' ')).empty());
  ExpectInvalid(" " + fits, "65537 bytes, longer than the limit of 65536");
  ExpectInvalid(fits + " ", "65537 bytes");
  ExpectInvalid(" " + fits + "\0"s, "65537 bytes");
  ExpectInvalid(std::string(65537, ' '), "65537 bytes");
  ExpectInvalid(std::string(1 << 20, ' '), "1048576 bytes");
}

TEST_CASE("nosync: EINVAL for a bad block size", "[fs][nosync]") {
  for (uint32_t bs : {0u, 1u, 256u, 511u, 1000u, 4095u, 4097u, 131072u, 0x80000000u}) {
    INFO("block size " << bs);
    ExpectInvalid("0-1", "invalid block size " + std::to_string(bs), 0, bs);
    ExpectInvalid("", "invalid block size", 0, bs);
  }
  for (uint32_t bs : {512u, 1024u, 2048u, 4096u, 8192u, 16384u, 32768u, 65536u}) {
    INFO("block size " << bs);
    CHECK(MustParse("1-2", 0, bs) == Ranges{{0, bs}});
  }
}

TEST_CASE("nosync: error messages say where", "[fs][nosync]") {
  ExpectInvalid("0-1,,2-3", "invalid user.nosync value at byte 4: empty range");
  ExpectInvalid("0-1x", "at byte 3: unexpected 'x'");
  ExpectInvalid("  -5", "at byte 2: sign");
  ExpectInvalid("0-1, 8192-4096", "at byte 5: range 2 \"8192-4096\"");
  ExpectInvalid("0-4096,4096", "at byte 11: missing '-'");
  ExpectInvalid("0-1 2", "at byte 4: expected ','");
  ExpectInvalid("0-1,", "at byte 4: empty range");
  ExpectInvalid("0-4096,8192-99999999999999999999", "at byte 12: end of range 2");
  ExpectInvalid("0-1,all", "at byte 4: 'all'", 4096);
}

TEST_CASE("nosync: NormalizeRanges", "[fs][nosync]") {
  CHECK(NormalizeRanges({}).empty());
  CHECK(NormalizeRanges({{5, 5}}).empty());
  CHECK(NormalizeRanges({{9, 3}, {0, 0}}).empty());
  CHECK(NormalizeRanges({{0, 10}}) == Ranges{{0, 10}});
  // No rounding: unaligned values stay as they are.
  CHECK(NormalizeRanges({{3, 7}}) == Ranges{{3, 7}});
  // Sorts.
  CHECK(NormalizeRanges({{20, 30}, {0, 10}}) == Ranges{{0, 10}, {20, 30}});
  // Merges adjacent, keeps a one-byte gap.
  CHECK(NormalizeRanges({{10, 20}, {0, 10}}) == Ranges{{0, 20}});
  CHECK(NormalizeRanges({{0, 10}, {11, 20}}) == Ranges{{0, 10}, {11, 20}});
  // Merges overlapping, contained and duplicate ranges.
  CHECK(NormalizeRanges({{0, 15}, {10, 20}}) == Ranges{{0, 20}});
  CHECK(NormalizeRanges({{0, 100}, {10, 20}, {30, 40}}) == Ranges{{0, 100}});
  CHECK(NormalizeRanges({{10, 20}, {0, 100}}) == Ranges{{0, 100}});
  CHECK(NormalizeRanges({{5, 6}, {5, 6}, {5, 6}}) == Ranges{{5, 6}});
  CHECK(NormalizeRanges({{5, 9}, {5, 6}}) == Ranges{{5, 9}});
  // Drops empty ranges among real ones, even ones inside a gap.
  CHECK(NormalizeRanges({{0, 10}, {15, 15}, {20, 30}}) == Ranges{{0, 10}, {20, 30}});
  CHECK(NormalizeRanges({{0, 10}, {25, 12}, {20, 30}}) == Ranges{{0, 10}, {20, 30}});
  // A chain: each range links the next.
  CHECK(NormalizeRanges({{40, 50}, {0, 10}, {30, 41}, {10, 20}, {19, 30}}) == Ranges{{0, 50}});
  CHECK(NormalizeRanges({{40, 50}, {0, 10}, {31, 41}, {10, 20}, {19, 30}}) ==
        Ranges{{0, 30}, {31, 50}});
  // Extremes.
  CHECK(NormalizeRanges({{0, UINT64_MAX}, {5, 6}}) == Ranges{{0, UINT64_MAX}});
  CHECK(NormalizeRanges({{kMaxFileOffset - 1, kMaxFileOffset}, {0, 1}}) ==
        Ranges{{0, 1}, {kMaxFileOffset - 1, kMaxFileOffset}});
  // Idempotent.
  const Ranges once = NormalizeRanges({{7, 9}, {1, 3}, {2, 5}, {9, 12}});
  CHECK(once == Ranges{{1, 5}, {7, 12}});
  CHECK(NormalizeRanges(once) == once);
}

TEST_CASE("nosync: FormatNosyncRanges", "[fs][nosync]") {
  CHECK(FormatNosyncRanges({}) == "");
  CHECK(FormatNosyncRanges({{0, 4096}}) == "0-4096");
  CHECK(FormatNosyncRanges({{0, 4096}, {8192, 12288}}) == "0-4096,8192-12288");
  // Plain decimal bytes, never suffixes.
  CHECK(FormatNosyncRanges({{kMiB, kGiB}}) == "1048576-1073741824");
  CHECK(FormatNosyncRanges({{0, k2Pow63 - 4096}}) == "0-9223372036854771712");
  CHECK(FormatNosyncRanges({{k2Pow63 - 8192, k2Pow63 - 4096}}) ==
        "9223372036854767616-9223372036854771712");
  // Any list is normalized first, so one set has exactly one text.
  CHECK(FormatNosyncRanges({{8192, 12288}, {0, 4096}}) == "0-4096,8192-12288");
  CHECK(FormatNosyncRanges({{0, 4096}, {4096, 8192}}) == "0-8192");
  CHECK(FormatNosyncRanges({{0, 8192}, {4096, 12288}, {4096, 4096}}) == "0-12288");
  CHECK(FormatNosyncRanges({{4096, 4096}}) == "");
}

TEST_CASE("nosync: the same set always gives the same text", "[fs][nosync]") {
  const std::string canonical = "0-4096,8192-12288";
  for (const char* text :
       {"0-4096,8192-12288", "8192-12288,0-4096", " 8K+4K , 0-1 ", "0+1,8192+1",
        "0-2K,2K-4K,8K-12K", "1-2,3-4,10000-10001", "\t0-4096\n,\n12287-12288"}) {
    INFO("text " << Printable(text));
    CHECK(FormatNosyncRanges(MustParse(text)) == canonical);
  }
  CHECK(FormatNosyncRanges(MustParse("all", 4097)) == "0-8192");
  CHECK(FormatNosyncRanges(MustParse("0-8192")) == "0-8192");
  CHECK(FormatNosyncRanges(MustParse("1K-2K", 0, 512)) == "1024-2048");
  CHECK(FormatNosyncRanges(MustParse("1K-2K", 0, 4096)) == "0-4096");
  CHECK(FormatNosyncRanges(MustParse("")) == "");
}

TEST_CASE("nosync: formatted text parses back to the same list", "[fs][nosync]") {
  const std::vector<Ranges> lists = {
      {},
      {{0, 4096}},
      {{0, 4096}, {8192, 12288}},
      {{4096, 1 << 20}, {2 << 20, 3 << 20}, {kGiB, 2 * kGiB}},
      {{0, k2Pow63 - 4096}},
      {{k2Pow62, k2Pow63 - 4096}},
  };
  for (const Ranges& x : lists) {
    const std::string text = FormatNosyncRanges(x);
    for (uint32_t bs : {512u, 4096u}) {
      for (uint64_t size : {uint64_t{0}, uint64_t{1}, uint64_t{4097}, kMaxFileOffset}) {
        INFO("text " << Printable(text) << ", block size " << bs << ", file size " << size);
        CHECK(MustParse(text, size, bs) == x);
      }
    }
  }
  // 512-aligned lists round-trip with 512-byte blocks.
  const Ranges small = {{512, 1024}, {1536, 2560}, {k2Pow63 - 1024, k2Pow63 - 512}};
  CHECK(MustParse(FormatNosyncRanges(small), 0, 512) == small);
}

TEST_CASE("nosync: random lists round-trip through the text", "[fs][nosync]") {
  constexpr uint32_t kBlockSizes[] = {512, 1024, 4096, 65536};
  for (uint32_t seed : TestSeeds(20)) {
    INFO("seed " << seed << " (rerun with --rng-seed " << seed << ")");
    std::mt19937_64 rng(seed);
    for (int iteration = 0; iteration < 100; ++iteration) {
      INFO("iteration " << iteration);
      const uint32_t bs = kBlockSizes[Uniform(rng, 0, 3)];
      const uint64_t max_block = kMaxFileOffset / bs;  // ends stay <= max_block * bs
      // Small gaps and lengths mostly, with an occasional huge jump.
      const size_t count = Uniform(rng, 0, 300);
      Ranges x;
      uint64_t block = Uniform(rng, 0, 3) == 0 ? Uniform(rng, 0, max_block / 2) : 0;
      for (size_t i = 0; i < count; ++i) {
        const uint64_t gap = i == 0 ? Uniform(rng, 0, 4) : Uniform(rng, 1, 8);
        const uint64_t len = Uniform(rng, 1, 16);
        if (block + gap + len > max_block) break;
        block += gap;
        x.push_back({block * bs, (block + len) * bs});
        block += len;
        if (Uniform(rng, 0, 50) == 0 && block < max_block)
          block += Uniform(rng, 0, (max_block - block) / 2);
      }
      REQUIRE(NormalizeRanges(x) == x);
      const std::string text = FormatNosyncRanges(x);
      INFO("text " << Printable(text) << ", block size " << bs);
      const uint64_t size = Uniform(rng, 0, kMaxFileOffset);
      auto parsed = ParseNosyncRanges(text, size, bs);
      INFO(parsed.status().ToString());
      REQUIRE(parsed.ok());
      REQUIRE(*parsed == x);
      REQUIRE(FormatNosyncRanges(*parsed) == text);
    }
  }
}

namespace {

// A random number's text: plain decimal, or with a suffix when it divides.
std::string RandomNumberText(std::mt19937_64& rng, uint64_t v) {
  const char* suffixes[] = {"G", "g", "M", "m", "K", "k"};
  const uint64_t units[] = {kGiB, kGiB, kMiB, kMiB, kKiB, kKiB};
  std::string zeros(Uniform(rng, 0, 8) == 0 ? Uniform(rng, 1, 3) : 0, '0');
  for (int i = 0; i < 6; ++i) {
    if (v % units[i] == 0 && Uniform(rng, 0, 2) == 0) {
      return zeros + std::to_string(v / units[i]) + suffixes[i];
    }
  }
  return zeros + std::to_string(v);
}

std::string RandomSpace(std::mt19937_64& rng) {
  static const char kSpace[] = {' ', '\t', '\n'};
  std::string out;
  const uint64_t n = Uniform(rng, 0, 3) == 0 ? Uniform(rng, 1, 3) : 0;
  for (uint64_t i = 0; i < n; ++i) out += kSpace[Uniform(rng, 0, 2)];
  return out;
}

}  // namespace

TEST_CASE("nosync: random values parse like a block bitmap says", "[fs][nosync]") {
  constexpr uint32_t kBlockSizes[] = {512, 4096, 65536};
  constexpr uint64_t kBlocks = 96;
  for (uint32_t seed : TestSeeds(20)) {
    INFO("seed " << seed << " (rerun with --rng-seed " << seed << ")");
    std::mt19937_64 rng(seed);
    for (int iteration = 0; iteration < 200; ++iteration) {
      INFO("iteration " << iteration);
      const uint32_t bs = kBlockSizes[Uniform(rng, 0, 2)];
      const uint64_t limit = kBlocks * bs;
      std::vector<bool> bitmap(kBlocks + 1, false);
      std::string text = RandomSpace(rng);
      const size_t items = Uniform(rng, 1, 12);
      for (size_t i = 0; i < items; ++i) {
        if (i > 0) text += RandomSpace(rng) + "," + RandomSpace(rng);
        // Block-aligned endpoints half the time so suffixes show up.
        const bool aligned = Uniform(rng, 0, 1) == 0;
        uint64_t start = aligned ? Uniform(rng, 0, kBlocks - 1) * bs : Uniform(rng, 0, limit - 1);
        uint64_t end =
            aligned ? Uniform(rng, start / bs + 1, kBlocks) * bs : Uniform(rng, start + 1, limit);
        if (Uniform(rng, 0, 1) == 0) {
          text += RandomNumberText(rng, start) + "-" + RandomNumberText(rng, end);
        } else {
          text += RandomNumberText(rng, start) + "+" + RandomNumberText(rng, end - start);
        }
        for (uint64_t b = start / bs; b * bs < end; ++b) bitmap[b] = true;
      }
      text += RandomSpace(rng);
      if (Uniform(rng, 0, 4) == 0) text += '\0';

      Ranges expected;
      for (uint64_t b = 0; b <= kBlocks; ++b) {
        if (!bitmap[b]) continue;
        if (!expected.empty() && expected.back().end == b * bs) {
          expected.back().end += bs;
        } else {
          expected.push_back({b * bs, (b + 1) * bs});
        }
      }
      INFO("text " << Printable(text) << ", block size " << bs);
      const Ranges got = MustParse(text, Uniform(rng, 0, limit), bs);
      REQUIRE(got == expected);
      REQUIRE(MustParse(FormatNosyncRanges(got), 0, bs) == got);
    }
  }
}
