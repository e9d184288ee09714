// The user.nosync value on a directory: a no-fsync policy
// (fs/nosync_policy.h).
#include <catch2/catch.hpp>

#include "fs/nosync_policy.h"

namespace nosyncfs {
namespace {

constexpr uint32_t kBs = 4096;

uint32_t Parse(std::string_view text) {
  Result<uint32_t> r = ParseNosyncPolicy(text, kBs);
  REQUIRE(r.ok());
  return *r;
}

int Error(std::string_view text) {
  Result<uint32_t> r = ParseNosyncPolicy(text, kBs);
  return r.ok() ? 0 : r.status().code();
}

TEST_CASE("policy: values parse to growth units in blocks", "[fs][policy]") {
  CHECK(Parse("") == 0);
  CHECK(Parse(" \n") == 0);
  CHECK(Parse("all") == 512);  // 2 MiB
  CHECK(Parse(std::string_view("all\0", 4)) == 512);  // a trailing NUL some tools send
  CHECK(Parse(" all , grow=8M ") == 2048);
  CHECK(Parse("all,grow=4096") == 1);
  CHECK(Parse("all,grow=4097") == 2);  // rounded up to whole blocks
  CHECK(Parse("all,grow=1") == 1);
  CHECK(Parse("all,grow=64k") == 16);
  CHECK(Parse("all,grow=1G") == 262144);
  CHECK(ParseNosyncPolicy("all", 65536).value() == 32);
}

TEST_CASE("policy: malformed values are EINVAL", "[fs][policy]") {
  for (std::string_view bad : {"0-1M", "ALL", "all,", "all,grow", "all,grow=", "all,grow=0",
                               "all,grow=1025M", "all,grow=2G", "all,grow=1T", "all,grow=-4K",
                               "all,grow=4K4", "all,grow=1M,grow=2M", "all,size=1M",
                               "all grow=1M", "everything", "all,grow=99999999999999999999"}) {
    INFO(bad);
    CHECK(Error(bad) == EINVAL);
  }
}

TEST_CASE("policy: the canonical text parses back to the same unit", "[fs][policy]") {
  CHECK(FormatNosyncPolicy(0, kBs) == "");
  CHECK(FormatNosyncPolicy(512, kBs) == "all,grow=2097152");
  for (uint32_t blocks : {1u, 2u, 512u, 2048u, 262144u}) {
    CHECK(Parse(FormatNosyncPolicy(blocks, kBs)) == blocks);
  }
}

}  // namespace
}  // namespace nosyncfs
